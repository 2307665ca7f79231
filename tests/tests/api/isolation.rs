//! PRD 8.3: a token for user B reads and writes nothing of user A, through
//! any endpoint.
//!
//! Alice (device "phone") syncs activities, daily metrics, settings and a plan
//! adjustment, completes her session and leaves a second one open. Bob then
//! tries every way in with his own tokens, on a device called "phone" (the
//! same device id string as Alice's) and on "tablet". Every test ends by
//! checking Alice's data is byte-for-byte what it was before Bob started.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use trainsync_tests::{TestContext, TestResponse, activity};
use uuid::Uuid;

use crate::helpers::{entity_ids, expect_error, text};

const ALICE: &str = "alice";
const BOB: &str = "bob";

/// Every page of a full download, each the response text with its
/// `server_timestamp` blanked, and every `next_cursor` handed out.
async fn full_download(ctx: &TestContext, token: &str, since: Option<&str>) -> Download {
    let mut pages = Vec::new();
    let mut cursors = Vec::new();
    let mut since = since.map(str::to_owned);
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(since) = since.as_deref() {
            query.push(("since", since));
        }
        let response = ctx.get("/sync/download", token, &query).await;
        assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
        let page = response.json();
        pages.push(without_timestamp(&response));
        let next = page["next_cursor"]
            .as_str()
            .expect("next_cursor")
            .to_owned();
        cursors.push(next.clone());
        since = Some(next);
        if page["has_more"] == false {
            return Download { pages, cursors };
        }
    }
}

struct Download {
    pages: Vec<String>,
    cursors: Vec<String>,
}

impl Download {
    /// `kind:id` of every entity in the download.
    fn ids(&self) -> BTreeSet<String> {
        self.pages
            .iter()
            .flat_map(|page| entity_ids(&[serde_json::from_str(page).unwrap()]))
            .collect()
    }
}

/// The response text with the value of `server_timestamp` blanked.
fn without_timestamp(response: &TestResponse) -> String {
    let stamp = response.json()["server_timestamp"]
        .as_str()
        .expect("server_timestamp")
        .to_owned();
    let field = format!("\"server_timestamp\":\"{stamp}\"");
    let body = text(response);
    assert_eq!(body.matches(&field).count(), 1, "{body}");
    body.replace(&field, "\"server_timestamp\":\"-\"")
}

/// `/sync/status` for `token`.
async fn status(ctx: &TestContext, token: &str) -> Value {
    let response = ctx.get("/sync/status", token, &[]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
    response.json()
}

/// The sessions of a status response, by id.
fn session<'a>(status: &'a Value, sync_id: &str) -> Option<&'a Value> {
    status["recent_sessions"]
        .as_array()
        .expect("recent_sessions")
        .iter()
        .find(|s| s["sync_id"] == sync_id)
}

fn sync_ids(status: &Value) -> BTreeSet<String> {
    status["recent_sessions"]
        .as_array()
        .expect("recent_sessions")
        .iter()
        .map(|s| s["sync_id"].as_str().unwrap().to_owned())
        .collect()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Alice's synced world, and a record of it from before Bob's attempts.
struct Alice {
    token: String,
    /// Her completed session.
    done_sync_id: String,
    /// A session she opened and has not completed.
    open_sync_id: String,
    /// The idempotency key of her upload, and the exact body and response.
    request_id: Uuid,
    upload_body: Value,
    upload_response: String,
    /// Every cursor she was handed (check and download).
    cursors: Vec<String>,
    /// A time before any of her changes.
    before_changes: DateTime<Utc>,
    /// Her full download and status before Bob started.
    download: Download,
    status: Value,
}

impl Alice {
    async fn syncs(ctx: &TestContext) -> Self {
        let token = ctx.token(ALICE, "phone");
        let before_changes = ctx.now() - Duration::minutes(5);
        let done_sync_id = ctx.check(&token, ALICE).await;
        let request_id = Uuid::new_v4();
        let upload_body = json!({
            "sync_id": done_sync_id,
            "sync_request_id": request_id,
            "activities": [activity(Uuid::new_v4(), "alice's tempo run"), activity(Uuid::new_v4(), "alice's long run")],
            "daily_metrics": [{"date": "2025-05-31", "recovery_rating": 7, "sleep_hours": 7.5, "submitted_at": "2025-05-31T06:00:00Z"}],
            "settings_changes": [
                {"key": "units", "value": "imperial", "changed_at": "2025-05-31T06:00:00Z"},
                {"key": "timezone", "value": "Europe/Berlin", "changed_at": "2025-05-31T06:00:00Z"}
            ],
            "plan_adjustments": [{"id": Uuid::new_v4(), "workout_id": "w-12", "new_date": "2025-06-03", "requested_at": "2025-05-31T06:00:00Z"}]
        });
        let upload = ctx.post("/sync/upload", &token, &upload_body).await;
        assert_eq!(upload.status, StatusCode::OK, "{}", text(&upload));
        assert_eq!(upload.json()["accepted"].as_array().unwrap().len(), 6);

        let first = full_download(ctx, &token, None).await;
        let done = ctx
            .post(
                "/sync/complete",
                &token,
                &json!({"sync_id": done_sync_id, "status": "success", "cursor": first.cursors.last()}),
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", text(&done));

        let check = ctx
            .post(
                "/sync/check",
                &token,
                &json!({"user_id": ALICE, "pending_changes_count": 0}),
            )
            .await
            .json();
        let open_sync_id = check["sync_id"].as_str().unwrap().to_owned();
        let mut cursors = first.cursors;
        cursors.push(check["cursor"].as_str().unwrap().to_owned());

        let download = full_download(ctx, &token, None).await;
        assert_eq!(download.ids().len(), 6, "{:?}", download.ids());
        let status = status(ctx, &token).await;
        assert_eq!(status["head_seq"], 6);
        // Bob acts an hour later.
        ctx.clock.advance(Duration::hours(1));
        Self {
            token,
            done_sync_id,
            open_sync_id,
            request_id,
            upload_body,
            upload_response: text(&upload),
            cursors,
            before_changes,
            download,
            status,
        }
    }

    /// Alice's data, head and sessions are exactly as before Bob started.
    async fn assert_unchanged(&self, ctx: &TestContext) {
        let now = full_download(ctx, &self.token, None).await;
        assert_eq!(now.pages, self.download.pages, "Alice's download changed");
        let status = status(ctx, &self.token).await;
        assert_eq!(status["head_seq"], self.status["head_seq"]);
        assert_eq!(status["recent_sessions"], self.status["recent_sessions"]);
        let devices: Vec<&Value> = status["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| &d["device_id"])
            .collect();
        assert_eq!(devices, [&json!("phone")], "Alice has only her phone");
    }
}

/// Bob's tokens: a "phone" like Alice's, and a tablet.
struct Bob {
    phone: String,
    tablet: String,
}

impl Bob {
    fn new(ctx: &TestContext) -> Self {
        Self {
            phone: ctx.token(BOB, "phone"),
            tablet: ctx.token(BOB, "tablet"),
        }
    }

    fn tokens(&self) -> [(&'static str, &str); 2] {
        [("phone", &self.phone), ("tablet", &self.tablet)]
    }

    async fn check(&self, ctx: &TestContext, token: &str, position: Value) -> Value {
        let mut body = json!({"user_id": BOB, "pending_changes_count": 0});
        body.as_object_mut()
            .unwrap()
            .extend(position.as_object().unwrap().clone());
        let response = ctx.post("/sync/check", token, &body).await;
        assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
        response.json()
    }

    /// Bob uploads one activity of his own from his phone; returns its id.
    async fn uploads_a_run(&self, ctx: &TestContext) -> Uuid {
        let sync_id = ctx.check(&self.phone, BOB).await;
        let run = Uuid::new_v4();
        let response = ctx
            .upload(
                &self.phone,
                &sync_id,
                json!({"activities": [activity(run, "bob's run")]}),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
        run
    }
}

#[tokio::test]
async fn check_cannot_name_another_user_and_sees_nothing_of_theirs() {
    let ctx = TestContext::new().await;
    let alice = Alice::syncs(&ctx).await;
    let bob = Bob::new(&ctx);

    for (device, token) in bob.tokens() {
        for body in [
            json!({"user_id": ALICE, "pending_changes_count": 0}),
            json!({"user_id": ALICE, "device_id": device, "pending_changes_count": 0}),
            json!({"user_id": ALICE, "cursor": alice.cursors[0], "pending_changes_count": 2}),
        ] {
            let response = ctx.post("/sync/check", token, &body).await;
            let what = format!("bob's {device}: {body}");
            expect_error(
                &response,
                &what,
                StatusCode::FORBIDDEN,
                "forbidden",
                Some("user_id"),
            );
        }
    }

    // Bob's own checks, from any position, report nothing: Alice's changes are not his.
    let bob_head = status(&ctx, &bob.tablet).await["head_cursor"].clone();
    let positions = std::iter::once(json!({}))
        .chain(std::iter::once(
            json!({"last_sync_timestamp": "2000-01-01T00:00:00Z"}),
        ))
        .chain(std::iter::once(
            json!({"last_sync_timestamp": rfc3339(alice.before_changes)}),
        ));
    for position in positions {
        for (device, token) in bob.tokens() {
            let check = bob.check(&ctx, token, position.clone()).await;
            let what = format!("bob's {device} at {position}: {check}");
            assert_eq!(check["has_updates"], false, "{what}");
            assert_eq!(check["server_changes_available"], json!([]), "{what}");
            assert_eq!(check["cursor"], bob_head, "{what}");
        }
    }
    // Alice's cursors name positions in her log: Bob's checks refuse them.
    for cursor in &alice.cursors {
        for (device, token) in bob.tokens() {
            let body = json!({"user_id": BOB, "cursor": cursor, "pending_changes_count": 0});
            let response = ctx.post("/sync/check", token, &body).await;
            let what = format!("bob's {device} with alice's cursor {cursor}");
            expect_error(
                &response,
                &what,
                StatusCode::BAD_REQUEST,
                "invalid_value",
                Some("cursor"),
            );
        }
    }
    alice.assert_unchanged(&ctx).await;
}

#[tokio::test]
async fn upload_cannot_use_another_users_session_or_request_id() {
    let ctx = TestContext::new().await;
    let alice = Alice::syncs(&ctx).await;
    let bob = Bob::new(&ctx);

    // Alice's sessions, open or completed, do not exist for Bob.
    for sync_id in [&alice.done_sync_id, &alice.open_sync_id] {
        for (device, token) in bob.tokens() {
            let response = ctx
                .upload(
                    token,
                    sync_id,
                    json!({"activities": [activity(Uuid::new_v4(), "bob's run")]}),
                )
                .await;
            let what = format!("bob's {device} into {sync_id}");
            expect_error(
                &response,
                &what,
                StatusCode::NOT_FOUND,
                "unknown_sync_id",
                Some("sync_id"),
            );
        }
    }
    // Alice's exact request, resent with Bob's token, is not her stored response replayed.
    let replay = ctx
        .post("/sync/upload", &bob.phone, &alice.upload_body)
        .await;
    expect_error(
        &replay,
        "alice's body from bob",
        StatusCode::NOT_FOUND,
        "unknown_sync_id",
        Some("sync_id"),
    );
    assert_ne!(text(&replay), alice.upload_response);
    let bob_status = status(&ctx, &bob.phone).await;
    assert_eq!(bob_status["head_seq"], 0, "nothing was written for Bob");
    assert!(full_download(&ctx, &bob.phone, None).await.ids().is_empty());
    alice.assert_unchanged(&ctx).await;

    // Alice's sync_request_id in Bob's own session is just Bob's request.
    let sync_id = ctx.check(&bob.phone, BOB).await;
    let run = Uuid::new_v4();
    let body = json!({
        "sync_id": sync_id,
        "sync_request_id": alice.request_id,
        "activities": [activity(run, "bob's run")],
        "settings_changes": [{"key": "units", "value": "metric", "changed_at": rfc3339(ctx.now())}]
    });
    let response = ctx.post("/sync/upload", &bob.phone, &body).await;
    assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
    assert_ne!(
        text(&response),
        alice.upload_response,
        "not Alice's response replayed"
    );
    let result = response.json();
    assert_eq!(
        result["accepted"],
        json!([{"type": "activity", "id": run}, {"type": "settings_change", "id": "units"}]),
        "{result}"
    );
    assert_eq!(
        result["conflicts"],
        json!([]),
        "Alice's units setting is not Bob's"
    );
    assert_eq!(result["server_timestamp"], json!(ctx.now()));
    // Resent, it is Bob's own response that replays.
    let again = ctx.post("/sync/upload", &bob.phone, &body).await;
    assert_eq!(text(&again), text(&response));

    let bob_data = full_download(&ctx, &bob.tablet, None).await;
    let expected: BTreeSet<String> = [format!("activity:{run}"), "setting:units".to_owned()].into();
    assert_eq!(bob_data.ids(), expected);
    let units: Vec<Value> = bob_data
        .pages
        .iter()
        .map(|p| serde_json::from_str::<Value>(p).unwrap()["settings"]["units"].clone())
        .filter(|u| !u.is_null())
        .collect();
    assert_eq!(units, [json!("metric")]);
    assert_eq!(status(&ctx, &bob.phone).await["head_seq"], 2);
    alice.assert_unchanged(&ctx).await;
}

#[tokio::test]
async fn complete_cannot_close_another_users_session() {
    let ctx = TestContext::new().await;
    let alice = Alice::syncs(&ctx).await;
    let bob = Bob::new(&ctx);

    for sync_id in [&alice.done_sync_id, &alice.open_sync_id] {
        for (device, token) in bob.tokens() {
            for body in [
                json!({"sync_id": sync_id, "status": "failed", "error": "hijacked"}),
                json!({"sync_id": sync_id, "status": "success"}),
            ] {
                let response = ctx.post("/sync/complete", token, &body).await;
                let what = format!("bob's {device}: {body}");
                expect_error(
                    &response,
                    &what,
                    StatusCode::NOT_FOUND,
                    "unknown_sync_id",
                    Some("sync_id"),
                );
            }
            // Quoting Alice's cursor is refused before anything is looked up.
            let body = json!({"sync_id": sync_id, "status": "success", "cursor": alice.cursors[0]});
            let response = ctx.post("/sync/complete", token, &body).await;
            let what = format!("bob's {device}: {body}");
            expect_error(
                &response,
                &what,
                StatusCode::BAD_REQUEST,
                "invalid_value",
                Some("cursor"),
            );
        }
    }
    alice.assert_unchanged(&ctx).await;
    let alice_status = status(&ctx, &alice.token).await;
    let done = session(&alice_status, &alice.done_sync_id).expect("Alice's completed session");
    assert_eq!(done["status"], "success");
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(
        session(&alice_status, &alice.open_sync_id).unwrap()["status"],
        "open"
    );
    assert_eq!(alice_status["open_sessions"], 1);

    // Bob's attempts left Alice's open session usable by her.
    let closed = ctx
        .post(
            "/sync/complete",
            &alice.token,
            &json!({"sync_id": alice.open_sync_id, "status": "success"}),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", text(&closed));
    assert_eq!(closed.json()["status"], "success");
    // And Bob's status knows none of it.
    let bob_status = status(&ctx, &bob.phone).await;
    assert_eq!(bob_status["recent_sessions"], json!([]), "{bob_status}");
}

#[tokio::test]
async fn download_shows_nothing_of_another_user_from_any_position() {
    let ctx = TestContext::new().await;
    let alice = Alice::syncs(&ctx).await;
    let bob = Bob::new(&ctx);
    let alice_ids = alice.download.ids();

    // Before Bob has data: nothing at all, from any position.
    let positions: Vec<Option<String>> = vec![
        None,
        Some("2000-01-01T00:00:00Z".into()),
        Some(rfc3339(alice.before_changes)),
    ];
    // Alice's cursors are refused outright, so they cannot skip Bob's own changes.
    for cursor in &alice.cursors {
        for (device, token) in bob.tokens() {
            let response = ctx.get("/sync/download", token, &[("since", cursor)]).await;
            let what = format!("bob's {device} since alice's cursor {cursor}");
            expect_error(
                &response,
                &what,
                StatusCode::BAD_REQUEST,
                "invalid_value",
                Some("since"),
            );
        }
    }
    for since in &positions {
        for (device, token) in bob.tokens() {
            let ids = full_download(&ctx, token, since.as_deref()).await.ids();
            assert!(ids.is_empty(), "bob's {device} since {since:?}: {ids:?}");
        }
    }

    // With data of his own, Bob sees only that.
    let run = Uuid::new_v4();
    let bob_run = {
        let sync_id = ctx.check(&bob.phone, BOB).await;
        let response = ctx
            .upload(
                &bob.phone,
                &sync_id,
                json!({"activities": [activity(run, "bob's run")]}),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK);
        format!("activity:{run}")
    };
    for since in &positions {
        for (device, token) in bob.tokens() {
            let ids = full_download(&ctx, token, since.as_deref()).await.ids();
            let what = format!("bob's {device} since {since:?}: {ids:?}");
            assert!(ids.is_disjoint(&alice_ids), "{what}");
            assert!(ids.iter().all(|id| *id == bob_run), "{what}");
        }
    }
    let everything = full_download(&ctx, &bob.tablet, None).await.ids();
    assert_eq!(everything, BTreeSet::from([bob_run]));
    alice.assert_unchanged(&ctx).await;
}

#[tokio::test]
async fn status_shows_only_the_callers_devices_and_sessions() {
    let ctx = TestContext::new().await;
    let alice = Alice::syncs(&ctx).await;
    let bob = Bob::new(&ctx);
    let bob_arrives = ctx.now();

    let run = bob.uploads_a_run(&ctx).await;
    let bob_sessions = sync_ids(&status(&ctx, &bob.phone).await);
    full_download(&ctx, &bob.tablet, None).await;

    let bob_status = status(&ctx, &bob.tablet).await;
    assert_eq!(bob_status["user_id"], BOB);
    assert_eq!(bob_status["head_seq"], 1, "one change: {run}");
    assert_ne!(bob_status["head_cursor"], alice.status["head_cursor"]);
    let devices = bob_status["devices"].as_array().unwrap();
    let names: BTreeSet<&str> = devices
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["phone", "tablet"]));
    for device in devices {
        // Not Alice's phone: first seen when Bob arrived, never completed a sync.
        let first_seen: DateTime<Utc> =
            serde_json::from_value(device["first_seen_at"].clone()).unwrap();
        assert!(first_seen >= bob_arrives, "{device}");
        assert!(device["last_sync_at"].is_null(), "{device}");
        assert!(device["acknowledged_cursor"].is_null(), "{device}");
    }
    assert_eq!(sync_ids(&bob_status), bob_sessions);
    assert_eq!(bob_sessions.len(), 1);
    let alice_sessions = sync_ids(&alice.status);
    assert!(alice_sessions.contains(&alice.done_sync_id));
    assert!(bob_sessions.is_disjoint(&alice_sessions));
    assert_eq!(bob_status["open_sessions"], 1);
    alice.assert_unchanged(&ctx).await;
}

#[tokio::test]
async fn the_same_entity_ids_stay_separate_per_user() {
    let ctx = TestContext::new().await;
    let alice = Alice::syncs(&ctx).await;
    let bob = Bob::new(&ctx);

    // Bob sends items with Alice's ids: they are new entities of Bob's, not merged into hers.
    let mut items = alice.upload_body.clone();
    let items = items.as_object_mut().unwrap();
    items.remove("sync_id");
    items.remove("sync_request_id");
    for activity in items["activities"].as_array_mut().unwrap() {
        activity["notes"] = json!("bob's notes");
        activity["duration_s"] = json!(600);
    }
    items["settings_changes"][0]["value"] = json!("metric");
    items["daily_metrics"][0]["recovery_rating"] = json!(2);
    items["plan_adjustments"][0]["new_date"] = json!("2025-06-09");
    let sync_id = ctx.check(&bob.phone, BOB).await;
    let response = ctx
        .upload(&bob.phone, &sync_id, Value::Object(items.clone()))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
    let result = response.json();
    assert_eq!(result["accepted"].as_array().unwrap().len(), 6, "{result}");
    assert_eq!(
        result["conflicts"],
        json!([]),
        "nothing of Alice's to conflict with: {result}"
    );

    let bob_data = full_download(&ctx, &bob.tablet, None).await;
    assert_eq!(
        bob_data.ids(),
        alice.download.ids(),
        "the same ids, in Bob's own space"
    );
    let bob_pages: Vec<Value> = bob_data
        .pages
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    for page in &bob_pages {
        for activity in page["activities"].as_array().unwrap() {
            assert_eq!(activity["notes"], "bob's notes");
            assert_eq!(activity["duration_s"], 600);
        }
        for metric in page["daily_metrics"].as_array().unwrap() {
            assert_eq!(metric["recovery_rating"], 2);
        }
        for adjustment in page["plan_adjustments"].as_array().unwrap() {
            assert_eq!(adjustment["new_date"], "2025-06-09");
        }
        if let Some(units) = page["settings"].get("units") {
            assert_eq!(units, "metric");
        }
    }
    alice.assert_unchanged(&ctx).await;
}

#[tokio::test]
async fn conflicts_tracks_and_undo_of_another_user_are_out_of_reach() {
    let ctx = TestContext::new().await;
    let alice = ctx.token(ALICE, "phone");
    // Alice's settings conflict: two of her devices write at the same instant.
    let tablet = ctx.token(ALICE, "tablet");
    let change =
        json!({"settings_changes": [{"key": "units", "value": "metric", "changed_at": ctx.now()}]});
    let other = json!({"settings_changes": [{"key": "units", "value": "imperial", "changed_at": ctx.now()}]});
    let tablet_session = ctx.check(&tablet, ALICE).await;
    ctx.upload(&tablet, &tablet_session, change).await;
    let phone_session = ctx.check(&alice, ALICE).await;
    let lost = ctx.upload(&alice, &phone_session, other).await.json();
    let conflict_id = lost["conflicts"][0]["conflict_id"]
        .as_str()
        .expect("a conflict")
        .to_owned();
    // And a GPS track.
    let activity_id = Uuid::new_v4().to_string();
    let user = trainsync_protocol::domain::UserId::parse(ALICE).unwrap();
    sync_core::store::TrackStore::put_track(
        ctx.store.as_ref(),
        &user,
        &activity_id,
        b"track",
        ctx.now(),
    )
    .await
    .unwrap();

    let bob = ctx.token(BOB, "phone");
    let listed = ctx.get("/sync/conflicts", &bob, &[]).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json()["conflicts"], json!([]));
    let undo = ctx
        .post(
            &format!("/sync/conflicts/{conflict_id}/undo"),
            &bob,
            &json!({}),
        )
        .await;
    assert_eq!(undo.status, StatusCode::NOT_FOUND);
    let track = ctx
        .get(&format!("/sync/tracks/{activity_id}"), &bob, &[])
        .await;
    assert_eq!(track.status, StatusCode::NOT_FOUND);

    // Alice still has both, untouched.
    let mine = ctx.get("/sync/conflicts", &alice, &[]).await.json();
    assert_eq!(mine["conflicts"][0]["id"], conflict_id);
    assert_eq!(mine["conflicts"][0]["status"], "resolved");
    let track = ctx
        .get(&format!("/sync/tracks/{activity_id}"), &alice, &[])
        .await;
    assert_eq!(track.status, StatusCode::OK);
    assert_eq!(track.bytes, b"track");
}

#[tokio::test]
async fn devices_of_another_user_are_out_of_reach() {
    use http::Method;
    let ctx = TestContext::new().await;
    // Both users call their device "phone": ids are per user.
    let alice = ctx.token("alice", "phone");
    let bob = ctx.token("bob", "phone");
    let bob_tablet = ctx.token("bob", "tablet");
    assert_eq!(
        ctx.register(&alice, "phone", Some("alice-apns"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        ctx.register(&bob, "phone", Some("bob-apns")).await.status,
        StatusCode::OK
    );

    // Bob lists only his own devices.
    let listed = ctx.get("/devices", &bob_tablet, &[]).await.json();
    let ids: BTreeSet<String> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["phone".to_owned(), "tablet".to_owned()])
    );
    assert!(!listed.to_string().contains("alice"));

    // Bob logging out "phone" logs out his phone, never Alice's.
    let revoked = ctx
        .request(Method::DELETE, "/devices/phone", Some(&bob_tablet), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(
        ctx.get("/devices", &bob, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let alice_view = ctx.get("/devices", &alice, &[]).await;
    assert_eq!(alice_view.status, StatusCode::OK);
    assert_eq!(alice_view.json()["devices"][0]["revoked"], false);
    // A device Bob does not have is simply not found, whoever else has it.
    let alices_only = ctx.token("alice", "watch");
    assert_eq!(
        ctx.get("/devices", &alices_only, &[]).await.status,
        StatusCode::OK
    );
    let missing = ctx
        .request(Method::DELETE, "/devices/watch", Some(&bob_tablet), None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        ctx.get("/devices", &alices_only, &[]).await.status,
        StatusCode::OK
    );

    // Alice's refresh token works only for Alice's device.
    let login = ctx.login("alice", "tablet").await;
    let refreshed = ctx.refresh(&login.refresh_token).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let access = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = ctx.get("/devices", &access, &[]).await.json();
    assert!(
        mine["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| ["phone", "tablet", "watch"].contains(&d["device_id"].as_str().unwrap())),
        "{mine}"
    );
    assert_eq!(
        mine["devices"].as_array().unwrap().len(),
        3,
        "alice's phone, watch, tablet"
    );
}
