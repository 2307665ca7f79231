//! The composition root: the one place configuration becomes a wired
//! [`AppState`] (DynamoDB, verifier, token issuer and its KMS client, push
//! provider, clock), and the entry points every function binary calls.

use std::sync::Arc;

use lambda_http::{Error, Request, service_fn};

use crate::auth::Verifier;
use crate::auth::issuer::TokenIssuer;
use crate::clock::SystemClock;
use crate::config::{Config, PushConfig, SigningKey};
use crate::handlers::{Endpoint, dispatch_among, handle};
use crate::push::{HttpPushProvider, PushProvider, SnsPushProvider};
use crate::state::{AppState, StartupError};
use crate::store::dynamo::{DynamoStore, sdk_config};

/// The production wiring of `config`: DynamoDB, the configured verifier,
/// token issuing, the push provider and the system clock, built once.
pub async fn build_state(config: Config) -> Result<AppState, StartupError> {
    // One SDK configuration (credentials, region) for every client.
    let sdk = sdk_config(&config).await;
    let store = DynamoStore::from_sdk_config(&config, &sdk);
    let mut state = AppState::new(
        Arc::new(store),
        Verifier::new(&config.auth),
        Arc::new(SystemClock),
    );
    state.brain = config.brain;
    // A KMS signing key signs through one client, built here once per cold start.
    let kms = matches!(config.signing_key, Some(SigningKey::Kms { .. }))
        .then(|| aws_sdk_kms::Client::new(&sdk));
    state.tokens = TokenIssuer::from_config(&config, kms)?.map(Arc::new);
    state.push = push_provider(&config, &sdk);
    Ok(state)
}

/// A function's cold start: logging, configuration from the environment,
/// then [`build_state`]. `function` names the caller in the log.
pub async fn cold_start(function: &str) -> Result<AppState, Error> {
    crate::telemetry::init();
    let config = Config::from_env()?;
    tracing::info!(function, table = %config.table_name, "cold start");
    Ok(build_state(config).await?)
}

/// The push service `config` names, built once on the shared SDK configuration.
fn push_provider(config: &Config, sdk: &aws_config::SdkConfig) -> Option<Arc<dyn PushProvider>> {
    match &config.push {
        PushConfig::Off => None,
        PushConfig::Http { url } => Some(Arc::new(HttpPushProvider::new(url.clone()))),
        PushConfig::Sns {
            apns_application_arn,
            fcm_application_arn,
        } => Some(Arc::new(SnsPushProvider::new(
            aws_sdk_sns::Client::new(sdk),
            apns_application_arn.clone(),
            fcm_application_arn.clone(),
        ))),
    }
}
/// Reads configuration, builds the state once, and serves `endpoint` until the runtime stops.
pub async fn serve(endpoint: Endpoint) -> Result<(), Error> {
    let state = cold_start(endpoint.path()).await?;
    // Fail at deploy time, not on every refresh request.
    if endpoint == Endpoint::AuthRefresh && state.tokens.is_none() {
        return Err("POST /auth/refresh issues tokens: with JWKS_URL set JWT_SIGNING_KMS_KEY_ID and JWT_SIGNING_KID".into());
    }
    let state = &state;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(handle(state, endpoint, req).await)
    }))
    .await
}

/// Like [`serve`], for a function serving several endpoints (routed by method and path).
pub async fn serve_all(endpoints: &'static [Endpoint]) -> Result<(), Error> {
    let state = cold_start(&format!("{endpoints:?}")).await?;
    let state = &state;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(dispatch_among(state, endpoints, req).await)
    }))
    .await
}
