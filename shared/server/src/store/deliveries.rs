//! The critical-alert delivery ledger: one record per alert and device, so a
//! push is sent once however often the stream delivers the alert.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use trainsync_protocol::domain::UserId;

/// What the alert fan-out asks of storage.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Claims the delivery of `alert` to `device` at `now`; a claim not
    /// finished within its lease can be claimed again.
    async fn claim_delivery(
        &self,
        user: &UserId,
        alert: Uuid,
        device: &str,
        now: DateTime<Utc>,
    ) -> Result<DeliveryClaim, StoreError>;

    /// Records how a claimed delivery ended (never sent again afterwards).
    async fn finish_delivery(
        &self,
        user: &UserId,
        alert: Uuid,
        device: &str,
        outcome: DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Gives a claim up after a retryable failure, so a retry may send.
    async fn release_delivery(
        &self,
        user: &UserId,
        alert: Uuid,
        device: &str,
    ) -> Result<(), StoreError>;
}

/// The answer to claiming one (alert, device) delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryClaim {
    /// Ours to send; finish or release it afterwards.
    Claimed,
    /// Already sent (or given up for good): never send again.
    Done,
    /// Another invocation holds a live claim: retry later.
    InFlight,
}

/// How a claimed delivery ended (stored as its serde name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The provider accepted the push.
    Sent,
    /// The endpoint is gone; the device gets no push for this alert.
    EndpointGone,
    /// The provider refused it for good.
    Rejected,
}

impl DeliveryOutcome {
    /// The stored status text.
    pub fn as_str(self) -> &'static str {
        trainsync_protocol::names::wire_name(&self).expect("a unit variant has a wire name")
    }
}
