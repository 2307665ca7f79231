//! Every key and key prefix of the single table, built in one place.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{DeviceId, EntityKind, SyncId, SyncRequestId, UserId};
use crate::store::EntityKey;

/// Sort key of the per-user head item.
pub const HEAD_SK: &str = "HEAD";
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

/// The partition holding all of a user's items.
pub fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
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

/// An idempotency record's sort key.
pub fn request_sk(key: SyncRequestId) -> String {
    format!("{REQUEST_PREFIX}{key}")
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
