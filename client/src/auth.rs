//! Signing in, attaching the bearer token, refreshing it before it expires
//! or on a 401 `token_expired`, and the signed-out state a revoked device
//! lands in (every unsent local write kept until the user signs in again).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration};
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use trainsync_protocol::wire::{ErrorCode, RefreshRequest, TokenPair};

use crate::secrets::StoredTokens;
use crate::transport::{ErasedBody, TransportError};
use crate::{Client, ClientError, db};

/// Refresh this long before the access token expires.
const REFRESH_AHEAD: Duration = Duration::minutes(5);

/// The claims the client reads from its own access token (it never verifies
/// them: the server does).
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
}

fn claims(access_token: &str) -> Result<Claims, ClientError> {
    let payload = access_token
        .split('.')
        .nth(1)
        .ok_or_else(|| ClientError::Secrets("the access token is not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| ClientError::Secrets(format!("the access token's claims: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Secrets(format!("the access token's claims: {e}")))
}

/// Codes after which the stored credentials can never work again.
fn signs_out(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::DeviceRevoked
            | ErrorCode::RefreshTokenReused
            | ErrorCode::RefreshTokenExpired
            | ErrorCode::InvalidRefreshToken
    )
}

impl Client {
    /// Signs in with a token pair from the login service.
    pub fn sign_in(&self, pair: TokenPair) -> Result<(), ClientError> {
        self.sign_in_with(StoredTokens::from(pair))
    }

    /// Signs in with stored tokens (e.g. a dev access token without a refresh token).
    pub fn sign_in_with(&self, mut tokens: StoredTokens) -> Result<(), ClientError> {
        let claims = claims(&tokens.access_token)?;
        if tokens.expires_at.is_none() {
            tokens.expires_at = claims.exp.and_then(|s| DateTime::from_timestamp(s, 0));
        }
        let conn = self.db();
        let state = db::sync_state(&conn)?;
        if state.user_id.as_deref().is_some_and(|u| u != claims.sub) {
            // Another account's cursor would be refused, and its data is not this user's.
            return Err(ClientError::Secrets(format!(
                "this database belongs to {}; use another file for {}",
                state.user_id.unwrap_or_default(),
                claims.sub
            )));
        }
        self.secrets.set(&tokens)?;
        db::set_account(&conn, &claims.sub, claims.device_id.as_deref())
    }

    /// Why the device is signed out, if it is.
    pub fn signed_out(&self) -> Result<Option<String>, ClientError> {
        let state = db::sync_state(&self.db())?;
        if state.signed_out.is_some() {
            return Ok(state.signed_out);
        }
        Ok(match self.secrets.get()? {
            None => Some("not signed in".into()),
            Some(_) => None,
        })
    }

    /// Forgets the credentials after `reason`; local data and the queue stay.
    fn sign_out(&self, reason: &str) -> Result<(), ClientError> {
        tracing::warn!(reason, "signed out; unsent local writes are kept");
        self.secrets.delete()?;
        db::set_signed_out(&self.db(), reason)
    }

    /// Sends an authenticated request: refreshes first when the token is about
    /// to expire, once more on 401 `token_expired`, and signs out for good on
    /// a revoked device or a dead refresh token.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&(dyn ErasedBody + Sync)>,
    ) -> Result<T, ClientError> {
        let mut tokens = self
            .secrets
            .get()?
            .ok_or_else(|| TransportError::SignedOut("not signed in".into()))?;
        if tokens
            .expires_at
            .is_some_and(|at| at - REFRESH_AHEAD <= self.now())
            && tokens.refresh_token.is_some()
        {
            tokens = self.refresh(&tokens).await?;
        }
        let mut refreshed = false;
        loop {
            let answer = self
                .transport
                .send(
                    method.clone(),
                    path,
                    query,
                    body,
                    Some(&tokens.access_token),
                )
                .await;
            match answer {
                Err(TransportError::Server {
                    code: ErrorCode::TokenExpired,
                    ..
                }) if !refreshed && tokens.refresh_token.is_some() => {
                    tokens = self.refresh(&tokens).await?;
                    refreshed = true;
                }
                Err(TransportError::Server { code, message, .. }) if signs_out(code) => {
                    self.sign_out(&code.to_string())?;
                    return Err(TransportError::SignedOut(format!("{code}: {message}")).into());
                }
                other => return Ok(other?),
            }
        }
    }

    /// `POST /auth/refresh`. A lost answer is safe to retry: the server
    /// repeats the same new pair for a minute.
    async fn refresh(&self, tokens: &StoredTokens) -> Result<StoredTokens, ClientError> {
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            return Err(TransportError::SignedOut("the access token expired".into()).into());
        };
        let request = RefreshRequest { refresh_token };
        let answer = self
            .transport
            .send::<TokenPair>(Method::POST, "/auth/refresh", &[], Some(&request), None)
            .await;
        match answer {
            Ok(pair) => {
                let fresh = StoredTokens::from(pair);
                self.secrets.set(&fresh)?;
                Ok(fresh)
            }
            Err(TransportError::Server { code, message, .. }) if signs_out(code) => {
                self.sign_out(&code.to_string())?;
                Err(TransportError::SignedOut(format!("{code}: {message}")).into())
            }
            Err(other) => Err(other.into()),
        }
    }
}
