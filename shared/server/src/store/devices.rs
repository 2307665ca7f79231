//! Storage of devices' logins, registrations and revocations, and of the
//! critical-alert delivery ledger (one record per alert and device, so a push
//! is sent once however often the stream delivers the alert).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{DeviceRecord, DeviceRegistration, StoreError};
use crate::refresh::RefreshFamily;
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::RevokeReason;

/// A login's refresh-token family as stored, with whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLogin {
    /// The family id (in every token of the login).
    pub family: Uuid,
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
    /// Its rotation state.
    pub state: RefreshFamily,
}

/// Why a device update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRefusal {
    /// The device is revoked: only a new login brings it back.
    Revoked,
    /// The device has changed since it was read; read again.
    Changed,
}

/// What an attempted refresh-token rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The new token is current.
    Rotated,
    /// Another rotation (or the login's revocation) came first.
    Superseded,
    /// The device is revoked or has logged in again since.
    DeviceRevoked,
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

/// How a claimed delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        match self {
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::EndpointGone => "endpoint_gone",
            DeliveryOutcome::Rejected => "rejected",
        }
    }
}

/// What devices, logins and pushes ask of storage.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// One device of the user (an eventually consistent read unless `consistent`).
    async fn device(
        &self,
        user: &UserId,
        device: &DeviceId,
        consistent: bool,
    ) -> Result<Option<DeviceRecord>, StoreError>;

    /// Stores the calling device's registration and push endpoint, unless it
    /// is revoked or its push endpoint is no longer `expected_endpoint`.
    async fn register_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        registration: &DeviceRegistration,
        push_endpoint: Option<&str>,
        expected_endpoint: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Result<DeviceRecord, DeviceRefusal>, StoreError>;

    /// Revokes a device and its login, and forgets its push endpoint; returns
    /// the record as it was (`None` for an unknown device, or one whose login
    /// is no longer `only_login` when that is given). Revoking twice keeps
    /// the first revocation.
    async fn revoke_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        reason: RevokeReason,
        only_login: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceRecord>, StoreError>;

    /// Forgets a push endpoint the provider reported gone, if the device still has it.
    async fn drop_push_endpoint(
        &self,
        user: &UserId,
        device: &DeviceId,
        endpoint: &str,
    ) -> Result<(), StoreError>;

    /// Starts a new login for a device: stores the family, makes it the
    /// device's only valid login (retiring the previous one) and lifts a revocation.
    async fn start_login(&self, login: &StoredLogin, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// A login family (strongly consistent), if it exists.
    async fn login(&self, family: Uuid) -> Result<Option<StoredLogin>, StoreError>;

    /// Makes `new_hash` the login's current token if `presented_hash` still
    /// is, the login is not revoked and it is still its device's login.
    async fn rotate_login(
        &self,
        login: &StoredLogin,
        presented_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError>;

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
