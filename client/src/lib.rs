//! trainsync's offline-first client core: what a mobile app embeds under its UI.
//!
//! The UI reads and writes only the local SQLite database ([`db`]); writes are
//! validated with the server's own rules and queued in the same transaction
//! ([`local`]). The [`sync`] manager runs the PRD 4.3 session (check → upload
//! → download → apply → complete) as a persisted state machine, so a client
//! killed at any step resumes where it was without losing or doubling data.
//! Tokens live in the platform's secure storage behind [`secrets::SecretStore`].
//! No UI or platform code is in here, so the core can be exposed to Swift and Kotlin.
#![forbid(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod db;
pub mod error;
pub mod local;
pub mod secrets;
pub mod status;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod transport;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use trainsync_protocol::wire::Network;

pub use clock::{Clock, SystemClock};
pub use error::ClientError;
pub use secrets::{FileSecretStore, MemorySecretStore, SecretStore, StoredTokens};
pub use status::{Health, SyncStatusView};
pub use sync::{SessionOutcome, Step};
pub use transport::{Transport, TransportError};

/// One device's client: its database, credentials and server.
pub struct Client {
    db: Mutex<Connection>,
    secrets: Arc<dyn SecretStore>,
    transport: Transport,
    clock: Arc<dyn Clock>,
    network: Mutex<Network>,
    sessions: sync::SessionGate,
}

impl Client {
    /// Opens the database at `db_path` (migrating it) for the API at `server_url`.
    pub fn open(
        db_path: &Path,
        server_url: &str,
        secrets: Arc<dyn SecretStore>,
    ) -> Result<Self, ClientError> {
        Self::open_with_clock(db_path, server_url, secrets, Arc::new(SystemClock))
    }

    /// Like [`Client::open`] with a chosen clock (tests, or a clock corrected by the server's).
    pub fn open_with_clock(
        db_path: &Path,
        server_url: &str,
        secrets: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            db: Mutex::new(db::open(db_path)?),
            secrets,
            transport: Transport::new(server_url)?,
            clock,
            network: Mutex::new(Network::Unknown),
            sessions: sync::SessionGate::default(),
        })
    }

    /// Tells the client which network the device is on (passed to the server as `network=`).
    pub fn set_network(&self, network: Network) {
        *self.network.lock().unwrap_or_else(|p| p.into_inner()) = network;
    }

    fn network(&self) -> Network {
        *self.network.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The database, for one short, synchronous use (never held across an await).
    /// A panic while holding it leaves no half-written transaction behind
    /// (SQLite rolls it back), so a poisoned lock is safe to take over.
    fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
