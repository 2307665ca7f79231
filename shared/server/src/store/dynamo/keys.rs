//! Every key and key prefix of the single table, built in one place.

use chrono::{DateTime, SecondsFormat, Utc};

use super::records::{Item, s};
use crate::store::EntityKey;
use trainsync_protocol::domain::{DeviceId, EntityKind, SyncId, SyncRequestId, UserId};

/// The key (`pk`, `sk`) of one item.
pub fn key_of(pk: &str, sk: impl Into<String>) -> Item {
    Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// Sort key of the per-user head item.
pub const HEAD_SK: &str = "HEAD";
/// Sort key of the change log's retention floor.
pub const LOG_FLOOR_SK: &str = "LOGFLOOR";
/// Prefix of change-log sort keys.
pub const CHANGE_PREFIX: &str = "CHG#";
/// Prefix of entity-state sort keys.
pub const ENTITY_PREFIX: &str = "ENT#";
/// Prefix of session sort keys.
pub const SESSION_PREFIX: &str = "SES#";
/// Prefix of device sort keys.
pub const DEVICE_PREFIX: &str = "DEV#";
/// Prefix of idempotency-record sort keys.
pub const REQUEST_PREFIX: &str = "IDEM#";
/// Prefix of change-log entries in `lsi1` (by commit time).
pub const CHANGE_AT_PREFIX: &str = "CHGAT#";
/// Prefix of activity states in `lsi1` (by start time: duplicate matching, training load).
pub const ACTIVITY_AT_PREFIX: &str = "ACT#";
/// Prefix of stored plan versions (plan diffs start from them).
pub const PLAN_VERSION_PREFIX: &str = "PLANV#";

/// The partition holding all of a user's items.
pub fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

/// The user a partition key belongs to (`None` for other partitions).
pub fn parse_user_pk(pk: &str) -> Option<UserId> {
    UserId::parse(pk.strip_prefix("USER#")?).ok()
}

/// A change-log entry's sort key; zero-padded so string order is number order.
pub fn change_sk(seq: u64) -> String {
    format!("{CHANGE_PREFIX}{seq:020}")
}

/// The sequence number in a change-log sort key.
pub fn parse_change_sk(sk: &str) -> Option<u64> {
    sk.strip_prefix(CHANGE_PREFIX)?.parse().ok()
}

/// Fixed-width UTC timestamp, so string order is time order.
pub fn sortable_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A change-log entry's `lsi1` sort key.
pub fn change_at_sk(at: DateTime<Utc>, seq: u64) -> String {
    format!("{CHANGE_AT_PREFIX}{}#{seq:020}", sortable_time(at))
}

/// An activity state's `lsi1` sort key: start time, then id.
pub fn activity_at_sk(started_at: DateTime<Utc>, id: &str) -> String {
    format!("{ACTIVITY_AT_PREFIX}{}#{id}", sortable_time(started_at))
}

/// The start time in an activity's `lsi1` sort key.
pub fn parse_activity_at_sk(sk: &str) -> Option<DateTime<Utc>> {
    let time = sk.strip_prefix(ACTIVITY_AT_PREFIX)?.split('#').next()?;
    DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A stored plan version's sort key.
pub fn plan_version_sk(version: u64) -> String {
    format!("{PLAN_VERSION_PREFIX}{version:020}")
}

/// An entity's sort key.
pub fn entity_sk(key: &EntityKey) -> String {
    format!("{ENTITY_PREFIX}{}#{}", key.kind.as_str(), key.id)
}

/// The entity key in an entity sort key.
pub fn parse_entity_sk(sk: &str) -> Option<EntityKey> {
    let (kind, id) = sk.strip_prefix(ENTITY_PREFIX)?.split_once('#')?;
    Some(EntityKey::new(EntityKind::parse(kind)?, id))
}

/// A session's sort key (UUID v7: sorts by opening time).
pub fn session_sk(sync_id: SyncId) -> String {
    format!("{SESSION_PREFIX}{sync_id}")
}

/// A device's sort key.
pub fn device_sk(device: &DeviceId) -> String {
    format!("{DEVICE_PREFIX}{device}")
}

/// The partition of a login (refresh-token family): refresh requests carry
/// no user, only the family id.
pub fn login_pk(family: uuid::Uuid) -> String {
    format!("LOGIN#{}", family.as_hyphenated())
}

/// The sort key of a login item.
pub const LOGIN_SK: &str = "LOGIN";

/// A push delivery record's sort key: one per alert and device.
pub fn delivery_sk(alert: uuid::Uuid, device: &str) -> String {
    format!("PUSH#{}#{device}", alert.as_hyphenated())
}

/// An idempotency record's sort key.
pub fn request_sk(key: SyncRequestId) -> String {
    format!("{REQUEST_PREFIX}{key}")
}

// ---- GPS tracks (PRD 7.1) ----------------------------------------------

/// Prefix of GPS-track sort keys: `TRK#<activity_id>#META` (the manifest) and
/// `TRK#<activity_id>#<generation>#<index>` (the chunks of one stored version).
pub const TRACK_PREFIX: &str = "TRK#";

/// A track manifest's sort key.
pub fn track_manifest_sk(activity_id: &str) -> String {
    format!("{TRACK_PREFIX}{activity_id}#META")
}

/// A track chunk's sort key; the index is 4 digits so string order is chunk order.
pub fn track_chunk_sk(activity_id: &str, generation: &str, index: u32) -> String {
    format!("{TRACK_PREFIX}{activity_id}#{generation}#{index:04}")
}

// ---------------------------------------------------------------------------
// Reference data (shared by all users; see `docs/reference-data.md`).
//
// - `REF#<shard>` (shard 0..REFERENCE_SHARDS): a full replica each;
//   - `CURRENT`: the current-version pointer;
//   - `SNAP#<version>#<chunk>`: the gzip'd snapshot in chunks.
// - `REF#CTL`: publication bookkeeping, never read by clients;
//   - `LATEST`: the newest version claimed by a publication;
//   - `PUB#<version>`: one publication's claim (content hash, state).
// ---------------------------------------------------------------------------

/// Partition of the reference-data publication bookkeeping.
pub const REFERENCE_CONTROL_PK: &str = "REF#CTL";
/// Sort key of the newest claimed version (in [`REFERENCE_CONTROL_PK`]).
pub const REFERENCE_LATEST_SK: &str = "LATEST";
/// Sort key of a shard's current-version pointer.
pub const REFERENCE_CURRENT_SK: &str = "CURRENT";

/// One replica partition of the reference data.
pub fn reference_shard_pk(shard: u32) -> String {
    format!("REF#{shard}")
}

/// A publication claim's sort key (in [`REFERENCE_CONTROL_PK`]).
pub fn reference_claim_sk(version: u64) -> String {
    format!("PUB#{version:020}")
}

/// The sort-key prefix of every chunk of snapshot `version`.
pub fn reference_chunk_prefix(version: u64) -> String {
    format!("SNAP#{version:020}#")
}

/// A snapshot chunk's sort key; zero-padded so string order is chunk order.
pub fn reference_chunk_sk(version: u64, chunk: u32) -> String {
    format!("{}{chunk:04}", reference_chunk_prefix(version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_round_trip_and_sort() {
        assert_eq!(parse_change_sk(&change_sk(42)), Some(42));
        assert!(change_sk(9) < change_sk(10));
        let key = EntityKey::new(EntityKind::DailyMetric, "2025-01-02");
        assert_eq!(parse_entity_sk(&entity_sk(&key)), Some(key));
        let early = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let late = early + chrono::Duration::microseconds(1);
        assert!(change_at_sk(early, 99) < change_at_sk(late, 1));
    }
}
