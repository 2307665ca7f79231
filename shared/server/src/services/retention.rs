//! Change-log retention: history is kept until every active device has
//! acknowledged it (the cursor each device last quoted to `/sync/complete`);
//! a device silent for [`INACTIVE_DEVICE_DAYS`] stops holding history back
//! and, when it returns, re-baselines with a full snapshot (`resync_required`).
//! A logged-out (revoked) device never holds history back: if it logs in
//! again it starts from a snapshot.
//!
//! Trimming keeps the entry at the floor itself, so a device whose cursor is
//! just below the floor still continues gap-free.

use chrono::{DateTime, Duration, Utc};

use crate::store::{DeviceRecord, StoreError, SyncStore};
use trainsync_protocol::cursor::Cursor;
use trainsync_protocol::domain::UserId;

/// Days without any call after which a device no longer holds history back.
pub const INACTIVE_DEVICE_DAYS: i64 = 30;

/// Most change-log entries one trim removes (four `BatchWriteItem` calls), so
/// a completion's cost stays bounded; the rest goes on later completions.
pub const TRIM_BATCH: u64 = 100;

/// The floor history may be trimmed to: the lowest position acknowledged by
/// a device seen within [`INACTIVE_DEVICE_DAYS`], each clamped to what that
/// device was delivered (a device that never acknowledged holds everything).
/// `None` when no device is active.
pub fn trim_target(devices: &[DeviceRecord], user: &UserId, now: DateTime<Utc>) -> Option<u64> {
    let active_since = now - Duration::days(INACTIVE_DEVICE_DAYS);
    devices
        .iter()
        .filter(|d| d.last_seen_at >= active_since && d.revoked_at.is_none())
        .map(|d| {
            let acknowledged = d
                .acknowledged_cursor
                .as_deref()
                .and_then(|c| Cursor::decode(c, user.as_str()).ok())
                .map_or(0, |c| c.covered_seq());
            // A device cannot have seen more than it was delivered: a forged
            // acknowledgement never moves the floor past what it downloaded.
            acknowledged.min(d.last_cursor_seq.unwrap_or(0))
        })
        .min()
}

/// Trims the user's change log as far as [`trim_target`] allows (at most
/// [`TRIM_BATCH`] entries); returns the floor in force.
pub async fn trim(
    store: &dyn SyncStore,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let devices = store.devices(user).await?;
    match trim_target(&devices, user, now) {
        Some(target) if target > 1 => store.trim_log(user, target, TRIM_BATCH).await,
        _ => store.log_floor(user).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn device(id: &str, last_seen_days_ago: i64, acknowledged: Option<u64>) -> DeviceRecord {
        let now = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
        let seen = now - Duration::days(last_seen_days_ago);
        DeviceRecord {
            device_id: id.into(),
            first_seen_at: seen,
            last_seen_at: seen,
            last_sync_at: None,
            last_cursor: None,
            // Delivered what it acknowledges, as an honest device has.
            last_cursor_seq: acknowledged,
            acknowledged_cursor: acknowledged.map(|seq| Cursor::Log { seq }.encode("u")),
            ..DeviceRecord::default()
        }
    }

    #[test]
    fn the_slowest_active_device_holds_history_and_stale_ones_do_not() {
        let user = UserId::parse("u").unwrap();
        let now = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
        let devices = [device("phone", 0, Some(40)), device("tablet", 3, Some(12))];
        assert_eq!(trim_target(&devices, &user, now), Some(12));
        let with_stale = [device("phone", 0, Some(40)), device("old", 31, Some(2))];
        assert_eq!(trim_target(&with_stale, &user, now), Some(40));
        let never_acknowledged = [device("phone", 0, Some(40)), device("new", 0, None)];
        assert_eq!(trim_target(&never_acknowledged, &user, now), Some(0));
        assert_eq!(trim_target(&[device("old", 60, Some(9))], &user, now), None);
        let logged_out = DeviceRecord {
            revoked_at: Some(now),
            ..device("tablet", 0, Some(3))
        };
        assert_eq!(
            trim_target(&[device("phone", 0, Some(40)), logged_out], &user, now),
            Some(40)
        );
        // An acknowledgement past what the device was delivered (forged) counts
        // only as far as the delivery went.
        let forged = DeviceRecord {
            last_cursor_seq: Some(7),
            ..device("phone", 0, Some(u64::MAX))
        };
        assert_eq!(trim_target(&[forged], &user, now), Some(7));
    }
}
