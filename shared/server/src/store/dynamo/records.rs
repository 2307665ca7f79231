//! Item shapes of the single table, mapped with serde_dynamo, and the
//! helpers that turn values into attributes and items back into values. Kept
//! apart from the storage types so the table layout can change without
//! touching callers.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{EntityKey, KindHead, SessionState, StoreError, StoredEntity};
use trainsync_protocol::domain::EntityKind;

/// One item (or key) as the SDK reads and writes it.
pub type Item = HashMap<String, AttributeValue>;

/// `value` as an item.
pub fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode item: {e}")))
}

/// An item read back as `T`; an item of another shape is corrupt.
pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A string attribute.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute.
pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The `entity` attribute every item but a device's carries: what the item
/// is. Entity-state items carry their kind's name (`activity`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ItemEntity {
    /// The current state of one of the user's entities.
    State(EntityKind),
    /// Any other item.
    Item(ItemKind),
}

/// The items that are not entity states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// The per-user head.
    Head,
    /// A change-log entry (the stream filter keys on it).
    Change,
    /// The change log's retention floor.
    LogFloor,
    /// A stored plan version (the base of plan diffs).
    PlanVersion,
    /// An idempotency record.
    Request,
    /// A sync session.
    Session,
    /// A refresh-token login.
    Login,
    /// A push-delivery ledger entry.
    Push,
    /// A GPS track's manifest.
    Track,
    /// A GPS track's chunk.
    TrackChunk,
    /// A reference-data snapshot's chunk.
    ReferenceChunk,
    /// A shard's "current reference version" pointer.
    ReferenceCurrent,
    /// A claim on publishing a reference version.
    ReferenceClaim,
    /// The newest reference version being published.
    ReferenceLatest,
}

impl ItemKind {
    /// The attribute's value, as serde writes it.
    pub fn as_str(self) -> &'static str {
        trainsync_protocol::names::wire_name(&self).expect("a unit variant has a wire name")
    }
}

impl From<ItemKind> for ItemEntity {
    fn from(kind: ItemKind) -> Self {
        ItemEntity::Item(kind)
    }
}

/// The per-user head item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadRecord {
    pub pk: String,
    pub sk: String,
    pub entity: ItemEntity,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub kinds: BTreeMap<String, KindHead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_version: Option<u64>,
}

/// The change log's retention floor: entries below `floor` are trimmed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogFloorRecord {
    pub pk: String,
    pub sk: String,
    pub entity: ItemEntity,
    pub floor: u64,
}

/// A change-log item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub pk: String,
    pub sk: String,
    pub lsi1sk: String,
    pub entity: ItemEntity,
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: EntityKind,
    pub id: String,
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// An entity-state item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntityRecord {
    pub pk: String,
    pub sk: String,
    /// Activities only (sparse index): `ACT#<started_at>#<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsi1sk: Option<String>,
    pub entity: ItemEntity,
    pub kind: EntityKind,
    pub id: String,
    pub seq: u64,
    pub updated_at: DateTime<Utc>,
    pub data: Value,
}

/// The entity state an entity item holds.
pub fn entity_from(record: EntityRecord) -> StoredEntity {
    StoredEntity {
        key: EntityKey::new(record.kind, record.id),
        seq: record.seq,
        updated_at: record.updated_at,
        data: record.data,
    }
}

/// A stored plan version (kept for plan diffs; expires with `ttl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanVersionRecord {
    pub pk: String,
    pub sk: String,
    pub entity: ItemEntity,
    pub version: u64,
    pub plan: Value,
    pub ttl: i64,
}

/// A session item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub pk: String,
    pub sk: String,
    pub entity: ItemEntity,
    pub sync_id: String,
    pub device_id: String,
    pub opened_at: DateTime<Utc>,
    pub ttl: i64,
    pub state: SessionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub uploads: u32,
    #[serde(default)]
    pub conflicts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_by_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_by_hash: Option<String>,
}

/// Status of an idempotency record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestStatus {
    /// Claimed, being processed.
    InProgress,
    /// Done; `response` holds the reply.
    Completed,
}

impl RequestStatus {
    /// The stored value, as serde writes it (for condition expressions).
    pub fn as_str(self) -> &'static str {
        trainsync_protocol::names::wire_name(&self).expect("a unit variant has a wire name")
    }
}

/// An idempotency item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    pub pk: String,
    pub sk: String,
    pub entity: ItemEntity,
    pub status: RequestStatus,
    pub body_hash: String,
    pub claim: String,
    pub in_progress_until: i64,
    pub ttl: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

/// A device item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceItem {
    pub pk: String,
    pub sk: String,
    #[serde(flatten)]
    pub device: crate::store::DeviceRecord,
}
