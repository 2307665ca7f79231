//! `GET /sync/status`: the user's sync state, for debugging and the PRD's metrics.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A device in `/sync/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The device.
    pub device_id: String,
    /// First authenticated call.
    pub first_seen_at: DateTime<Utc>,
    /// Latest authenticated call.
    pub last_seen_at: DateTime<Utc>,
    /// Latest successful `/sync/complete`.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The last cursor handed to it by a download.
    pub last_cursor: Option<String>,
    /// The last cursor it acknowledged in `/sync/complete`.
    pub acknowledged_cursor: Option<String>,
    /// Changes in the log after its last download cursor.
    pub pending_downloads: u64,
}

/// A session in `/sync/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// The session.
    pub sync_id: Uuid,
    /// The device that opened it.
    pub device_id: String,
    /// When `/sync/check` opened it.
    pub opened_at: DateTime<Utc>,
    /// `open`, `success` or `failed`.
    pub status: String,
    /// When it was completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// The device's error text, for failed sessions.
    pub error: Option<String>,
    /// Uploads made in it.
    pub uploads: u32,
    /// Conflicts its uploads met (automatic resolutions).
    #[serde(default)]
    pub conflicts: u32,
}

/// `GET /sync/status` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The caller.
    pub user_id: String,
    /// Cursor at the head of the change log.
    pub head_cursor: String,
    /// Number of changes ever committed for the user.
    pub head_seq: u64,
    /// Devices seen, most recent first.
    pub devices: Vec<DeviceStatus>,
    /// Recent sessions, newest first.
    pub recent_sessions: Vec<SessionStatus>,
    /// How many of `recent_sessions` are still open.
    pub open_sessions: u32,
    /// Share of `recent_sessions` with at least one conflict (PRD 11.1 conflict rate).
    #[serde(default)]
    pub conflict_rate: f64,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}
