//! Building responses: JSON (optionally gzip'd), binary downloads, and empty replies.

use http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::compression::gzip;

/// Responses smaller than this are not worth compressing.
const GZIP_MIN_BYTES: usize = 512;

/// What a reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// JSON text; gzip-compressed on the way out when the client accepts it.
    Json(String),
    /// Bytes sent as they are (never compressed again), with their media type.
    Binary {
        /// The `Content-Type`.
        content_type: &'static str,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Nothing (e.g. 304 Not Modified).
    Empty,
}

/// A handler's answer: a status, a body (JSON for everything but binary
/// downloads, and always JSON for errors) and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ReplyBody,
    /// Extra headers (e.g. `Retry-After`, `Allow`); they override the defaults.
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// 200 with `body` serialized; a body that does not serialize (a bug) is
    /// logged and answered as a generic 500, never as a wrong 200.
    pub fn json<T: Serialize>(body: &T) -> Self {
        match serde_json::to_string(body) {
            Ok(text) => Self::raw(text),
            Err(error) => {
                tracing::error!(%error, "response body does not serialize");
                // The ErrorBody shape, written by hand: this path must not fail too.
                let mut reply = Self::raw(format!(
                    r#"{{"error":{{"code":"internal_error","message":"internal error"}},"server_timestamp":"{}"}}"#,
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ));
                reply.status = StatusCode::INTERNAL_SERVER_ERROR;
                reply
            }
        }
    }

    /// 200 with an already-serialized body (idempotent replays).
    pub fn raw(body: String) -> Self {
        Self {
            status: StatusCode::OK,
            body: ReplyBody::Json(body),
            headers: Vec::new(),
        }
    }

    /// 200 with `bytes` of media type `content_type`, sent as they are.
    pub fn binary(content_type: &'static str, bytes: Vec<u8>) -> Self {
        Self {
            status: StatusCode::OK,
            body: ReplyBody::Binary {
                content_type,
                bytes,
            },
            headers: Vec::new(),
        }
    }

    /// `status` with no body (e.g. 304).
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: ReplyBody::Empty,
            headers: Vec::new(),
        }
    }

    /// The JSON text, if this is a JSON reply.
    pub fn json_text(&self) -> Option<&str> {
        match &self.body {
            ReplyBody::Json(text) => Some(text),
            _ => None,
        }
    }
}

/// Turns a reply into a Lambda/HTTP response: JSON gzip-compressed when the
/// client accepts it, binary bodies as they are.
pub fn into_response(reply: Reply, accept_gzip: bool, ddb_requests: Option<u64>) -> Response<Body> {
    let json = matches!(reply.body, ReplyBody::Json(_));
    let (body, content_type, compressed) = match reply.body {
        ReplyBody::Json(text) if accept_gzip && text.len() >= GZIP_MIN_BYTES => (
            Body::Binary(gzip(text.as_bytes())),
            Some("application/json"),
            true,
        ),
        ReplyBody::Json(text) => (Body::Text(text), Some("application/json"), false),
        ReplyBody::Binary {
            content_type,
            bytes,
        } => (Body::Binary(bytes), Some(content_type), false),
        ReplyBody::Empty => (Body::Empty, None, false),
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    if let Some(content_type) = content_type.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert("content-type", content_type);
    }
    if json {
        headers.insert("vary", HeaderValue::from_static("Accept-Encoding"));
    }
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    if compressed {
        headers.insert("content-encoding", HeaderValue::from_static("gzip"));
    }
    // Observability: what this request cost in DynamoDB calls.
    if let Some(count) = ddb_requests {
        headers.insert("x-dynamodb-requests", HeaderValue::from(count));
    }
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_bodies_are_never_compressed() {
        let bytes = vec![7u8; 4 * GZIP_MIN_BYTES];
        let mut reply = Reply::binary("application/octet-stream", bytes.clone());
        reply
            .headers
            .push(("cache-control", "private, max-age=60".into()));
        let response = into_response(reply, true, Some(2));
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        assert_eq!(response.headers()["cache-control"], "private, max-age=60");
        assert_eq!(response.headers()["x-dynamodb-requests"], "2");
        assert!(response.headers().get("content-encoding").is_none());
        assert!(response.headers().get("vary").is_none());
        assert!(matches!(response.body(), Body::Binary(b) if *b == bytes));
    }

    #[test]
    fn large_json_is_compressed_when_accepted() {
        let reply = Reply::raw(format!("\"{}\"", "x".repeat(GZIP_MIN_BYTES)));
        let response = into_response(reply.clone(), true, Some(0));
        assert_eq!(response.headers()["content-encoding"], "gzip");
        assert_eq!(response.headers()["content-type"], "application/json");
        let plain = into_response(reply, false, None);
        assert!(matches!(plain.body(), Body::Text(_)));
        // Without a count (deployed functions) the header is absent.
        assert!(plain.headers().get("x-dynamodb-requests").is_none());
        let empty = into_response(Reply::empty(StatusCode::NOT_MODIFIED), true, Some(1));
        assert!(matches!(empty.body(), Body::Empty));
        assert!(empty.headers().get("content-type").is_none());
    }

    #[test]
    fn a_body_that_does_not_serialize_is_a_500_not_a_wrong_200() {
        // JSON object keys must be strings.
        let body: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let reply = Reply::json(&body);
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        let parsed: trainsync_protocol::wire::ErrorBody =
            serde_json::from_str(reply.json_text().expect("json")).expect("an ErrorBody");
        assert_eq!(
            parsed.error.code,
            trainsync_protocol::wire::ErrorCode::InternalError
        );
    }
}
