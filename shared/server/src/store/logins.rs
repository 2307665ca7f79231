//! Logins: a device's refresh-token family, started at sign-in, rotated on
//! every refresh, refused once its device is revoked or logs in again.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::refresh::RefreshFamily;
use trainsync_protocol::domain::{DeviceId, UserId};

/// What sign-in and token refresh ask of storage.
#[async_trait]
pub trait LoginStore: Send + Sync {
    /// Starts a new login for a device: stores the family, makes it the
    /// device's only valid login (retiring the previous one) and lifts a revocation.
    async fn start_login(&self, login: &StoredLogin, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// A login family (strongly consistent), if it exists.
    async fn login(&self, family: Uuid) -> Result<Option<StoredLogin>, StoreError>;

    /// Moves the login to `rotated` (its new current token, the previous one
    /// sealed, the retired ones) if `presented_hash` is still current, the
    /// login is not revoked and it is still its device's login.
    async fn rotate_login(
        &self,
        login: &StoredLogin,
        presented_hash: &str,
        rotated: &RefreshFamily,
    ) -> Result<Rotation, StoreError>;
}

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
