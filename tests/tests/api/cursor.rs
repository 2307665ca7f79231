//! The gap-free cursor: concurrent writers (devices with skewed clocks and the
//! backend), polling readers, pagination, snapshots, timestamps and the cost
//! of an incremental sync.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::Duration;
use http::StatusCode;
use serde_json::{Value, json};
use sync_core::clock::ManualClock;
use sync_core::services::publish::publish;
use sync_core::state::AppState;
use sync_core::store::{EntityKey, EntityWrite};
use trainsync_protocol::domain::{EntityKind, UserId};
use trainsync_tests::{TestContext, activity};
use uuid::Uuid;

use crate::helpers::entity_ids;

const USER: &str = "dana";

/// Ids and sequence numbers of every entity in a download page, in sequence order.
fn entities(page: &Value) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = ["activities", "alerts"]
        .iter()
        .flat_map(|list| page[*list].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    all.sort_by_key(|(_, seq)| *seq);
    all
}

/// A handler state sharing the test's table but with its own clock, `skew` off.
fn skewed_state(ctx: &TestContext, skew: Duration) -> (AppState, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(ctx.now() + skew));
    // The brain as in the test context's: no computed metrics or alerts among
    // the changes counted.
    (ctx.another_container(clock.clone()), clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_polling_reader_gets_every_change_exactly_once_under_concurrent_writers() {
    let ctx = Arc::new(TestContext::new().await);
    let start = ctx.now();
    let devices = [("phone", -300), ("tablet", 240), ("watch", 0)];
    let mut writers = Vec::new();
    let mut written: BTreeSet<String> = BTreeSet::new();
    for (device, skew_secs) in devices {
        // Each device runs against its own clock, minutes apart.
        let (state, _clock) = skewed_state(&ctx, Duration::seconds(skew_secs));
        let ids: Vec<Uuid> = (0..24).map(|_| Uuid::new_v4()).collect();
        written.extend(ids.iter().map(Uuid::to_string));
        let ctx = ctx.clone();
        writers.push(tokio::spawn(async move {
            let token = ctx.token(USER, device);
            let sync_id = ctx.check(&token, USER).await;
            for chunk in ids.chunks(3) {
                let items: Vec<Value> = chunk.iter().map(|id| activity(*id, device)).collect();
                let body = json!({"sync_id": sync_id, "sync_request_id": Uuid::new_v4(), "activities": items});
                let request = trainsync_tests::post_request("/sync/upload", Some(&token), body.to_string());
                let response = sync_core::handlers::dispatch(&state, request).await;
                assert_eq!(response.status(), StatusCode::OK);
            }
        }));
    }
    // The backend publishes alerts at the same time.
    let alert_ids: Vec<String> = (0..20).map(|_| Uuid::new_v4().to_string()).collect();
    written.extend(alert_ids.iter().cloned());
    {
        let store = ctx.store.clone();
        let now = start;
        writers.push(tokio::spawn(async move {
            let user = UserId::parse(USER).unwrap();
            for (i, id) in alert_ids.iter().enumerate() {
                let write = EntityWrite {
                    key: EntityKey::new(EntityKind::Alert, id.clone()),
                    data: json!({"id": id, "severity": "info", "kind": "test", "n": i}),
                };
                publish(store.as_ref(), &user, vec![write], None, now)
                    .await
                    .unwrap();
            }
        }));
    }

    // A reader polls with small pages while the writers run.
    let reader_token = ctx.token(USER, "laptop");
    let mut cursor: Option<String> = Some(trainsync_protocol::cursor::Cursor::START.encode(USER));
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut last_seq = 0;
    let mut polls = 0;
    loop {
        let finished = writers.iter().all(|w| w.is_finished());
        let (pages, next) = ctx.download_all(&reader_token, cursor.as_deref(), 7).await;
        polls += 1;
        for page in &pages {
            for (id, seq) in entities(page) {
                assert!(
                    seq > last_seq,
                    "sequence went backwards: {seq} after {last_seq}"
                );
                last_seq = seq;
                *seen.entry(id).or_default() += 1;
            }
        }
        cursor = Some(next);
        if finished {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    // One more poll after the writers joined: nothing may arrive late.
    let (pages, _) = ctx.download_all(&reader_token, cursor.as_deref(), 7).await;
    for page in &pages {
        for (id, _) in entities(page) {
            *seen.entry(id).or_default() += 1;
        }
    }
    assert!(polls > 1, "the reader should have polled while writers ran");
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        duplicates.is_empty(),
        "delivered more than once: {duplicates:?}"
    );
    let seen: BTreeSet<String> = seen.into_keys().collect();
    assert_eq!(
        seen,
        written,
        "missing: {:?}",
        written.difference(&seen).collect::<Vec<_>>()
    );
    assert_eq!(last_seq, written.len() as u64, "sequence numbers are dense");

    // A timestamp from before the first write also yields everything (maybe repeated).
    let since = (start - Duration::minutes(10)).to_rfc3339();
    let (pages, _) = ctx.download_all(&reader_token, Some(&since), 100).await;
    let by_time: BTreeSet<String> = pages.iter().flat_map(entities).map(|(id, _)| id).collect();
    assert_eq!(by_time, written);
}

#[tokio::test]
async fn a_timestamp_never_misses_a_change_committed_at_or_after_it() {
    let ctx = TestContext::new().await;
    let token = ctx.token(USER, "phone");
    let sync_id = ctx.check(&token, USER).await;
    let mut ids = Vec::new();
    let mut marks = Vec::new();
    for _ in 0..6 {
        marks.push(ctx.now());
        let id = Uuid::new_v4();
        ids.push(id.to_string());
        assert_eq!(
            ctx.upload(&token, &sync_id, json!({"activities": [activity(id, "x")]}))
                .await
                .status,
            StatusCode::OK
        );
        ctx.clock.advance(Duration::seconds(10));
    }
    for (i, mark) in marks.iter().enumerate() {
        let (pages, _) = ctx
            .download_all(&token, Some(&mark.to_rfc3339()), 100)
            .await;
        let got: BTreeSet<String> = pages.iter().flat_map(entities).map(|(id, _)| id).collect();
        for id in &ids[i..] {
            assert!(got.contains(id), "since {mark} missed {id}");
        }
    }
    // A time after everything yields nothing new, and a cursor that continues from the head.
    let later = (ctx.now() + Duration::hours(1)).to_rfc3339();
    let page = ctx
        .get("/sync/download", &token, &[("since", &later)])
        .await
        .json();
    assert!(page["activities"].as_array().unwrap().is_empty());
    let status = ctx.get("/sync/status", &token, &[]).await.json();
    assert_eq!(page["next_cursor"], status["head_cursor"]);
}

#[tokio::test]
async fn a_full_download_is_paginated_and_continues_incrementally() {
    let ctx = TestContext::new().await;
    let token = ctx.token(USER, "phone");
    let sync_id = ctx.check(&token, USER).await;
    let first: Vec<String> = (0..3)
        .map(|_| Uuid::new_v4())
        .map(|id| id.to_string())
        .collect();
    for chunk in first.chunks(1) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|id| activity(id.parse().unwrap(), "a"))
            .collect();
        ctx.upload(&token, &sync_id, json!({"activities": items}))
            .await;
    }
    let items: Vec<Value> = (0..20).map(|_| activity(Uuid::new_v4(), "b")).collect();
    let second: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    for chunk in items.chunks(10) {
        let response = ctx
            .upload(&token, &sync_id, json!({"activities": chunk}))
            .await;
        assert_eq!(response.status, http::StatusCode::OK);
    }

    let new_device = ctx.token(USER, "new-phone");
    let (pages, cursor) = ctx.download_all(&new_device, None, 5).await;
    assert!(pages.len() >= 5, "23 entities in pages of 5");
    let got: BTreeSet<String> = pages.iter().flat_map(entities).map(|(id, _)| id).collect();
    let all: BTreeSet<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(got, all);

    // Changes after the snapshot arrive through the cursor it ended with.
    let late = Uuid::new_v4();
    ctx.upload(
        &token,
        &sync_id,
        json!({"activities": [activity(late, "c")]}),
    )
    .await;
    let (pages, _) = ctx.download_all(&new_device, Some(&cursor), 5).await;
    let got: Vec<String> = pages.iter().flat_map(entities).map(|(id, _)| id).collect();
    assert_eq!(got, vec![late.to_string()]);
}

#[tokio::test]
async fn an_incremental_sync_costs_the_same_whatever_the_history() {
    let ctx = TestContext::new().await;
    let now = ctx.now();
    let mut costs = Vec::new();
    for (user, history) in [("small", 4usize), ("large", 400usize)] {
        let id = UserId::parse(user).unwrap();
        let writes: Vec<EntityWrite> = (0..history)
            .map(|i| EntityWrite {
                key: EntityKey::new(EntityKind::Alert, format!("a{i}")),
                data: json!({"id": format!("a{i}"), "severity": "info"}),
            })
            .collect();
        publish(ctx.store.as_ref(), &id, writes, None, now)
            .await
            .unwrap();
        let token = ctx.token(user, "phone");
        let check = ctx
            .post(
                "/sync/check",
                &token,
                &json!({"user_id": user, "pending_changes_count": 0}),
            )
            .await;
        // From three changes before the head: a typical incremental page.
        let since = trainsync_protocol::cursor::Cursor::Log {
            seq: history as u64 - 3,
        }
        .encode(user);
        let download = ctx
            .get("/sync/download", &token, &[("since", &since)])
            .await;
        assert_eq!(download.json()["alerts"].as_array().unwrap().len(), 3);
        let status = ctx.get("/sync/status", &token, &[]).await;
        costs.push((
            check.ddb_requests(),
            download.ddb_requests(),
            status.ddb_requests(),
        ));
    }
    assert_eq!(
        costs[0], costs[1],
        "cost (check, download, status) must not grow with history"
    );
    // The device's first call in a container also reads its standing
    // (revocation); later calls within the cache window do not.
    assert_eq!(
        costs[0],
        (3, 2, 4),
        "check: device standing + head + session; download: query + device; status: 4"
    );
}

/// Forged cursors of the caller's own account (well formed, any numbers)
/// reach no overflow, index or unwrap: every endpoint that reads a cursor
/// answers 400 or a correct answer, and the user's log is unharmed.
#[tokio::test]
async fn forged_cursors_of_the_own_account_get_an_answer_never_a_crash() {
    use trainsync_protocol::cursor::Cursor;
    let ctx = TestContext::new().await;
    let token = ctx.token(USER, "phone");
    let sync_id = ctx.check(&token, USER).await;
    let forged = [
        Cursor::Log { seq: u64::MAX },
        Cursor::Log { seq: u64::MAX - 1 },
        Cursor::Deferred {
            seq: u64::MAX,
            from: u64::MAX,
        },
        Cursor::Deferred {
            seq: u64::MAX,
            from: 1,
        },
        Cursor::Snapshot {
            head: u64::MAX,
            after: None,
        },
        Cursor::Snapshot {
            head: u64::MAX,
            after: Some("activity#zzzz".into()),
        },
        Cursor::Snapshot {
            head: 0,
            after: Some("conflict#".into()),
        },
    ];
    for cursor in forged {
        let encoded = cursor.encode(USER);
        for network in ["wifi", "cellular"] {
            let response = ctx
                .send(trainsync_tests::get_request(
                    "/sync/download",
                    Some(&token),
                    &[("since", &encoded), ("network", network)],
                ))
                .await;
            assert!(
                response.status == StatusCode::OK || response.status == StatusCode::BAD_REQUEST,
                "{cursor:?} on {network}: {}",
                response.status
            );
            response.json();
        }
        let check = ctx
            .post(
                "/sync/check",
                &token,
                &json!({"user_id": USER, "cursor": encoded, "pending_changes_count": 0}),
            )
            .await;
        assert!(
            check.status == StatusCode::OK || check.status == StatusCode::BAD_REQUEST,
            "{cursor:?}: {}",
            check.status
        );
    }
    // The log still serves a normal incremental download from the start.
    ctx.post(
        "/sync/upload",
        &token,
        &json!({"sync_id": sync_id, "sync_request_id": Uuid::new_v4(),
                "activities": [activity(Uuid::new_v4(), "after the forgeries")]}),
    )
    .await;
    let (pages, _) = ctx.download_all(&token, None, 100).await;
    assert_eq!(
        pages
            .iter()
            .map(|p| p["activities"].as_array().map_or(0, Vec::len))
            .sum::<usize>(),
        1
    );
}

/// A cursor past the log's head (forged, or issued before the table was
/// restored from a backup) must not make the device skip what comes next:
/// `/sync/check` reports updates, the download re-baselines with a snapshot
/// (`cursor_ahead`), and the changes committed afterwards all arrive.
#[tokio::test]
async fn a_cursor_past_the_head_re_baselines_and_misses_nothing_afterwards() {
    use trainsync_protocol::cursor::Cursor;
    let ctx = TestContext::new().await;
    let token = ctx.token(USER, "phone");
    let first = Uuid::new_v4();
    let sync_id = ctx.check(&token, USER).await;
    ctx.upload(
        &token,
        &sync_id,
        json!({"activities": [activity(first, "one")]}),
    )
    .await;
    let head = 1;
    let ahead = [
        (Cursor::Log { seq: head + 5 }, "wifi"),
        (Cursor::Log { seq: head + 5 }, "cellular"),
        (
            Cursor::Deferred {
                seq: head + 5,
                from: head + 3,
            },
            "wifi",
        ),
        (
            Cursor::Deferred {
                seq: head + 5,
                from: head + 3,
            },
            "cellular",
        ),
        (
            Cursor::Deferred {
                seq: head + 5,
                from: 1,
            },
            "wifi",
        ),
        (
            Cursor::Snapshot {
                head: head + 100,
                after: None,
            },
            "wifi",
        ),
    ];
    for (cursor, network) in ahead {
        let encoded = cursor.encode(USER);
        let check = ctx
            .post(
                "/sync/check",
                &token,
                &json!({"user_id": USER, "cursor": encoded, "pending_changes_count": 0}),
            )
            .await
            .json();
        assert_eq!(check["has_updates"], true, "{cursor:?}: {check}");
        let (pages, next) = ctx
            .download_all_with(&token, Some(&encoded), &[("network", network)])
            .await;
        let first_page = &pages[0];
        assert_eq!(
            first_page["resync_required"], true,
            "{cursor:?}: {first_page}"
        );
        if !matches!(cursor, Cursor::Snapshot { .. }) {
            assert_eq!(first_page["resync_reason"], "cursor_ahead");
        }
        assert!(
            entity_ids(&pages).contains(&format!("activity:{first}")),
            "{cursor:?}: the snapshot carries today's data"
        );
        // What is committed next reaches the device through its new cursor.
        let later = Uuid::new_v4();
        let sync_id = ctx.check(&token, USER).await;
        ctx.upload(
            &token,
            &sync_id,
            json!({"activities": [activity(later, "next")]}),
        )
        .await;
        let (pages, _) = ctx.download_all(&token, Some(&next), 100).await;
        assert!(
            entity_ids(&pages).contains(&format!("activity:{later}")),
            "{cursor:?} on {network}: the next change was skipped"
        );
    }
}
