//! Device token pairs (PRD 8.1): a 24-hour access token and a refresh token
//! that works once. [`login`] issues a device's first pair (the login
//! service calls it, or `trainsync login`); [`refresh`] rotates a pair
//! (`POST /auth/refresh`). Presenting a refresh token that was already used
//! revokes the device (RFC 9700 §4.14.2); only token hashes are stored.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use uuid::Uuid;

use crate::auth::{AuthError, Claims};
use crate::config::{AuthConfig, Config, ConfigError};
use crate::error::ApiError;
use crate::refresh::{REFRESH_IDLE_DAYS, RefreshDecision, RefreshFamily, RefreshToken, decide};
use crate::state::AppState;
use crate::store::{Rotation, StoredLogin};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::{RevokeReason, TokenPair};

/// How long an access token lives.
pub const ACCESS_TOKEN_TTL_HOURS: i64 = 24;

/// Signs access tokens: HS256 with the shared secret, or RS256 with the
/// configured private key (whose public half the JWKS publishes).
pub struct TokenIssuer {
    key: EncodingKey,
    header: Header,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("alg", &self.header.alg)
            .field("kid", &self.header.kid)
            .finish()
    }
}

impl TokenIssuer {
    /// The issuer `config` allows: always with HS256, with RS256 only when a
    /// signing key is configured.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConfigError> {
        Ok(match (&config.auth, &config.signing_key) {
            (
                AuthConfig::Hs256 {
                    secret,
                    issuer,
                    audience,
                },
                _,
            ) => Some(Self {
                key: EncodingKey::from_secret(secret.as_bytes()),
                header: Header::new(Algorithm::HS256),
                issuer: issuer.clone(),
                audience: audience.clone(),
            }),
            (
                AuthConfig::Rs256Jwks {
                    issuer, audience, ..
                },
                Some(signing),
            ) => {
                let key = EncodingKey::from_rsa_pem(signing.pem.as_bytes()).map_err(|e| {
                    ConfigError::Invalid {
                        var: "JWT_SIGNING_KEY",
                        reason: format!("not an RSA private key in PEM: {e}"),
                    }
                })?;
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(signing.kid.clone());
                Some(Self {
                    key,
                    header,
                    issuer: issuer.clone(),
                    audience: audience.clone(),
                })
            }
            (AuthConfig::Rs256Jwks { .. }, None) => None,
        })
    }

    /// An access token for `device` of `user` under `login`, valid from `now`.
    pub fn access_token(
        &self,
        user: &UserId,
        device: &DeviceId,
        login: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), AuthError> {
        let expires_at = now + Duration::hours(ACCESS_TOKEN_TTL_HOURS);
        let claims = Claims {
            sub: user.to_string(),
            device_id: device.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: expires_at.timestamp(),
            iat: Some(now.timestamp()),
            nbf: None,
            sid: Some(login.as_hyphenated().to_string()),
        };
        let token =
            encode(&self.header, &claims, &self.key).map_err(|e| AuthError::Mint(e.to_string()))?;
        Ok((token, expires_at))
    }

    fn pair(
        &self,
        login: &StoredLogin,
        refresh: &RefreshToken,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, AuthError> {
        let (access_token, expires_at) =
            self.access_token(&login.user, &login.device, login.family, now)?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ACCESS_TOKEN_TTL_HOURS * 3600,
            expires_at,
            refresh_token: refresh.encode(),
            refresh_expires_at: now + Duration::days(REFRESH_IDLE_DAYS),
        })
    }
}

/// Why token issuing is not possible here.
fn no_issuer() -> ApiError {
    ApiError::Internal(crate::store::StoreError::Other(
        "token issuing is not configured (JWT_SIGNING_KEY and JWT_SIGNING_KID)".into(),
    ))
}

/// Logs a device in: a new login whose pair is returned; the device's earlier
/// login stops working and a revocation of the device is lifted.
pub async fn login(
    state: &AppState,
    user: &UserId,
    device: &DeviceId,
) -> Result<TokenPair, ApiError> {
    let issuer = state.tokens.as_deref().ok_or_else(no_issuer)?;
    let now = state.clock.now();
    let family = Uuid::new_v4();
    let refresh = RefreshToken::generate(family);
    let login = StoredLogin {
        family,
        user: user.clone(),
        device: device.clone(),
        state: RefreshFamily {
            current_hash: refresh.hash(),
            last_issued_at: now,
            revoked_at: None,
        },
    };
    state.store.start_login(&login, now).await?;
    state.gate.forget(user.as_str(), device.as_str());
    tracing::info!(user_id = %user, device_id = %device, "device logged in");
    Ok(issuer.pair(&login, &refresh, now)?)
}

/// Exchanges a refresh token for a new pair; see the module docs.
pub async fn refresh(state: &AppState, presented: &str) -> Result<TokenPair, ApiError> {
    let issuer = state.tokens.as_deref().ok_or_else(no_issuer)?;
    let now = state.clock.now();
    let token = RefreshToken::parse(presented).map_err(|_| AuthError::RefreshInvalid)?;
    let login = state
        .store
        .login(token.family)
        .await?
        .ok_or(AuthError::RefreshInvalid)?;
    match decide(&login.state, &token, now) {
        RefreshDecision::Revoked => Err(AuthError::DeviceRevoked.into()),
        RefreshDecision::Expired => Err(AuthError::RefreshExpired.into()),
        RefreshDecision::Reused => reused(state, &login, now).await,
        RefreshDecision::Rotate => {
            let next = RefreshToken::generate(login.family);
            match state
                .store
                .rotate_login(&login, &token.hash(), &next.hash(), now)
                .await?
            {
                Rotation::Rotated => Ok(issuer.pair(&login, &next, now)?),
                Rotation::DeviceRevoked => Err(AuthError::DeviceRevoked.into()),
                // A concurrent request used the same token first: it worked once.
                Rotation::Superseded => reused(state, &login, now).await,
            }
        }
    }
}

/// A used refresh token came back: someone holds a copy. Log the device out.
async fn reused(
    state: &AppState,
    login: &StoredLogin,
    now: DateTime<Utc>,
) -> Result<TokenPair, ApiError> {
    tracing::warn!(user_id = %login.user, device_id = %login.device, family = %login.family,
        "refresh token reused: revoking the device");
    crate::devices::revoke(
        state,
        &login.user,
        &login.device,
        RevokeReason::RefreshTokenReuse,
        Some(login.family),
        now,
    )
    .await?;
    Err(AuthError::RefreshReused.into())
}
