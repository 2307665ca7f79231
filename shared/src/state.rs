//! What every handler shares: built once per cold start, reused by every invocation.

use std::sync::Arc;

use crate::auth::Verifier;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
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
}

impl AppState {
    /// State from its parts (tests inject a store and a clock).
    pub fn new(store: Arc<dyn SyncStore>, verifier: Verifier, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            verifier: Arc::new(verifier),
            clock,
            brain: true,
        }
    }

    /// The production wiring: DynamoDB, the configured verifier, the system clock.
    pub async fn from_config(config: Config) -> Result<Self, StartupError> {
        let store = DynamoStore::from_config(&config).await;
        let mut state = Self::new(
            Arc::new(store),
            Verifier::new(&config.auth),
            Arc::new(SystemClock),
        );
        state.brain = config.brain;
        Ok(state)
    }
}
