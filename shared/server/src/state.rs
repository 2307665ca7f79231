//! What every handler shares: built once per cold start, reused by every invocation.

use std::sync::Arc;

use crate::auth::Verifier;
use crate::auth::issuer::TokenIssuer;
use crate::auth::revocation::DeviceGate;
use crate::clock::Clock;
use crate::push::PushProvider;
use crate::services::devices::Devices;
use crate::services::tokens::Tokens;
use crate::store::SyncStore;

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
    /// Whether responses carry `x-dynamodb-requests` (the local gateway and
    /// tests count round trips with it); deployed functions only log the count.
    pub request_count_header: bool,
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
            request_count_header: false,
        }
    }

    /// The device use cases on this state's store, push provider, revocation cache and clock.
    pub fn devices(&self) -> Devices<'_> {
        Devices {
            store: self.store.as_ref(),
            push: self.push.as_deref(),
            gate: &self.gate,
            clock: self.clock.as_ref(),
        }
    }

    /// The token use cases (login, refresh) with this state's issuer.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens {
            devices: self.devices(),
            issuer: self.tokens.as_deref(),
        }
    }
}
