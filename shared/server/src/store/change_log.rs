//! The change log: a user's head, entity states and numbered changes, the
//! commits that write them, and the reads downloads, snapshots, the brain and
//! retention make of them.
//!
//! Every write to a user's data is a [`Commit`]: the new entity states plus one
//! change-log entry each, numbered densely from the user's head and written in
//! one transaction conditional on the head not having moved. So change-log
//! order is commit order and a cursor over it never skips a change.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use trainsync_protocol::limits::IDEMPOTENCY_TTL_SECS;

use super::{DeviceVisit, StoreError};
use trainsync_protocol::domain::{
    DeviceId, EntityKey, EntityKind, EntityWrite, Head, Loaded, StoredEntity, SyncId,
    SyncRequestId, UserId,
};

/// What sync asks of a user's change log and entity states.
#[async_trait]
pub trait ChangeLogStore: Send + Sync {
    /// The user's head (an empty head for a new user); a strongly consistent single read.
    async fn head(&self, user: &UserId) -> Result<Head, StoreError>;

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
}

/// One atomic write of a user's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The head this commit was planned against; it fails if the head moved.
    pub base: Head,
    /// Commit time; callers pass `max(now, base.last_at)` so commit times never decrease.
    pub at: DateTime<Utc>,
    /// New entity states; each also becomes one change-log entry, in order.
    pub writes: Vec<EntityWrite>,
    /// The device that caused the writes, if any.
    pub device_id: Option<DeviceId>,
    /// The plan version after this commit, when it changes.
    pub plan_version: Option<u64>,
    /// The idempotency record to complete in the same transaction.
    pub request: Option<RequestCompletion>,
    /// The session the writes belong to (its upload count goes up).
    pub session: Option<SyncId>,
    /// Conflicts this commit resolved (counted on the session: conflict rate per sync).
    pub conflicts: u32,
    /// The device visit to record.
    pub visit: Option<DeviceVisit>,
}

/// Marks an idempotency claim done, with the response to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestCompletion {
    /// The key.
    pub key: SyncRequestId,
    /// The claim token from `begin_request`.
    pub claim: String,
    /// The body hash.
    pub body_hash: String,
    /// The exact response body replays return.
    pub response: String,
    /// When the record expires.
    pub expires_at: DateTime<Utc>,
    /// Which attempt of the commit loop this is (set by the loop): with the
    /// claim it names the transaction's `ClientRequestToken`.
    pub attempt: u32,
}

impl RequestCompletion {
    /// Completes claim `claim` of `key` (a body hashing to `body_hash`) with
    /// `response`, kept for replays for the idempotency window from `now`.
    pub fn new(
        key: SyncRequestId,
        claim: &str,
        body_hash: &str,
        response: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            key,
            claim: claim.to_owned(),
            body_hash: body_hash.to_owned(),
            response,
            expires_at: now + chrono::Duration::seconds(IDEMPOTENCY_TTL_SECS),
            attempt: 0,
        }
    }

    /// The `ClientRequestToken` of this attempt's transaction: the same for
    /// every SDK retry of one attempt, so a retry after a lost answer applies
    /// nothing twice; another for each new plan (a plan's conflict ids are
    /// fresh, so its parameters differ). At most 36 characters.
    pub fn transaction_token(&self) -> String {
        let hex =
            trainsync_protocol::digest::sha256_hex(format!("{}:{}", self.claim, self.attempt));
        hex[..36].to_owned()
    }
}

/// Result of a commit attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Written; the entries got sequence numbers `first..=last` (none when no writes).
    Committed {
        /// First sequence number used.
        first: u64,
        /// Last sequence number used.
        last: u64,
    },
    /// Another commit moved the head first: reload and plan again.
    HeadMoved,
    /// The idempotency claim was taken over (it outlived its in-progress window).
    ClaimLost,
    /// The session expired or closed meanwhile.
    SessionGone,
    /// DynamoDB could not say whether the transaction applied (a transaction
    /// with the same token is still running): read the idempotency record to
    /// learn it, or plan again (the commit's conditions keep that safe).
    InDoubt,
}

/// A page of the change log.
#[derive(Debug, Clone, Default)]
pub struct ChangePage {
    /// Entries in sequence order: each is the entity's state after that
    /// change, `seq` the change's sequence and `updated_at` its commit time.
    pub entries: Vec<StoredEntity>,
    /// Storage has more entries after these.
    pub more: bool,
}

/// A page of current entity states.
#[derive(Debug, Clone, Default)]
pub struct SnapshotPage {
    /// Entities in the order asked for.
    pub entities: Vec<StoredEntity>,
    /// The key to continue after, when more remain.
    pub next: Option<EntityKey>,
}

/// A range query over the current states of one entity kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindQuery<'a> {
    /// The kind.
    pub kind: EntityKind,
    /// Only ids at or above this (string order: dates, UUID v7 times).
    pub from_id: Option<&'a str>,
    /// Continue after this id (a page's `next`).
    pub after_id: Option<&'a str>,
    /// Highest ids first.
    pub descending: bool,
    /// Page size.
    pub limit: u32,
}
