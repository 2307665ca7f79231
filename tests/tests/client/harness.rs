//! A server on loopback (the gateway's router over the test's table, with a
//! switch that loses one answer after the handlers committed it) and devices
//! of one user.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::StatusCode;
use sync_core::clock::ManualClock;
use trainsync_client::{Client, MemorySecretStore};
use trainsync_tests::TestContext;

/// The user every device here belongs to.
pub const USER: &str = "runner-1";

/// The test server's clock, shared by the devices (client timestamps are
/// checked against the server's time).
pub struct ServerClock(pub Arc<ManualClock>);

impl trainsync_client::Clock for ServerClock {
    fn now(&self) -> DateTime<Utc> {
        sync_core::clock::Clock::now(self.0.as_ref())
    }
}

/// What the loopback server saw and should spoil.
#[derive(Default)]
pub struct Wire {
    /// `METHOD path` of every request, in order.
    pub requests: Mutex<Vec<String>>,
    /// The query string of every download.
    pub download_queries: Mutex<Vec<String>>,
    /// The `sync_request_id` of every upload.
    pub upload_ids: Mutex<Vec<String>>,
    /// Requests to this path get their committed answer replaced by a 502 (once).
    pub lose_answer_of: Mutex<Option<String>>,
}

/// The gateway on a loopback port.
pub struct Server {
    pub ctx: TestContext,
    pub url: String,
    pub wire: Arc<Wire>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn observe(State(wire): State<Arc<Wire>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    wire.requests
        .lock()
        .unwrap()
        .push(format!("{} {path}", request.method()));
    if path == "/sync/download" {
        let query = request.uri().query().unwrap_or_default().to_owned();
        wire.download_queries.lock().unwrap().push(query);
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    if path == "/sync/upload" {
        let gzipped = parts
            .headers
            .get("content-encoding")
            .is_some_and(|v| v == "gzip");
        let json = if gzipped {
            trainsync_tests::gunzip(&bytes)
        } else {
            bytes.to_vec()
        };
        let body: serde_json::Value = serde_json::from_slice(&json).unwrap();
        wire.upload_ids
            .lock()
            .unwrap()
            .push(body["sync_request_id"].as_str().unwrap().to_owned());
    }
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    let lose = {
        let mut target = wire.lose_answer_of.lock().unwrap();
        if target.as_deref() == Some(path.as_str()) {
            *target = None;
            true
        } else {
            false
        }
    };
    if lose {
        // The handlers committed; the device never hears it (a proxy's 502).
        let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
        return (StatusCode::BAD_GATEWAY, "upstream connection reset").into_response();
    }
    response
}

impl Server {
    /// A fresh table and the gateway serving it on 127.0.0.1.
    pub async fn start() -> Self {
        let ctx = TestContext::new().await;
        let wire = Arc::new(Wire::default());
        let router = trainsync_infra::gateway::router(ctx.state.clone())
            .layer(axum::middleware::from_fn_with_state(wire.clone(), observe));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            ctx,
            url,
            wire,
            stop: Some(stop),
        }
    }

    /// Requests seen since the last call.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut self.wire.requests.lock().unwrap())
    }
}

/// One device: its database file and keychain survive a restart.
pub struct Device {
    pub name: &'static str,
    pub db: PathBuf,
    pub secrets: Arc<MemorySecretStore>,
    pub client: Client,
    _dir: tempfile::TempDir,
}

impl Device {
    /// A new device of [`USER`], signed in with a token pair from the login service.
    pub async fn sign_in(server: &Server, name: &'static str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(format!("{name}.db"));
        let secrets = Arc::new(MemorySecretStore::default());
        let client = open(server, &db, &secrets, &server.url);
        client.sign_in(server.ctx.login(USER, name).await).unwrap();
        Self {
            name,
            db,
            secrets,
            client,
            _dir: dir,
        }
    }

    /// The app killed and started again on the same file, reaching `url`.
    pub fn restart(&mut self, server: &Server, url: &str) {
        self.client = open(server, &self.db, &self.secrets, url);
    }
}

fn open(
    server: &Server,
    db: &std::path::Path,
    secrets: &Arc<MemorySecretStore>,
    url: &str,
) -> Client {
    Client::open_with_clock(
        db,
        url,
        secrets.clone(),
        Arc::new(ServerClock(server.ctx.clock.clone())),
    )
    .unwrap()
}

/// A URL where nothing listens (the device is offline).
pub fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}
