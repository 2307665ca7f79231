//! Signing access tokens: the one JWT minter (HS256 with the shared secret, or RS256
//! with the configured private key whose public half the JWKS publishes).

use crate::auth::Claims;
use crate::config::{AuthConfig, Config, ConfigError};
use crate::refresh::{REFRESH_IDLE_DAYS, RefreshToken};
use crate::store::StoredLogin;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::TokenPair;
use uuid::Uuid;

/// Signing a token failed (a bad key: a server fault, answered 500).
#[derive(Debug, thiserror::Error)]
#[error("could not sign a token: {0}")]
pub struct MintError(String);

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
            ) => Some(Self::hs256(secret, issuer, audience)),
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

    /// An HS256 issuer for `secret` (tests and local tooling).
    pub fn hs256(secret: &str, issuer: &str, audience: &str) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.as_bytes()),
            header: Header::new(Algorithm::HS256),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// Signs a token for `device` of `user`, valid from `now` for `ttl`, under
    /// `login` when there is one (its `sid` claim).
    pub fn mint(
        &self,
        user: &str,
        device: &str,
        login: Option<Uuid>,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<String, MintError> {
        let claims = Claims {
            sub: user.to_owned(),
            device_id: device.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: (now + ttl).timestamp(),
            iat: Some(now.timestamp()),
            nbf: None,
            sid: login.map(|l| l.as_hyphenated().to_string()),
        };
        encode(&self.header, &claims, &self.key).map_err(|e| MintError(e.to_string()))
    }

    /// An access token for `device` of `user` under `login`, valid from `now`.
    pub fn access_token(
        &self,
        user: &UserId,
        device: &DeviceId,
        login: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), MintError> {
        let ttl = Duration::hours(ACCESS_TOKEN_TTL_HOURS);
        let token = self.mint(user.as_str(), device.as_str(), Some(login), now, ttl)?;
        Ok((token, now + ttl))
    }

    /// A token pair for `login`: a fresh access token and `refresh`.
    pub fn pair(
        &self,
        login: &StoredLogin,
        refresh: &RefreshToken,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, MintError> {
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
