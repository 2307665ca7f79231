//! The body of every error response, and the one list of error codes: the
//! serde names of [`ErrorCode`] are the codes on the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validate::FieldErrorCode;

/// Every machine-readable error code the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A required field is absent (400).
    MissingField,
    /// A field the schema does not have (400).
    UnknownField,
    /// The JSON type is wrong (400).
    InvalidType,
    /// Not one of the allowed values (400).
    InvalidValue,
    /// A date, timestamp, id or body that does not parse (400).
    InvalidFormat,
    /// A number outside its allowed range, or a time too far off (400).
    OutOfRange,
    /// A text longer than allowed (400).
    TooLong,
    /// No bearer token was sent (401).
    MissingToken,
    /// The token is malformed, badly signed or for another audience (401).
    InvalidToken,
    /// The access token has expired: refresh it (401).
    TokenExpired,
    /// The device was logged out (401).
    DeviceRevoked,
    /// Not a refresh token this service issued (401).
    InvalidRefreshToken,
    /// The refresh token was unused for too long (401).
    RefreshTokenExpired,
    /// An already used refresh token: the device was logged out (401).
    RefreshTokenReused,
    /// The request names another user's or device's id (403).
    Forbidden,
    /// No such route (404).
    NoRoute,
    /// No open sync session with this id (404).
    UnknownSyncId,
    /// No conflict-log entry with this id (404).
    ConflictNotFound,
    /// No such device of this user (404).
    DeviceNotFound,
    /// No such GPS track (404).
    TrackNotFound,
    /// No such reference-data version (404).
    ReferenceNotFound,
    /// The route exists with another method (405).
    MethodNotAllowed,
    /// The same request id is still being processed: retry shortly (409).
    RequestInProgress,
    /// The sync session is already completed (409).
    SyncSessionClosed,
    /// The record changed since the resolution: undoing would lose data (409).
    ResolutionOutdated,
    /// The resolution cannot be undone (409).
    UndoNotApplicable,
    /// A concurrent change of the same device: retry (409).
    DeviceBusy,
    /// This reference-data version was published with other entries (409).
    ReferenceVersionConflict,
    /// A newer reference-data version is already published (409).
    ReferenceVersionStale,
    /// The undo window of 24 hours has passed (410).
    UndoExpired,
    /// The body is larger than allowed, before or after inflating (413).
    BodyTooLarge,
    /// More items than one request may carry (413).
    BatchTooLarge,
    /// Not JSON, or an unsupported content encoding (415).
    UnsupportedMediaType,
    /// The idempotency key was used with another body (422).
    IdempotencyKeyReused,
    /// The push provider refused the push token (422).
    PushTokenRejected,
    /// A server error; details are in the server's log (500).
    InternalError,
    /// Storage is unavailable: retry after `Retry-After` (503).
    StorageUnavailable,
    /// The token signing keys could not be fetched: retry (503).
    AuthKeysUnavailable,
    /// The push service is unavailable: retry (503).
    PushUnavailable,
    /// A code this version does not know (a newer server's).
    #[serde(other)]
    Unknown,
}

impl std::fmt::Display for ErrorCode {
    /// The wire name, taken from serde so there is one source for it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(quoted.trim_matches('"'))
    }
}

impl From<FieldErrorCode> for ErrorCode {
    fn from(code: FieldErrorCode) -> Self {
        match code {
            FieldErrorCode::MissingField => ErrorCode::MissingField,
            FieldErrorCode::UnknownField => ErrorCode::UnknownField,
            FieldErrorCode::InvalidType => ErrorCode::InvalidType,
            FieldErrorCode::InvalidValue => ErrorCode::InvalidValue,
            FieldErrorCode::InvalidFormat => ErrorCode::InvalidFormat,
            FieldErrorCode::OutOfRange => ErrorCode::OutOfRange,
            FieldErrorCode::TooLong => ErrorCode::TooLong,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: ErrorCode,
    /// A sentence for a human.
    pub message: String,
    /// The offending field, when one is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
