//! Signing access tokens: the one JWT minter. HS256 with the shared secret or
//! RS256 with a PEM key held in memory (local runs and tests), or RS256
//! through an asymmetric KMS key (deployed functions: the private key never
//! leaves KMS, so no function's environment holds it). Every signer gets the
//! same header and claims; the public half of an RS256 key is in the JWKS.

use crate::auth::Claims;
use crate::config::{AuthConfig, Config, ConfigError, SigningKey};
use crate::refresh::{REFRESH_IDLE_DAYS, RefreshToken};
use crate::store::StoredLogin;
use aws_sdk_kms::error::DisplayErrorContext;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::TokenPair;
use uuid::Uuid;

/// Signing a token failed: a bad key, or KMS refused or could not be
/// reached. A server fault, answered 500; the cause goes to the log only.
#[derive(Debug, thiserror::Error)]
#[error("could not sign a token: {0}")]
pub struct MintError(String);

/// How long an access token lives.
pub const ACCESS_TOKEN_TTL_HOURS: i64 = 24;

/// What signs a token's `base64url(header).base64url(claims)`.
pub enum TokenSigner {
    /// A key held in memory: the HS256 shared secret or an RS256 private key
    /// in PEM (local runs and tests).
    InMemory(EncodingKey),
    /// An asymmetric KMS key (RSA, SIGN_VERIFY): one `kms:Sign` call per
    /// token with RSASSA-PKCS1-v1_5 SHA-256, which is RS256.
    Kms {
        /// Built once per cold start and shared by every token.
        client: aws_sdk_kms::Client,
        /// Key id, key ARN or alias name.
        key_id: String,
    },
}

impl std::fmt::Debug for TokenSigner {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSigner::InMemory(_) => f.write_str("InMemory"),
            TokenSigner::Kms { key_id, .. } => {
                f.debug_struct("Kms").field("key_id", key_id).finish()
            }
        }
    }
}

impl TokenSigner {
    /// The signed token: `signing_input` and its base64url signature.
    async fn sign(&self, header: &Header, claims: &Claims) -> Result<String, MintError> {
        match self {
            TokenSigner::InMemory(key) => {
                encode(header, claims, key).map_err(|e| MintError(e.to_string()))
            }
            TokenSigner::Kms { client, key_id } => {
                let message = signing_input(header, claims)?;
                // RAW: KMS hashes the message itself (SHA-256). A signing
                // input is a few hundred bytes, far below RAW's 4096.
                let request = client
                    .sign()
                    .key_id(key_id)
                    .message(Blob::new(message.as_bytes()))
                    .message_type(MessageType::Raw)
                    .signing_algorithm(SigningAlgorithmSpec::RsassaPkcs1V15Sha256)
                    .send();
                // Boxed: the SDK's request future nests deep, and the
                // handlers' futures that await it would pass the
                // compiler's layout depth limit.
                let signed = Box::pin(request).await.map_err(|e| {
                    MintError(format!(
                        "KMS Sign with key {key_id}: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
                let signature = signed.signature().ok_or_else(|| {
                    MintError(format!("KMS Sign with key {key_id} returned no signature"))
                })?;
                Ok(format!(
                    "{message}.{}",
                    URL_SAFE_NO_PAD.encode(signature.as_ref())
                ))
            }
        }
    }
}

/// What a JWS signs: `base64url(header).base64url(claims)`, both compact
/// JSON, exactly as `jsonwebtoken::encode` builds it.
fn signing_input(header: &Header, claims: &Claims) -> Result<String, MintError> {
    let part = |json: serde_json::Result<Vec<u8>>| {
        json.map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
            .map_err(|e| MintError(e.to_string()))
    };
    Ok(format!(
        "{}.{}",
        part(serde_json::to_vec(header))?,
        part(serde_json::to_vec(claims))?
    ))
}

/// The claims of a token for `device` of `user`, valid from `now` for
/// `ttl`, under `login` when there is one (its `sid` claim).
fn claims(
    issuer: &str,
    audience: &str,
    user: &str,
    device: &str,
    login: Option<Uuid>,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Claims {
    Claims {
        sub: user.to_owned(),
        device_id: device.to_owned(),
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        exp: (now + ttl).timestamp(),
        iat: Some(now.timestamp()),
        nbf: None,
        sid: login.map(|l| l.as_hyphenated().to_string()),
    }
}

/// Signs access tokens: HS256 with the shared secret, or RS256 with the
/// configured key (in KMS or in memory) whose public half the JWKS publishes.
pub struct TokenIssuer {
    signer: TokenSigner,
    header: Header,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("signer", &self.signer)
            .field("alg", &self.header.alg)
            .field("kid", &self.header.kid)
            .finish()
    }
}

impl TokenIssuer {
    /// The issuer `config` allows: always with HS256, with RS256 only when a
    /// signing key is configured. A KMS key signs through `kms` (the caller
    /// builds the client once, on its SDK configuration); without one, only
    /// keys held in memory can sign.
    pub fn from_config(
        config: &Config,
        kms: Option<aws_sdk_kms::Client>,
    ) -> Result<Option<Self>, ConfigError> {
        let (issuer, audience) = match &config.auth {
            AuthConfig::Hs256 {
                secret,
                issuer,
                audience,
            } => return Ok(Some(Self::hs256(secret, issuer, audience))),
            AuthConfig::Rs256Jwks {
                issuer, audience, ..
            } => (issuer, audience),
        };
        let (signer, kid) = match &config.signing_key {
            None => return Ok(None),
            Some(SigningKey::Pem { pem, kid }) => {
                let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
                    ConfigError::Invalid {
                        var: "JWT_SIGNING_KEY",
                        reason: format!("not an RSA private key in PEM: {e}"),
                    }
                })?;
                (TokenSigner::InMemory(key), kid)
            }
            Some(SigningKey::Kms { key_id, kid }) => {
                let client = kms.ok_or_else(|| ConfigError::Invalid {
                    var: "JWT_SIGNING_KMS_KEY_ID",
                    reason: "this program signs with a key in memory only (JWT_SIGNING_KEY)".into(),
                })?;
                let key_id = key_id.clone();
                (TokenSigner::Kms { client, key_id }, kid)
            }
        };
        Ok(Some(Self::rs256(signer, kid, issuer, audience)))
    }

    /// An HS256 issuer for `secret` (tests and local tooling).
    pub fn hs256(secret: &str, issuer: &str, audience: &str) -> Self {
        Self {
            signer: TokenSigner::InMemory(EncodingKey::from_secret(secret.as_bytes())),
            header: Header::new(Algorithm::HS256),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// An RS256 issuer signing through `signer` (an RSA key), its tokens
    /// naming the public key `kid` of the JWKS.
    pub fn rs256(signer: TokenSigner, kid: &str, issuer: &str, audience: &str) -> Self {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        Self {
            signer,
            header,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// Signs a token for `device` of `user`, valid from `now` for `ttl`, under
    /// `login` when there is one (its `sid` claim).
    pub async fn mint(
        &self,
        user: &str,
        device: &str,
        login: Option<Uuid>,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<String, MintError> {
        let claims = claims(&self.issuer, &self.audience, user, device, login, now, ttl);
        self.signer.sign(&self.header, &claims).await
    }

    /// An access token for `device` of `user` under `login`, valid from `now`.
    pub async fn access_token(
        &self,
        user: &UserId,
        device: &DeviceId,
        login: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), MintError> {
        let ttl = Duration::hours(ACCESS_TOKEN_TTL_HOURS);
        let token = self
            .mint(user.as_str(), device.as_str(), Some(login), now, ttl)
            .await?;
        Ok((token, now + ttl))
    }

    /// A token pair for `login`: a fresh access token and `refresh`.
    pub async fn pair(
        &self,
        login: &StoredLogin,
        refresh: &RefreshToken,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, MintError> {
        let (access_token, expires_at) = self
            .access_token(&login.user, &login.device, login.family, now)
            .await?;
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

/// Mints an HS256 token without a login at once, with the claims
/// [`TokenIssuer`] gives its tokens (local development and tests; devices
/// get theirs from `services::tokens`).
pub fn mint_hs256_token(
    secret: &str,
    issuer: &str,
    audience: &str,
    user_id: &str,
    device_id: &str,
    issued_at: DateTime<Utc>,
    ttl: Duration,
) -> Result<String, MintError> {
    let claims = claims(issuer, audience, user_id, device_id, None, issued_at, ttl);
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| MintError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE_KEY: &str = include_str!("../../../../tests/fixtures/test-rsa-private.pem");

    /// The KMS signer signs the very bytes the in-memory minter signs: the
    /// same header (`alg`, `kid`, `typ`) and claims, encoded the same way.
    #[tokio::test]
    async fn the_kms_signing_input_is_the_in_memory_tokens_header_and_claims() {
        let key = EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap();
        let issuer = TokenIssuer::rs256(TokenSigner::InMemory(key), "k1", "iss", "aud");
        let (now, login) = (Utc::now(), Uuid::new_v4());
        let ttl = Duration::hours(ACCESS_TOKEN_TTL_HOURS);
        let token = issuer
            .mint("user-1", "phone", Some(login), now, ttl)
            .await
            .unwrap();
        let claims = claims("iss", "aud", "user-1", "phone", Some(login), now, ttl);
        let input = signing_input(&issuer.header, &claims).unwrap();
        let (signed, signature) = token.rsplit_once('.').unwrap();
        assert_eq!(input, signed);
        assert!(!signature.is_empty());
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (Algorithm::RS256, Some("k1"))
        );
    }
}
