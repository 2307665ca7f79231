//! Device token pairs (PRD 8.1): a 24-hour access token and a refresh token
//! that rotates on use. [`Tokens::login`] issues a device's first pair (the
//! login service calls it, or `trainsync login`); [`Tokens::refresh`] rotates
//! a pair (`POST /auth/refresh`): a retry within a minute repeats the
//! rotation, a replayed older token revokes the device (RFC 9700 §4.14.2), a
//! token the login never issued is refused. Only token hashes are stored.

use crate::auth::AuthError;
use crate::auth::issuer::TokenIssuer;
use crate::error::ApiError;
use crate::refresh::{RefreshDecision, RefreshFamily, RefreshToken, decide};
use crate::services::devices::Devices;
use crate::store::{Rotation, StoreError, StoredLogin, contention_backoff};
use chrono::{DateTime, Utc};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::{RevokeReason, TokenPair};
use uuid::Uuid;

/// Why token issuing is not possible here.
fn no_issuer() -> ApiError {
    ApiError::Internal(
        "token issuing is not configured (JWT_SIGNING_KMS_KEY_ID and JWT_SIGNING_KID)".into(),
    )
}

/// Rotation attempts when concurrent refreshes of one token race.
const REFRESH_ATTEMPTS: u32 = 4;

/// What the token use cases work with: the device use cases (a reused
/// refresh token revokes its device) and the token issuer, when configured.
#[derive(Clone, Copy)]
pub struct Tokens<'a> {
    /// Devices: storage, push, revocation cache, clock.
    pub devices: Devices<'a>,
    /// Signs access tokens; `None` where this deployment cannot issue them.
    pub issuer: Option<&'a TokenIssuer>,
}

impl Tokens<'_> {
    /// Logs a device in: a new login whose pair is returned; the device's earlier
    /// login stops working and a revocation of the device is lifted.
    pub async fn login(&self, user: &UserId, device: &DeviceId) -> Result<TokenPair, ApiError> {
        let issuer = self.issuer.ok_or_else(no_issuer)?;
        let now = self.devices.clock.now();
        let family = Uuid::new_v4();
        let refresh = RefreshToken::generate(family);
        let login = StoredLogin {
            family,
            user: user.clone(),
            device: device.clone(),
            state: RefreshFamily::new(&refresh, now),
        };
        self.devices.store.start_login(&login, now).await?;
        self.devices.gate.forget(user.as_str(), device.as_str());
        tracing::info!(user_id = %user, device_id = %device, "device logged in");
        Ok(issuer.pair(&login, &refresh, now).await?)
    }

    /// Exchanges a refresh token for a new pair (see `crate::refresh` for
    /// the rules: rotation, the one-minute repeat, reuse, unknown tokens).
    pub async fn refresh(&self, presented: &str) -> Result<TokenPair, ApiError> {
        let issuer = self.issuer.ok_or_else(no_issuer)?;
        let now = self.devices.clock.now();
        let token = RefreshToken::parse(presented).map_err(|_| AuthError::RefreshInvalid)?;
        // A concurrent rotation with the same token makes ours a repeat:
        // decide again on what it left.
        for attempt in 0..REFRESH_ATTEMPTS {
            let login = self
                .devices
                .store
                .login(token.family)
                .await?
                .ok_or(AuthError::RefreshInvalid)?;
            match decide(&login.state, &token, now) {
                RefreshDecision::Revoked => return Err(AuthError::DeviceRevoked.into()),
                RefreshDecision::Expired => return Err(AuthError::RefreshExpired.into()),
                RefreshDecision::Unknown => {
                    tracing::warn!(family = %login.family, "refresh token the family never issued");
                    return Err(AuthError::RefreshInvalid.into());
                }
                RefreshDecision::Reused => return self.reused(&login, now).await,
                RefreshDecision::Repeat(next) => {
                    tracing::info!(family = %login.family, "refresh repeated within the grace window");
                    return Ok(issuer.pair(&login, &next, now).await?);
                }
                RefreshDecision::Rotate => {
                    let next = RefreshToken::generate(login.family);
                    let rotated = login.state.rotated(&token, &next, now);
                    match self
                        .devices
                        .store
                        .rotate_login(&login, &token.hash(), &rotated)
                        .await
                    {
                        Ok(Rotation::Rotated) => {
                            return Ok(issuer.pair(&login, &next, now).await?);
                        }
                        Ok(Rotation::DeviceRevoked) => {
                            return Err(AuthError::DeviceRevoked.into());
                        }
                        Ok(Rotation::Superseded) | Err(StoreError::Contention) => {
                            contention_backoff(attempt).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Err(StoreError::Contention.into())
    }

    /// A used refresh token came back: someone holds a copy. Log the device out.
    async fn reused(&self, login: &StoredLogin, now: DateTime<Utc>) -> Result<TokenPair, ApiError> {
        tracing::warn!(user_id = %login.user, device_id = %login.device, family = %login.family,
        "refresh token reused: revoking the device");
        self.devices
            .revoke(
                &login.user,
                &login.device,
                RevokeReason::RefreshTokenReuse,
                Some(login.family),
                now,
            )
            .await?;
        Err(AuthError::RefreshReused.into())
    }
}
