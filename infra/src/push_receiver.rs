//! A tiny push receiver for local runs and tests: the stand-in for SNS mobile
//! push. It records every delivery `sync_core::push::HttpPushProvider` posts,
//! and can be told to fail the next N deliveries (503) to exercise retries.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use http::StatusCode;
use sync_core::push::PushDelivery;
use tokio::net::TcpListener;

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<PushDelivery>>,
    fail_next: AtomicU32,
    disabled: Mutex<Vec<String>>,
}

/// A running push receiver on loopback.
#[derive(Clone)]
pub struct PushReceiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl PushReceiver {
    /// Starts a receiver on a free loopback port; it runs until the runtime stops.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/push", post(receive))
            .with_state(shared.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "push receiver stopped");
            }
        });
        Ok(Self { shared, addr })
    }

    /// The URL deliveries are posted to.
    pub fn url(&self) -> String {
        format!("http://{}/push", self.addr)
    }

    /// Every delivery accepted so far, in arrival order.
    pub fn received(&self) -> Vec<PushDelivery> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Answers deliveries to `device_id` with 410 from now on (the app was
    /// uninstalled: SNS reports such an endpoint disabled).
    pub fn disable(&self, device_id: &str) {
        if let Ok(mut disabled) = self.shared.disabled.lock() {
            disabled.push(device_id.to_owned());
        }
    }

    /// Answers the next `n` deliveries with 503 (a push provider outage).
    pub fn fail_next(&self, n: u32) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Json(delivery): Json<PushDelivery>,
) -> StatusCode {
    let disabled = shared
        .disabled
        .lock()
        .is_ok_and(|d| d.contains(&delivery.target.device_id));
    if disabled {
        return StatusCode::GONE;
    }
    let failing = shared
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    // The local run's visible proof that a critical alert was pushed.
    tracing::info!(
        device_id = %delivery.target.device_id,
        alert_id = %delivery.message.alert_id,
        kind = ?delivery.message.kind,
        title_key = %delivery.message.title_key,
        seq = delivery.message.seq,
        "push received"
    );
    if let Ok(mut received) = shared.received.lock() {
        received.push(delivery);
    }
    StatusCode::ACCEPTED
}
