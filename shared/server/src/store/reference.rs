//! Storage of the shared reference data (common to all users, versioned).
//!
//! A published snapshot is kept gzip'd and replicated over
//! [`REFERENCE_SHARDS`](trainsync_protocol::reference::REFERENCE_SHARDS) partitions; each
//! read picks one at random ([`random_shard`](trainsync_protocol::reference::random_shard)),
//! so no single partition serves every device.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use trainsync_protocol::reference::{PublishOutcome, ReferenceSnapshot};

use super::StoreError;

/// Where versioned reference-data snapshots are kept.
#[async_trait]
pub trait ReferenceStore: Send + Sync {
    /// Validates `snapshot` (with `now` as the clock) and publishes it: stores
    /// it gzip'd on every shard, then moves every shard's "current" pointer to
    /// it at once. Versions increase strictly; publishing the same version with
    /// the same entries again is a no-op (and finishes an interrupted
    /// publication). This is what the ingest path calls.
    async fn publish_reference(
        &self,
        snapshot: &ReferenceSnapshot,
        now: DateTime<Utc>,
    ) -> Result<PublishOutcome, StoreError>;

    /// The current version as `shard` has it (eventually consistent), or
    /// `None` before the first publication.
    async fn reference_current(&self, shard: u32) -> Result<Option<u64>, StoreError>;

    /// Snapshot `version` as gzip'd JSON, read from `shard`, or `None` when no
    /// such version is (completely) stored.
    async fn reference_snapshot(
        &self,
        version: u64,
        shard: u32,
    ) -> Result<Option<Vec<u8>>, StoreError>;
}
