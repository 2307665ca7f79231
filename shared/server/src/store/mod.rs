//! Storage: the operations sync needs, as small traits shaped around its use
//! cases, and their DynamoDB implementation (`dynamo`).
//!
//! - [`ChangeLogStore`]: a user's head, entity states and change log (commits,
//!   downloads, snapshots, retention);
//! - [`SessionStore`]: sync sessions; [`RequestStore`]: idempotency keys;
//! - [`DeviceStore`]: devices and their visits; [`LoginStore`]: refresh-token
//!   families; [`DeliveryStore`]: the push-delivery ledger;
//! - [`TrackStore`]: GPS tracks; [`ReferenceStore`]: reference data.
//!
//! [`SyncStore`] is all of them together, what `AppState` holds.

mod change_log;
mod deliveries;
mod devices;
pub mod dynamo;
mod logins;
mod reference;
mod requests;
mod sessions;
mod tracks;
mod types;

pub use change_log::{
    ChangeLogStore, ChangePage, Commit, CommitOutcome, KindQuery, RequestCompletion, SnapshotPage,
};
pub use deliveries::{ClaimHold, ClaimOwner, DeliveryClaim, DeliveryOutcome, DeliveryStore};
pub use devices::{DeviceRecord, DeviceRefusal, DeviceRegistration, DeviceStore};
pub use logins::{LoginStore, Rotation, StoredLogin};
pub use reference::ReferenceStore;
pub use requests::{BeginOutcome, RequestState, RequestStore};
pub use sessions::{CompleteOutcome, Completion, Session, SessionState, SessionStore};
pub use tracks::{TrackBlob, TrackInfo, TrackPart, TrackRange, TrackStore, WHOLE_TRACK};
pub use trainsync_protocol::domain::{
    EntityKey, EntityWrite, Head, KindHead, Loaded, StoredEntity,
};
pub use types::DeviceVisit;

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

/// Everything sync asks of storage: the union of the use-case traits, so
/// `Arc<dyn SyncStore>` can be handed to every service. Call a method with
/// its trait in scope (`use crate::store::ChangeLogStore`).
pub trait SyncStore:
    ChangeLogStore
    + SessionStore
    + RequestStore
    + DeviceStore
    + LoginStore
    + DeliveryStore
    + TrackStore
    + ReferenceStore
    + Send
    + Sync
    + std::fmt::Debug
{
}

impl<T> SyncStore for T where
    T: ChangeLogStore
        + SessionStore
        + RequestStore
        + DeviceStore
        + LoginStore
        + DeliveryStore
        + TrackStore
        + ReferenceStore
        + Send
        + Sync
        + std::fmt::Debug
{
}

/// Waits before retrying a commit that lost a race: exponential with jitter,
/// so concurrent writers of one user spread out.
pub async fn contention_backoff(attempt: u32) {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 16);
    let millis = (5u64 << attempt.min(5)) + jitter;
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}
