//! When to try again: exponential backoff with jitter after failures, and
//! when the next periodic sync is due (PRD 4.2). Pure functions; the app's
//! scheduler (BGTaskScheduler, WorkManager) does the waiting.

use chrono::{DateTime, Duration, Utc};

/// The first retry comes after about this long.
pub const BACKOFF_BASE: Duration = Duration::seconds(5);
/// Retries are never further apart than this.
pub const BACKOFF_CAP: Duration = Duration::minutes(15);
/// Periodic sync while there is recent activity or unsent data.
pub const PERIODIC_SHORT: Duration = Duration::minutes(15);
/// Periodic sync when nothing changed.
pub const PERIODIC_LONG: Duration = Duration::minutes(60);

/// The wait before attempt `failures + 1`: `base * 2^(failures-1)`, capped,
/// scaled by `jitter` in `[0, 1)` into its upper half (so retries of many
/// devices spread out without collapsing to zero), and never shorter than
/// the server's `Retry-After`.
pub fn backoff(failures: u32, jitter: f64, retry_after: Option<std::time::Duration>) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let raw = BACKOFF_BASE
        .checked_mul(1 << exponent)
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP);
    let jittered_ms = raw.num_milliseconds() as f64 * (0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    let wait = Duration::milliseconds(jittered_ms as i64);
    let server = retry_after
        .and_then(|d| Duration::from_std(d).ok())
        .unwrap_or_else(Duration::zero);
    wait.max(server)
}

/// A random jitter in `[0, 1)` (from the OS's random source through UUID v4).
pub fn jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// When the next sync is due: the retry time after a failure, else soon
/// after recent activity or while writes wait, else the long period.
pub fn next_sync_due(
    last_sync_at: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
    unsent: u32,
    last_local_write: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    if let Some(at) = next_attempt_at {
        return at;
    }
    let Some(last) = last_sync_at else {
        return now;
    };
    let recent = last_local_write.is_some_and(|w| now - w < Duration::hours(24));
    if unsent > 0 || recent {
        last + PERIODIC_SHORT
    } else {
        last + PERIODIC_LONG
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        assert_eq!(backoff(1, 1.0, None), Duration::seconds(5));
        assert_eq!(backoff(1, 0.0, None), Duration::milliseconds(2500));
        assert_eq!(backoff(3, 1.0, None), Duration::seconds(20));
        assert_eq!(backoff(30, 1.0, None), BACKOFF_CAP);
        assert!(backoff(30, 0.0, None) >= BACKOFF_CAP / 2);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let wait = backoff(1, 0.0, Some(std::time::Duration::from_secs(120)));
        assert_eq!(wait, Duration::seconds(120));
    }

    #[test]
    fn jitter_lies_in_the_unit_interval() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn the_next_sync_comes_sooner_with_unsent_writes() {
        let now = Utc::now();
        let last = now - Duration::minutes(1);
        assert_eq!(next_sync_due(None, None, 0, None, now), now);
        assert_eq!(
            next_sync_due(Some(last), None, 2, None, now),
            last + PERIODIC_SHORT
        );
        assert_eq!(
            next_sync_due(Some(last), None, 0, None, now),
            last + PERIODIC_LONG
        );
        let retry = now + Duration::seconds(7);
        assert_eq!(next_sync_due(Some(last), Some(retry), 0, None, now), retry);
    }
}
