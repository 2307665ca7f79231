//! The API's error type. Every failure a handler can meet becomes one of these;
//! `http::error_response` turns it into a status and a JSON body, in one place.

use crate::auth::AuthError;
use crate::store::StoreError;
use trainsync_protocol::validate::{FieldError, FieldErrorCode};

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
        code: &'static str,
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
        /// Whether the path exists with another method (405).
        wrong_method: bool,
    },
    /// 409: the same request is being processed, or the session is closed.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// 410: the resource existed but is no longer available (an undo past its 24 hours).
    #[error("{message}")]
    Gone {
        /// Machine-readable code.
        code: &'static str,
        /// Explanation.
        message: String,
        /// The field that named it.
        field: Option<&'static str>,
    },
    /// 413: body or batch too large.
    #[error("{message}")]
    PayloadTooLarge {
        /// Machine-readable code.
        code: &'static str,
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
        code: &'static str,
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
    /// 500: a bug or an unexpected storage answer; details go to the log only.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e)
        }
    }
}

impl From<crate::revocation::GateError> for ApiError {
    fn from(e: crate::revocation::GateError) -> Self {
        match e {
            crate::revocation::GateError::Refused(auth) => ApiError::Unauthorized(auth),
            crate::revocation::GateError::Store(store) => store.into(),
        }
    }
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad_request(field: &str, code: FieldErrorCode, message: impl Into<String>) -> Self {
        ApiError::BadRequest(FieldError::new(field, code, message))
    }

    /// The 413 for a batch of `count` items above `max`; `what` names the request.
    pub fn batch_too_large(what: &str, count: usize, max: usize) -> Self {
        ApiError::PayloadTooLarge {
            code: "batch_too_large",
            message: format!(
                "{what} carries at most {max} items in all its lists together, got {count}; split it into several"
            ),
            field: None,
        }
    }

    /// The 404 for a `sync_id` that is unknown, expired or another user's.
    pub fn unknown_session() -> Self {
        ApiError::NotFound {
            code: "unknown_sync_id",
            message: "no open sync session with this sync_id for this user (unknown or expired): call /sync/check".into(),
            field: Some("sync_id"),
        }
    }
}
