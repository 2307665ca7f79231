//! Test harness for the integration tests in `tests/tests/api/` and the
//! bench: a fresh DynamoDB Local table per test, the real handlers
//! in-process, tokens, an injectable clock and small request helpers.
//!
//! DynamoDB Local must be running and `DYNAMODB_ENDPOINT` must point at it;
//! `scripts/test` does both.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Duration, Utc};
use http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Value, json};
use sync_core::auth::{Verifier, mint_hs256_token};
use sync_core::clock::ManualClock;
use sync_core::config::{AuthConfig, Config};
use sync_core::handlers::dispatch;
use sync_core::state::AppState;
use sync_core::store::dynamo::metrics::RequestCounter;
use sync_core::store::dynamo::{DynamoStore, client_with_counter, schema};
use uuid::Uuid;

pub mod faults;

/// The HS256 secret tests sign with.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
/// Issuer tests use.
pub const ISSUER: &str = "trainsync-test";
/// Audience tests use.
pub const AUDIENCE: &str = "trainsync";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    }
});

/// The DynamoDB Local endpoint, or a clear failure.
pub fn endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "DYNAMODB_ENDPOINT is not set: the integration tests need DynamoDB Local. \
             Run them with `scripts/test` (it installs, starts and stops DynamoDB Local)."
        )
    })
}

/// A configuration pointing at DynamoDB Local and `table`.
pub fn config(table: &str) -> Config {
    Config {
        table_name: table.to_owned(),
        dynamodb_endpoint: Some(endpoint()),
        region: Some("us-east-1".into()),
        auth: AuthConfig::Hs256 {
            secret: SECRET.into(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
        },
        brain: true,
        signing_key: None,
        push: sync_core::config::PushConfig::Off,
    }
}

/// Where every test's clock starts: the morning after the fixtures' dates
/// (e.g. [`activity`]'s run on 2025-05-31), so they count as recent data
/// (a full snapshot reaches back 90 days).
pub fn test_epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
        .expect("a valid time")
        .with_timezone(&Utc)
}

/// One test's world: its own table, store, clock and handler state.
pub struct TestContext {
    /// The table, named uniquely for this test.
    pub table: String,
    /// The store the handlers use.
    pub store: Arc<DynamoStore>,
    /// The clock the handlers read; move it to test expiry.
    pub clock: Arc<ManualClock>,
    /// Handler state (the reference brain is off: set `state.brain = true` to test it).
    pub state: AppState,
    /// Requests made through the store's client.
    pub counter: Arc<RequestCounter>,
}

/// A response, decoded.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Raw body (decompressed if it was gzip).
    pub bytes: Vec<u8>,
}

impl TestResponse {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    /// DynamoDB requests the handler made, from the `x-dynamodb-requests` header.
    pub fn ddb_requests(&self) -> u64 {
        self.headers
            .get("x-dynamodb-requests")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("x-dynamodb-requests header")
    }

    /// The error code of an error response.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The error field of an error response.
    pub fn error_field(&self) -> Option<String> {
        self.json()["error"]["field"].as_str().map(str::to_owned)
    }
}

impl TestContext {
    /// A fresh table and state; the clock starts at [`test_epoch`].
    pub async fn new() -> Self {
        Self::build(None).await
    }

    /// A fresh context whose DynamoDB client goes through `faults`, so a
    /// test can spoil a chosen transaction (see [`faults::TransactionFault`]).
    pub async fn with_faults(faults: &faults::FaultInjector) -> Self {
        Self::build(Some(faults.clone())).await
    }

    async fn build(faults: Option<faults::FaultInjector>) -> Self {
        LazyLock::force(&TRACING);
        let table = format!("trainsync-test-{}", Uuid::new_v4().simple());
        let config = config(&table);
        let counter = Arc::new(RequestCounter::default());
        let mut client = client_with_counter(&config, counter.clone()).await;
        if let Some(faults) = faults {
            let spoiled = client.config().to_builder().interceptor(faults).build();
            client = aws_sdk_dynamodb::Client::from_conf(spoiled);
        }
        schema::create_table(&client, &table)
            .await
            .unwrap_or_else(|e| panic!("cannot create table at {}: {e:?}", endpoint()));
        let store = Arc::new(DynamoStore::new(client, table.clone(), counter.clone()));
        let clock = Arc::new(ManualClock::new(test_epoch()));
        let mut state = AppState::new(store.clone(), Verifier::new(&config.auth), clock.clone());
        // The reference brain publishes metrics after activity writes, which
        // would add change-log entries to every test; the tests of the brain
        // (and of anything that needs it) switch it on with `state.brain = true`.
        state.brain = false;
        // Tests pin DynamoDB round trips through the response header.
        state.request_count_header = true;
        state.tokens = sync_core::auth::issuer::TokenIssuer::from_config(&config, None)
            .expect("token issuer")
            .map(Arc::new);
        Self {
            table,
            store,
            clock,
            state,
            counter,
        }
    }

    /// A fresh context whose "container" has already admitted `user`'s
    /// `device` once: a device's first call in a container also reads its
    /// standing (revocation), which tests counting one call's requests exclude.
    pub async fn with_known_device(user: &str, device: &str) -> Self {
        let ctx = Self::new().await;
        let known = ctx.get("/devices", &ctx.token(user, device), &[]).await;
        assert_eq!(known.status, StatusCode::OK, "the warm-up call");
        ctx
    }

    /// Another "container" on the same table: handler state with its own
    /// caches (e.g. revocation) and token verifier, reading `clock`, with the
    /// reference brain as in this context's state.
    pub fn another_container(&self, clock: Arc<ManualClock>) -> AppState {
        let verifier = Verifier::new(&config(&self.table).auth);
        let mut state = AppState::new(self.store.clone(), verifier, clock);
        state.brain = self.state.brain;
        state.request_count_header = true;
        state
    }

    /// The clock's current time.
    pub fn now(&self) -> DateTime<Utc> {
        sync_core::clock::Clock::now(self.clock.as_ref())
    }

    /// A 24-hour token for `user` on `device`, issued at the test clock's time.
    pub fn token(&self, user: &str, device: &str) -> String {
        mint_hs256_token(
            SECRET,
            ISSUER,
            AUDIENCE,
            user,
            device,
            self.now(),
            Duration::hours(24),
        )
        .expect("token")
    }

    /// Sends a request through the same dispatch the gateway and Lambdas use.
    pub async fn send(&self, request: Request) -> TestResponse {
        let response = dispatch(&self.state, request).await;
        let (parts, body) = response.into_parts();
        let raw = match body {
            Body::Empty => Vec::new(),
            Body::Text(t) => t.into_bytes(),
            Body::Binary(b) => b,
            _ => Vec::new(),
        };
        let gzipped = parts
            .headers
            .get("content-encoding")
            .is_some_and(|v| v == "gzip");
        let bytes = if gzipped { gunzip(&raw) } else { raw };
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            bytes,
        }
    }

    /// A request with any method, an optional JSON body and a bearer token.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> TestResponse {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("https://api.example.com{path}"))
            .header("content-type", "application/json");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = body.map_or(Body::Empty, |b| Body::from(b.to_string()));
        self.send(builder.body(body).expect("request")).await
    }

    /// Registers `device` of the token with push token `push_token` (`PUT /devices/{device}`).
    pub async fn register(
        &self,
        token: &str,
        device: &str,
        push_token: Option<&str>,
    ) -> TestResponse {
        self.request(
            Method::PUT,
            &format!("/devices/{device}"),
            Some(token),
            Some(&json!({"platform": "ios", "push_token": push_token, "app_version": "4.2.0"})),
        )
        .await
    }

    /// Logs `device` of `user` in as the login service would; returns the token pair.
    pub async fn login(&self, user: &str, device: &str) -> trainsync_protocol::wire::TokenPair {
        self.state
            .tokens()
            .login(
                &trainsync_protocol::domain::UserId::parse(user).expect("user id"),
                &trainsync_protocol::domain::DeviceId::parse(device).expect("device id"),
            )
            .await
            .expect("login")
    }

    /// `POST /auth/refresh` with `refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.request(
            Method::POST,
            "/auth/refresh",
            None,
            Some(&json!({"refresh_token": refresh_token})),
        )
        .await
    }

    /// `POST path` with a JSON body and a bearer token.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> TestResponse {
        self.send(post_request(path, Some(token), body.to_string()))
            .await
    }

    /// `GET path?query` with a bearer token.
    pub async fn get(&self, path: &str, token: &str, query: &[(&str, &str)]) -> TestResponse {
        self.send(get_request(path, Some(token), query)).await
    }

    /// `GET path` with a bearer token and extra request headers (`Range`,
    /// `If-None-Match`, `Accept-Encoding`...).
    pub async fn get_with_headers(
        &self,
        path: &str,
        token: &str,
        headers: &[(&'static str, &str)],
    ) -> TestResponse {
        self.send(with_headers(get_request(path, Some(token), &[]), headers))
            .await
    }

    /// Opens a session for `user`/`device`; returns `sync_id`.
    pub async fn check(&self, token: &str, user: &str) -> String {
        let response = self
            .post(
                "/sync/check",
                token,
                &json!({"user_id": user, "last_sync_timestamp": null, "pending_changes_count": 0}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "check: {}",
            String::from_utf8_lossy(&response.bytes)
        );
        response.json()["sync_id"]
            .as_str()
            .expect("sync_id")
            .to_owned()
    }

    /// Uploads `items` (an object with any of the four lists) in a new request id.
    pub async fn upload(&self, token: &str, sync_id: &str, items: Value) -> TestResponse {
        let mut body = json!({"sync_id": sync_id, "sync_request_id": Uuid::new_v4()});
        if let (Some(body), Some(items)) = (body.as_object_mut(), items.as_object()) {
            body.extend(items.clone());
        }
        self.post("/sync/upload", token, &body).await
    }

    /// Runs an ingest event through the library the `sync-ingest` Lambda calls
    /// (panics on a retryable storage error).
    pub async fn ingest(&self, event: Value) -> Value {
        sync_core::handlers::ingest::handle_event(&self.state, event)
            .await
            .expect("ingest")
    }

    /// Ingests `items` (any of the ingest lists) for `user` under a fresh
    /// `ingest_id`; returns the answer.
    pub async fn ingest_for(&self, user: &str, items: Value) -> Value {
        let mut event = json!({"type": "user_data", "user_id": user, "ingest_id": Uuid::new_v4()});
        if let (Some(event), Some(items)) = (event.as_object_mut(), items.as_object()) {
            event.extend(items.clone());
        }
        self.ingest(event).await
    }

    /// One download call after `since` with extra query parameters
    /// (e.g. `limit`, `network`, `plan_version`); panics unless it answers 200.
    pub async fn download_page(
        &self,
        token: &str,
        since: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Value {
        let mut query = extra.to_vec();
        if let Some(since) = since {
            query.push(("since", since));
        }
        let response = self.get("/sync/download", token, &query).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "download: {}",
            String::from_utf8_lossy(&response.bytes)
        );
        response.json()
    }

    /// Downloads every page after `since` with extra query parameters
    /// (e.g. `network`, `plan_version`); returns all pages and the final cursor.
    pub async fn download_all_with(
        &self,
        token: &str,
        since: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (Vec<Value>, String) {
        let mut pages = Vec::new();
        let mut cursor = since.map(str::to_owned);
        loop {
            let page = self.download_page(token, cursor.as_deref(), extra).await;
            cursor = Some(
                page["next_cursor"]
                    .as_str()
                    .expect("next_cursor")
                    .to_owned(),
            );
            let more = page["has_more"].as_bool().expect("has_more");
            pages.push(page);
            if !more {
                return (pages, cursor.unwrap_or_default());
            }
        }
    }

    /// Downloads every page after `since`; returns all pages and the final cursor.
    pub async fn download_all(
        &self,
        token: &str,
        since: Option<&str>,
        limit: u32,
    ) -> (Vec<Value>, String) {
        let limit = limit.to_string();
        self.download_all_with(token, since, &[("limit", limit.as_str())])
            .await
    }
}

impl Drop for TestContext {
    // Drop the table so a long test run does not slow DynamoDB Local down.
    // Drop cannot await, so a short-lived runtime on another thread does it,
    // with its own client: the test's client has connections tied to the
    // (now blocked) test runtime.
    fn drop(&mut self) {
        let table = self.table.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    let client = sync_core::store::dynamo::client_for(&config(&table)).await;
                    let _ = client.delete_table().table_name(&table).send().await;
                });
            }
        })
        .join();
    }
}

/// A JSON `POST` request as API Gateway would hand it to the function.
pub fn post_request(path: &str, token: Option<&str>, body: impl Into<Body>) -> Request {
    let mut builder = http::Request::builder()
        .method(Method::POST)
        .uri(format!("https://api.example.com{path}"))
        .header("content-type", "application/json");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(body.into()).expect("request")
}

/// A `GET` request with query parameters as API Gateway would hand it to the function.
pub fn get_request(path: &str, token: Option<&str>, query: &[(&str, &str)]) -> Request {
    let mut builder = http::Request::builder()
        .method(Method::GET)
        .uri(format!("https://api.example.com{path}"));
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let map: std::collections::HashMap<String, Vec<String>> = query.iter().fold(
        Default::default(),
        |mut map: std::collections::HashMap<String, Vec<String>>, (k, v)| {
            map.entry((*k).to_owned())
                .or_default()
                .push((*v).to_owned());
            map
        },
    );
    builder
        .body(Body::Empty)
        .expect("request")
        .with_query_string_parameters(map)
}

/// `request` with `headers` set (replacing any of the same name).
pub fn with_headers(mut request: Request, headers: &[(&'static str, &str)]) -> Request {
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("header value"));
    }
    request
}

/// A JSON `POST` whose body `bytes` is already gzip-compressed
/// (`Content-Encoding: gzip`).
pub fn gzip_post(path: &str, token: &str, bytes: Vec<u8>) -> Request {
    with_headers(
        post_request(path, Some(token), Body::Binary(bytes)),
        &[("content-encoding", "gzip")],
    )
}

/// A valid activity with id `id`.
pub fn activity(id: Uuid, notes: &str) -> Value {
    json!({
        "id": id,
        "activity_type": "run",
        "started_at": "2025-05-31T07:00:00Z",
        "duration_s": 1800,
        "distance_m": 5000,
        "rpe": 5,
        "notes": notes,
        "source": "manual"
    })
}

/// gzip-compresses `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    sync_core::compression::gzip(bytes)
}

/// Decompresses gzip `bytes` (panics if they are not gzip).
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}
