//! The API's error type. Every failure a handler can meet becomes one of these;
//! `http::error_response` turns it into a status and a JSON body, in one place.

use crate::auth::AuthError;
use crate::store::StoreError;
use trainsync_protocol::validate::{FieldError, FieldErrorCode};
use trainsync_protocol::wire::ErrorCode;

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, wrong type, bad parameter).
    #[error("{0}")]
    BadRequest(FieldError),
    /// 401: no usable token.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// 403: the request names another user's or device's id.
    #[error("{message}")]
    Forbidden {
        /// The field carrying the foreign id.
        field: &'static str,
        /// Explanation.
        message: String,
    },
    /// 404: an unknown (or expired) resource, e.g. a `sync_id`.
    #[error("{message}")]
    NotFound {
        /// Machine-readable code.
        code: ErrorCode,
        /// Explanation.
        message: String,
        /// The field that named it.
        field: Option<&'static str>,
    },
    /// 404 / 405 for routes.
    #[error("no such route: {method} {path}")]
    NoRoute {
        /// Method asked for.
        method: String,
        /// Path asked for.
        path: String,
        /// The methods the path has (RFC 9110 `Allow`); empty: no such path
        /// (404), else the method is wrong (405).
        allow: Vec<http::Method>,
    },
    /// 409: the same request is being processed, or the session is closed.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// 410: the resource existed but is no longer available (an undo past its 24 hours).
    #[error("{message}")]
    Gone {
        /// Machine-readable code.
        code: ErrorCode,
        /// Explanation.
        message: String,
        /// The field that named it.
        field: Option<&'static str>,
    },
    /// 413: body or batch too large.
    #[error("{message}")]
    PayloadTooLarge {
        /// Machine-readable code.
        code: ErrorCode,
        /// Explanation.
        message: String,
        /// The field that is too large.
        field: Option<&'static str>,
    },
    /// 415: not JSON, or an unsupported content encoding.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but semantically wrong (idempotency key reuse).
    #[error("{message}")]
    Unprocessable {
        /// Machine-readable code.
        code: ErrorCode,
        /// Explanation.
        message: String,
        /// The offending field.
        field: Option<&'static str>,
    },
    /// 503: the push service is unavailable; retry later.
    #[error("push service unavailable: {0}")]
    PushUnavailable(String),
    /// 503: storage unavailable or overloaded; retry later.
    #[error("storage unavailable")]
    Unavailable(#[source] StoreError),
    /// 500: a bug, a misconfiguration or an unexpected storage answer;
    /// details go to the log only.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(Box::new(e))
        }
    }
}

impl From<crate::auth::revocation::GateError> for ApiError {
    fn from(e: crate::auth::revocation::GateError) -> Self {
        match e {
            crate::auth::revocation::GateError::Refused(auth) => ApiError::Unauthorized(auth),
            crate::auth::revocation::GateError::Store(store) => store.into(),
        }
    }
}

impl From<crate::auth::issuer::MintError> for ApiError {
    fn from(e: crate::auth::issuer::MintError) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

impl ApiError {
    /// Whether a retry of the same request may succeed (storage or a
    /// dependency unavailable, or the same request id still in flight).
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Unavailable(_) | ApiError::PushUnavailable(_) => true,
            ApiError::Unauthorized(AuthError::KeysUnavailable(_)) => true,
            ApiError::Conflict { code, .. } => *code == ErrorCode::RequestInProgress,
            _ => false,
        }
    }

    /// The 409 when another request with the same idempotency key (named by
    /// `field`) took the claim over while this one was processing.
    pub fn claim_lost(field: &str) -> Self {
        ApiError::Conflict {
            code: ErrorCode::RequestInProgress,
            message: format!(
                "another request with this {field} took over; retry to get its result"
            ),
        }
    }

    /// A 400 naming `field`.
    pub fn bad_request(field: &str, code: FieldErrorCode, message: impl Into<String>) -> Self {
        ApiError::BadRequest(FieldError::new(field, code, message))
    }

    /// The 413 for a batch of `count` items above `max`; `what` names the request.
    pub fn batch_too_large(what: &str, count: usize, max: usize) -> Self {
        ApiError::PayloadTooLarge {
            code: ErrorCode::BatchTooLarge,
            message: format!(
                "{what} carries at most {max} items in all its lists together, got {count}; split it into several"
            ),
            field: None,
        }
    }

    /// The 404 for a `sync_id` that is unknown, expired or another user's.
    pub fn unknown_session() -> Self {
        ApiError::NotFound {
            code: ErrorCode::UnknownSyncId,
            message: "no open sync session with this sync_id for this user (unknown or expired): call /sync/check".into(),
            field: Some("sync_id"),
        }
    }
}
