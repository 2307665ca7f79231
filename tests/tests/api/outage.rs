//! Storage down: every endpoint answers 503 with `Retry-After` and a generic
//! body, and an upload retried after recovery applies once.

use std::sync::Arc;

use http::StatusCode;
use serde_json::json;
use sync_core::auth::Verifier;
use sync_core::clock::ManualClock;
use sync_core::config::Config;
use sync_core::handlers::dispatch;
use sync_core::state::AppState;
use sync_core::store::dynamo::DynamoStore;
use trainsync_tests::{TestContext, activity, config, get_request, post_request};
use uuid::Uuid;

/// State whose DynamoDB endpoint refuses connections (nothing listens there).
async fn state_with_storage_down() -> AppState {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let config = Config {
        dynamodb_endpoint: Some(dead),
        ..config("trainsync-down")
    };
    let store = DynamoStore::from_config(&config).await;
    // The test context's clock, so its tokens are valid here.
    AppState::new(
        Arc::new(store),
        Verifier::new(&config.auth),
        Arc::new(ManualClock::new(trainsync_tests::test_epoch())),
    )
}

#[tokio::test]
async fn every_endpoint_answers_503_with_retry_after_when_storage_is_down() {
    let ctx = TestContext::new().await;
    let down = state_with_storage_down().await;
    let token = ctx.token("hank", "phone");
    let sync_id = Uuid::new_v4();
    let requests = [
        post_request("/sync/check", Some(&token), json!({"user_id": "hank", "pending_changes_count": 0}).to_string()),
        post_request(
            "/sync/upload",
            Some(&token),
            json!({"sync_id": sync_id, "sync_request_id": Uuid::new_v4(), "activities": [activity(Uuid::new_v4(), "x")]})
                .to_string(),
        ),
        get_request("/sync/download", Some(&token), &[]),
        post_request("/sync/complete", Some(&token), json!({"sync_id": sync_id, "status": "success"}).to_string()),
        get_request("/sync/status", Some(&token), &[]),
        get_request("/sync/conflicts", Some(&token), &[]),
        post_request(
            &format!("/sync/conflicts/{}/undo", Uuid::now_v7()),
            Some(&token),
            "{}".to_owned(),
        ),
        get_request(&format!("/sync/tracks/{}", Uuid::new_v4()), Some(&token), &[]),
        get_request("/reference/current", Some(&token), &[]),
    ];
    for request in requests {
        let path = request.uri().path().to_owned();
        let response = dispatch(&down, request).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(response.headers().contains_key("retry-after"), "{path}");
        let body: serde_json::Value = match response.body() {
            lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(body["error"]["code"], "storage_unavailable", "{path}");
        assert!(
            !body.to_string().contains("127.0.0.1"),
            "no internals leak: {body}"
        );
    }
}

#[tokio::test]
async fn an_upload_that_hit_an_outage_is_applied_once_on_retry() {
    let ctx = TestContext::new().await;
    let down = state_with_storage_down().await;
    let token = ctx.token("hank", "phone");
    let sync_id = ctx.check(&token, "hank").await;
    let body = json!({"sync_id": sync_id, "sync_request_id": Uuid::new_v4(),
                      "activities": [activity(Uuid::new_v4(), "x"), activity(Uuid::new_v4(), "y")]});
    let failed = dispatch(
        &down,
        post_request("/sync/upload", Some(&token), body.to_string()),
    )
    .await;
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    let first = ctx.post("/sync/upload", &token, &body).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = ctx.post("/sync/upload", &token, &body).await;
    assert_eq!(again.bytes, first.bytes);
    let status = ctx.get("/sync/status", &token, &[]).await.json();
    assert_eq!(status["head_seq"], 2);
}
