//! `POST /sync/complete`: closing a sync session.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a sync session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompleteStatus {
    /// Every step succeeded.
    Success,
    /// The device gave up; `error` says why.
    Failed,
}

/// `POST /sync/complete` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The session to close.
    pub sync_id: Uuid,
    /// The outcome.
    pub status: CompleteStatus,
    /// Optional idempotency key.
    #[serde(default)]
    pub sync_request_id: Option<Uuid>,
    /// What went wrong, for `failed` (at most 2000 characters).
    #[serde(default)]
    pub error: Option<String>,
    /// The cursor the device has applied (its acknowledged position).
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `POST /sync/complete` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteResponse {
    /// The session.
    pub sync_id: Uuid,
    /// Its final status (the first completion wins; a repeat reports it).
    pub status: CompleteStatus,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}
