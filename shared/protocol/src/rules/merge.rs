//! Merge rules (PRD 5): pure functions, applied by the server when a write
//! meets stored state, and by the client when a download meets local state.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use uuid::Uuid;

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

/// Who sent a write: the user's device, or the backend (wearable pipeline, engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client upload: the user's subjective data.
    Device,
    /// The ingest path: wearable imports and computed data.
    Backend,
}

fn union(a: &[Uuid], b: &[Uuid], extra: Option<Uuid>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = a.iter().chain(b).copied().chain(extra).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Builds the stored record: objective fields from `objective`, subjective
/// fields from `subjective` where it has them and `fallback` otherwise.
fn combine(id: Uuid, objective: &Activity, subjective: &Activity, fallback: &Activity) -> Activity {
    Activity {
        id,
        activity_type: objective.activity_type,
        started_at: objective.started_at,
        duration_s: objective.duration_s,
        distance_m: objective.distance_m,
        avg_hr: objective.avg_hr,
        rpe: subjective.rpe.or(fallback.rpe),
        notes: subjective.notes.clone().or_else(|| fallback.notes.clone()),
        feeling: subjective.feeling.or(fallback.feeling),
        source: objective.source.max(subjective.source).max(fallback.source),
        source_device: objective
            .source_device
            .clone()
            .or_else(|| subjective.source_device.clone())
            .or_else(|| fallback.source_device.clone()),
        external_id: objective
            .external_id
            .clone()
            .or_else(|| subjective.external_id.clone())
            .or_else(|| fallback.external_id.clone()),
        track: objective
            .track
            .clone()
            .or_else(|| subjective.track.clone())
            .or_else(|| fallback.track.clone()),
        merged_from: union(&subjective.merged_from, &fallback.merged_from, None),
        distinct_from: union(&subjective.distinct_from, &fallback.distinct_from, None),
    }
}

/// Merges a write into a stored activity of the same id (append-only, PRD 5.1/5.2 scenario 1):
/// - objective fields (type, start, duration, distance, heart rate, track) are
///   never overwritten by a device, except that wearable data replaces manual
///   data; wearable data from the backend always wins;
/// - subjective fields (RPE, notes, feeling) are the user's: a device's value
///   wins, an absent one keeps the stored value; the backend only fills gaps.
///
/// So a device's notes and the backend's GPS data merge to the same record
/// whichever arrives first.
pub fn merge_activity(stored: &Activity, incoming: &Activity, origin: Origin) -> ActivityMerge {
    let incoming_objective = incoming.source == ActivitySource::Wearable
        && (origin == Origin::Backend || stored.source == ActivitySource::Manual);
    let objective = if incoming_objective { incoming } else { stored };
    let (subjective, fallback) = match origin {
        Origin::Device => (incoming, stored),
        Origin::Backend => (stored, incoming),
    };
    let merged = combine(stored.id, objective, subjective, fallback);
    let effect = if merged == *stored {
        MergeEffect::Unchanged
    } else {
        MergeEffect::Updated
    };
    ActivityMerge {
        objective_kept: !incoming_objective && !objective_eq(stored, incoming),
        merged,
        effect,
    }
}

/// Two start times closer than this (and the same activity type) are the same workout (PRD 5.2 scenario 3).
pub const DUPLICATE_WINDOW_SECS: i64 = 600;

/// Whether `a` and `b` are a manual log and a wearable recording of the same
/// workout: same type, starts within [`DUPLICATE_WINDOW_SECS`], and not
/// declared distinct by an undone merge.
pub fn is_duplicate(a: &Activity, b: &Activity) -> bool {
    a.id != b.id
        && a.source != b.source
        && a.activity_type == b.activity_type
        && (a.started_at - b.started_at).num_seconds().abs() <= DUPLICATE_WINDOW_SECS
        && !a.distinct_from.contains(&b.id)
        && !b.distinct_from.contains(&a.id)
}

/// The best duplicate of `incoming` among `candidates`: the closest start, then the lowest id.
pub fn find_duplicate<'a>(
    incoming: &Activity,
    candidates: impl IntoIterator<Item = &'a Activity>,
) -> Option<&'a Activity> {
    candidates
        .into_iter()
        .filter(|c| is_duplicate(incoming, c))
        .min_by_key(|c| {
            (
                (c.started_at - incoming.started_at).num_seconds().abs(),
                c.id,
            )
        })
}

/// Merges a duplicate pair into one record (scenario 3), whichever arrived
/// first: the wearable recording's id and objective metrics; its subjective
/// fields where it has them, the manual log's notes, RPE and feeling where it
/// lacks them. `None` when they are not duplicates.
pub fn merge_duplicate(a: &Activity, b: &Activity) -> Option<Activity> {
    if !is_duplicate(a, b) {
        return None;
    }
    let (manual, wearable) = if a.source == ActivitySource::Wearable {
        (b, a)
    } else {
        (a, b)
    };
    let mut merged = combine(wearable.id, wearable, wearable, manual);
    merged.merged_from = union(&wearable.merged_from, &manual.merged_from, Some(manual.id));
    Some(merged)
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
                    source_device: None,
                    external_id: None,
                    track: None,
                    merged_from: vec![],
                    distinct_from: vec![],
                },
            )
    }

    fn origin_strategy() -> impl Strategy<Value = Origin> {
        prop_oneof![Just(Origin::Device), Just(Origin::Backend)]
    }

    /// A wearable recording from the backend and a manual log from a device, same workout.
    fn pair_strategy() -> impl Strategy<Value = (Activity, Activity)> {
        (
            activity_strategy(),
            activity_strategy(),
            -600i64..=600,
            any::<bool>(),
        )
            .prop_map(|(mut wearable, mut manual, offset, same_id)| {
                wearable.source = ActivitySource::Wearable;
                manual.source = ActivitySource::Manual;
                wearable.id = Uuid::from_u128(1);
                manual.id = if same_id {
                    wearable.id
                } else {
                    Uuid::from_u128(2)
                };
                manual.started_at = wearable.started_at + chrono::Duration::seconds(offset);
                (wearable, manual)
            })
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
        fn activity_merge_is_idempotent(a in activity_strategy(), b in activity_strategy(), origin in origin_strategy()) {
            let once = merge_activity(&a, &b, origin).merged;
            let twice = merge_activity(&once, &b, origin);
            prop_assert_eq!(&twice.merged, &once);
            prop_assert_eq!(twice.effect, MergeEffect::Unchanged);
            prop_assert_eq!(merge_activity(&a, &a, origin).effect, MergeEffect::Unchanged);
        }

        #[test]
        fn wearable_objective_data_is_never_replaced_by_manual(a in activity_strategy(), b in activity_strategy(), origin in origin_strategy()) {
            let merged = merge_activity(&a, &b, origin).merged;
            if a.source == ActivitySource::Wearable && b.source == ActivitySource::Manual {
                prop_assert!(objective_eq(&merged, &a));
            }
            if b.source == ActivitySource::Wearable && (a.source == ActivitySource::Manual || origin == Origin::Backend) {
                prop_assert!(objective_eq(&merged, &b));
            }
        }

        #[test]
        fn a_devices_subjective_values_win(a in activity_strategy(), b in activity_strategy()) {
            let merged = merge_activity(&a, &b, Origin::Device).merged;
            prop_assert_eq!(merged.rpe, b.rpe.or(a.rpe));
            prop_assert_eq!(merged.notes, b.notes.clone().or(a.notes.clone()));
            prop_assert_eq!(merged.feeling, b.feeling.or(a.feeling));
            let from_backend = merge_activity(&a, &b, Origin::Backend).merged;
            prop_assert_eq!(from_backend.rpe, a.rpe.or(b.rpe));
            prop_assert_eq!(from_backend.notes, a.notes.clone().or(b.notes.clone()));
        }

        /// Scenario 1: the device's notes and the backend's GPS data give the
        /// same record whichever arrives first.
        #[test]
        fn scenario_1_is_order_independent((wearable, mut manual) in pair_strategy()) {
            manual.id = wearable.id;
            let wearable_first = merge_activity(&wearable, &manual, Origin::Device).merged;
            let manual_first = merge_activity(&manual, &wearable, Origin::Backend).merged;
            prop_assert_eq!(&wearable_first, &manual_first);
            prop_assert!(objective_eq(&wearable_first, &wearable));
            prop_assert_eq!(wearable_first.rpe, manual.rpe.or(wearable.rpe));
        }

        /// Scenario 3: a duplicate pair merges to the same record in either order,
        /// under the wearable's id, with its objective data, keeping the manual
        /// log's subjective data where the wearable has none.
        #[test]
        fn scenario_3_is_order_independent((wearable, manual) in pair_strategy()) {
            let ab = merge_duplicate(&wearable, &manual);
            let ba = merge_duplicate(&manual, &wearable);
            prop_assert_eq!(&ab, &ba);
            if wearable.id == manual.id {
                prop_assert!(ab.is_none());
            } else {
                let merged = ab.expect("a manual log and a wearable run within 10 minutes are duplicates");
                prop_assert_eq!(merged.id, wearable.id);
                prop_assert!(objective_eq(&merged, &wearable));
                prop_assert_eq!(merged.notes, wearable.notes.clone().or(manual.notes.clone()));
                prop_assert_eq!(merged.rpe, wearable.rpe.or(manual.rpe));
                prop_assert_eq!(merged.merged_from, vec![manual.id]);
            }
        }

        #[test]
        fn duplicates_need_the_window_the_type_and_both_sources((wearable, mut manual) in pair_strategy(), late in 601i64..5000) {
            manual.id = Uuid::from_u128(2);
            prop_assert!(is_duplicate(&manual, &wearable));
            let mut far = manual.clone();
            far.started_at = wearable.started_at + chrono::Duration::seconds(late);
            prop_assert!(!is_duplicate(&far, &wearable));
            let mut other_type = manual.clone();
            other_type.activity_type = ActivityType::Ride;
            prop_assert!(!is_duplicate(&other_type, &wearable));
            let mut both_manual = wearable.clone();
            both_manual.source = ActivitySource::Manual;
            prop_assert!(!is_duplicate(&manual, &both_manual));
            let mut undone = manual.clone();
            undone.distinct_from = vec![wearable.id];
            prop_assert!(!is_duplicate(&undone, &wearable));
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
