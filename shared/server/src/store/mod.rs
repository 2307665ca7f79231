//! Storage: the operations sync needs, as a trait shaped around its use cases,
//! and its DynamoDB implementation (`dynamo`).
//!
//! Every write to a user's data is a [`Commit`]: the new entity states plus one
//! change-log entry each, numbered densely from the user's head and written in
//! one transaction conditional on the head not having moved. So change-log
//! order is commit order and a cursor over it never skips a change.

mod devices;
pub mod dynamo;
mod reference;
mod tracks;
mod types;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use devices::{
    DeliveryClaim, DeliveryOutcome, DeviceRefusal, DeviceStore, Rotation, StoredLogin,
};
pub use reference::ReferenceStore;
pub use tracks::{TrackBlob, TrackInfo, TrackPart, TrackRange, TrackStore, WHOLE_TRACK};
pub use trainsync_protocol::domain::{
    EntityKey, EntityWrite, Head, KindHead, Loaded, StoredEntity,
};
use trainsync_protocol::domain::{SyncId, SyncRequestId, UserId};
pub use types::*;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttled, timed out or unreachable: retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Too many concurrent writers for one user; retry later.
    #[error("too much write contention for this user")]
    Contention,
    /// A stored item does not have the shape we expect.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
    /// Any other storage error.
    #[error("storage error: {0}")]
    Other(String),
}

impl StoreError {
    /// Whether the client should retry the request later (503).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Contention)
    }
}

/// What sync asks of storage. All methods are scoped to one user's data.
#[async_trait]
pub trait SyncStore:
    TrackStore + ReferenceStore + DeviceStore + Send + Sync + std::fmt::Debug
{
    /// The user's head (an empty head for a new user); a strongly consistent single read.
    async fn head(&self, user: &UserId) -> Result<Head, StoreError>;

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

    /// Claims an idempotency key (PRD 6.2) for a request with body hash `body_hash`.
    async fn begin_request(
        &self,
        user: &UserId,
        key: SyncRequestId,
        body_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<BeginOutcome, StoreError>;

    /// Gives up a claim made by `begin_request` (the request failed before committing).
    async fn release_request(
        &self,
        user: &UserId,
        key: SyncRequestId,
        claim: &str,
    ) -> Result<(), StoreError>;

    /// The head and the current state of the named entities, read together.
    async fn load(&self, user: &UserId, keys: &[EntityKey]) -> Result<Loaded, StoreError>;

    /// Writes a commit atomically, or reports why it could not.
    async fn commit(&self, user: &UserId, commit: &Commit) -> Result<CommitOutcome, StoreError>;

    /// Change-log entries with `seq > after`, oldest first, at most `limit`.
    async fn changes_after(
        &self,
        user: &UserId,
        after: u64,
        limit: u32,
    ) -> Result<ChangePage, StoreError>;

    /// The lowest sequence number committed at or after `t`, if any.
    async fn first_seq_at_or_after(
        &self,
        user: &UserId,
        t: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError>;

    /// A page of one kind's current states (a Query on the user's partition).
    async fn entities_of_kind(
        &self,
        user: &UserId,
        query: KindQuery<'_>,
    ) -> Result<SnapshotPage, StoreError>;

    /// Activities (not tombstones) whose start lies in `from..=to`, with
    /// their start times, ordered by start then id (an index query).
    async fn activities_started_between(
        &self,
        user: &UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, EntityKey)>, StoreError>;

    /// A stored plan version (the base of a plan diff), if still kept.
    async fn plan_version(
        &self,
        user: &UserId,
        version: u64,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    /// The change log's retention floor: entries below it are trimmed (0: none).
    async fn log_floor(&self, user: &UserId) -> Result<u64, StoreError>;

    /// Trims change-log entries below `target` (at most `max` of them per
    /// call) and raises the floor; returns the floor now in force.
    async fn trim_log(&self, user: &UserId, target: u64, max: u64) -> Result<u64, StoreError>;

    /// Records a device's visit (first/last seen, cursors, last sync).
    async fn record_visit(&self, user: &UserId, seen: &DeviceVisit) -> Result<(), StoreError>;

    /// Every device seen for the user.
    async fn devices(&self, user: &UserId) -> Result<Vec<DeviceRecord>, StoreError>;

    /// The newest sessions not yet expired at `now`, newest first.
    async fn recent_sessions(
        &self,
        user: &UserId,
        limit: i32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError>;
}

/// Waits before retrying a commit that lost a race: exponential with jitter,
/// so concurrent writers of one user spread out.
pub async fn contention_backoff(attempt: u32) {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 16);
    let millis = (5u64 << attempt.min(5)) + jitter;
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}
