//! The local gateway in-process: real handlers over a real DynamoDB Local
//! (DYNAMODB_ENDPOINT when set, e.g. by scripts/test; else one started here).

use std::net::{Ipv4Addr, SocketAddr};

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::Value;
use trainsync_infra::dynamodb_local::DynamoDbLocal;
use trainsync_infra::{gateway, local_config, local_system};

use crate::helpers::dynamodb_endpoint;

struct Running {
    url: String,
    token: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dynamodb: Option<DynamoDbLocal>,
}

async fn start_gateway() -> Running {
    let (endpoint, dynamodb) = dynamodb_endpoint().await;
    let mut config = local_config::from_env_with_endpoint(&endpoint).expect("local config");
    config.table_name = format!(
        "gateway-test-{}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    local_system::create_table(&config)
        .await
        .expect("table created");
    let token =
        local_config::dev_token(&config, "gw-user", "gw-device", 1, Utc::now()).expect("dev token");
    let state = sync_core::lambda::build_state(config).await.expect("state");
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway::serve(state, listener, async {
        let _ = rx.await;
    }));
    Running {
        url,
        token,
        shutdown: Some(tx),
        server,
        _dynamodb: dynamodb,
    }
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("JSON error body");
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {body}"))
        .to_owned()
}

#[tokio::test]
async fn serves_the_handlers_end_to_end_and_shuts_down() {
    let mut running = start_gateway().await;
    let client = reqwest::Client::new();
    let url = &running.url;

    // Routing is the handlers' job: 404 and 405 in their JSON shape.
    let response = client
        .get(format!("{url}/nope"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "no_route");
    let response = client
        .post(format!("{url}/sync/status"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Authentication happens in the handlers too.
    let response = client
        .get(format!("{url}/sync/status"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A dev token works and the request reaches DynamoDB Local.
    let response = client
        .get(format!("{url}/sync/status"))
        .bearer_auth(&running.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let status: Value = response.json().await.expect("JSON");
    assert_eq!(status["user_id"], "gw-user", "{status}");

    // Query parameters reach the handler.
    let response = client
        .get(format!("{url}/sync/download?limit=abc"))
        .bearer_auth(&running.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Above the handlers' 256 KiB cap: their 413; above the gateway's 1 MiB: the gateway's.
    for size in [300 * 1024, gateway::MAX_GATEWAY_BODY_BYTES + 1] {
        let response = client
            .post(format!("{url}/sync/upload"))
            .bearer_auth(&running.token)
            .header("content-type", "application/json")
            .body(vec![b' '; size])
            .send()
            .await
            .expect("sent");
        assert_eq!(
            response.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "size {size}"
        );
        assert_eq!(error_code(response).await, "body_too_large");
    }

    if let Some(shutdown) = running.shutdown.take() {
        let _ = shutdown.send(());
    }
    (&mut running.server)
        .await
        .expect("server task")
        .expect("server stopped cleanly");
    assert!(client.get(format!("{url}/nope")).send().await.is_err());
}
