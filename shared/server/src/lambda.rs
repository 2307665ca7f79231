//! The Lambda entry point every function binary calls.

use lambda_http::{Error, Request, service_fn};

use crate::config::Config;
use crate::handlers::{Endpoint, dispatch_among, handle};
use crate::state::AppState;

/// Reads configuration, builds the state once, and serves `endpoint` until the runtime stops.
pub async fn serve(endpoint: Endpoint) -> Result<(), Error> {
    crate::telemetry::init();
    let config = Config::from_env()?;
    tracing::info!(?endpoint, table = %config.table_name, "cold start");
    let state = AppState::from_config(config).await?;
    // Fail at deploy time, not on every refresh request.
    if endpoint == Endpoint::AuthRefresh && state.tokens.is_none() {
        return Err("POST /auth/refresh issues tokens: with JWKS_URL set JWT_SIGNING_KEY and JWT_SIGNING_KID".into());
    }
    let state = &state;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(handle(state, endpoint, req).await)
    }))
    .await
}

/// Like [`serve`], for a function serving several endpoints (routed by method and path).
pub async fn serve_all(endpoints: &'static [Endpoint]) -> Result<(), Error> {
    crate::telemetry::init();
    let config = Config::from_env()?;
    tracing::info!(?endpoints, table = %config.table_name, "cold start");
    let state = AppState::from_config(config).await?;
    let state = &state;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(dispatch_among(state, endpoints, req).await)
    }))
    .await
}
