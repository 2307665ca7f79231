//! What every handler shares: built once per cold start, reused by every invocation.

use std::sync::Arc;

use crate::auth::Verifier;
use crate::auth::issuer::TokenIssuer;
use crate::auth::revocation::DeviceGate;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, PushConfig};
use crate::push::{HttpPushProvider, PushProvider, SnsPushProvider};
use crate::store::SyncStore;
use crate::store::dynamo::DynamoStore;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad or missing configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Shared state: storage, the token verifier and the clock.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn SyncStore>,
    /// Token verification.
    pub verifier: Arc<Verifier>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Whether the reference brain recomputes training load after activities change.
    pub brain: bool,
    /// Token issuing (login, refresh), when configured.
    pub tokens: Option<Arc<TokenIssuer>>,
    /// The push service, when configured.
    pub push: Option<Arc<dyn PushProvider>>,
    /// The per-container revocation check.
    pub gate: Arc<DeviceGate>,
}

impl AppState {
    /// State from its parts (tests inject a store and a clock).
    pub fn new(store: Arc<dyn SyncStore>, verifier: Verifier, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            verifier: Arc::new(verifier),
            clock,
            brain: true,
            tokens: None,
            push: None,
            gate: Arc::default(),
        }
    }

    /// The production wiring: DynamoDB, the configured verifier, the system clock.
    pub async fn from_config(config: Config) -> Result<Self, StartupError> {
        // One SDK configuration (credentials, region) for every client.
        let sdk = crate::store::dynamo::sdk_config(&config).await;
        let store = DynamoStore::from_sdk_config(&config, &sdk);
        let mut state = Self::new(
            Arc::new(store),
            Verifier::new(&config.auth),
            Arc::new(SystemClock),
        );
        state.brain = config.brain;
        state.tokens = TokenIssuer::from_config(&config)?.map(Arc::new);
        state.push = push_provider(&config, &sdk);
        Ok(state)
    }
}

/// The push service `config` names, built once on the shared SDK configuration.
pub fn push_provider(
    config: &Config,
    sdk: &aws_config::SdkConfig,
) -> Option<Arc<dyn PushProvider>> {
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
