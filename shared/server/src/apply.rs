//! Loading what a batch of changes needs before [`Batch::resolve`]: its own
//! entities, the stored activities it may duplicate (one index query), and
//! the survivors of merged duplicates it writes to.

use chrono::Duration;

use crate::store::{EntityKey, Loaded, StoreError, SyncStore};
use trainsync_protocol::domain::{Tombstone, UserId};
use trainsync_protocol::rules::merge::DUPLICATE_WINDOW_SECS;
use trainsync_protocol::rules::resolve::{Batch, activity_key};

/// Reads the head and every entity `batch` may touch. Costs one read, plus
/// one index query when the batch has activities, plus one more read only
/// when it writes under the id of a merged duplicate.
pub async fn load_for(
    store: &dyn SyncStore,
    user: &UserId,
    batch: &Batch,
) -> Result<Loaded, StoreError> {
    let mut keys = batch.keys();
    let starts: Vec<_> = batch.activities().map(|a| a.started_at).collect();
    if let (Some(first), Some(last)) = (starts.iter().min(), starts.iter().max()) {
        let window = Duration::seconds(DUPLICATE_WINDOW_SECS);
        let candidates = store
            .activities_started_between(user, *first - window, *last + window)
            .await?;
        keys.extend(candidates.into_iter().map(|(_, key)| key));
        keys.sort();
        keys.dedup();
    }
    let mut loaded = store.load(user, &keys).await?;
    let survivors: Vec<EntityKey> = loaded
        .entities
        .values()
        .filter_map(|e| Tombstone::of(&e.data)?.replaced_by)
        .filter_map(|id| uuid::Uuid::parse_str(&id).ok())
        .map(activity_key)
        .filter(|k| !loaded.entities.contains_key(k))
        .collect();
    if !survivors.is_empty() {
        let more = store.load(user, &survivors).await?;
        // The head of the first read stays the commit's base: a move in between fails the commit.
        loaded.entities.extend(more.entities);
    }
    Ok(loaded)
}
