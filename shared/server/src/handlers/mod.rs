//! The endpoint handlers. Each Lambda binary serves one [`Endpoint`] through
//! [`handle`]; the local gateway routes with [`dispatch`]. Same code path.

mod auth;
mod check;
mod complete;
mod conflicts;
mod devices;
mod download;
pub mod fanout;
pub mod ingest;
mod reference;
mod status;
mod tracks;
mod upload;

use http::Method;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

use crate::auth::Caller;
use crate::compression::accepts_gzip;
use crate::error::ApiError;
use crate::http::{Reply, bearer_header, error_reply, into_response};
use crate::state::AppState;
use crate::store::dynamo::metrics::count_requests;

/// The sync API's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /sync/check`
    Check,
    /// `POST /sync/upload`
    Upload,
    /// `GET /sync/download`
    Download,
    /// `POST /sync/complete`
    Complete,
    /// `GET /sync/status`
    Status,
    /// `GET /sync/conflicts`
    Conflicts,
    /// `POST /sync/conflicts/{conflict_id}/undo`
    ConflictUndo,
    /// `GET /sync/tracks/{activity_id}`
    Track,
    /// `GET /reference/{version}` (`current` or a number)
    Reference,
    /// `PUT /devices/{device_id}`
    DeviceRegister,
    /// `GET /devices`
    DeviceList,
    /// `DELETE /devices/{device_id}`
    DeviceRevoke,
    /// `POST /auth/refresh` (no bearer token: the refresh token is the credential)
    AuthRefresh,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 13] = [
        Endpoint::Check,
        Endpoint::Upload,
        Endpoint::Download,
        Endpoint::Complete,
        Endpoint::Status,
        Endpoint::Conflicts,
        Endpoint::ConflictUndo,
        Endpoint::Track,
        Endpoint::Reference,
        Endpoint::DeviceRegister,
        Endpoint::DeviceList,
        Endpoint::DeviceRevoke,
        Endpoint::AuthRefresh,
    ];

    /// The endpoints the `devices` function serves.
    pub const DEVICES: [Endpoint; 3] = [
        Endpoint::DeviceRegister,
        Endpoint::DeviceList,
        Endpoint::DeviceRevoke,
    ];

    /// Its HTTP method.
    pub fn method(self) -> Method {
        match self {
            Endpoint::Download
            | Endpoint::Status
            | Endpoint::Conflicts
            | Endpoint::Track
            | Endpoint::Reference
            | Endpoint::DeviceList => Method::GET,
            Endpoint::Check
            | Endpoint::Upload
            | Endpoint::Complete
            | Endpoint::ConflictUndo
            | Endpoint::AuthRefresh => Method::POST,
            Endpoint::DeviceRegister => Method::PUT,
            Endpoint::DeviceRevoke => Method::DELETE,
        }
    }

    /// Its path; `{name}` segments are path parameters (API Gateway's syntax).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Check => "/sync/check",
            Endpoint::Upload => "/sync/upload",
            Endpoint::Download => "/sync/download",
            Endpoint::Complete => "/sync/complete",
            Endpoint::Status => "/sync/status",
            Endpoint::Conflicts => "/sync/conflicts",
            Endpoint::ConflictUndo => "/sync/conflicts/{conflict_id}/undo",
            Endpoint::Track => "/sync/tracks/{activity_id}",
            Endpoint::Reference => "/reference/{version}",
            Endpoint::DeviceRegister | Endpoint::DeviceRevoke => "/devices/{device_id}",
            Endpoint::DeviceList => "/devices",
            Endpoint::AuthRefresh => "/auth/refresh",
        }
    }

    /// Whether a request path matches this endpoint's path pattern.
    pub fn matches(self, path: &str) -> bool {
        let mut pattern = self.path().split('/');
        let mut actual = path.trim_end_matches('/').split('/');
        loop {
            match (pattern.next(), actual.next()) {
                (None, None) => return true,
                (Some(p), Some(a)) if p.starts_with('{') && !a.is_empty() => {}
                (Some(p), Some(a)) if p == a => {}
                _ => return false,
            }
        }
    }
}

/// The value of path parameter `name` (e.g. `activity_id`) of `endpoint` in `req`'s path.
pub fn path_param(req: &Request, endpoint: Endpoint, name: &str) -> Option<String> {
    // API Gateway names the parameters itself, whatever stage prefixes the path.
    if let Some(value) = req.path_parameters().first(name) {
        return Some(value.to_owned());
    }
    // A request built without them (the local gateway, tests): match the route's pattern.
    let wanted = format!("{{{name}}}");
    endpoint
        .path()
        .split('/')
        .zip(req.uri().path().split('/'))
        .find(|(p, _)| *p == wanted)
        .map(|(_, actual)| actual.to_owned())
}

/// Routes `req` by method and path, then handles it; unknown routes get a JSON 404/405.
pub async fn dispatch(state: &AppState, req: Request) -> Response<Body> {
    dispatch_among(state, &Endpoint::ALL, req).await
}

/// Routes `req` among `endpoints` (one function may serve several), then handles it.
pub async fn dispatch_among(
    state: &AppState,
    endpoints: &[Endpoint],
    req: Request,
) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    // API Gateway names the route it matched; a named stage prefixes the
    // path but not the route key. Without one (the local gateway, tests),
    // match the path and the method.
    let candidates: Vec<Endpoint> = endpoints
        .iter()
        .copied()
        .filter(|e| e.matches(&path))
        .collect();
    let chosen = routed_endpoint(&req, endpoints).or_else(|| {
        candidates
            .iter()
            .copied()
            .find(|e| e.method() == req.method())
    });
    match chosen {
        Some(endpoint) => handle(state, endpoint, req).await,
        None => {
            // No endpoint has this path (404), or none with this method (405).
            let error = ApiError::NoRoute {
                method: req.method().to_string(),
                path,
                allow: candidates.iter().map(|e| e.method()).collect(),
            };
            into_response(error_reply(&error, state.clock.now()), false, None)
        }
    }
}

/// The endpoint among `endpoints` whose route API Gateway matched (its
/// `routeKey`, e.g. `PUT /devices/{device_id}`), when the event names one.
fn routed_endpoint(req: &Request, endpoints: &[Endpoint]) -> Option<Endpoint> {
    let Some(RequestContext::ApiGatewayV2(context)) = req.request_context_ref() else {
        return None;
    };
    let (method, path) = context.route_key.as_deref()?.split_once(' ')?;
    endpoints
        .iter()
        .copied()
        .find(|e| e.method() == method && e.path() == path)
}

/// Handles one request for `endpoint`: authenticate, run the handler, map the result.
pub async fn handle(state: &AppState, endpoint: Endpoint, req: Request) -> Response<Body> {
    let accept_gzip = accepts_gzip(
        req.headers()
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok()),
    );
    let span = tracing::info_span!(
        "request",
        endpoint = endpoint.path(),
        user_id = tracing::field::Empty
    );
    let (result, ddb_requests) =
        count_requests(run(state, endpoint, req).instrument(span.clone())).await;
    let reply = match result {
        Ok(reply) => reply,
        Err(error) => {
            if !matches!(error, ApiError::Unavailable(_) | ApiError::Internal(_)) {
                span.in_scope(|| tracing::info!(%error, "request refused"));
            }
            error_reply(&error, state.clock.now())
        }
    };
    span.in_scope(|| tracing::info!(status = reply.status.as_u16(), ddb_requests, "request done"));
    into_response(
        reply,
        accept_gzip,
        state.request_count_header.then_some(ddb_requests),
    )
}

async fn run(state: &AppState, endpoint: Endpoint, req: Request) -> Result<Reply, ApiError> {
    if req.method() != endpoint.method() {
        return Err(ApiError::NoRoute {
            method: req.method().to_string(),
            path: endpoint.path().to_owned(),
            allow: vec![endpoint.method()],
        });
    }
    // Every endpoint but the refresh (which presents a refresh token instead)
    // authenticates its caller first.
    let caller = || authenticate(state, &req);
    let req = &req;
    match endpoint {
        Endpoint::AuthRefresh => auth::refresh(state, req).await,
        Endpoint::Check => check::check(state, &caller().await?, req).await,
        Endpoint::Upload => upload::upload(state, &caller().await?, req).await,
        Endpoint::Download => download::download(state, &caller().await?, req).await,
        Endpoint::Complete => complete::complete(state, &caller().await?, req).await,
        Endpoint::Status => status::status(state, &caller().await?).await,
        Endpoint::Conflicts => conflicts::list(state, &caller().await?, req).await,
        Endpoint::ConflictUndo => conflicts::undo(state, &caller().await?, req).await,
        Endpoint::Track => tracks::track(state, &caller().await?, req).await,
        Endpoint::Reference => reference::reference(state, &caller().await?, req).await,
        Endpoint::DeviceRegister => devices::register(state, &caller().await?, req).await,
        Endpoint::DeviceList => devices::list(state, &caller().await?).await,
        Endpoint::DeviceRevoke => devices::revoke(state, &caller().await?, req).await,
    }
}

/// Verifies the bearer token, then that its device is not logged out.
async fn authenticate(state: &AppState, req: &Request) -> Result<Caller, ApiError> {
    let now = state.clock.now();
    let caller = state.verifier.verify(bearer_header(req), now).await?;
    state.gate.admit(state.store.as_ref(), &caller, now).await?;
    tracing::Span::current().record("user_id", caller.user_id.as_str());
    Ok(caller)
}
