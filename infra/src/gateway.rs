//! A local stand-in for API Gateway: an axum server that turns each HTTP
//! request into the `lambda_http::Request` the Lambdas receive and calls
//! `sync_core::handlers::dispatch`, the very handler code they run.
//!
//! Routing (404/405) and the 256 KiB body cap are the handlers' job; the
//! gateway only refuses bodies above [`MAX_GATEWAY_BODY_BYTES`].

use std::future::Future;
use std::time::Instant;
use trainsync_protocol::wire::ErrorCode;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use chrono::Utc;
use http::header::{CONTENT_ENCODING, HOST};
use http::{HeaderMap, Method, StatusCode, Uri};
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::{Body, RequestExt as _};
use sync_core::error::ApiError;
use sync_core::http::{error_reply, into_response};
use sync_core::state::AppState;
use tokio::net::TcpListener;
use trainsync_protocol::validate::{FieldError, FieldErrorCode};

/// Largest body the gateway buffers (1 MiB): comfortably above the handlers'
/// own 256 KiB cap, so oversized uploads get the handlers' 413.
pub const MAX_GATEWAY_BODY_BYTES: usize = 1024 * 1024;

/// Every path and method goes to [`handle`]; the handlers route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_GATEWAY_BODY_BYTES))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Converts one request, runs the handlers and converts the answer back.
pub async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            tracing::info!(%method, path = uri.path(), status = status.as_u16(), "refused by the local gateway");
            return gateway_error(status, &rejection.body_text());
        }
    };
    let path = uri.path().to_owned();
    let request = to_lambda_request(method.clone(), uri, headers, body);
    let response = sync_core::handlers::dispatch(&state, request).await;
    let response = from_lambda_response(response);
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// An error produced by the gateway itself (not by the handlers), in the
/// handlers' JSON error shape.
fn gateway_error(status: StatusCode, message: &str) -> Response {
    let message = format!("local gateway: {message}");
    let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge {
            code: ErrorCode::BodyTooLarge,
            message,
            field: None,
        }
    } else {
        ApiError::BadRequest(FieldError::new("", FieldErrorCode::InvalidFormat, message))
    };
    from_lambda_response(into_response(error_reply(&error, Utc::now()), false, None))
}

/// Builds the request API Gateway would hand the Lambda: same method, path,
/// query string (also parsed into the query-parameters extension), headers
/// and body.
pub fn to_lambda_request(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> lambda_http::Request {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    // Like lambda_http for API Gateway v2: parse the raw query string (infallible).
    let parameters: QueryMap = query.parse().unwrap_or_default();
    let uri = absolute_uri(&uri, &headers);
    let body = lambda_body(&headers, body);

    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    request
        .with_raw_http_path(path)
        .with_query_string_parameters(parameters)
}

/// `http://<host><path>?<query>` when a Host header is present, like the
/// `https://` URI lambda_http builds; else the URI as received.
fn absolute_uri(uri: &Uri, headers: &HeaderMap) -> Uri {
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return uri.clone();
    };
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    format!("http://{host}{path_and_query}")
        .parse()
        .unwrap_or_else(|_| uri.clone())
}

/// The body as API Gateway passes it: empty → `Empty`; encoded
/// (`Content-Encoding`, e.g. gzip) or not UTF-8 → `Binary`; else `Text`.
pub fn lambda_body(headers: &HeaderMap, body: Bytes) -> Body {
    if body.is_empty() {
        return Body::Empty;
    }
    if headers.contains_key(CONTENT_ENCODING) {
        return Body::Binary(body.to_vec());
    }
    match String::from_utf8(body.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(not_utf8) => Body::Binary(not_utf8.into_bytes()),
    }
}

/// Copies a handler's status, headers and body bytes into an axum response.
pub fn from_lambda_response(response: lambda_http::Response<Body>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        other => Bytes::copy_from_slice(other.as_ref()),
    };
    let mut response = Response::new(axum::body::Body::from(bytes));
    *response.status_mut() = parts.status;
    *response.headers_mut() = parts.headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use http::HeaderValue;
    use std::io::Write as _;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn query_string_path_method_and_headers_are_carried() {
        let uri: Uri = "/sync/download?since=2024-01-01T00%3A00%3A00Z&limit=5&kind=a&kind=b"
            .parse()
            .unwrap();
        let request = to_lambda_request(
            Method::GET,
            uri,
            headers(&[
                ("host", "127.0.0.1:3000"),
                ("authorization", "Bearer abc"),
                ("x-multi", "1"),
                ("x-multi", "2"),
            ]),
            Bytes::new(),
        );
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), "/sync/download");
        assert_eq!(
            request.uri().to_string(),
            "http://127.0.0.1:3000/sync/download?since=2024-01-01T00%3A00%3A00Z&limit=5&kind=a&kind=b"
        );
        assert_eq!(request.raw_http_path(), "/sync/download");
        let query = request
            .query_string_parameters_ref()
            .expect("query parameters attached");
        assert_eq!(query.first("since"), Some("2024-01-01T00:00:00Z"));
        assert_eq!(query.first("limit"), Some("5"));
        assert_eq!(query.all("kind"), Some(vec!["a", "b"]));
        assert_eq!(request.headers()["authorization"], "Bearer abc");
        assert_eq!(request.headers().get_all("x-multi").iter().count(), 2);
        assert_eq!(request.body(), &Body::Empty);
    }

    #[test]
    fn no_query_string_means_no_parameters() {
        let request = to_lambda_request(
            Method::POST,
            "/sync/check".parse().unwrap(),
            HeaderMap::new(),
            Bytes::from_static(b"{}"),
        );
        assert!(request.query_string_parameters_ref().is_none());
        assert_eq!(request.uri().to_string(), "/sync/check");
        assert_eq!(request.body(), &Body::Text("{}".to_owned()));
    }

    #[test]
    fn gzip_body_stays_binary() {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(br#"{"items":[]}"#).unwrap();
        let gzipped = encoder.finish().unwrap();
        let request = to_lambda_request(
            Method::POST,
            "/sync/upload".parse().unwrap(),
            headers(&[
                ("content-encoding", "gzip"),
                ("content-type", "application/json"),
            ]),
            Bytes::from(gzipped.clone()),
        );
        assert_eq!(request.body(), &Body::Binary(gzipped));
        assert_eq!(request.headers()["content-encoding"], "gzip");
    }

    #[test]
    fn encoded_body_is_binary_even_when_it_is_valid_utf8() {
        let body = lambda_body(
            &headers(&[("content-encoding", "br")]),
            Bytes::from_static(b"abc"),
        );
        assert_eq!(body, Body::Binary(b"abc".to_vec()));
    }

    #[test]
    fn non_utf8_body_is_binary() {
        let body = lambda_body(&HeaderMap::new(), Bytes::from_static(&[0xff, 0xfe, 0x00]));
        assert_eq!(body, Body::Binary(vec![0xff, 0xfe, 0x00]));
    }

    #[tokio::test]
    async fn response_status_headers_and_body_are_copied() {
        let lambda_response = http::Response::builder()
            .status(StatusCode::CONFLICT)
            .header("content-type", "application/json")
            .header("x-request-id", "r-1")
            .body(Body::Text(r#"{"error":"x"}"#.to_owned()))
            .unwrap();
        let response = from_lambda_response(lambda_response);
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["x-request-id"], "r-1");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&bytes[..], br#"{"error":"x"}"#);

        let binary = from_lambda_response(
            http::Response::builder()
                .status(StatusCode::OK)
                .body(Body::Binary(vec![1, 2, 3]))
                .unwrap(),
        );
        let bytes = axum::body::to_bytes(binary.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&bytes[..], &[1, 2, 3]);
    }
}
