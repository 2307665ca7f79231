//! Merge rules (PRD 5): pure functions, applied by the server when a write
//! meets stored state, and by the client when a download meets local state.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::domain::{Activity, ActivitySource, DailyMetric, SettingValue};

/// What a merge did to the stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeEffect {
    /// The incoming record adds nothing: no write, no change-log entry.
    Unchanged,
    /// The stored record changes.
    Updated,
}

/// The result of merging an incoming activity into a stored one.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityMerge {
    /// The record to store.
    pub merged: Activity,
    /// Whether it differs from the stored one.
    pub effect: MergeEffect,
    /// True when the incoming record's objective fields differed and lost.
    pub objective_kept: bool,
}

fn objective_eq(a: &Activity, b: &Activity) -> bool {
    a.activity_type == b.activity_type
        && a.started_at == b.started_at
        && a.duration_s == b.duration_s
        && a.distance_m == b.distance_m
        && a.avg_hr == b.avg_hr
}

/// Merges an amendment into a stored activity (append-only, PRD 5.1/5.2):
/// - objective fields (type, start, duration, distance, heart rate) are never
///   overwritten, except that wearable data replaces manual data;
/// - subjective fields (RPE, notes, feeling) are the user's: a value present
///   in the incoming record wins, an absent one keeps the stored value.
pub fn merge_activity(stored: &Activity, incoming: &Activity) -> ActivityMerge {
    let wearable_upgrade =
        stored.source == ActivitySource::Manual && incoming.source == ActivitySource::Wearable;
    let objective_source = if wearable_upgrade { incoming } else { stored };
    let merged = Activity {
        id: stored.id,
        activity_type: objective_source.activity_type,
        started_at: objective_source.started_at,
        duration_s: objective_source.duration_s,
        distance_m: objective_source.distance_m,
        avg_hr: objective_source.avg_hr,
        rpe: incoming.rpe.or(stored.rpe),
        notes: incoming.notes.clone().or_else(|| stored.notes.clone()),
        feeling: incoming.feeling.or(stored.feeling),
        source: stored.source.max(incoming.source),
    };
    let effect = if merged == *stored {
        MergeEffect::Unchanged
    } else {
        MergeEffect::Updated
    };
    ActivityMerge {
        objective_kept: !wearable_upgrade && !objective_eq(stored, incoming),
        merged,
        effect,
    }
}

/// Merges two check-ins for the same date: each field takes the value of the
/// later submission that has one; for equal submission times the larger value
/// wins, so the result never depends on arrival order.
pub fn merge_daily_metric(
    stored: &DailyMetric,
    incoming: &DailyMetric,
) -> (DailyMetric, MergeEffect) {
    let order = incoming.submitted_at.cmp(&stored.submitted_at);
    fn pick<T: Copy>(
        order: Ordering,
        stored: Option<T>,
        incoming: Option<T>,
        cmp: fn(&T, &T) -> Ordering,
    ) -> Option<T> {
        match (order, stored, incoming) {
            (Ordering::Greater, s, i) => i.or(s),
            (Ordering::Less, s, i) => s.or(i),
            (Ordering::Equal, Some(s), Some(i)) => Some(if cmp(&i, &s) == Ordering::Greater {
                i
            } else {
                s
            }),
            (Ordering::Equal, s, i) => s.or(i),
        }
    }
    let merged = DailyMetric {
        date: stored.date,
        recovery_rating: pick(
            order,
            stored.recovery_rating,
            incoming.recovery_rating,
            Ord::cmp,
        ),
        sleep_hours: pick(
            order,
            stored.sleep_hours,
            incoming.sleep_hours,
            f64::total_cmp,
        ),
        soreness: pick(order, stored.soreness, incoming.soreness, Ord::cmp),
        submitted_at: stored.submitted_at.max(incoming.submitted_at),
    };
    let effect = if merged == *stored {
        MergeEffect::Unchanged
    } else {
        MergeEffect::Updated
    };
    (merged, effect)
}

/// Settings (PRD 5.2 scenario 4): last write wins by server receive time;
/// exactly equal times are won by the lexicographically higher `device_id`.
pub fn setting_wins(stored: &SettingValue, incoming: &SettingValue) -> bool {
    lww_key(incoming.received_at, &incoming.device_id)
        > lww_key(stored.received_at, &stored.device_id)
}

fn lww_key(received_at: DateTime<Utc>, device_id: &str) -> (DateTime<Utc>, &str) {
    (received_at, device_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ActivityType, SettingKey};
    use chrono::{NaiveDate, TimeZone};
    use proptest::prelude::*;
    use uuid::Uuid;

    fn activity_strategy() -> impl Strategy<Value = Activity> {
        (
            prop_oneof![Just(ActivitySource::Manual), Just(ActivitySource::Wearable)],
            0i64..10_000,
            1u32..86_400,
            proptest::option::of(0u32..100_000),
            proptest::option::of(25u16..250),
            proptest::option::of(1u8..=10),
            proptest::option::of("[a-z ]{0,12}"),
            proptest::option::of(1u8..=5),
        )
            .prop_map(
                |(source, start, duration_s, dist, avg_hr, rpe, notes, feeling)| Activity {
                    id: Uuid::nil(),
                    activity_type: ActivityType::Run,
                    started_at: Utc.timestamp_opt(1_700_000_000 + start, 0).unwrap(),
                    duration_s,
                    distance_m: dist.map(f64::from),
                    avg_hr,
                    rpe,
                    notes,
                    feeling,
                    source,
                },
            )
    }

    fn daily_strategy() -> impl Strategy<Value = DailyMetric> {
        (
            0i64..5,
            proptest::option::of(1u8..=10),
            proptest::option::of(0u8..=24),
            proptest::option::of(1u8..=10),
        )
            .prop_map(|(t, recovery_rating, sleep, soreness)| DailyMetric {
                date: NaiveDate::from_ymd_opt(2025, 5, 31).unwrap(),
                recovery_rating,
                sleep_hours: sleep.map(f64::from),
                soreness,
                submitted_at: Utc.timestamp_opt(1_700_000_000 + t, 0).unwrap(),
            })
    }

    proptest! {
        #[test]
        fn activity_merge_is_idempotent(a in activity_strategy(), b in activity_strategy()) {
            let once = merge_activity(&a, &b).merged;
            let twice = merge_activity(&once, &b);
            prop_assert_eq!(&twice.merged, &once);
            prop_assert_eq!(twice.effect, MergeEffect::Unchanged);
            prop_assert_eq!(merge_activity(&a, &a).effect, MergeEffect::Unchanged);
        }

        #[test]
        fn wearable_objective_data_is_never_replaced_by_manual(a in activity_strategy(), b in activity_strategy()) {
            let merged = merge_activity(&a, &b).merged;
            if a.source == ActivitySource::Wearable {
                prop_assert!(objective_eq(&merged, &a));
            }
            if a.source == ActivitySource::Manual && b.source == ActivitySource::Wearable {
                prop_assert!(objective_eq(&merged, &b));
            }
        }

        #[test]
        fn the_users_latest_subjective_values_win(a in activity_strategy(), b in activity_strategy()) {
            let merged = merge_activity(&a, &b).merged;
            prop_assert_eq!(merged.rpe, b.rpe.or(a.rpe));
            prop_assert_eq!(merged.notes, b.notes.clone().or(a.notes.clone()));
            prop_assert_eq!(merged.feeling, b.feeling.or(a.feeling));
        }

        #[test]
        fn daily_metric_merge_is_order_independent_and_idempotent(a in daily_strategy(), b in daily_strategy()) {
            let (ab, _) = merge_daily_metric(&a, &b);
            let (ba, _) = merge_daily_metric(&b, &a);
            prop_assert_eq!(&ab, &ba);
            let (again, effect) = merge_daily_metric(&ab, &b);
            prop_assert_eq!(again, ab);
            prop_assert_eq!(effect, MergeEffect::Unchanged);
        }

        #[test]
        fn settings_converge_whatever_the_arrival_order(
            writes in proptest::collection::vec((0i64..4, "[a-c]"), 1..6)
        ) {
            let values: Vec<SettingValue> = writes.iter().enumerate().map(|(i, (t, device))| SettingValue {
                key: SettingKey::Units,
                value: serde_json::json!(i),
                changed_at: Utc.timestamp_opt(0, 0).unwrap(),
                received_at: Utc.timestamp_opt(1_700_000_000 + t, 0).unwrap(),
                device_id: device.clone(),
            }).collect();
            let apply = |order: &mut dyn Iterator<Item = &SettingValue>| {
                let mut current: Option<SettingValue> = None;
                for v in order {
                    if current.as_ref().is_none_or(|c| setting_wins(c, v)) {
                        current = Some(v.clone());
                    }
                }
                current.map(|c| (c.received_at, c.device_id))
            };
            let forward = apply(&mut values.iter());
            let backward = apply(&mut values.iter().rev());
            prop_assert_eq!(forward, backward);
        }
    }
}
