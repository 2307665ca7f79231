//! Writing given entity states into a user's change log as they are (no
//! conflict rules): the same commit loop, cursor and gap-free guarantee as
//! uploads and ingest.

use chrono::{DateTime, Utc};

use crate::services::commit::{Attempt, commit_time, commit_with_retry};
use crate::store::{Commit, EntityWrite, StoreError, SyncStore};
use trainsync_protocol::domain::UserId;
use trainsync_protocol::limits::MAX_CHANGES_PER_COMMIT;

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
    commit_with_retry(store, user, |_| async move {
        let head = store.head(user).await?;
        let seqs = (head.seq + 1, head.seq + chunk.len() as u64);
        let commit = Commit {
            at: commit_time(&head, now),
            base: head,
            writes: chunk.to_vec(),
            device_id: None,
            plan_version,
            request: None,
            session: None,
            conflicts: 0,
            visit: None,
        };
        Ok::<_, StoreError>(Attempt::Commit(Box::new(commit), seqs))
    })
    .await?
    .into_done()
}
