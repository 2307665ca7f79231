//! PRD section 5 end to end on DynamoDB Local: every conflict scenario in both
//! arrival orders (device upload vs backend ingest), the conflict log, and
//! its 24-hour undo synced to every device.

use chrono::{DateTime, Duration, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use trainsync_tests::TestContext;
use uuid::Uuid;

const USER: &str = "runner-1";

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// A manual log from the phone.
fn manual(id: Uuid, start: DateTime<Utc>, notes: &str, rpe: u8) -> Value {
    json!({
        "id": id, "activity_type": "run", "started_at": at(start), "duration_s": 3000,
        "distance_m": 9000, "rpe": rpe, "notes": notes, "feeling": 4, "source": "manual"
    })
}

/// A wearable recording as the wearable pipeline ingests it.
fn wearable(id: Option<Uuid>, start: DateTime<Utc>) -> Value {
    let mut activity = json!({
        "activity_type": "run", "started_at": at(start), "duration_s": 3120,
        "distance_m": 10120.5, "avg_hr": 151, "source_device": "Garmin Forerunner 265",
        "external_id": format!("garmin-{}", start.timestamp())
    });
    if let Some(id) = id {
        activity["id"] = json!(id);
    }
    activity
}

/// A 4-week plan starting today with a workout `w1` tomorrow and `w2` in a week.
fn plan(now: DateTime<Utc>, title: &str) -> Value {
    let day = |d: i64| (now + Duration::days(d)).date_naive().to_string();
    json!({
        "version": 1, "generated_at": at(now), "starts_on": day(0), "weeks": 4,
        "workouts": [
            {"id": "w1", "date": day(1), "workout_type": "tempo", "title": title,
             "structure": [{"kind": "work", "duration_s": 1200}], "targets": {"rpe": 7}},
            {"id": "w2", "date": day(7), "workout_type": "long_run", "title": "Long run",
             "structure": [], "targets": {"distance_m": 18000}}
        ]
    })
}

async fn download(ctx: &TestContext, token: &str, since: Option<&str>) -> (Value, String) {
    let (pages, cursor) = ctx.download_all(token, since, 100).await;
    let mut merged = json!({"activities": [], "deleted": [], "conflicts": [], "settings": {}});
    for page in pages {
        for list in ["activities", "deleted", "conflicts"] {
            let items = page[list].as_array().cloned().unwrap_or_default();
            merged[list].as_array_mut().unwrap().extend(items);
        }
        if let Some(settings) = page["settings"].as_object() {
            merged["settings"]
                .as_object_mut()
                .unwrap()
                .extend(settings.clone());
        }
        if !page["training_plan"].is_null() {
            merged["training_plan"] = page["training_plan"].clone();
        }
    }
    (merged, cursor)
}

fn find<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|v| v["id"] == id)
}

/// The stored activity's fields that the rules decide; ids and times differ
/// between test contexts, so they are left out.
fn decided(activity: &Value) -> Value {
    json!({
        "duration_s": activity["duration_s"], "distance_m": activity["distance_m"],
        "avg_hr": activity["avg_hr"], "rpe": activity["rpe"], "notes": activity["notes"],
        "feeling": activity["feeling"], "source": activity["source"],
        "source_device": activity["source_device"],
    })
}

/// Scenario 1 in one order; returns the stored record as a second device downloads it.
async fn scenario_1(device_first: bool) -> Value {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let id = Uuid::new_v4();
    let start = ctx.now() - Duration::hours(3);
    let body = json!({"activities": [manual(id, start, "felt strong", 6)]});
    let upload = || async {
        let sync_id = ctx.check(&phone, USER).await;
        ctx.upload(&phone, &sync_id, body.clone()).await
    };
    if device_first {
        assert_eq!(upload().await.status, StatusCode::OK);
        let answer = ctx
            .ingest_for(USER, json!({"activities": [wearable(Some(id), start)]}))
            .await;
        assert_eq!(answer["accepted"][0]["id"], id.to_string(), "{answer}");
    } else {
        ctx.ingest_for(USER, json!({"activities": [wearable(Some(id), start)]}))
            .await;
        let response = upload().await.json();
        assert_eq!(
            response["conflicts"][0]["resolution"], "objective_fields_kept",
            "the device's distance and duration lose to the wearable's: {response}"
        );
    }
    let (state, _) = download(&ctx, &ctx.token(USER, "tablet"), None).await;
    let record = find(&state["activities"], &id.to_string())
        .expect("the activity")
        .clone();
    assert_eq!(
        record["distance_m"], 10120.5,
        "objective data from the wearable"
    );
    assert_eq!(record["avg_hr"], 151);
    assert_eq!(
        record["notes"], "felt strong",
        "subjective data from the device"
    );
    assert_eq!(record["rpe"], 6);
    decided(&record)
}

#[tokio::test]
async fn scenario_1_merges_the_same_record_whichever_arrives_first() {
    let device_first = scenario_1(true).await;
    let wearable_first = scenario_1(false).await;
    assert_eq!(device_first, wearable_first);
}

/// Scenario 3 in one order: returns the merged record, the manual log's id and the context.
async fn scenario_3(manual_first: bool) -> (Value, Uuid, Uuid, TestContext) {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let manual_id = Uuid::new_v4();
    let wearable_id = Uuid::new_v4();
    let start = ctx.now() - Duration::hours(5);
    let log = json!({"activities": [manual(manual_id, start, "windy, calves tight", 7)]});
    let import = json!({"activities": [wearable(Some(wearable_id), start + Duration::minutes(4))]});
    if manual_first {
        let sync_id = ctx.check(&phone, USER).await;
        assert_eq!(
            ctx.upload(&phone, &sync_id, log).await.status,
            StatusCode::OK
        );
        let answer = ctx.ingest_for(USER, import).await;
        assert_eq!(
            answer["conflicts"][0]["resolution"], "duplicate_activity_merged",
            "{answer}"
        );
    } else {
        ctx.ingest_for(USER, import).await;
        let sync_id = ctx.check(&phone, USER).await;
        let response = ctx.upload(&phone, &sync_id, log).await.json();
        let conflict = &response["conflicts"][0];
        assert_eq!(
            conflict["resolution"], "duplicate_activity_merged",
            "{response}"
        );
        assert_eq!(conflict["id"], manual_id.to_string());
        assert!(conflict["conflict_id"].is_string());
    }
    let (state, _) = download(&ctx, &ctx.token(USER, "tablet"), None).await;
    let merged = find(&state["activities"], &wearable_id.to_string())
        .expect("one merged record under the wearable's id")
        .clone();
    assert!(
        find(&state["activities"], &manual_id.to_string()).is_none(),
        "the duplicate is gone from a full snapshot"
    );
    assert_eq!(state["activities"].as_array().unwrap().len(), 1);
    (merged, manual_id, wearable_id, ctx)
}

#[tokio::test]
async fn scenario_3_duplicates_become_one_record_whichever_arrives_first() {
    let (manual_first, manual_id, _, _ctx) = scenario_3(true).await;
    let (wearable_first, other_manual_id, _, _ctx2) = scenario_3(false).await;
    for (merged, manual_id) in [
        (&manual_first, manual_id),
        (&wearable_first, other_manual_id),
    ] {
        assert_eq!(
            merged["distance_m"], 10120.5,
            "wearable wins objective metrics"
        );
        assert_eq!(merged["duration_s"], 3120);
        assert_eq!(
            merged["notes"], "windy, calves tight",
            "the manual notes survive"
        );
        assert_eq!(merged["rpe"], 7);
        assert_eq!(merged["source"], "wearable");
        assert_eq!(merged["merged_from"], json!([manual_id]));
    }
    assert_eq!(decided(&manual_first), decided(&wearable_first));
}

#[tokio::test]
async fn the_device_drops_its_duplicate_and_later_edits_under_its_id_reach_the_survivor() {
    let (_, manual_id, wearable_id, ctx) = scenario_3(true).await;
    let phone = ctx.token(USER, "phone");

    // The phone logged the run before the merge: its next download from its
    // old position tells it the duplicate's fate.
    let start_cursor = trainsync_protocol::cursor::Cursor::START.encode(USER);
    let (changes, _) = download(&ctx, &phone, Some(&start_cursor)).await;
    let deleted = find(&changes["deleted"], &manual_id.to_string()).expect("a tombstone");
    assert_eq!(deleted["reason"], "merged_duplicate");
    assert_eq!(deleted["replaced_by"], wearable_id.to_string());
    assert_eq!(deleted["type"], "activity");
    assert!(find(&changes["activities"], &manual_id.to_string()).is_none());
    assert!(find(&changes["activities"], &wearable_id.to_string()).is_some());

    // An offline edit under the losing id, after the merge.
    let sync_id = ctx.check(&phone, USER).await;
    let edit = manual(
        manual_id,
        ctx.now() - Duration::hours(5),
        "windy, calves tight; ate too late",
        7,
    );
    let response = ctx
        .upload(&phone, &sync_id, json!({"activities": [edit]}))
        .await
        .json();
    assert_eq!(
        response["accepted"][0]["id"],
        manual_id.to_string(),
        "{response}"
    );
    assert!(response["processing_errors"].as_array().unwrap().is_empty());

    let tablet = ctx.token(USER, "tablet");
    let (state, _) = download(&ctx, &tablet, None).await;
    let survivor = find(&state["activities"], &wearable_id.to_string()).unwrap();
    assert_eq!(survivor["notes"], "windy, calves tight; ate too late");
    assert_eq!(
        survivor["distance_m"], 10120.5,
        "objective data stays the wearable's"
    );
    assert_eq!(state["activities"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn activities_further_apart_than_ten_minutes_or_of_another_type_stay_apart() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let start = ctx.now() - Duration::hours(6);
    let sync_id = ctx.check(&phone, USER).await;
    let mut ride = manual(Uuid::new_v4(), start, "ride", 5);
    ride["activity_type"] = json!("ride");
    let far = manual(
        Uuid::new_v4(),
        start - Duration::minutes(11),
        "earlier run",
        5,
    );
    ctx.upload(&phone, &sync_id, json!({"activities": [ride, far]}))
        .await;
    let answer = ctx
        .ingest_for(USER, json!({"activities": [wearable(None, start)]}))
        .await;
    assert!(
        answer["conflicts"].as_array().unwrap().is_empty(),
        "{answer}"
    );
    let (state, _) = download(&ctx, &phone, None).await;
    assert_eq!(state["activities"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn duplicate_matching_is_an_index_query_whatever_the_history() {
    let mut ctx = TestContext::new().await;
    // The brain's recompute reads a time window of activities; this measures the upload alone.
    ctx.state.brain = false;
    let phone = ctx.token(USER, "phone");
    let cost = |history: usize| {
        let ctx = &ctx;
        let phone = phone.clone();
        async move {
            let sync_id = ctx.check(&phone, USER).await;
            let items: Vec<Value> = (0..history)
                .map(|i| {
                    let start = ctx.now() - Duration::days(30 + i as i64);
                    manual(Uuid::new_v4(), start, "old", 4)
                })
                .collect();
            for chunk in items.chunks(15) {
                ctx.upload(&phone, &sync_id, json!({"activities": chunk}))
                    .await;
            }
            let probe = manual(Uuid::new_v4(), ctx.now() - Duration::hours(1), "new", 5);
            let response = ctx
                .upload(&phone, &sync_id, json!({"activities": [probe]}))
                .await;
            assert_eq!(response.status, StatusCode::OK);
            response.ddb_requests()
        }
    };
    let small = cost(0).await;
    let large = cost(60).await;
    assert_eq!(
        small, large,
        "an upload's cost does not grow with the history"
    );
    // Claim, state read, duplicate index query, commit.
    assert_eq!(small, 4);
}

#[tokio::test]
async fn scenario_2_a_reschedule_against_an_old_plan_loses_and_one_against_the_current_plan_applies()
 {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let first = ctx
        .ingest_for(USER, json!({"training_plan": plan(ctx.now(), "Tempo 20'")}))
        .await;
    assert_eq!(first["plan_version"], 1, "{first}");
    // The engine adapts the plan while the phone is offline.
    let second = ctx
        .ingest_for(USER, json!({"training_plan": plan(ctx.now(), "Tempo 25'")}))
        .await;
    assert_eq!(second["plan_version"], 2);

    let new_date = (ctx.now() + Duration::days(2)).date_naive().to_string();
    let stale = json!({"id": Uuid::new_v4(), "workout_id": "w1", "new_date": new_date,
                       "requested_at": at(ctx.now()), "plan_version": 1});
    let sync_id = ctx.check(&phone, USER).await;
    let response = ctx
        .upload(&phone, &sync_id, json!({"plan_adjustments": [stale]}))
        .await
        .json();
    let conflict = &response["conflicts"][0];
    assert_eq!(
        conflict["resolution"], "superseded_by_adaptive_plan",
        "{response}"
    );
    assert_eq!(
        conflict["message"],
        "Your training plan was updated based on your recent workouts. The manual reschedule has been replaced."
    );
    let (state, _) = download(&ctx, &phone, None).await;
    let plan_now = &state["training_plan"];
    assert_eq!(plan_now["version"], 2, "the backend's plan wins");
    assert_eq!(plan_now["workouts"][0]["title"], "Tempo 25'");
    assert_ne!(plan_now["workouts"][0]["date"], new_date, "not applied");

    let current = json!({"id": Uuid::new_v4(), "workout_id": "w1", "new_date": new_date,
                         "requested_at": at(ctx.now()), "plan_version": 2});
    let response = ctx
        .upload(&phone, &sync_id, json!({"plan_adjustments": [current]}))
        .await
        .json();
    assert!(
        response["conflicts"].as_array().unwrap().is_empty(),
        "{response}"
    );
    let (state, _) = download(&ctx, &phone, None).await;
    let plan_now = &state["training_plan"];
    assert_eq!(plan_now["version"], 3, "applied as a new plan version");
    let moved = find(&plan_now["workouts"], "w1").unwrap();
    assert_eq!(moved["date"], new_date);

    let unknown = json!({"id": Uuid::new_v4(), "workout_id": "nope", "new_date": new_date,
                         "requested_at": at(ctx.now()), "plan_version": 3});
    let response = ctx
        .upload(&phone, &sync_id, json!({"plan_adjustments": [unknown]}))
        .await
        .json();
    assert_eq!(
        response["processing_errors"][0]["field"], "workout_id",
        "{response}"
    );
}

#[tokio::test]
async fn scenario_4_equal_times_go_to_the_higher_device_and_both_converge() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    let change = |value: &str| {
        json!({"settings_changes": [{"key": "goal_race_date", "value": value,
                                     "changed_at": at(ctx.now())}]})
    };
    // The test clock stands still: both writes get the same server receive time.
    let phone_session = ctx.check(&phone, USER).await;
    let tablet_session = ctx.check(&tablet, USER).await;
    let from_tablet = ctx
        .upload(&tablet, &tablet_session, change("2027-04-18"))
        .await
        .json();
    let from_phone = ctx
        .upload(&phone, &phone_session, change("2027-05-02"))
        .await
        .json();
    assert!(from_tablet["conflicts"].as_array().unwrap().is_empty());
    assert_eq!(
        from_phone["conflicts"][0]["resolution"], "superseded_by_newer_write",
        "\"tablet\" > \"phone\": {from_phone}"
    );
    for token in [&phone, &tablet] {
        let (state, _) = download(&ctx, token, None).await;
        assert_eq!(state["settings"]["goal_race_date"], "2027-04-18");
    }
    // A later write wins whoever sends it.
    ctx.clock.advance(Duration::seconds(1));
    let later = ctx
        .upload(&phone, &phone_session, change("2027-05-09"))
        .await
        .json();
    assert!(later["conflicts"].as_array().unwrap().is_empty());
    for token in [&phone, &tablet] {
        let (state, _) = download(&ctx, token, None).await;
        assert_eq!(state["settings"]["goal_race_date"], "2027-05-09");
    }
}

#[tokio::test]
async fn every_resolution_is_in_the_conflict_log_and_the_download() {
    let (_, _, _, ctx) = scenario_3(false).await;
    let tablet = ctx.token(USER, "tablet");
    let listed = ctx.get("/sync/conflicts", &tablet, &[]).await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    let entry = &listed["conflicts"][0];
    assert_eq!(entry["rule"], "duplicate_activity_merged");
    assert_eq!(
        entry["message"],
        "Your manual activity log was merged with Garmin Forerunner 265 data."
    );
    assert_eq!(entry["undoable"], true);
    assert_eq!(entry["status"], "resolved");
    let (state, _) = download(&ctx, &tablet, None).await;
    assert_eq!(
        state["conflicts"][0]["id"], entry["id"],
        "synced to devices too"
    );

    // Another user sees nothing and can undo nothing.
    let intruder = ctx.token("someone-else", "phone");
    let theirs = ctx.get("/sync/conflicts", &intruder, &[]).await.json();
    assert!(theirs["conflicts"].as_array().unwrap().is_empty());
    let id = entry["id"].as_str().unwrap();
    let path = format!("/sync/conflicts/{id}/undo");
    let attempt = ctx.post(&path, &intruder, &json!({})).await;
    assert_eq!(attempt.status, StatusCode::NOT_FOUND);
    assert_eq!(attempt.error_code(), "conflict_not_found");

    // The session counts its conflict.
    let status = ctx
        .get("/sync/status", &ctx.token(USER, "phone"), &[])
        .await
        .json();
    assert_eq!(status["recent_sessions"][0]["conflicts"], 1, "{status}");
    assert!(status["conflict_rate"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn undoing_a_merge_restores_both_records_on_every_device_and_never_re_merges_them() {
    let (_, manual_id, wearable_id, ctx) = scenario_3(true).await;
    let phone = ctx.token(USER, "phone");
    let (_, cursor) = download(&ctx, &phone, None).await;
    let listed = ctx.get("/sync/conflicts", &phone, &[]).await.json();
    let id = listed["conflicts"][0]["id"].as_str().unwrap().to_owned();
    ctx.clock.advance(Duration::hours(23));
    let phone = ctx.token(USER, "phone");
    let path = format!("/sync/conflicts/{id}/undo");
    let undone = ctx.post(&path, &phone, &json!({})).await;
    assert_eq!(undone.status, StatusCode::OK, "{}", undone.json());
    let undone = undone.json();
    assert_eq!(undone["conflict"]["status"], "undone");
    assert_eq!(undone["conflict"]["undoable"], false);
    let again = ctx.post(&path, &phone, &json!({})).await;
    assert_eq!(again.status, StatusCode::OK, "undo is idempotent");

    // The phone's next incremental download carries the restored records.
    let (changes, _) = download(&ctx, &phone, Some(&cursor)).await;
    let restored = find(&changes["activities"], &manual_id.to_string()).expect("manual log back");
    assert_eq!(restored["distance_m"], 9000, "the user's own values");
    assert_eq!(restored["source"], "manual");
    let alone = find(&changes["activities"], &wearable_id.to_string()).unwrap();
    assert_eq!(
        alone["notes"],
        Value::Null,
        "the wearable record without the manual notes"
    );
    assert!(alone.get("merged_from").is_none());
    assert_eq!(changes["conflicts"][0]["status"], "undone");

    // Later edits of either keep them apart.
    let sync_id = ctx.check(&phone, USER).await;
    let edit = manual(
        manual_id,
        ctx.now() - Duration::hours(28),
        "mine after all",
        7,
    );
    let response = ctx
        .upload(&phone, &sync_id, json!({"activities": [edit]}))
        .await
        .json();
    assert!(
        response["conflicts"].as_array().unwrap().is_empty(),
        "{response}"
    );
    let (state, _) = download(&ctx, &ctx.token(USER, "tablet"), None).await;
    assert_eq!(state["activities"].as_array().unwrap().len(), 2);
    let restored = find(&state["activities"], &manual_id.to_string()).unwrap();
    assert_eq!(restored["notes"], "mine after all");
}

#[tokio::test]
async fn undoing_a_merge_after_later_edits_keeps_each_edit_on_the_record_it_was_made_under() {
    let (_, manual_id, wearable_id, ctx) = scenario_3(true).await;
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    let listed = ctx.get("/sync/conflicts", &phone, &[]).await.json();
    let id = listed["conflicts"][0]["id"].as_str().unwrap().to_owned();

    // The phone edits its manual log (the edit goes to the merged record)...
    let sync_id = ctx.check(&phone, USER).await;
    let start = ctx.now() - Duration::hours(5);
    let edit = manual(manual_id, start, "new notes", 8);
    let answer = ctx
        .upload(&phone, &sync_id, json!({"activities": [edit]}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    // ...and the tablet edits the merged record as it downloads it now.
    let (state, _) = download(&ctx, &tablet, None).await;
    let mut direct = find(&state["activities"], &wearable_id.to_string())
        .unwrap()
        .clone();
    direct.as_object_mut().unwrap().remove("seq");
    direct["feeling"] = json!(2);
    let sync_id = ctx.check(&tablet, USER).await;
    let answer = ctx
        .upload(&tablet, &sync_id, json!({"activities": [direct]}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let (state, _) = download(&ctx, &tablet, None).await;
    let both = find(&state["activities"], &wearable_id.to_string()).unwrap();
    assert_eq!(
        (&both["notes"], &both["rpe"], &both["feeling"]),
        (&json!("new notes"), &json!(8), &json!(2)),
        "before the undo, both edits are on the merged record: {both}"
    );

    let undone = ctx
        .post(&format!("/sync/conflicts/{id}/undo"), &phone, &json!({}))
        .await;
    assert_eq!(undone.status, StatusCode::OK, "{}", undone.json());
    for token in [&phone, &tablet] {
        let (state, _) = download(&ctx, token, None).await;
        assert_eq!(state["activities"].as_array().unwrap().len(), 2);
        let mine = find(&state["activities"], &manual_id.to_string()).expect("manual log back");
        assert_eq!(
            (
                &mine["notes"],
                &mine["rpe"],
                &mine["feeling"],
                &mine["distance_m"]
            ),
            (&json!("new notes"), &json!(8), &json!(4), &json!(9000)),
            "the manual log with the edit made under its id: {mine}"
        );
        assert_eq!(mine["source"], "manual");
        let recording = find(&state["activities"], &wearable_id.to_string()).unwrap();
        assert_eq!(
            (
                &recording["notes"],
                &recording["rpe"],
                &recording["feeling"]
            ),
            (&Value::Null, &Value::Null, &json!(2)),
            "the recording keeps the edit made under its id, nothing of the manual log: {recording}"
        );
        assert_eq!(recording["distance_m"], 10120.5);
        assert!(recording.get("merged_from").is_none());
    }
}

#[tokio::test]
async fn an_undo_that_would_overwrite_a_newer_value_is_refused() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    let id = lost_setting(&ctx, "goal_race_date", "2027-04-18", "2027-05-02").await;
    // A newer date after the resolution: restoring the phone's would lose it.
    ctx.clock.advance(Duration::seconds(5));
    let tablet_session = ctx.check(&tablet, USER).await;
    ctx.upload(
        &tablet,
        &tablet_session,
        setting_change(&ctx, "goal_race_date", "2027-06-01"),
    )
    .await;
    let refused = ctx
        .post(&format!("/sync/conflicts/{id}/undo"), &phone, &json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.json());
    assert_eq!(refused.error_code(), "resolution_outdated");
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("(value)"),
        "names the field: {}",
        refused.json()
    );
    let (state, _) = download(&ctx, &phone, None).await;
    assert_eq!(state["settings"]["goal_race_date"], "2027-06-01");
}

#[tokio::test]
async fn undo_after_24_hours_is_gone() {
    let (_, _, _, ctx) = scenario_3(true).await;
    let phone = ctx.token(USER, "phone");
    let listed = ctx.get("/sync/conflicts", &phone, &[]).await.json();
    let id = listed["conflicts"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/sync/conflicts/{id}/undo");

    ctx.clock
        .advance(Duration::hours(24) + Duration::seconds(1));
    let phone = ctx.token(USER, "phone");
    let late = ctx.post(&path, &phone, &json!({})).await;
    assert_eq!(late.status, StatusCode::GONE);
    assert_eq!(late.error_code(), "undo_expired");
    assert_eq!(late.error_field().as_deref(), Some("conflict_id"));
    let listed = ctx.get("/sync/conflicts", &phone, &[]).await.json();
    assert_eq!(listed["conflicts"][0]["undoable"], false);

    let bad = ctx
        .post("/sync/conflicts/not-a-uuid/undo", &phone, &json!({}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_field().as_deref(), Some("conflict_id"));
    let unknown = format!("/sync/conflicts/{}/undo", Uuid::now_v7());
    assert_eq!(
        ctx.post(&unknown, &phone, &json!({})).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn undoing_a_settings_resolution_restores_the_losing_value_everywhere() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    let id = lost_setting(&ctx, "units", "imperial", "metric").await;
    let undone = ctx
        .post(&format!("/sync/conflicts/{id}/undo"), &phone, &json!({}))
        .await;
    assert_eq!(undone.status, StatusCode::OK);
    for token in [&phone, &tablet] {
        let (state, _) = download(&ctx, token, None).await;
        assert_eq!(state["settings"]["units"], "metric");
    }
}

#[tokio::test]
async fn undoing_a_superseded_reschedule_applies_it_to_the_current_plan() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    ctx.ingest_for(USER, json!({"training_plan": plan(ctx.now(), "Tempo 20'")}))
        .await;
    ctx.ingest_for(USER, json!({"training_plan": plan(ctx.now(), "Tempo 25'")}))
        .await;
    let new_date = (ctx.now() + Duration::days(3)).date_naive().to_string();
    let stale = json!({"id": Uuid::new_v4(), "workout_id": "w1", "new_date": new_date,
                       "requested_at": at(ctx.now()), "plan_version": 1});
    let sync_id = ctx.check(&phone, USER).await;
    let response = ctx
        .upload(&phone, &sync_id, json!({"plan_adjustments": [stale]}))
        .await
        .json();
    let id = response["conflicts"][0]["conflict_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let undone = ctx
        .post(&format!("/sync/conflicts/{id}/undo"), &phone, &json!({}))
        .await;
    assert_eq!(undone.status, StatusCode::OK, "{}", undone.json());
    let (state, _) = download(&ctx, &phone, None).await;
    assert_eq!(state["training_plan"]["version"], 3);
    assert_eq!(
        find(&state["training_plan"]["workouts"], "w1").unwrap()["date"],
        new_date
    );
}

#[tokio::test]
async fn scenario_4_in_the_other_arrival_order_converges_to_the_same_winner() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    let change = |value: &str| {
        json!({"settings_changes": [{"key": "goal_race_date", "value": value,
                                     "changed_at": at(ctx.now())}]})
    };
    let phone_session = ctx.check(&phone, USER).await;
    let tablet_session = ctx.check(&tablet, USER).await;
    let from_phone = ctx
        .upload(&phone, &phone_session, change("2027-05-02"))
        .await
        .json();
    let from_tablet = ctx
        .upload(&tablet, &tablet_session, change("2027-04-18"))
        .await
        .json();
    assert!(from_phone["conflicts"].as_array().unwrap().is_empty());
    assert!(
        from_tablet["conflicts"].as_array().unwrap().is_empty(),
        "the tie-winner replaces the value: {from_tablet}"
    );
    for token in [&phone, &tablet] {
        let (state, _) = download(&ctx, token, None).await;
        assert_eq!(state["settings"]["goal_race_date"], "2027-04-18");
    }
}

#[tokio::test]
async fn scenario_2_in_the_other_order_a_new_plan_replaces_an_applied_reschedule() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    ctx.ingest_for(USER, json!({"training_plan": plan(ctx.now(), "Tempo 20'")}))
        .await;
    let new_date = (ctx.now() + Duration::days(2)).date_naive().to_string();
    let current = json!({"id": Uuid::new_v4(), "workout_id": "w1", "new_date": new_date,
                         "requested_at": at(ctx.now()), "plan_version": 1});
    let sync_id = ctx.check(&phone, USER).await;
    let response = ctx
        .upload(&phone, &sync_id, json!({"plan_adjustments": [current]}))
        .await
        .json();
    assert!(response["conflicts"].as_array().unwrap().is_empty());
    let (state, _) = download(&ctx, &phone, None).await;
    assert_eq!(state["training_plan"]["version"], 2);

    // The engine's next plan (made from the reschedule or not) is the plan.
    let answer = ctx
        .ingest_for(USER, json!({"training_plan": plan(ctx.now(), "Tempo 30'")}))
        .await;
    assert_eq!(answer["plan_version"], 3);
    let (state, _) = download(&ctx, &phone, None).await;
    assert_eq!(state["training_plan"]["workouts"][0]["title"], "Tempo 30'");
}

#[tokio::test]
async fn the_conflict_log_pages_newest_first_and_ends_exactly() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    let tablet_session = ctx.check(&tablet, USER).await;
    let phone_session = ctx.check(&phone, USER).await;
    // Four ties lost by the phone: four conflict-log entries.
    for key in [
        "units",
        "timezone",
        "notifications_enabled",
        "goal_race_date",
    ] {
        let value = |n: u8| match key {
            "units" => json!(["metric", "imperial"][n as usize]),
            "timezone" => json!(["Europe/Berlin", "Europe/Paris"][n as usize]),
            "notifications_enabled" => json!(n == 0),
            _ => json!(["2027-04-18", "2027-05-02"][n as usize]),
        };
        let change = |n| json!({"settings_changes": [{"key": key, "value": value(n), "changed_at": at(ctx.now())}]});
        ctx.upload(&tablet, &tablet_session, change(0)).await;
        let lost = ctx.upload(&phone, &phone_session, change(1)).await.json();
        assert_eq!(lost["conflicts"].as_array().unwrap().len(), 1, "{lost}");
    }
    let first = ctx
        .get("/sync/conflicts", &phone, &[("limit", "2")])
        .await
        .json();
    let after = first["next_after"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let second = ctx
        .get(
            "/sync/conflicts",
            &phone,
            &[("limit", "2"), ("after", &after)],
        )
        .await
        .json();
    assert!(
        second.get("next_after").is_none(),
        "a full last page ends: {second}"
    );
    let ids: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|p| p["conflicts"].as_array().unwrap().clone())
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids.len(), 4);
    assert_eq!(ids, newest_first, "UUID v7 ids: newest first");
    let bad = ctx
        .get("/sync/conflicts", &phone, &[("after", "yesterday")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_field().as_deref(), Some("after"));
}

/// A settings change of `key` to `value`, made now.
fn setting_change(ctx: &TestContext, key: &str, value: &str) -> Value {
    json!({"settings_changes": [{"key": key, "value": value, "changed_at": at(ctx.now())}]})
}

/// The tablet sets `key` to `kept`, then the phone to `lost` at the same
/// moment: the tablet wins the tie (scenario 4). Answers the phone's conflict id.
async fn lost_setting(ctx: &TestContext, key: &str, kept: &str, lost: &str) -> String {
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    let tablet_session = ctx.check(&tablet, USER).await;
    let phone_session = ctx.check(&phone, USER).await;
    ctx.upload(&tablet, &tablet_session, setting_change(ctx, key, kept))
        .await;
    let answer = ctx
        .upload(&phone, &phone_session, setting_change(ctx, key, lost))
        .await
        .json();
    answer["conflicts"][0]["conflict_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the phone's change lost: {answer}"))
        .to_owned()
}
