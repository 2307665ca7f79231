//! Devices: their visits, registrations, push endpoints and revocations. The
//! device item is the one place revocation is decided: token checks and
//! refresh rotations both read it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DeviceVisit, StoreError};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::{Network, Platform, RevokeReason};

/// What device registration, revocation, visits and pushes ask of storage.
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

    /// Records a device's visit (first/last seen, cursors, last sync).
    async fn record_visit(&self, user: &UserId, seen: &DeviceVisit) -> Result<(), StoreError>;

    /// Every device seen for the user.
    async fn devices(&self, user: &UserId) -> Result<Vec<DeviceRecord>, StoreError>;
}

/// Why a device update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRefusal {
    /// The device is revoked: only a new login brings it back.
    Revoked,
    /// The device has changed since it was read; read again.
    Changed,
}

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The device.
    pub device_id: String,
    /// First authenticated call.
    pub first_seen_at: DateTime<Utc>,
    /// Latest authenticated call.
    pub last_seen_at: DateTime<Utc>,
    /// Latest successful completion.
    #[serde(default)]
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Latest cursor delivered by a download.
    #[serde(default)]
    pub last_cursor: Option<String>,
    /// Sequence that cursor covers.
    #[serde(default)]
    pub last_cursor_seq: Option<u64>,
    /// Latest cursor acknowledged by `/sync/complete`.
    #[serde(default)]
    pub acknowledged_cursor: Option<String>,
    /// Its registration (`PUT /devices/{device_id}`), once it registered.
    #[serde(default, flatten)]
    pub registration: Option<DeviceRegistration>,
    /// When it first registered.
    #[serde(default)]
    pub registered_at: Option<DateTime<Utc>>,
    /// Where its pushes go (an SNS endpoint ARN), while it has one.
    #[serde(default)]
    pub push_endpoint: Option<String>,
    /// Its current login (refresh-token family); tokens of other logins are refused.
    #[serde(default)]
    pub login: Option<uuid::Uuid>,
    /// When it was revoked (logged out); its tokens are refused from then on.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked.
    #[serde(default)]
    pub revoked_reason: Option<RevokeReason>,
}

impl DeviceRecord {
    /// Whether pushes may reach it: not revoked and with a push endpoint.
    pub fn push_target(&self) -> Option<&str> {
        self.push_endpoint
            .as_deref()
            .filter(|_| self.revoked_at.is_none())
    }
}

/// What a device registered about itself (`PUT /devices/{device_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRegistration {
    /// iOS or Android.
    pub platform: Platform,
    /// Its APNs / FCM token, if notifications are allowed.
    #[serde(default)]
    pub push_token: Option<String>,
    /// App version.
    pub app_version: String,
    /// OS version.
    #[serde(default)]
    pub os_version: Option<String>,
    /// Network at registration.
    #[serde(default)]
    pub network: Option<Network>,
    /// Locale.
    #[serde(default)]
    pub locale: Option<String>,
}
