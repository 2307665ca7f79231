//! Idempotency (PRD 6.2), atomic batches (PRD 6.1) and lazy expiry, against DynamoDB Local.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Duration;
use http::StatusCode;
use serde_json::{Value, json};
use sync_core::store::{
    BeginOutcome, Commit, CommitOutcome, EntityKey, EntityWrite, RequestCompletion, SyncStore,
};
use trainsync_protocol::domain::{EntityKind, SyncRequestId, UserId};
use trainsync_tests::faults::{FaultInjector, TransactionFault};
use trainsync_tests::{TestContext, activity, gzip, gzip_post};
use uuid::Uuid;

use crate::helpers::text;

fn upload_body(sync_id: &str, request_id: Uuid, items: Vec<Value>) -> Value {
    json!({"sync_id": sync_id, "sync_request_id": request_id, "activities": items})
}

async fn head_seq(ctx: &TestContext, token: &str) -> u64 {
    ctx.get("/sync/status", token, &[]).await.json()["head_seq"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_replay_returns_the_same_bytes_without_reprocessing() {
    let ctx = TestContext::new().await;
    let token = ctx.token("erin", "phone");
    let sync_id = ctx.check(&token, "erin").await;
    let request_id = Uuid::new_v4();
    let body = upload_body(
        &sync_id,
        request_id,
        vec![activity(Uuid::new_v4(), "a"), activity(Uuid::new_v4(), "b")],
    );
    let first = ctx.post("/sync/upload", &token, &body).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(head_seq(&ctx, &token).await, 2);

    // Later, even with the clock moved and the body re-encoded (gzip, other whitespace).
    ctx.clock.advance(Duration::minutes(5));
    let pretty = serde_json::to_string_pretty(&body).unwrap();
    let replay = ctx
        .send(gzip_post("/sync/upload", &token, gzip(pretty.as_bytes())))
        .await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.bytes, first.bytes, "replay must be byte-for-byte");
    assert_eq!(
        replay.ddb_requests(),
        2,
        "a replay is one conditional write, no processing (plus re-reading the \
         device's standing: five minutes outlast the revocation cache)"
    );
    assert_eq!(head_seq(&ctx, &token).await, 2, "nothing applied twice");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let ctx = TestContext::new().await;
    let token = ctx.token("erin", "phone");
    let sync_id = ctx.check(&token, "erin").await;
    let request_id = Uuid::new_v4();
    let first = ctx
        .post(
            "/sync/upload",
            &token,
            &upload_body(&sync_id, request_id, vec![activity(Uuid::new_v4(), "a")]),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let other = ctx
        .post(
            "/sync/upload",
            &token,
            &upload_body(&sync_id, request_id, vec![activity(Uuid::new_v4(), "b")]),
        )
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.error_code(), "idempotency_key_reused");
    assert_eq!(other.error_field().as_deref(), Some("sync_request_id"));
    assert_eq!(head_seq(&ctx, &token).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_apply_once() {
    let ctx = Arc::new(TestContext::new().await);
    let token = ctx.token("erin", "phone");
    let sync_id = ctx.check(&token, "erin").await;
    let items: Vec<Value> = (0..5)
        .map(|i| activity(Uuid::new_v4(), &format!("n{i}")))
        .collect();
    let body = upload_body(&sync_id, Uuid::new_v4(), items);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (ctx, token, body) = (ctx.clone(), token.clone(), body.clone());
            tokio::spawn(async move { ctx.post("/sync/upload", &token, &body).await })
        })
        .collect();
    let mut oks = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        match response.status {
            StatusCode::OK => oks.push(response.bytes),
            StatusCode::CONFLICT => assert_eq!(response.error_code(), "request_in_progress"),
            other => panic!("unexpected {other}: {}", text(&response)),
        }
    }
    assert!(!oks.is_empty());
    assert!(
        oks.windows(2).all(|w| w[0] == w[1]),
        "every success is the same response"
    );
    assert_eq!(
        head_seq(&ctx, &token).await,
        5,
        "the batch applied exactly once"
    );
    // After the race, a retry gets the stored response.
    let retry = ctx.post("/sync/upload", &token, &body).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.bytes, oks[0]);
}

#[tokio::test]
async fn idempotency_records_expire_lazily_after_seven_days() {
    let ctx = TestContext::new().await;
    let token = ctx.token("erin", "phone");
    let sync_id = ctx.check(&token, "erin").await;
    let request_id = Uuid::new_v4();
    let start = ctx.now();
    let response = ctx
        .post(
            "/sync/upload",
            &token,
            &upload_body(&sync_id, request_id, vec![activity(Uuid::new_v4(), "a")]),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);

    // The record carries a TTL seven days out.
    let item = ctx
        .store
        .client()
        .get_item()
        .table_name(&ctx.table)
        .key("pk", AttributeValue::S("USER#erin".into()))
        .key("sk", AttributeValue::S(format!("IDEM#{request_id}")))
        .send()
        .await
        .unwrap()
        .item
        .expect("idempotency record");
    let ttl: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
    assert_eq!(ttl, (start + Duration::days(7)).timestamp());

    // Just before expiry the key still replays; just after, it behaves as never used,
    // although DynamoDB has not deleted the item.
    ctx.clock.advance(Duration::days(7) - Duration::seconds(5));
    let token = ctx.token("erin", "phone");
    let sync_id = ctx.check(&token, "erin").await;
    let other_body = upload_body(&sync_id, request_id, vec![activity(Uuid::new_v4(), "b")]);
    let before = ctx.post("/sync/upload", &token, &other_body).await;
    assert_eq!(before.status, StatusCode::UNPROCESSABLE_ENTITY);
    ctx.clock.advance(Duration::seconds(10));
    let after = ctx.post("/sync/upload", &token, &other_body).await;
    assert_eq!(after.status, StatusCode::OK, "{}", text(&after));
    assert_eq!(head_seq(&ctx, &token).await, 2);
}

#[tokio::test]
async fn an_expired_session_behaves_as_deleted() {
    let ctx = TestContext::new().await;
    let token = ctx.token("erin", "phone");
    let sync_id = ctx.check(&token, "erin").await;
    ctx.clock
        .advance(Duration::hours(24) + Duration::seconds(1));
    let token = ctx.token("erin", "phone");
    let upload = ctx
        .upload(
            &token,
            &sync_id,
            json!({"activities": [activity(Uuid::new_v4(), "a")]}),
        )
        .await;
    assert_eq!(upload.status, StatusCode::NOT_FOUND);
    assert_eq!(upload.error_code(), "unknown_sync_id");
    let complete = ctx
        .post(
            "/sync/complete",
            &token,
            &json!({"sync_id": sync_id, "status": "success"}),
        )
        .await;
    assert_eq!(complete.status, StatusCode::NOT_FOUND);
    let status = ctx.get("/sync/status", &token, &[]).await.json();
    assert!(
        status["recent_sessions"].as_array().unwrap().is_empty(),
        "expired sessions are not listed"
    );
    assert_eq!(status["head_seq"], 0, "the refused upload stored nothing");
}

#[tokio::test]
async fn a_failed_upload_releases_its_key_for_the_retry() {
    let ctx = TestContext::new().await;
    let token = ctx.token("erin", "phone");
    let request_id = Uuid::new_v4();
    let items = vec![activity(Uuid::new_v4(), "a")];
    let stale = ctx
        .post(
            "/sync/upload",
            &token,
            &upload_body(&Uuid::new_v4().to_string(), request_id, items.clone()),
        )
        .await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);
    let sync_id = ctx.check(&token, "erin").await;
    let retry = ctx
        .post(
            "/sync/upload",
            &token,
            &upload_body(&sync_id, request_id, items),
        )
        .await;
    assert_eq!(retry.status, StatusCode::OK, "{}", text(&retry));
}

#[tokio::test]
async fn the_largest_batch_is_taken_whole_and_a_larger_one_refused() {
    let ctx = TestContext::new().await;
    let token = ctx.token("erin", "phone");
    let sync_id = ctx.check(&token, "erin").await;
    let max = trainsync_protocol::limits::MAX_BATCH_ITEMS;
    let mut body = json!({
        "activities": (0..max - 3).map(|_| activity(Uuid::new_v4(), "x")).collect::<Vec<_>>(),
        "daily_metrics": [{"date": "2025-05-30", "soreness": 3, "submitted_at": "2025-05-30T06:00:00Z"}],
        "settings_changes": [{"key": "timezone", "value": "Europe/Berlin", "changed_at": "2025-05-30T06:00:00Z"}],
        "plan_adjustments": [{"id": Uuid::new_v4(), "workout_id": "w1", "new_date": "2025-06-01", "requested_at": "2025-05-30T06:00:00Z"}]
    });
    let ok = ctx.upload(&token, &sync_id, body.clone()).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()["accepted"].as_array().unwrap().len(), max);
    assert_eq!(head_seq(&ctx, &token).await, max as u64);
    body["activities"]
        .as_array_mut()
        .unwrap()
        .push(activity(Uuid::new_v4(), "one too many"));
    let too_many = ctx.upload(&token, &sync_id, body).await;
    assert_eq!(too_many.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_many.error_code(), "batch_too_large");
    assert_eq!(head_seq(&ctx, &token).await, max as u64);
}

#[tokio::test]
async fn a_commit_takes_effect_whole_or_not_at_all() {
    let ctx = TestContext::new().await;
    let store: &dyn SyncStore = ctx.store.as_ref();
    let user = UserId::parse("erin").unwrap();
    let key = SyncRequestId(Uuid::new_v4());
    let BeginOutcome::Claimed(_) = store
        .begin_request(&user, key, "hash", ctx.now())
        .await
        .unwrap()
    else {
        panic!("fresh key must be claimable");
    };
    let writes: Vec<EntityWrite> = (0..10)
        .map(|i| EntityWrite {
            key: EntityKey::new(EntityKind::Activity, format!("act-{i}")),
            data: json!({"i": i}),
        })
        .collect();
    let keys: Vec<EntityKey> = writes.iter().map(|w| w.key.clone()).collect();
    let base = store.head(&user).await.unwrap();
    let mut commit = Commit {
        base: base.clone(),
        at: ctx.now(),
        writes,
        device_id: None,
        plan_version: None,
        request: Some(RequestCompletion {
            key,
            claim: "somebody-else".into(),
            body_hash: "hash".into(),
            response: "{}".into(),
            expires_at: ctx.now() + Duration::days(7),
            attempt: 0,
        }),
        session: None,
        conflicts: 0,
        visit: None,
    };
    // The last action fails its condition: none of the ten writes may land.
    assert_eq!(
        store.commit(&user, &commit).await.unwrap(),
        CommitOutcome::ClaimLost
    );
    let loaded = store.load(&user, &keys).await.unwrap();
    assert!(loaded.entities.is_empty());
    assert_eq!(loaded.head.seq, 0);
    assert!(
        store
            .changes_after(&user, 0, 100)
            .await
            .unwrap()
            .entries
            .is_empty()
    );

    // A commit planned against a stale head is refused whole too.
    commit.request = None;
    assert!(matches!(
        store.commit(&user, &commit).await.unwrap(),
        CommitOutcome::Committed { first: 1, last: 10 }
    ));
    assert_eq!(
        store.commit(&user, &commit).await.unwrap(),
        CommitOutcome::HeadMoved
    );
    assert_eq!(store.head(&user).await.unwrap().seq, 10);
    assert_eq!(
        store
            .changes_after(&user, 0, 100)
            .await
            .unwrap()
            .entries
            .len(),
        10
    );
}

#[tokio::test]
async fn requests_are_counted_per_operation() {
    let ctx = TestContext::new().await;
    let token = ctx.token("erin", "phone");
    let before = ctx.counter.by_operation();
    let sync_id = ctx.check(&token, "erin").await;
    ctx.upload(
        &token,
        &sync_id,
        json!({"activities": [activity(Uuid::new_v4(), "a")]}),
    )
    .await;
    let after = ctx.counter.by_operation();
    let delta =
        |op: &str| after.get(op).copied().unwrap_or(0) - before.get(op).copied().unwrap_or(0);
    // check: device standing + head + session; upload: claim, batch read, transaction.
    assert_eq!(delta("GetItem"), 2);
    assert_eq!(delta("TransactWriteItems"), 2);
    assert_eq!(delta("PutItem"), 1);
    assert_eq!(delta("BatchGetItem"), 1);
    assert!(!after.contains_key("unknown"), "{after:?}");
}

/// An abandoned claim (its request died mid-way) is taken over only by a
/// retry of the same request: another body under the key is a mismatch, and
/// a completed record is never completed a second time.
#[tokio::test]
async fn an_abandoned_claim_is_taken_over_only_by_the_same_body_and_completes_once() {
    use trainsync_protocol::limits::IDEMPOTENCY_IN_PROGRESS_SECS;
    let ctx = TestContext::new().await;
    let store: &dyn SyncStore = ctx.store.as_ref();
    let user = UserId::parse("erin").unwrap();
    let key = SyncRequestId(Uuid::new_v4());
    let BeginOutcome::Claimed(_) = store
        .begin_request(&user, key, "body-a", ctx.now())
        .await
        .unwrap()
    else {
        panic!("a fresh key is claimable");
    };
    let later = ctx.now() + Duration::seconds(IDEMPOTENCY_IN_PROGRESS_SECS + 1);
    assert_eq!(
        store
            .begin_request(&user, key, "body-b", later)
            .await
            .unwrap(),
        BeginOutcome::Mismatch,
        "another body never takes an abandoned claim over"
    );
    let BeginOutcome::Claimed(claim) = store
        .begin_request(&user, key, "body-a", later)
        .await
        .unwrap()
    else {
        panic!("the same body takes the abandoned claim over");
    };

    // Completing the claim twice (a re-planned commit after a lost answer):
    // the second commit must not apply.
    let commit = |id: &str| Commit {
        base: sync_core::store::Head::default(),
        at: later,
        writes: vec![EntityWrite {
            key: EntityKey::new(EntityKind::Activity, id),
            data: json!({"id": id}),
        }],
        device_id: None,
        plan_version: None,
        request: Some(RequestCompletion::new(
            key,
            &claim,
            "body-a",
            "{}".into(),
            later,
        )),
        session: None,
        conflicts: 0,
        visit: None,
    };
    assert!(matches!(
        store.commit(&user, &commit("first")).await.unwrap(),
        CommitOutcome::Committed { .. }
    ));
    // The SDK's retry of that same transaction (same token, same items) is
    // answered as committed without applying anything again.
    assert!(matches!(
        store.commit(&user, &commit("first")).await.unwrap(),
        CommitOutcome::Committed { .. }
    ));
    assert_eq!(store.head(&user).await.unwrap().seq, 1);
    // Other items under the same token: DynamoDB cannot say; the loop settles it.
    let mut other = commit("second");
    other.base = store.head(&user).await.unwrap();
    assert_eq!(
        store.commit(&user, &other).await.unwrap(),
        CommitOutcome::InDoubt
    );
    // A new plan (its own token) on the moved head still cannot complete the claim again.
    let mut again = commit("second");
    again.base = store.head(&user).await.unwrap();
    again.request.as_mut().unwrap().attempt = 1;
    assert_eq!(
        store.commit(&user, &again).await.unwrap(),
        CommitOutcome::ClaimLost,
        "a completed record is never completed again"
    );
    assert_eq!(store.head(&user).await.unwrap().seq, 1);
    let state = store.request_state(&user, key).await.unwrap().unwrap();
    assert_eq!(
        (state.claim, state.response.as_deref()),
        (claim, Some("{}"))
    );
}

/// An upload whose commit meets `fault`: answered 200 at once, applied once,
/// and a retry of the request replays the same bytes.
async fn upload_through(fault: TransactionFault) {
    let faults = FaultInjector::default();
    let ctx = TestContext::with_faults(&faults).await;
    let token = ctx.token("erin", "phone");
    let sync_id = ctx.check(&token, "erin").await;
    let body = upload_body(
        &sync_id,
        Uuid::new_v4(),
        vec![activity(Uuid::new_v4(), "a"), activity(Uuid::new_v4(), "b")],
    );
    faults.arm(fault);
    let first = ctx.post("/sync/upload", &token, &body).await;
    assert!(faults.spent(), "{fault:?} was not injected");
    assert_eq!(first.status, StatusCode::OK, "{fault:?}: {}", text(&first));
    assert_eq!(first.json()["accepted"].as_array().unwrap().len(), 2);
    assert_eq!(head_seq(&ctx, &token).await, 2, "{fault:?}: applied once");
    let retry = ctx.post("/sync/upload", &token, &body).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.bytes, first.bytes, "{fault:?}: the retry replays");
    assert_eq!(head_seq(&ctx, &token).await, 2, "{fault:?}: nothing twice");
}

#[tokio::test]
async fn a_commit_whose_answer_is_lost_after_it_applied_answers_its_stored_response() {
    upload_through(TransactionFault::AnswerLostAfterApply).await;
}

#[tokio::test]
async fn a_transaction_in_progress_that_applied_is_settled_from_the_record_not_replanned() {
    upload_through(TransactionFault::InProgressAfterApply).await;
}

#[tokio::test]
async fn a_transaction_in_progress_that_had_not_applied_is_planned_again_and_applies_once() {
    upload_through(TransactionFault::InProgressBeforeApply).await;
}

#[test]
fn each_attempt_of_a_claim_gets_its_own_transaction_token() {
    let key = SyncRequestId(Uuid::nil());
    let now = trainsync_tests::test_epoch();
    let first = RequestCompletion::new(key, "claim-a", "h", "{}".into(), now);
    let again = RequestCompletion::new(key, "claim-a", "h", "{\"other\":1}".into(), now);
    let second = RequestCompletion {
        attempt: 1,
        ..first.clone()
    };
    let other = RequestCompletion::new(key, "claim-b", "h", "{}".into(), now);
    assert_eq!(first.transaction_token(), again.transaction_token());
    assert_ne!(first.transaction_token(), second.transaction_token());
    assert_ne!(first.transaction_token(), other.transaction_token());
    assert_eq!(first.transaction_token().len(), 36);
}
