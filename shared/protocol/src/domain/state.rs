//! A user's stored state as the conflict rules see it: the head of the change log, entity
//! keys, current states, and the writes a resolution produces. Free of any database types.

use crate::domain::EntityKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where one kind of entity last changed, for `/sync/check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindHead {
    /// Sequence of the kind's latest change.
    pub seq: u64,
    /// When it was committed.
    pub at: DateTime<Utc>,
}

/// The per-user head: where the change log stands. One small item, so
/// "anything new?" costs one read whatever the history's size.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Head {
    /// Sequence number of the latest change (0: none yet).
    pub seq: u64,
    /// Commit time of the latest change; commit times never decrease.
    pub last_at: Option<DateTime<Utc>>,
    /// Latest change per entity kind (by [`EntityKind::as_str`]).
    #[serde(default)]
    pub kinds: BTreeMap<String, KindHead>,
    /// Current training-plan version, once a plan exists.
    #[serde(default)]
    pub plan_version: Option<u64>,
}

/// Identifies one entity of a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey {
    /// Its kind.
    pub kind: EntityKind,
    /// Its id within the kind (UUID, date, setting key, `current`).
    pub id: String,
}

impl EntityKey {
    /// A key for `kind` and `id`.
    pub fn new(kind: EntityKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }

    /// Parses the `kind#id` form [`Display`](std::fmt::Display) writes.
    pub fn parse(s: &str) -> Option<Self> {
        let (kind, id) = s.split_once('#')?;
        Some(Self::new(EntityKind::parse(kind)?, id))
    }
}

impl std::fmt::Display for EntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.kind.as_str(), self.id)
    }
}

/// An entity's stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntity {
    /// Which entity.
    pub key: EntityKey,
    /// The change that last wrote it.
    pub seq: u64,
    /// When.
    pub updated_at: DateTime<Utc>,
    /// Its data, as the wire shows it.
    pub data: Value,
}

/// The head and the entity states a store load returns (`ChangeLogStore::load` on the server).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The head at read time.
    pub head: Head,
    /// Entities that exist, by key.
    pub entities: BTreeMap<EntityKey, StoredEntity>,
}

/// A new state for one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityWrite {
    /// Which entity.
    pub key: EntityKey,
    /// Its new data.
    pub data: Value,
}
