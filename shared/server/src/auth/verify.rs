//! Bearer-token verification. The user is the token's `sub` and the device its
//! `device_id` claim; nothing in a request body can change either.
//!
//! Algorithms are pinned per mode (HS256 with a secret, or RS256 with keys from
//! a JWKS URL), and `iss`, `aud`, `exp` are always checked. Expiry is checked
//! against the injected clock so tests can move time.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::AuthConfig;
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::ErrorCode;

/// Leeway for `exp` and `nbf`, for clock skew between issuer and us.
pub const LEEWAY_SECS: i64 = 30;
/// How long a fetched key set is trusted before it is fetched again.
const JWKS_MAX_AGE_SECS: i64 = 3600;
/// Shortest interval between two fetches of the key set, successful or not.
const JWKS_MIN_REFETCH_SECS: i64 = 30;

/// The claims we read and issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The device the token was issued to.
    pub device_id: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (epoch seconds).
    pub exp: i64,
    /// Issued at (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The login (refresh-token family) the token belongs to, when issued by
    /// `services::tokens`; a device's newer login or logout retires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// From `sub`.
    pub user_id: UserId,
    /// From `device_id`.
    pub device_id: DeviceId,
    /// From `sid`, opaque: the login the token was issued under, if any. Ours
    /// are UUIDs; a third-party identity provider's may be anything.
    pub login: Option<String>,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing Authorization header: send `Authorization: Bearer <token>`")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    NotBearer,
    /// Signature, algorithm, issuer, audience or claims are wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The key set could not be fetched (retryable).
    #[error("the token signing keys could not be fetched: {0}")]
    KeysUnavailable(String),
    /// The device was logged out (or logged in again): its tokens are refused.
    #[error("this device was logged out; log in again")]
    DeviceRevoked,
    /// Not a refresh token this service issued.
    #[error("unknown or malformed refresh token")]
    RefreshInvalid,
    /// The refresh token was unused for too long.
    #[error("the refresh token expired; log in again")]
    RefreshExpired,
    /// An already used refresh token: the device has been logged out.
    #[error("this refresh token was already used; the device has been logged out for safety")]
    RefreshReused,
}

impl AuthError {
    /// Stable code for the error body.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Missing => ErrorCode::MissingToken,
            AuthError::NotBearer | AuthError::Invalid(_) => ErrorCode::InvalidToken,
            AuthError::Expired => ErrorCode::TokenExpired,
            AuthError::KeysUnavailable(_) => ErrorCode::AuthKeysUnavailable,
            AuthError::DeviceRevoked => ErrorCode::DeviceRevoked,
            AuthError::RefreshInvalid => ErrorCode::InvalidRefreshToken,
            AuthError::RefreshExpired => ErrorCode::RefreshTokenExpired,
            AuthError::RefreshReused => ErrorCode::RefreshTokenReused,
        }
    }
}

/// Verifies bearer tokens; built once per cold start and shared.
pub struct Verifier {
    mode: Mode,
    validation: Validation,
}

enum Mode {
    Hs256(DecodingKey),
    Jwks {
        url: String,
        http: reqwest::Client,
        cache: RwLock<KeyCache>,
    },
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// When `keys` was fetched.
    fetched_at: Option<DateTime<Utc>>,
    /// When a fetch was last tried, whatever came of it: fetches are throttled.
    tried_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.mode {
            Mode::Hs256(_) => "hs256".to_string(),
            Mode::Jwks { url, .. } => format!("rs256 jwks {url}"),
        };
        f.debug_struct("Verifier").field("mode", &mode).finish()
    }
}

fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(algorithm);
    v.algorithms = vec![algorithm];
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Checked by us against the injected clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    v
}

impl Verifier {
    /// Builds the verifier for `config`.
    pub fn new(config: &AuthConfig) -> Self {
        match config {
            AuthConfig::Hs256 {
                secret,
                issuer,
                audience,
            } => Self {
                mode: Mode::Hs256(DecodingKey::from_secret(secret.as_bytes())),
                validation: validation(Algorithm::HS256, issuer, audience),
            },
            AuthConfig::Rs256Jwks {
                jwks_url,
                issuer,
                audience,
            } => Self {
                mode: Mode::Jwks {
                    url: jwks_url.clone(),
                    http: reqwest::Client::builder()
                        .timeout(StdDuration::from_secs(3))
                        .build()
                        .unwrap_or_default(),
                    cache: RwLock::new(KeyCache::default()),
                },
                validation: validation(Algorithm::RS256, issuer, audience),
            },
        }
    }

    /// Verifies the `Authorization` header value at time `now`.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Caller, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::NotBearer)?;
        let jwt_header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if !self.validation.algorithms.contains(&jwt_header.alg) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted",
                jwt_header.alg
            )));
        }
        let claims = match &self.mode {
            Mode::Hs256(key) => self.decode(token, key)?,
            Mode::Jwks { .. } => {
                let kid = jwt_header
                    .kid
                    .ok_or_else(|| AuthError::Invalid("the token header has no kid".into()))?;
                let key = self.jwks_key(&kid, now).await?;
                self.decode(token, &key)?
            }
        };
        let now_s = now.timestamp();
        if claims.exp + LEEWAY_SECS < now_s {
            return Err(AuthError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf - LEEWAY_SECS > now_s) {
            return Err(AuthError::Invalid(
                "the token is not valid yet (nbf)".into(),
            ));
        }
        let user_id =
            UserId::parse(claims.sub).map_err(|e| AuthError::Invalid(format!("sub {e}")))?;
        let device_id = DeviceId::parse(claims.device_id)
            .map_err(|e| AuthError::Invalid(format!("device_id {e}")))?;
        Ok(Caller {
            user_id,
            device_id,
            login: claims.sid,
        })
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Claims, AuthError> {
        decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// The key `kid` of the key set. The set is refetched when older than an
    /// hour or when it lacks `kid` (key rotation), at most once per
    /// [`JWKS_MIN_REFETCH_SECS`] whatever happens; when a fetch fails or is
    /// throttled, the keys already held keep serving.
    async fn jwks_key(&self, kid: &str, now: DateTime<Utc>) -> Result<DecodingKey, AuthError> {
        let Mode::Jwks { url, http, cache } = &self.mode else {
            return Err(AuthError::Invalid("no key set configured".into()));
        };
        let unknown = || AuthError::Invalid(format!("unknown signing key {kid}"));
        {
            let cache = cache.read().await;
            let fresh = cache
                .fetched_at
                .is_some_and(|t| now - t < Duration::seconds(JWKS_MAX_AGE_SECS));
            if let Some(key) = cache.keys.get(kid).filter(|_| fresh) {
                return Ok(key.clone());
            }
            if cache
                .tried_at
                .is_some_and(|t| now - t < Duration::seconds(JWKS_MIN_REFETCH_SECS))
            {
                return match cache.keys.get(kid) {
                    Some(key) => Ok(key.clone()),
                    None if cache.fetched_at.is_none() => Err(AuthError::KeysUnavailable(
                        "the key set could not be fetched; retrying shortly".into(),
                    )),
                    None => Err(unknown()),
                };
            }
        }
        let mut cache = cache.write().await;
        cache.tried_at = Some(now);
        match fetch_key_set(http, url).await {
            Ok(keys) => {
                cache.keys = keys;
                cache.fetched_at = Some(now);
            }
            Err(error) => {
                if let Some(key) = cache.keys.get(kid) {
                    tracing::warn!(%error, "key set refetch failed; serving the cached keys");
                    return Ok(key.clone());
                }
                return Err(error);
            }
        }
        cache.keys.get(kid).cloned().ok_or_else(unknown)
    }
}

/// Fetches and parses the key set at `url`: its keys by `kid`.
async fn fetch_key_set(
    http: &reqwest::Client,
    url: &str,
) -> Result<HashMap<String, DecodingKey>, AuthError> {
    let set: JwkSet = http
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?
        .json()
        .await
        .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::issuer::mint_hs256_token;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn verifier() -> Verifier {
        Verifier::new(&AuthConfig::Hs256 {
            secret: SECRET.into(),
            issuer: "iss".into(),
            audience: "aud".into(),
        })
    }

    fn token(secret: &str, iss: &str, aud: &str, at: DateTime<Utc>) -> String {
        mint_hs256_token(secret, iss, aud, "user-1", "phone", at, Duration::hours(24)).unwrap()
    }

    #[tokio::test]
    async fn a_good_token_names_user_and_device() {
        let now = Utc::now();
        let caller = verifier()
            .verify(
                Some(&format!("Bearer {}", token(SECRET, "iss", "aud", now))),
                now,
            )
            .await
            .unwrap();
        assert_eq!(caller.user_id.as_str(), "user-1");
        assert_eq!(caller.device_id.as_str(), "phone");
    }

    #[tokio::test]
    async fn bad_tokens_are_refused_with_the_right_reason() {
        let now = Utc::now();
        let v = verifier();
        let bearer = |t: String| format!("Bearer {t}");
        assert_eq!(v.verify(None, now).await, Err(AuthError::Missing));
        assert_eq!(
            v.verify(Some("Basic abc"), now).await,
            Err(AuthError::NotBearer)
        );
        assert_eq!(
            v.verify(
                Some(&bearer(token(
                    SECRET,
                    "iss",
                    "aud",
                    now - Duration::hours(25)
                ))),
                now
            )
            .await,
            Err(AuthError::Expired)
        );
        for wrong in [
            token("another-secret-another-secret-xx", "iss", "aud", now),
            token(SECRET, "other-issuer", "aud", now),
            token(SECRET, "iss", "other-audience", now),
            "not.a.token".to_string(),
        ] {
            assert!(matches!(
                v.verify(Some(&bearer(wrong)), now).await,
                Err(AuthError::Invalid(_))
            ));
        }
    }

    #[tokio::test]
    async fn alg_none_is_refused() {
        let now = Utc::now();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"user-1","device_id":"phone","iss":"iss","aud":"aud","exp":{}}}"#,
            now.timestamp() + 3600
        ));
        let unsigned = format!("Bearer {header}.{claims}.");
        assert!(matches!(
            verifier().verify(Some(&unsigned), now).await,
            Err(AuthError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn ids_in_claims_are_validated() {
        let now = Utc::now();
        let t = mint_hs256_token(
            SECRET,
            "iss",
            "aud",
            "user#1",
            "phone",
            now,
            Duration::hours(1),
        )
        .unwrap();
        assert!(matches!(
            verifier().verify(Some(&format!("Bearer {t}")), now).await,
            Err(AuthError::Invalid(_))
        ));
    }
}
