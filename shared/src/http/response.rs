//! Building responses: JSON, `server_timestamp`-bearing bodies, optional gzip.

use http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::compression::gzip;

/// Responses smaller than this are not worth compressing.
const GZIP_MIN_BYTES: usize = 512;

/// A handler's successful answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON text.
    pub body: String,
    /// Extra headers (e.g. `Retry-After`, `Allow`).
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// 200 with `body` serialized.
    pub fn json<T: Serialize>(body: &T) -> Self {
        Self::raw(serde_json::to_string(body).unwrap_or_else(|_| "{}".into()))
    }

    /// 200 with an already-serialized body (idempotent replays).
    pub fn raw(body: String) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            headers: Vec::new(),
        }
    }
}

/// Turns a reply into a Lambda/HTTP response, gzip-compressed when the client accepts it.
pub fn into_response(reply: Reply, accept_gzip: bool, ddb_requests: u64) -> Response<Body> {
    let compress = accept_gzip && reply.body.len() >= GZIP_MIN_BYTES;
    let body = if compress {
        Body::Binary(gzip(reply.body.as_bytes()))
    } else {
        Body::Text(reply.body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("vary", HeaderValue::from_static("Accept-Encoding"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    if compress {
        headers.insert("content-encoding", HeaderValue::from_static("gzip"));
    }
    // Observability: what this request cost in DynamoDB calls.
    headers.insert("x-dynamodb-requests", HeaderValue::from(ddb_requests));
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}
