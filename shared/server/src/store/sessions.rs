//! Sync sessions: opened by `/sync/check`, counted by uploads, closed once by
//! `/sync/complete`, listed by the status endpoint.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DeviceVisit, StoreError};
use trainsync_protocol::domain::{DeviceId, SyncId, UserId};
use trainsync_protocol::wire::CompleteStatus;

/// What sync asks of storage about sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a new session and the device's visit in one write.
    async fn open_session(
        &self,
        user: &UserId,
        session: &Session,
        seen: &DeviceVisit,
    ) -> Result<(), StoreError>;

    /// A session, or `None` when unknown or past its expiry (`now`).
    async fn session(
        &self,
        user: &UserId,
        sync_id: SyncId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;

    /// Closes an open session once; a repeat reports the first outcome.
    async fn complete_session(
        &self,
        user: &UserId,
        completion: &Completion,
    ) -> Result<CompleteOutcome, StoreError>;

    /// The newest sessions not yet expired at `now`, newest first.
    async fn recent_sessions(
        &self,
        user: &UserId,
        limit: i32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError>;
}

/// A sync session's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Opened by `/sync/check`, not completed.
    Open,
    /// Completed successfully.
    Success,
    /// Completed as failed.
    Failed,
}

impl SessionState {
    /// The state's wire name.
    pub fn as_str(&self) -> &'static str {
        trainsync_protocol::names::wire_name(self).expect("a unit variant has a wire name")
    }
}

impl From<CompleteStatus> for SessionState {
    fn from(s: CompleteStatus) -> Self {
        match s {
            CompleteStatus::Success => SessionState::Success,
            CompleteStatus::Failed => SessionState::Failed,
        }
    }
}

/// A sync session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its id.
    pub sync_id: SyncId,
    /// The device that opened it.
    pub device_id: DeviceId,
    /// When.
    pub opened_at: DateTime<Utc>,
    /// When it stops being usable (also its TTL).
    pub expires_at: DateTime<Utc>,
    /// Open or completed.
    pub state: SessionState,
    /// When completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// The device's error text.
    pub error: Option<String>,
    /// Uploads committed in it.
    pub uploads: u32,
    /// Conflicts resolved in its uploads.
    pub conflicts: u32,
    /// The `sync_request_id` and body hash of the completing request.
    pub completed_by: Option<(String, String)>,
}

/// A request to close a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Which session.
    pub sync_id: SyncId,
    /// Final state.
    pub state: SessionState,
    /// Error text for failures.
    pub error: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// The request's idempotency key (or a hash-only marker) and body hash.
    pub request: (String, String),
}

/// Result of closing a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// Closed now.
    Closed(Session),
    /// It was closed before; this is how.
    AlreadyClosed(Session),
    /// Unknown or expired.
    NotFound,
}
