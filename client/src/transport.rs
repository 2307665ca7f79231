//! HTTP to the sync API: JSON bodies (gzip'd above [`GZIP_ABOVE_BYTES`]), gzip
//! responses, the bearer token, and the server's error body turned into a
//! [`TransportError`] the sync manager can classify.

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use trainsync_protocol::wire::{ErrorBody, ErrorCode};

/// Request bodies larger than this are sent gzip'd (`Content-Encoding: gzip`).
pub const GZIP_ABOVE_BYTES: usize = 1024;

/// How long one request may take before it counts as a network failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No answer: offline, refused, reset, timed out.
    #[error("network: {0}")]
    Network(#[source] reqwest::Error),
    /// The server answered with an error body.
    #[error("server answered {status} {code}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The error code.
        code: ErrorCode,
        /// The server's sentence.
        message: String,
        /// The `Retry-After` the server asked for.
        retry_after: Option<Duration>,
    },
    /// An answer that is not what the contract says.
    #[error("unexpected response ({status}): {message}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// What did not parse.
        message: String,
    },
    /// The device holds no usable credentials; the user must sign in again.
    #[error("signed out: {0}")]
    SignedOut(String),
}

impl TransportError {
    /// A failure worth retrying later unchanged: no answer, a 5xx, a request
    /// still in progress or a busy device.
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Network(_) => true,
            TransportError::Server { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(code, ErrorCode::RequestInProgress | ErrorCode::DeviceBusy)
            }
            TransportError::Unexpected { status, .. } => *status >= 500,
            TransportError::SignedOut(_) => false,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TransportError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The server's error code, if it answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            TransportError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The HTTP client of one server.
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
    base_url: String,
}

impl Transport {
    /// A client of the API at `base_url` (e.g. `http://127.0.0.1:3000`).
    pub fn new(base_url: &str) -> Result<Self, TransportError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .gzip(true)
            .build()
            .map_err(TransportError::Network)?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends `method path?query` with an optional JSON `body` and bearer
    /// token, and decodes the JSON answer as `T`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&(dyn ErasedBody + Sync)>,
        token: Option<&str>,
    ) -> Result<T, TransportError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .query(query);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(body) = body {
            let json = body.to_json().map_err(|e| TransportError::Unexpected {
                status: 0,
                message: format!("request body: {e}"),
            })?;
            request = request.header(CONTENT_TYPE, "application/json");
            request = if json.len() > GZIP_ABOVE_BYTES {
                request.header(CONTENT_ENCODING, "gzip").body(gzip(&json))
            } else {
                request.body(json)
            };
        }
        let response = request.send().await.map_err(TransportError::Network)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(TransportError::Network)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| TransportError::Unexpected {
                status: status.as_u16(),
                message: e.to_string(),
            });
        }
        Err(error_from(status, &bytes, retry_after))
    }
}

fn error_from(status: StatusCode, bytes: &[u8], retry_after: Option<Duration>) -> TransportError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => TransportError::Server {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
            retry_after,
        },
        Err(_) => TransportError::Unexpected {
            status: status.as_u16(),
            message: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        },
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// A request body, serialized on demand (object-safe `Serialize`).
pub trait ErasedBody {
    /// The body as JSON bytes.
    fn to_json(&self) -> serde_json::Result<Vec<u8>>;
}

impl<T: Serialize> ErasedBody for T {
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_told_from_permanent_ones() {
        let server = |status, code| TransportError::Server {
            status,
            code,
            message: String::new(),
            retry_after: None,
        };
        assert!(server(503, ErrorCode::StorageUnavailable).is_transient());
        assert!(server(409, ErrorCode::RequestInProgress).is_transient());
        assert!(!server(409, ErrorCode::SyncSessionClosed).is_transient());
        assert!(!server(401, ErrorCode::DeviceRevoked).is_transient());
        assert!(!server(400, ErrorCode::InvalidValue).is_transient());
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = vec![b'a'; 4096];
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&body)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
