//! The backend's way into a user's change log: the same commit path, cursor
//! and gap-free guarantee as client uploads. The ingest function and CLI of
//! later issues build on this.

use chrono::{DateTime, Utc};

use crate::store::{Commit, CommitOutcome, EntityWrite, StoreError, SyncStore, contention_backoff};
use trainsync_protocol::domain::UserId;
use trainsync_protocol::limits::MAX_CHANGES_PER_COMMIT;

/// Commit attempts before giving up with [`StoreError::Contention`].
pub const MAX_COMMIT_ATTEMPTS: u32 = 12;

/// Commits `writes` for `user` (in chunks of at most [`MAX_CHANGES_PER_COMMIT`]),
/// retrying when a concurrent commit moves the head. Returns the sequence
/// numbers used, first and last.
pub async fn publish(
    store: &dyn SyncStore,
    user: &UserId,
    writes: Vec<EntityWrite>,
    plan_version: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Option<(u64, u64)>, StoreError> {
    let mut range: Option<(u64, u64)> = None;
    for chunk in writes.chunks(MAX_CHANGES_PER_COMMIT) {
        let (first, last) = commit_chunk(store, user, chunk, plan_version, now).await?;
        range = Some((range.map_or(first, |r| r.0), last));
    }
    Ok(range)
}

async fn commit_chunk(
    store: &dyn SyncStore,
    user: &UserId,
    chunk: &[EntityWrite],
    plan_version: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(u64, u64), StoreError> {
    for attempt in 0..MAX_COMMIT_ATTEMPTS {
        let head = store.head(user).await?;
        let commit = Commit {
            at: head.last_at.map_or(now, |last| last.max(now)),
            base: head,
            writes: chunk.to_vec(),
            device_id: None,
            plan_version,
            request: None,
            session: None,
            conflicts: 0,
            visit: None,
        };
        match store.commit(user, &commit).await? {
            CommitOutcome::Committed { first, last } => return Ok((first, last)),
            CommitOutcome::HeadMoved => contention_backoff(attempt).await,
            other => {
                return Err(StoreError::Other(format!(
                    "unexpected commit outcome {other:?}"
                )));
            }
        }
    }
    Err(StoreError::Contention)
}
