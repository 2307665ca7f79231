//! What an upload and an ingest call share around their commit: their items
//! validated one by one into a batch (a bad item never blocks the good ones),
//! the rules' refusals reported against the item they came from, the batch
//! applied at most once per idempotency key, and the training load recomputed
//! afterwards when it wrote activities.

use chrono::{DateTime, Utc};

use crate::error::ApiError;
use crate::services::brain;
use crate::services::idempotency::{Once, once};
use crate::store::{Loaded, SyncStore};
use trainsync_protocol::domain::{SyncRequestId, UserId};
use trainsync_protocol::rules::resolve::{Batch, Change, Context, Resolution};
use trainsync_protocol::validate::FieldError;
use trainsync_protocol::wire::{ItemType, ProcessingError};

/// Where a batch item came from: its list, its index there, its id if it has one.
pub type ItemSource = (ItemType, usize, Option<String>);

/// A request's items after validation: the valid ones as a batch, the
/// refused ones as per-item errors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidatedBatch {
    /// The valid items, in request order.
    pub batch: Batch,
    /// Where each of the batch's first items came from (items the server adds
    /// itself, such as track announcements, have none).
    sources: Vec<ItemSource>,
    /// Items refused by validation.
    pub errors: Vec<ProcessingError>,
}

impl ValidatedBatch {
    /// Adds one item: to the batch when it validated, to the errors otherwise.
    pub fn add(&mut self, source: ItemSource, parsed: Result<Change, FieldError>) {
        match parsed {
            Ok(change) => {
                self.batch.changes.push(change);
                self.sources.push(source);
            }
            Err(error) => self.errors.push(ProcessingError::new(source, error)),
        }
    }

    /// Resolves the batch against `loaded`; the items a rule refused join the
    /// validation errors, each under the item it came from.
    pub fn resolve(&self, loaded: &Loaded, ctx: Context<'_>) -> (Resolution, Vec<ProcessingError>) {
        let resolution = self.batch.resolve(loaded, ctx);
        let mut errors = self.errors.clone();
        for refusal in &resolution.refused {
            if let Some(source) = self.sources.get(refusal.index) {
                errors.push(ProcessingError::new(source.clone(), refusal.error.clone()));
            }
        }
        (resolution, errors)
    }
}

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
