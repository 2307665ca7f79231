//! The values storage reads and writes, free of any database types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trainsync_protocol::domain::{DeviceId, EntityKind, SyncId, SyncRequestId};
use trainsync_protocol::domain::{EntityKey, EntityWrite, Head, StoredEntity};
use trainsync_protocol::wire::{CompleteStatus, Network, Platform, RevokeReason};

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

/// Outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginOutcome {
    /// Ours to process; complete or release it with this claim token.
    Claimed(String),
    /// Already processed: replay this body byte for byte.
    Replay(String),
    /// The same key was used with a different body.
    Mismatch,
    /// Another request with this key is being processed now.
    InProgress,
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
        match self {
            SessionState::Open => "open",
            SessionState::Success => "success",
            SessionState::Failed => "failed",
        }
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

/// A device's visit to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceVisit {
    /// The device.
    pub device_id: DeviceId,
    /// When.
    pub at: DateTime<Utc>,
    /// A download handed it this cursor (encoded) covering this sequence.
    pub delivered: Option<(String, u64)>,
    /// It completed a sync successfully, acknowledging this cursor.
    pub synced: Option<Option<String>>,
}

impl DeviceVisit {
    /// A plain visit.
    pub fn at(device_id: DeviceId, at: DateTime<Utc>) -> Self {
        Self {
            device_id,
            at,
            delivered: None,
            synced: None,
        }
    }
}

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The device.
    pub device_id: String,
    /// First authenticated call.
    pub first_seen_at: DateTime<Utc>,
    /// Latest authenticated call.
    pub last_seen_at: DateTime<Utc>,
    /// Latest successful completion.
    #[serde(default)]
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Latest cursor delivered by a download.
    #[serde(default)]
    pub last_cursor: Option<String>,
    /// Sequence that cursor covers.
    #[serde(default)]
    pub last_cursor_seq: Option<u64>,
    /// Latest cursor acknowledged by `/sync/complete`.
    #[serde(default)]
    pub acknowledged_cursor: Option<String>,
    /// Its registration (`PUT /devices/{device_id}`), once it registered.
    #[serde(default, flatten)]
    pub registration: Option<DeviceRegistration>,
    /// When it first registered.
    #[serde(default)]
    pub registered_at: Option<DateTime<Utc>>,
    /// Where its pushes go (an SNS endpoint ARN), while it has one.
    #[serde(default)]
    pub push_endpoint: Option<String>,
    /// Its current login (refresh-token family); tokens of other logins are refused.
    #[serde(default)]
    pub login: Option<uuid::Uuid>,
    /// When it was revoked (logged out); its tokens are refused from then on.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked.
    #[serde(default)]
    pub revoked_reason: Option<RevokeReason>,
}

impl DeviceRecord {
    /// Whether pushes may reach it: not revoked and with a push endpoint.
    pub fn push_target(&self) -> Option<&str> {
        self.push_endpoint
            .as_deref()
            .filter(|_| self.revoked_at.is_none())
    }
}

/// What a device registered about itself (`PUT /devices/{device_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRegistration {
    /// iOS or Android.
    pub platform: Platform,
    /// Its APNs / FCM token, if notifications are allowed.
    #[serde(default)]
    pub push_token: Option<String>,
    /// App version.
    pub app_version: String,
    /// OS version.
    #[serde(default)]
    pub os_version: Option<String>,
    /// Network at registration.
    #[serde(default)]
    pub network: Option<Network>,
    /// Locale.
    #[serde(default)]
    pub locale: Option<String>,
}
