//! The one place an [`ApiError`] becomes an HTTP status and JSON body.

use chrono::{DateTime, Utc};
use http::StatusCode;

use super::Reply;
use crate::auth::AuthError;
use crate::error::ApiError;
use trainsync_protocol::wire::{ErrorBody, ErrorCode, ErrorDetail};

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: u32 = 2;

/// The status, body and headers for `error`. 5xx details go to the log only.
pub fn error_reply(error: &ApiError, now: DateTime<Utc>) -> Reply {
    let mut headers = Vec::new();
    let (status, code, message, field): (StatusCode, ErrorCode, String, Option<String>) =
        match error {
            ApiError::BadRequest(e) => (
                StatusCode::BAD_REQUEST,
                e.code.into(),
                e.message.clone(),
                Some(e.field.clone()).filter(|f| !f.is_empty()),
            ),
            ApiError::Unauthorized(AuthError::KeysUnavailable(_)) => {
                tracing::error!(error = %error, "token keys unavailable");
                headers.push(("retry-after", RETRY_AFTER_SECS.to_string()));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::AuthKeysUnavailable,
                    "token verification is temporarily unavailable; retry later".into(),
                    None,
                )
            }
            ApiError::Unauthorized(e) => {
                // RFC 6750 section 3: no error code when no token was sent, `invalid_token` otherwise.
                let challenge = match e {
                    AuthError::Missing | AuthError::NotBearer => {
                        "Bearer realm=\"trainsync\"".to_owned()
                    }
                    other => format!(
                        "Bearer realm=\"trainsync\", error=\"invalid_token\", error_description=\"{}\"",
                        other.code()
                    ),
                };
                headers.push(("www-authenticate", challenge));
                let field = matches!(
                    e,
                    AuthError::RefreshInvalid
                        | AuthError::RefreshExpired
                        | AuthError::RefreshReused
                )
                .then(|| "refresh_token".to_owned());
                (StatusCode::UNAUTHORIZED, e.code(), e.to_string(), field)
            }
            ApiError::Forbidden { field, message } => (
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                message.clone(),
                Some(field.to_string()),
            ),
            ApiError::NotFound {
                code,
                message,
                field,
            } => (
                StatusCode::NOT_FOUND,
                *code,
                message.clone(),
                field.map(str::to_owned),
            ),
            ApiError::Gone {
                code,
                message,
                field,
            } => (
                StatusCode::GONE,
                *code,
                message.clone(),
                field.map(str::to_owned),
            ),
            ApiError::NoRoute { allow, .. } if !allow.is_empty() => {
                // RFC 9110 section 15.5.6: a 405 names the methods the path has.
                let names: Vec<&str> = allow.iter().map(http::Method::as_str).collect();
                headers.push(("allow", names.join(", ")));
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorCode::MethodNotAllowed,
                    error.to_string(),
                    None,
                )
            }
            ApiError::NoRoute { .. } => (
                StatusCode::NOT_FOUND,
                ErrorCode::NoRoute,
                error.to_string(),
                None,
            ),
            ApiError::Conflict { code, message } => {
                (StatusCode::CONFLICT, *code, message.clone(), None)
            }
            ApiError::PayloadTooLarge {
                code,
                message,
                field,
            } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                *code,
                message.clone(),
                field.map(str::to_owned),
            ),
            ApiError::UnsupportedMediaType(message) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                message.clone(),
                None,
            ),
            ApiError::Unprocessable {
                code,
                message,
                field,
            } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                *code,
                message.clone(),
                field.map(str::to_owned),
            ),
            ApiError::PushUnavailable(reason) => {
                tracing::warn!(%reason, "push service unavailable");
                headers.push(("retry-after", RETRY_AFTER_SECS.to_string()));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::PushUnavailable,
                    "the push service is temporarily unavailable; retry the registration later"
                        .into(),
                    None,
                )
            }
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %source, "storage unavailable");
                headers.push(("retry-after", RETRY_AFTER_SECS.to_string()));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::StorageUnavailable,
                    "storage is temporarily unavailable; retry later with the same sync_request_id"
                        .into(),
                    None,
                )
            }
            ApiError::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::InternalError,
                    "internal error".into(),
                    None,
                )
            }
        };
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message,
            field,
        },
        server_timestamp: now,
    };
    let mut reply = Reply::json(&body);
    reply.status = status;
    reply.headers = headers;
    reply
}
