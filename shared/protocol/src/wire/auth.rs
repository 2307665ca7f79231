//! `POST /auth/refresh`: rotating a token pair.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /auth/refresh` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token last issued to the device.
    pub refresh_token: String,
}

/// A device's token pair (login and `POST /auth/refresh`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// The JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives (24 hours).
    pub expires_in: i64,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// Exchange it once at `POST /auth/refresh`; it then stops working.
    pub refresh_token: String,
    /// When the refresh token expires if unused.
    pub refresh_expires_at: DateTime<Utc>,
}
