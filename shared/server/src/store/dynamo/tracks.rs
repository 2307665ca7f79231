//! [`TrackStore`] on DynamoDB.
//!
//! Item layout, all in the user's partition (`pk = USER#<user>`):
//!
//! - `sk = TRK#<activity_id>#META`: the manifest (`entity = "track"`): size,
//!   chunk count and size, SHA-256, and the `generation` the chunks are stored under.
//! - `sk = TRK#<activity_id>#<generation>#<index:04>`: chunk `index` of that
//!   version (`entity = "track_chunk"`), its bytes in the binary attribute `data`.
//!
//! Writes put the chunks of a fresh generation first and the manifest last,
//! conditional on the generation it replaces, then delete the replaced chunks.
//! Readers trust only the manifest, so they see either the old or the new
//! version, never a mix and never a half-written one.

use super::records::{ItemEntity, ItemKind};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_smithy_types::Blob;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DynamoStore;
use super::errors::store_error;
use super::keys::{key_of, track_chunk_sk, track_manifest_sk, user_pk};
use super::records::{Item, from_item, s, to_item};
use crate::store::tracks::{TrackInfo, TrackPart, TrackRange, resolve_range, track_sha256};
use crate::store::{StoreError, TrackStore, contention_backoff};
use trainsync_protocol::domain::UserId;
use trainsync_protocol::track::MAX_CHUNK_BYTES;

/// Most chunks one track may have (the index in the chunk key has 4 digits).
const MAX_TRACK_CHUNKS: usize = 10_000;
/// Attempts at swapping the manifest while other writers replace the same track.
const MANIFEST_ATTEMPTS: u32 = 5;
/// Manifest re-reads when a track is replaced while being read.
const READ_ATTEMPTS: u32 = 3;
/// The chunk attribute holding the bytes (`DATA` is a reserved word: use `#data`).
const DATA_ATTR: &str = "data";

/// The manifest item of a stored track.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrackManifestRecord {
    pk: String,
    sk: String,
    entity: ItemEntity,
    activity_id: String,
    generation: String,
    bytes: u64,
    chunks: u32,
    chunk_bytes: u64,
    sha256: String,
    stored_at: DateTime<Utc>,
}

impl TrackManifestRecord {
    fn info(&self) -> TrackInfo {
        TrackInfo {
            bytes: self.bytes,
            chunks: self.chunks,
            sha256: self.sha256.clone(),
        }
    }

    fn chunk_keys(&self) -> impl Iterator<Item = Item> + '_ {
        (0..self.chunks).map(|i| {
            key_of(
                &self.pk,
                track_chunk_sk(&self.activity_id, &self.generation, i),
            )
        })
    }
}

/// Keys are built by splicing the id in: refuse ids that could forge another key.
fn check_activity_id(activity_id: &str) -> Result<(), StoreError> {
    if activity_id.is_empty() || activity_id.contains('#') {
        return Err(StoreError::Other(format!(
            "invalid activity id for a track: {activity_id:?}"
        )));
    }
    Ok(())
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

#[async_trait]
impl TrackStore for DynamoStore {
    #[tracing::instrument(skip(self, user, encoded), fields(user_id = %user, bytes = encoded.len()))]
    async fn put_track(
        &self,
        user: &UserId,
        activity_id: &str,
        encoded: &[u8],
        now: DateTime<Utc>,
    ) -> Result<TrackInfo, StoreError> {
        check_activity_id(activity_id)?;
        let pk = user_pk(user);
        let pieces: Vec<&[u8]> =
            trainsync_protocol::track::chunks(encoded, MAX_CHUNK_BYTES).collect();
        if pieces.len() > MAX_TRACK_CHUNKS {
            return Err(StoreError::Other(format!(
                "track of {} bytes exceeds {MAX_TRACK_CHUNKS} chunks",
                encoded.len()
            )));
        }
        let info = TrackInfo {
            bytes: encoded.len() as u64,
            chunks: pieces.len() as u32,
            sha256: track_sha256(encoded),
        };
        let mut current = self.manifest(&pk, activity_id).await?;
        if current.as_ref().is_some_and(|m| m.info() == info) {
            return Ok(info);
        }
        let record = TrackManifestRecord {
            pk: pk.clone(),
            sk: track_manifest_sk(activity_id),
            entity: ItemKind::Track.into(),
            activity_id: activity_id.to_owned(),
            generation: Uuid::new_v4().simple().to_string(),
            bytes: info.bytes,
            chunks: info.chunks,
            chunk_bytes: MAX_CHUNK_BYTES as u64,
            sha256: info.sha256.clone(),
            stored_at: now,
        };

        // 1. The chunks, under a generation no manifest names yet: invisible to readers.
        let mut puts = Vec::with_capacity(pieces.len());
        for (index, piece) in pieces.iter().enumerate() {
            let mut item = key_of(
                &pk,
                track_chunk_sk(activity_id, &record.generation, index as u32),
            );
            item.insert("entity".into(), s(ItemKind::TrackChunk.as_str()));
            item.insert(DATA_ATTR.into(), AttributeValue::B(Blob::new(*piece)));
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(build_error)?;
            puts.push((
                piece.len(),
                WriteRequest::builder().put_request(put).build(),
            ));
        }
        if let Err(e) = self.write_all(puts).await {
            self.delete_chunks_quietly(&record).await;
            return Err(e);
        }

        // 2. The manifest, replacing exactly the version last read.
        let mut replaced = None;
        for attempt in 0..MANIFEST_ATTEMPTS {
            let expected = current.as_ref().map(|m| m.generation.as_str());
            if self.put_manifest(&record, expected).await? {
                replaced = Some(current.take());
                break;
            }
            // Another writer swapped it first: replace what it wrote, unless it is this very track.
            current = self.manifest(&pk, activity_id).await?;
            if current.as_ref().is_some_and(|m| m.info() == info) {
                self.delete_chunks_quietly(&record).await;
                return Ok(info);
            }
            contention_backoff(attempt).await;
        }
        let Some(replaced) = replaced else {
            self.delete_chunks_quietly(&record).await;
            return Err(StoreError::Contention);
        };

        // 3. The replaced version's chunks: no manifest names them any more.
        if let Some(old) = replaced {
            self.delete_chunks_quietly(&old).await;
        }
        Ok(info)
    }

    #[tracing::instrument(skip(self, user), fields(user_id = %user))]
    async fn track_info(
        &self,
        user: &UserId,
        activity_id: &str,
    ) -> Result<Option<TrackInfo>, StoreError> {
        if check_activity_id(activity_id).is_err() {
            return Ok(None);
        }
        Ok(self
            .manifest(&user_pk(user), activity_id)
            .await?
            .map(|m| m.info()))
    }

    #[tracing::instrument(skip(self, user), fields(user_id = %user))]
    async fn track_range(
        &self,
        user: &UserId,
        activity_id: &str,
        range: TrackRange,
    ) -> Result<Option<TrackPart>, StoreError> {
        if check_activity_id(activity_id).is_err() {
            return Ok(None);
        }
        let pk = user_pk(user);
        let mut manifest = self.manifest(&pk, activity_id).await?;
        for _ in 0..READ_ATTEMPTS {
            let Some(m) = manifest else {
                return Ok(None);
            };
            let info = m.info();
            let Some(wanted) = resolve_range(range, m.bytes) else {
                return Ok(Some(TrackPart {
                    info,
                    range: None,
                    bytes: Vec::new(),
                }));
            };
            if wanted.is_empty() {
                return Ok(Some(TrackPart {
                    info,
                    range: Some(wanted),
                    bytes: Vec::new(),
                }));
            }
            if m.chunk_bytes == 0 {
                return Err(StoreError::Corrupt(format!(
                    "track manifest {} has chunk_bytes 0",
                    m.sk
                )));
            }
            let first = wanted.start / m.chunk_bytes;
            let last = (wanted.end - 1) / m.chunk_bytes;
            if let Some(joined) = self.read_chunks(&m, first as u32, last as u32).await? {
                let offset =
                    usize::try_from(wanted.start - first * m.chunk_bytes).map_err(build_error)?;
                let len = usize::try_from(wanted.end - wanted.start).map_err(build_error)?;
                let bytes = joined
                    .get(offset..offset + len)
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("track {} is shorter than its manifest", m.sk))
                    })?
                    .to_vec();
                if wanted.start == 0 && wanted.end == m.bytes && track_sha256(&bytes) != m.sha256 {
                    return Err(StoreError::Corrupt(format!(
                        "track {} does not match its sha256",
                        m.sk
                    )));
                }
                return Ok(Some(TrackPart {
                    info,
                    range: Some(wanted),
                    bytes,
                }));
            }
            // Chunks missing: the track was replaced while being read, or is corrupt.
            let again = self.manifest(&pk, activity_id).await?;
            if again.as_ref().map(|a| &a.generation) == Some(&m.generation) {
                return Err(StoreError::Corrupt(format!(
                    "track {} is missing chunks",
                    m.sk
                )));
            }
            manifest = again;
        }
        Err(StoreError::Unavailable(
            "track replaced repeatedly while being read".into(),
        ))
    }
}

impl DynamoStore {
    async fn manifest(
        &self,
        pk: &str,
        activity_id: &str,
    ) -> Result<Option<TrackManifestRecord>, StoreError> {
        self.get_item(pk, &track_manifest_sk(activity_id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Puts `record` if the stored manifest is still at generation `expected`
    /// (absent for `None`); `false` if another writer changed it.
    async fn put_manifest(
        &self,
        record: &TrackManifestRecord,
        expected: Option<&str>,
    ) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)?));
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(generation) => put
                .condition_expression("generation = :generation")
                .expression_attribute_values(":generation", s(generation)),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(err) => Err(store_error(err)),
        }
    }

    /// Chunks `first..=last` of the version `m` names, concatenated; `None` if any is missing.
    async fn read_chunks(
        &self,
        m: &TrackManifestRecord,
        first: u32,
        last: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut joined = Vec::new();
        let mut next = first;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
                .expression_attribute_values(":pk", s(&m.pk))
                .expression_attribute_values(
                    ":first",
                    s(track_chunk_sk(&m.activity_id, &m.generation, first)),
                )
                .expression_attribute_values(
                    ":last",
                    s(track_chunk_sk(&m.activity_id, &m.generation, last)),
                )
                .projection_expression("sk, #data")
                .expression_attribute_names("#data", DATA_ATTR)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in out.items.unwrap_or_default() {
                let expected = track_chunk_sk(&m.activity_id, &m.generation, next);
                if item.get("sk").and_then(|v| v.as_s().ok()) != Some(&expected) {
                    return Ok(None);
                }
                let data = item
                    .get(DATA_ATTR)
                    .and_then(|v| v.as_b().ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("chunk {expected} has no data")))?;
                joined.extend_from_slice(data.as_ref());
                next += 1;
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok((next == last + 1).then_some(joined));
            }
        }
    }

    /// Deletes the chunks of the version `m` names. Best effort: a left-over
    /// chunk is never read (no manifest names it), it only takes space.
    async fn delete_chunks_quietly(&self, m: &TrackManifestRecord) {
        let mut deletes = Vec::new();
        for key in m.chunk_keys() {
            match DeleteRequest::builder().set_key(Some(key)).build() {
                Ok(delete) => {
                    deletes.push((0, WriteRequest::builder().delete_request(delete).build()))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build a track chunk delete");
                    return;
                }
            }
        }
        if let Err(error) = self.write_all(deletes).await {
            tracing::warn!(%error, sk = %m.sk, generation = %m.generation, "track chunks left behind");
        }
    }
}
