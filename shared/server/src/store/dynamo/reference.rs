//! [`ReferenceStore`] on DynamoDB.
//!
//! Layout (keys in `keys.rs`): every shard partition `REF#<shard>` holds a
//! full replica, the snapshot as gzip'd JSON in `SNAP#<version>#<chunk>`
//! items of at most [`CHUNK_BYTES`] and a `CURRENT` pointer. `REF#CTL` holds
//! the publication bookkeeping: `LATEST` (newest version claimed) and one
//! `PUB#<version>` claim per publication.
//!
//! Publishing `v`:
//! 1. one transaction claims `v`: it puts `PUB#v` if absent and raises
//!    `LATEST` to `v` if below. A claim that exists with the same content
//!    hash is a retry; with another hash, a conflict; `LATEST >= v`, stale;
//! 2. batch-writes every chunk to every shard;
//! 3. one transaction moves all `CURRENT` pointers to `v` (each only if not
//!    newer) and marks the claim done, so readers see every shard switch at
//!    once, and only once every chunk is in place.
//!
//! A publication interrupted before step 3 is finished by publishing the
//! same snapshot again. Readers check a reassembled snapshot against its
//! SHA-256 and treat anything incomplete as absent.

use super::records::{ItemEntity, ItemKind};
use std::fmt;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, Put, PutRequest, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update, WriteRequest,
};
use chrono::{DateTime, Utc};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::compression::gzip;
use crate::store::{ReferenceStore, StoreError};
use trainsync_protocol::digest::sha256_hex;
use trainsync_protocol::reference::{
    MAX_SNAPSHOT_JSON_BYTES, PublishOutcome, REFERENCE_SHARDS, ReferenceSnapshot,
};
use trainsync_protocol::validate::{FieldError, FieldErrorCode, Validate};

use super::DynamoStore;
use super::errors::store_error;
use super::keys::*;
use super::records::{Item, from_item, n, s, to_item};

/// Largest chunk of gzip'd snapshot per item: with its other attributes
/// (about 150 bytes) well under DynamoDB's 400 KB item limit.
pub const CHUNK_BYTES: usize = 350 * 1024;

/// Bytes stored as a DynamoDB binary (`B`) attribute.
#[derive(Clone, PartialEq, Eq)]
struct Bytes(Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("binary data")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

/// One piece of a gzip'd snapshot on one shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChunkRecord {
    pk: String,
    sk: String,
    entity: ItemEntity,
    version: u64,
    chunk: u32,
    chunks: u32,
    blob_sha256: String,
    data: Bytes,
}

/// A shard's current-version pointer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CurrentRecord {
    pk: String,
    sk: String,
    entity: ItemEntity,
    version: u64,
    published_at: DateTime<Utc>,
    chunks: u32,
    bytes: u64,
}

/// Whether a publication has moved the pointers yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ClaimState {
    Writing,
    Done,
}

/// One publication's claim on its version.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClaimRecord {
    pk: String,
    sk: String,
    entity: ItemEntity,
    version: u64,
    content_sha256: String,
    blob_sha256: String,
    chunks: u32,
    bytes: u64,
    entries: u64,
    published_at: DateTime<Utc>,
    claimed_at: DateTime<Utc>,
    state: ClaimState,
}

/// The newest version claimed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LatestRecord {
    pk: String,
    sk: String,
    entity: ItemEntity,
    version: u64,
}

/// A validated snapshot in its stored form.
struct Prepared {
    version: u64,
    published_at: DateTime<Utc>,
    /// The snapshot as gzip'd compact JSON: exactly what is served.
    gzip: Vec<u8>,
    /// Hex SHA-256 of the entries' JSON: what "the same content" means.
    content_sha256: String,
    /// Hex SHA-256 of `gzip`, which readers check a reassembled blob against.
    blob_sha256: String,
    entries: usize,
}

impl Prepared {
    fn new(snapshot: &ReferenceSnapshot, now: DateTime<Utc>) -> Result<Self, FieldError> {
        snapshot.validate(now)?;
        let encode_error = |e: serde_json::Error| {
            FieldError::new(
                "",
                FieldErrorCode::InvalidValue,
                format!("cannot encode: {e}"),
            )
        };
        let json = serde_json::to_vec(snapshot).map_err(encode_error)?;
        let content = serde_json::to_vec(&snapshot.entries).map_err(encode_error)?;
        let gzip = gzip(&json);
        // The JSON cap already bounds this; checked so a change there cannot break serving.
        if gzip.len() > MAX_SNAPSHOT_JSON_BYTES {
            return Err(FieldError::new(
                "entries",
                FieldErrorCode::TooLong,
                format!(
                    "the gzip'd snapshot is {} bytes, more than {MAX_SNAPSHOT_JSON_BYTES}",
                    gzip.len()
                ),
            ));
        }
        Ok(Self {
            version: snapshot.version,
            published_at: snapshot.published_at,
            content_sha256: sha256_hex(&content),
            blob_sha256: sha256_hex(&gzip),
            gzip,
            entries: snapshot.entries.len(),
        })
    }

    fn chunks(&self) -> std::slice::Chunks<'_, u8> {
        self.gzip.chunks(CHUNK_BYTES)
    }

    fn chunk_count(&self) -> u32 {
        self.gzip.len().div_ceil(CHUNK_BYTES) as u32
    }
}

/// How claiming a version went.
enum Claim {
    /// Newly claimed: write everything.
    New,
    /// Claimed before with the same content, not finished: write everything again.
    Resume,
    /// Claimed before with the same content and finished.
    Done,
    /// Claimed before with other content.
    Conflict,
    /// A version at least this new was claimed before.
    Stale(u64),
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

/// The old item a cancelled transaction action reports (`ALL_OLD`).
fn old_item(reason: Option<&CancellationReason>) -> Option<Item> {
    reason
        .filter(|r| r.code.as_deref() == Some("ConditionalCheckFailed"))
        .and_then(|r| r.item.clone())
}

#[async_trait]
impl ReferenceStore for DynamoStore {
    #[tracing::instrument(skip(self, snapshot, now), fields(version = snapshot.version))]
    async fn publish_reference(
        &self,
        snapshot: &ReferenceSnapshot,
        now: DateTime<Utc>,
    ) -> Result<PublishOutcome, StoreError> {
        let prepared = match Prepared::new(snapshot, now) {
            Ok(p) => p,
            Err(e) => return Ok(PublishOutcome::Invalid(e)),
        };
        let version = prepared.version;
        let resumed = match self.claim_reference(&prepared, now).await? {
            Claim::New => false,
            Claim::Resume => true,
            Claim::Done => return Ok(PublishOutcome::AlreadyPublished { version }),
            Claim::Conflict => return Ok(PublishOutcome::VersionConflict { version }),
            Claim::Stale(latest) => return Ok(PublishOutcome::Stale { version, latest }),
        };
        self.write_reference_chunks(&prepared).await?;
        self.point_shards_at(&prepared).await?;
        tracing::info!(
            bytes = prepared.gzip.len(),
            chunks = prepared.chunk_count(),
            entries = prepared.entries,
            resumed,
            "reference data published"
        );
        Ok(if resumed {
            PublishOutcome::AlreadyPublished { version }
        } else {
            PublishOutcome::Published { version }
        })
    }

    async fn reference_current(&self, shard: u32) -> Result<Option<u64>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(
                &reference_shard_pk(shard % REFERENCE_SHARDS),
                REFERENCE_CURRENT_SK,
            )))
            .consistent_read(false)
            .send()
            .await
            .map_err(store_error)?;
        match out.item {
            Some(item) => Ok(Some(from_item::<CurrentRecord>(item)?.version)),
            None => Ok(None),
        }
    }

    async fn reference_snapshot(
        &self,
        version: u64,
        shard: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let shard = shard % REFERENCE_SHARDS;
        // Eventually consistent first (half the cost); a replica that has not
        // caught up with a fresh publication gets one strongly consistent retry.
        for consistent in [false, true] {
            let items = self.query_chunks(version, shard, consistent).await?;
            if let Some(blob) = assemble(version, shard, items)? {
                return Ok(Some(blob));
            }
        }
        Ok(None)
    }
}

/// Reassembles a snapshot from its chunk items (in sort-key order), or
/// `None` when they are not a complete set matching their checksum.
fn assemble(version: u64, shard: u32, items: Vec<Item>) -> Result<Option<Vec<u8>>, StoreError> {
    let mut records = items
        .into_iter()
        .map(from_item::<ChunkRecord>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let Some(first) = records.next() else {
        return Ok(None);
    };
    let (count, sha) = (first.chunks, first.blob_sha256.clone());
    let mut blob = first.data.0;
    let mut next = 1;
    if first.chunk != 0 {
        next = u32::MAX;
    }
    for record in records {
        if next >= count {
            // Leftovers of an abandoned attempt with more chunks; not part of this blob.
            break;
        }
        if record.chunk != next || record.chunks != count || record.blob_sha256 != sha {
            next = u32::MAX;
            break;
        }
        blob.extend_from_slice(&record.data.0);
        next += 1;
    }
    if next != count || sha256_hex(&blob) != sha {
        tracing::warn!(
            version,
            shard,
            "reference snapshot incomplete or inconsistent on this shard"
        );
        return Ok(None);
    }
    Ok(Some(blob))
}

impl DynamoStore {
    /// Step 1: claims `prepared.version` for this publication.
    async fn claim_reference(
        &self,
        prepared: &Prepared,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let claim = ClaimRecord {
            pk: REFERENCE_CONTROL_PK.into(),
            sk: reference_claim_sk(prepared.version),
            entity: ItemKind::ReferenceClaim.into(),
            version: prepared.version,
            content_sha256: prepared.content_sha256.clone(),
            blob_sha256: prepared.blob_sha256.clone(),
            chunks: prepared.chunk_count(),
            bytes: prepared.gzip.len() as u64,
            entries: prepared.entries as u64,
            published_at: prepared.published_at,
            claimed_at: now,
            state: ClaimState::Writing,
        };
        let put_claim = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&claim)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let raise_latest = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(REFERENCE_CONTROL_PK, REFERENCE_LATEST_SK)))
            .update_expression("SET version = :v, entity = :entity")
            .condition_expression("attribute_not_exists(pk) OR version < :v")
            .expression_attribute_values(":v", n(prepared.version))
            .expression_attribute_values(":entity", s(ItemKind::ReferenceLatest.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_claim).build())
            .transact_items(TransactWriteItem::builder().update(raise_latest).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Claim::New),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error()
        else {
            return Err(store_error(err));
        };
        let reasons = e.cancellation_reasons();
        if let Some(item) = old_item(reasons.first()) {
            let existing: ClaimRecord = from_item(item)?;
            return Ok(if existing.content_sha256 != prepared.content_sha256 {
                Claim::Conflict
            } else if existing.state == ClaimState::Done {
                Claim::Done
            } else {
                Claim::Resume
            });
        }
        if let Some(item) = old_item(reasons.get(1)) {
            let latest: LatestRecord = from_item(item)?;
            return Ok(Claim::Stale(latest.version));
        }
        let codes: Vec<_> = reasons.iter().filter_map(|r| r.code.clone()).collect();
        Err(StoreError::Unavailable(format!(
            "reference claim cancelled: {codes:?}"
        )))
    }

    /// Step 2: every chunk to every shard, in batches.
    async fn write_reference_chunks(&self, prepared: &Prepared) -> Result<(), StoreError> {
        let chunks = prepared.chunk_count();
        let mut writes: Vec<(usize, WriteRequest)> = Vec::new();
        // Chunk-major, so each batch spreads its write units over all shards' partitions.
        for (i, data) in prepared.chunks().enumerate() {
            for shard in 0..REFERENCE_SHARDS {
                let record = ChunkRecord {
                    pk: reference_shard_pk(shard),
                    sk: reference_chunk_sk(prepared.version, i as u32),
                    entity: ItemKind::ReferenceChunk.into(),
                    version: prepared.version,
                    chunk: i as u32,
                    chunks,
                    blob_sha256: prepared.blob_sha256.clone(),
                    data: Bytes(data.to_vec()),
                };
                let put = PutRequest::builder()
                    .set_item(Some(to_item(&record)?))
                    .build()
                    .map_err(build_error)?;
                writes.push((data.len(), WriteRequest::builder().put_request(put).build()));
            }
        }
        self.write_all(writes).await?;
        Ok(())
    }

    /// Step 3: all shards' pointers at once, and the claim marked done.
    async fn point_shards_at(&self, prepared: &Prepared) -> Result<(), StoreError> {
        let claim_key = key_of(REFERENCE_CONTROL_PK, reference_claim_sk(prepared.version));
        let mark_done = Update::builder()
            .table_name(&self.table)
            .set_key(Some(claim_key.clone()))
            .update_expression("SET #state = :done")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s("done"))
            .build()
            .map_err(build_error)?;
        let mut actions = Vec::new();
        for shard in 0..REFERENCE_SHARDS {
            let record = CurrentRecord {
                pk: reference_shard_pk(shard),
                sk: REFERENCE_CURRENT_SK.into(),
                entity: ItemKind::ReferenceCurrent.into(),
                version: prepared.version,
                published_at: prepared.published_at,
                chunks: prepared.chunk_count(),
                bytes: prepared.gzip.len() as u64,
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(&record)?))
                .condition_expression("attribute_not_exists(pk) OR version <= :v")
                .expression_attribute_values(":v", n(prepared.version))
                .build()
                .map_err(build_error)?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        actions.push(TransactWriteItem::builder().update(mark_done).build());
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let superseded = matches!(
            err.as_service_error(),
            Some(TransactWriteItemsError::TransactionCanceledException(e))
                if e.cancellation_reasons().iter().any(|r| r.code.as_deref() == Some("ConditionalCheckFailed"))
        );
        if !superseded {
            return Err(store_error(err));
        }
        // A newer version finished first and stays current; this one is stored all the same.
        tracing::info!(
            version = prepared.version,
            "a newer reference version is already current"
        );
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(claim_key))
            .update_expression("SET #state = :done")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s("done"))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Every chunk item of `version` on `shard`, in chunk order.
    async fn query_chunks(
        &self,
        version: u64,
        shard: u32,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let query = self
            .prefix_query(&reference_shard_pk(shard), &reference_chunk_prefix(version))
            .consistent_read(consistent);
        self.query_all(query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn chunk_items(blob: &[u8], size: usize) -> Vec<Item> {
        let sha = sha256_hex(blob);
        let count = blob.len().div_ceil(size) as u32;
        blob.chunks(size)
            .enumerate()
            .map(|(i, data)| {
                to_item(&ChunkRecord {
                    pk: reference_shard_pk(0),
                    sk: reference_chunk_sk(7, i as u32),
                    entity: ItemKind::ReferenceChunk.into(),
                    version: 7,
                    chunk: i as u32,
                    chunks: count,
                    blob_sha256: sha.clone(),
                    data: Bytes(data.to_vec()),
                })
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn chunks_are_binary_and_reassemble() {
        let blob: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let items = chunk_items(&blob, 3000);
        assert!(matches!(items[0].get("data"), Some(AttributeValue::B(_))));
        assert_eq!(assemble(7, 0, items).unwrap(), Some(blob));
    }

    #[test]
    fn incomplete_or_mixed_sets_are_absent() {
        let blob: Vec<u8> = (0..10_000u32).map(|i| (i % 256) as u8).collect();
        let mut missing = chunk_items(&blob, 3000);
        missing.remove(2);
        assert_eq!(assemble(7, 0, missing).unwrap(), None);
        let mut mixed = chunk_items(&blob, 3000);
        mixed[1] = chunk_items(&[1, 2, 3], 3000).remove(0);
        assert_eq!(assemble(7, 0, mixed).unwrap(), None);
        assert_eq!(assemble(7, 0, Vec::new()).unwrap(), None);
        // Leftover chunks of a longer, abandoned attempt are ignored.
        let mut longer = chunk_items(&blob, 5000);
        longer.extend(chunk_items(&[0; 20_000], 5000).into_iter().skip(2));
        assert_eq!(assemble(7, 0, longer).unwrap(), Some(blob));
    }

    #[test]
    fn chunk_items_fit_dynamodb() {
        let record = ChunkRecord {
            pk: reference_shard_pk(REFERENCE_SHARDS - 1),
            sk: reference_chunk_sk(u64::MAX, 9999),
            entity: ItemKind::ReferenceChunk.into(),
            version: u64::MAX,
            chunk: 9999,
            chunks: 9999,
            blob_sha256: "f".repeat(64),
            data: Bytes(vec![0; CHUNK_BYTES]),
        };
        let item = to_item(&record).unwrap();
        let size: usize = item
            .iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        AttributeValue::S(s) => s.len(),
                        AttributeValue::N(n) => n.len(),
                        AttributeValue::B(b) => b.as_ref().len(),
                        _ => 0,
                    }
            })
            .sum();
        assert!(size < 400 * 1024 - 1024, "{size}");
    }
}
