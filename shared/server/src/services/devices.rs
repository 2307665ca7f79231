//! A user's devices: registration (with its push endpoint), listing and
//! revocation ("log out on one device", PRD 8.1). Revocation is one path,
//! whether the user asked for it or a reused refresh token forced it.

use chrono::{DateTime, Utc};
use trainsync_protocol::wire::ErrorCode;
use uuid::Uuid;

use crate::auth::revocation::DeviceGate;
use crate::clock::Clock;
use crate::error::ApiError;
use crate::push::PushError;
use crate::push::PushProvider;
use crate::store::SyncStore;
use crate::store::{DeviceRecord, DeviceRefusal, DeviceRegistration};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::{DeviceView, RegisterDeviceRequest, RevokeReason};

/// Attempts at registering while the device's endpoint changes underneath.
const REGISTER_ATTEMPTS: u32 = 3;

/// The wire view of a stored device; `current` marks the caller's own.
pub fn view(device: DeviceRecord, current: &DeviceId) -> DeviceView {
    let registration = device.registration.as_ref();
    DeviceView {
        current: device.device_id == current.as_str(),
        platform: registration.map(|r| r.platform),
        app_version: registration.map(|r| r.app_version.clone()),
        os_version: registration.and_then(|r| r.os_version.clone()),
        network: registration.and_then(|r| r.network),
        locale: registration.and_then(|r| r.locale.clone()),
        push_enabled: device.push_target().is_some(),
        registered_at: device.registered_at,
        first_seen_at: device.first_seen_at,
        last_seen_at: device.last_seen_at,
        last_sync_at: device.last_sync_at,
        revoked: device.revoked_at.is_some(),
        revoked_at: device.revoked_at,
        revoked_reason: device.revoked_reason,
        device_id: device.device_id,
    }
}

/// What the device use cases work with: storage, the push provider (when
/// configured), this container's revocation cache and the clock.
#[derive(Clone, Copy)]
pub struct Devices<'a> {
    /// Storage.
    pub store: &'a dyn SyncStore,
    /// The push provider, when configured.
    pub push: Option<&'a dyn PushProvider>,
    /// This container's revocation cache (forgets a device it revokes).
    pub gate: &'a DeviceGate,
    /// The clock.
    pub clock: &'a dyn Clock,
}

impl Devices<'_> {
    /// Registers (or updates) the calling device: stores what it says of itself
    /// and makes sure its push endpoint matches its push token.
    pub async fn register(
        &self,
        user: &UserId,
        device: &DeviceId,
        request: RegisterDeviceRequest,
    ) -> Result<DeviceRecord, ApiError> {
        let registration = DeviceRegistration {
            platform: request.platform,
            push_token: request.push_token,
            app_version: request.app_version,
            os_version: request.os_version,
            network: request.network,
            locale: request.locale,
        };
        for _ in 0..REGISTER_ATTEMPTS {
            let now = self.clock.now();
            let stored = self.store.device(user, device, true).await?;
            if stored.as_ref().is_some_and(|d| d.revoked_at.is_some()) {
                return Err(crate::auth::AuthError::DeviceRevoked.into());
            }
            let current = stored.as_ref().and_then(|d| d.push_endpoint.clone());
            let endpoint = self
                .push_endpoint(user, device, &registration, stored.as_ref())
                .await?;
            let written = self
                .store
                .register_device(
                    user,
                    device,
                    &registration,
                    endpoint.as_deref(),
                    current.as_deref(),
                    now,
                )
                .await?;
            match written {
                Ok(record) => {
                    // A replaced endpoint is no longer ours: remove it at the provider.
                    if let Some(old) = current.filter(|old| Some(old) != endpoint.as_ref()) {
                        self.unregister(&old).await;
                    }
                    return Ok(record);
                }
                Err(DeviceRefusal::Revoked) => {
                    return Err(crate::auth::AuthError::DeviceRevoked.into());
                }
                Err(DeviceRefusal::Changed) => continue,
            }
        }
        Err(ApiError::Conflict {
            code: ErrorCode::DeviceBusy,
            message: "the device's registration kept changing; retry".into(),
        })
    }

    /// The endpoint the registration needs: kept when the token and platform
    /// are unchanged, otherwise created (or updated) at the push provider.
    async fn push_endpoint(
        &self,
        user: &UserId,
        device: &DeviceId,
        registration: &DeviceRegistration,
        stored: Option<&DeviceRecord>,
    ) -> Result<Option<String>, ApiError> {
        let (Some(provider), Some(token)) = (self.push, &registration.push_token) else {
            return Ok(None);
        };
        let before = stored.and_then(|d| d.registration.as_ref());
        let same_platform = before.is_some_and(|b| b.platform == registration.platform);
        let existing = stored
            .and_then(|d| d.push_endpoint.as_deref())
            .filter(|_| same_platform);
        if existing.is_some() && before.and_then(|b| b.push_token.as_ref()) == Some(token) {
            return Ok(existing.map(str::to_owned));
        }
        match provider
            .register(user, device, registration.platform, token, existing)
            .await
        {
            Ok(endpoint) => Ok(endpoint),
            Err(PushError::Retryable(reason)) => Err(ApiError::PushUnavailable(reason)),
            Err(PushError::Gone(reason) | PushError::Rejected(reason)) => {
                Err(ApiError::Unprocessable {
                    code: ErrorCode::PushTokenRejected,
                    message: format!("the push service refused this push token: {reason}"),
                    field: Some("push_token"),
                })
            }
        }
    }

    /// Revokes a device of `user`: its tokens are refused from now on (at once
    /// in this container, within the revocation cache bound elsewhere) and its
    /// push endpoint is removed. `None` when the user has no such device (or,
    /// with `only_login`, when that is no longer the device's login).
    pub async fn revoke(
        &self,
        user: &UserId,
        device: &DeviceId,
        reason: RevokeReason,
        only_login: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceRecord>, ApiError> {
        let before = self
            .store
            .revoke_device(user, device, reason, only_login, now)
            .await?;
        self.gate.forget(user.as_str(), device.as_str());
        let Some(before) = before else {
            return Ok(None);
        };
        if before.revoked_at.is_none() {
            tracing::info!(user_id = %user, device_id = %device, ?reason, "device revoked");
            if let Some(endpoint) = &before.push_endpoint {
                self.unregister(endpoint).await;
            }
        }
        // Show the device as it is now.
        Ok(Some(DeviceRecord {
            revoked_at: before.revoked_at.or(Some(now)),
            revoked_reason: before.revoked_reason.or(Some(reason)),
            push_endpoint: None,
            ..before
        }))
    }

    /// Removes an endpoint at the provider. The device item no longer names it,
    /// so nothing pushes to it even if this fails; failures are only logged.
    async fn unregister(&self, endpoint: &str) {
        if let Some(provider) = self.push
            && let Err(error) = provider.unregister(endpoint).await
        {
            tracing::warn!(%error, endpoint, "push endpoint not removed at the provider");
        }
    }
}
