//! What an upload and an ingest call share around their commit: the batch
//! applies at most once per idempotency key, and the training load is
//! recomputed afterwards when it wrote activities.

use chrono::{DateTime, Utc};

use crate::error::ApiError;
use crate::services::brain;
use crate::services::idempotency::{Once, once};
use crate::store::SyncStore;
use trainsync_protocol::domain::{SyncRequestId, UserId};

/// Runs `process` at most once for `key` (it commits the batch with the
/// claim token it is given and answers the response body and how many
/// activities it wrote), then recomputes `user`'s training load when
/// activities changed and the reference brain is on (`brain`). Answers the
/// response body: the stored one for a replay.
pub async fn apply_once<Fut>(
    store: &dyn SyncStore,
    brain: bool,
    user: &UserId,
    key: SyncRequestId,
    hash: &str,
    now: DateTime<Utc>,
    process: impl FnOnce(String) -> Fut,
) -> Result<String, ApiError>
where
    Fut: Future<Output = Result<(String, usize), ApiError>>,
{
    match once(store, user, key, hash, now, process).await? {
        Once::Replay(body) => Ok(body),
        Once::Done((body, activities_written)) => {
            brain::after_commit(store, brain, user, activities_written, now).await;
            Ok(body)
        }
    }
}
