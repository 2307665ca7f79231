//! The backend's ingest path on DynamoDB Local: the event shapes the
//! `sync-ingest` Lambda accepts, idempotency by `ingest_id`, per-item errors,
//! and that ingested data reaches devices through the same change log.

use serde_json::{Value, json};
use trainsync_tests::TestContext;
use uuid::Uuid;

use crate::helpers::alert;

const USER: &str = "ingest-user";
/// When the alerts were raised.
const RAISED_AT: &str = "2025-06-01T06:00:00Z";

#[tokio::test]
async fn a_repeated_ingest_id_applies_once_and_replays_the_answer() {
    let ctx = TestContext::new().await;
    let event = json!({"type": "user_data", "user_id": USER, "ingest_id": Uuid::new_v4(),
                       "alerts": [alert(Uuid::new_v4(), "recovery_week", "warning", RAISED_AT,
                                        None)]});
    let first = ctx.ingest(event.clone()).await;
    let again = ctx.ingest(event.clone()).await;
    assert_eq!(first, again, "the stored answer, byte for byte");
    assert_eq!(first["seqs"], json!([1, 1]));
    let status = ctx
        .get("/sync/status", &ctx.token(USER, "phone"), &[])
        .await
        .json();
    assert_eq!(status["head_seq"], 1, "applied once");

    let mut other = event;
    other["alerts"] = json!([alert(
        Uuid::new_v4(),
        "recovery_week",
        "info",
        RAISED_AT,
        None
    )]);
    let refused = ctx.ingest(other).await;
    assert_eq!(
        refused["error"]["code"], "idempotency_key_reused",
        "{refused}"
    );
}

#[tokio::test]
async fn bad_items_are_reported_and_good_ones_reach_every_device() {
    let ctx = TestContext::new().await;
    let good = Uuid::new_v4();
    let answer = ctx
        .ingest_for(
            USER,
            json!({"alerts": [
                alert(good, "recovery_week", "critical", RAISED_AT, None),
                alert(Uuid::new_v4(), "recovery_week", "loud", RAISED_AT, None),
            ]}),
        )
        .await;
    assert_eq!(answer["accepted"][0]["id"], good.to_string(), "{answer}");
    assert_eq!(answer["processing_errors"][0]["field"], "severity");
    assert_eq!(answer["processing_errors"][0]["index"], 1);

    let phone = ctx.token(USER, "phone");
    let check = ctx
        .post(
            "/sync/check",
            &phone,
            &json!({"user_id": USER, "pending_changes_count": 0}),
        )
        .await
        .json();
    assert!(
        check["server_changes_available"]
            .as_array()
            .unwrap()
            .contains(&json!("alerts_new"))
    );
    let (pages, _) = ctx.download_all(&phone, None, 100).await;
    let alerts: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["alerts"].as_array().unwrap())
        .collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["severity"], "critical");
}

#[tokio::test]
async fn envelope_errors_are_answered_not_thrown() {
    let ctx = TestContext::new().await;
    let unknown_type = ctx.ingest(json!({"type": "nonsense"})).await;
    assert_eq!(
        unknown_type["error"]["code"], "invalid_value",
        "{unknown_type}"
    );
    let bad_user = ctx
        .ingest(json!({"type": "user_data", "user_id": "", "ingest_id": Uuid::new_v4()}))
        .await;
    assert_eq!(bad_user["error"]["field"], "user_id", "{bad_user}");
    let too_many: Vec<Value> = (0..11)
        .map(|_| alert(Uuid::new_v4(), "recovery_week", "info", RAISED_AT, None))
        .collect();
    let large = ctx.ingest_for(USER, json!({"alerts": too_many})).await;
    assert_eq!(large["error"]["code"], "batch_too_large", "{large}");
}

#[tokio::test]
async fn an_eventbridge_envelope_is_unwrapped_and_reference_data_is_published() {
    let ctx = TestContext::new().await;
    let detail = json!({"type": "user_data", "user_id": USER, "ingest_id": Uuid::new_v4(),
                        "alerts": [alert(Uuid::new_v4(), "recovery_week", "info", RAISED_AT,
                                         None)]});
    let answer = ctx
        .ingest(
            json!({"version": "0", "id": Uuid::new_v4(), "detail-type": "trainsync.ingest",
                       "source": "engine", "detail": detail}),
        )
        .await;
    assert_eq!(answer["accepted"].as_array().unwrap().len(), 1, "{answer}");

    let snapshot = json!({"type": "reference_data", "version": 1,
                          "published_at": "2025-06-01T06:00:00Z",
                          "entries": [{"id": "back-squat", "kind": "exercise", "title": "Back squat",
                                       "body": {"equipment": "barbell"},
                                       "updated_at": "2025-05-20T09:00:00Z"}]});
    let published = ctx.ingest(snapshot.clone()).await;
    assert_eq!(published["reference"]["status"], "published", "{published}");
    let again = ctx.ingest(snapshot).await;
    assert_eq!(again["reference"]["status"], "already_published");
    let current = ctx
        .get("/reference/current", &ctx.token(USER, "phone"), &[])
        .await
        .json();
    assert_eq!(current["version"], 1);
}
