//! The critical-alert delivery ledger: one record per alert and device, so a
//! push is sent once however often the stream delivers the alert.
//!
//! A claim is held by the [`ClaimOwner`] its claim returned: finishing or
//! releasing it is conditional on still holding it, so an invocation whose
//! lease ran out (and whose claim another invocation took over) can never
//! overwrite or delete the new holder's record.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use trainsync_protocol::domain::UserId;

/// What the alert fan-out asks of storage.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Claims the delivery of `alert` to `device` at `now`, under a fresh
    /// owner; a claim not finished within its lease can be claimed again.
    async fn claim_delivery(
        &self,
        user: &UserId,
        alert: Uuid,
        device: &str,
        now: DateTime<Utc>,
    ) -> Result<DeliveryClaim, StoreError>;

    /// Records how `owner`'s delivery ended (never sent again afterwards),
    /// unless the claim was taken over meanwhile.
    async fn finish_delivery(
        &self,
        user: &UserId,
        alert: Uuid,
        device: &str,
        owner: ClaimOwner,
        outcome: DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<ClaimHold, StoreError>;

    /// Gives `owner`'s claim up after a retryable failure, so a retry may
    /// send, unless the claim was taken over meanwhile.
    async fn release_delivery(
        &self,
        user: &UserId,
        alert: Uuid,
        device: &str,
        owner: ClaimOwner,
    ) -> Result<ClaimHold, StoreError>;
}

/// Who holds a delivery claim: a fresh random id per successful claim, the
/// one key that finishes or releases it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimOwner(Uuid);

impl ClaimOwner {
    /// A new owner, for a claim about to be written.
    pub(crate) fn fresh() -> Self {
        Self(Uuid::new_v4())
    }

    /// The stored id.
    pub(crate) fn id(self) -> Uuid {
        self.0
    }
}

impl std::fmt::Display for ClaimOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The answer to claiming one (alert, device) delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryClaim {
    /// Ours to send; finish or release it afterwards as this owner.
    Claimed(ClaimOwner),
    /// Already sent (or given up for good): never send again.
    Done,
    /// Another invocation holds a claim whose lease runs until `lease_until`:
    /// it will finish or release it, or may be taken over from then on.
    InFlight {
        /// When the holder's lease ends.
        lease_until: DateTime<Utc>,
    },
}

/// Whether a finish or release still held its claim.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimHold {
    /// Still ours: the record now says how the delivery ended (or, released, is gone).
    Held,
    /// No longer ours (the lease ran out and another invocation claimed the
    /// delivery, or finished or released it since): nothing was changed.
    Lost,
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
