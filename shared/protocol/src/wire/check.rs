//! `POST /sync/check`: what the device holds, and the manifest of what the server has.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The network the device is on (PRD 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Wi-Fi: everything.
    Wifi,
    /// Cellular: high-priority data only once priorities exist.
    Cellular,
    /// Not known.
    #[default]
    Unknown,
}

/// `POST /sync/check` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Must equal the token's `sub`.
    pub user_id: String,
    /// If given, must equal the token's `device_id` claim.
    #[serde(default)]
    pub device_id: Option<String>,
    /// When the device last synced (PRD 4.3); a `cursor` is preferred.
    #[serde(default)]
    pub last_sync_timestamp: Option<DateTime<Utc>>,
    /// The last cursor the device applied.
    #[serde(default)]
    pub cursor: Option<String>,
    /// How many changes the device has queued.
    pub pending_changes_count: u32,
    /// The device's network.
    #[serde(default)]
    pub network: Option<Network>,
}

/// `POST /sync/check` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResponse {
    /// The session the following calls quote.
    pub sync_id: Uuid,
    /// Whether the server has changes after the device's position.
    pub has_updates: bool,
    /// What changed, e.g. `plan_v23`, `metrics_updated`, `alerts_new`.
    pub server_changes_available: Vec<String>,
    /// Whether the device may upload now.
    pub accepts_client_changes: bool,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
    /// The head of the user's change log at check time.
    pub cursor: String,
}
