//! Reading the parts of a request handlers need.

use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use trainsync_protocol::wire::ErrorCode;

use crate::compression::{DecodeError, decode_body};
use crate::error::ApiError;
use crate::services::idempotency::body_hash;
use trainsync_protocol::limits::{DEFAULT_DOWNLOAD_LIMIT, MAX_BODY_BYTES, MAX_DOWNLOAD_LIMIT};
use trainsync_protocol::validate::{FieldErrorCode, parse_json, parse_json_bytes};

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `Authorization` header, if present and readable.
pub fn bearer_header(req: &Request) -> Option<&str> {
    header(req, "authorization")
}

/// A query-string parameter (API Gateway and the local gateway both fill the map).
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_owned)
}

/// The `limit` query parameter: a page size in 1..=[`MAX_DOWNLOAD_LIMIT`], default [`DEFAULT_DOWNLOAD_LIMIT`].
pub fn limit_param(req: &Request) -> Result<u32, ApiError> {
    parse_limit(query_param(req, "limit"))
}

fn parse_limit(raw: Option<String>) -> Result<u32, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_DOWNLOAD_LIMIT);
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "limit",
            FieldErrorCode::InvalidType,
            "limit must be a whole number",
        ));
    }
    match raw.parse::<u32>() {
        Ok(n) if (1..=MAX_DOWNLOAD_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "limit",
            FieldErrorCode::OutOfRange,
            format!("limit must be between 1 and {MAX_DOWNLOAD_LIMIT}"),
        )),
    }
}

/// The request body as JSON: checks content type, size, gzip and syntax.
pub fn json_body(req: &Request) -> Result<Value, ApiError> {
    if let Some(content_type) = header(req, "content-type") {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type must be application/json, got {mime:?}"
            )));
        }
    }
    let raw: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    let bytes =
        decode_body(raw, header(req, "content-encoding"), MAX_BODY_BYTES).map_err(|e| match e {
            DecodeError::TooLarge { .. } => ApiError::PayloadTooLarge {
                code: ErrorCode::BodyTooLarge,
                message: e.to_string(),
                field: None,
            },
            DecodeError::Unsupported(_) => ApiError::UnsupportedMediaType(e.to_string()),
            DecodeError::Corrupt(_) => {
                ApiError::bad_request("", FieldErrorCode::InvalidFormat, e.to_string())
            }
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "",
            FieldErrorCode::MissingField,
            "the request body is empty: send a JSON object",
        ));
    }
    let value: Value = parse_json_bytes(&bytes).map_err(ApiError::BadRequest)?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "",
            FieldErrorCode::InvalidType,
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// The body parsed as `T`, and the hash idempotency compares bodies by
/// (independent of whitespace, key order and gzip).
pub fn json_request<T: DeserializeOwned>(req: &Request) -> Result<(T, String), ApiError> {
    let body = json_body(req)?;
    let hash = body_hash(&body)?;
    let parsed = parse_json(body).map_err(ApiError::BadRequest)?;
    Ok((parsed, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_DOWNLOAD_LIMIT);
        assert_eq!(parse_limit(Some("5".into())).unwrap(), 5);
        assert!(parse_limit(Some("0".into())).is_err());
        assert!(parse_limit(Some("100000".into())).is_err());
        assert!(parse_limit(Some("ten".into())).is_err());
    }
}
