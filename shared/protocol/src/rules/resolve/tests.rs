//! Resolution tests: every PRD 5 rule through a batch.

use super::*;
use crate::domain::ActivitySource;
use crate::domain::ActivityType;
use crate::domain::StoredEntity;
use chrono::TimeZone;
use proptest::prelude::*;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

/// Applies `batches` one after the other, each against the state the previous left.
fn apply(batches: &[(Change, Origin)]) -> BTreeMap<EntityKey, Value> {
    let mut loaded = Loaded::default();
    for (seq, (change, origin)) in (1..).zip(batches) {
        let batch = Batch {
            changes: vec![change.clone()],
        };
        let device = DeviceId::parse("phone").unwrap();
        let ctx = Context {
            at: at(),
            origin: *origin,
            device: (*origin == Origin::Device).then_some(&device),
        };
        for write in batch.resolve(&loaded, ctx).writes {
            loaded.entities.insert(
                write.key.clone(),
                StoredEntity {
                    key: write.key,
                    seq,
                    updated_at: at(),
                    data: write.data,
                },
            );
        }
    }
    // Conflict-log entries carry fresh ids and times: compare the data only.
    loaded
        .entities
        .into_iter()
        .filter(|(k, _)| k.kind != EntityKind::Conflict)
        .map(|(k, e)| (k, e.data))
        .collect()
}

fn run(id: u128, source: ActivitySource, offset_s: i64, notes: Option<&str>) -> Activity {
    Activity {
        id: Uuid::from_u128(id),
        activity_type: ActivityType::Run,
        started_at: at() - Duration::hours(3) + Duration::seconds(offset_s),
        duration_s: if source == ActivitySource::Wearable {
            3120
        } else {
            3000
        },
        distance_m: Some(if source == ActivitySource::Wearable {
            10_120.5
        } else {
            9_000.0
        }),
        avg_hr: (source == ActivitySource::Wearable).then_some(151),
        rpe: notes.map(|_| 7),
        notes: notes.map(str::to_owned),
        feeling: None,
        source,
        source_device: None,
        external_id: None,
        track: None,
        merged_from: vec![],
        distinct_from: vec![],
    }
}

proptest! {
    /// Scenario 3 through the whole resolution (tombstone and survivor):
    /// the stored state is the same whichever of the pair arrives first.
    #[test]
    fn duplicate_resolution_is_order_independent(offset in -600i64..=600, with_notes in any::<bool>()) {
        let manual = run(2, ActivitySource::Manual, offset, with_notes.then_some("windy"));
        let wearable = run(1, ActivitySource::Wearable, 0, None);
        let manual_first = apply(&[
            (Change::Activity(manual.clone()), Origin::Device),
            (Change::Activity(wearable.clone()), Origin::Backend),
        ]);
        let wearable_first = apply(&[
            (Change::Activity(wearable), Origin::Backend),
            (Change::Activity(manual), Origin::Device),
        ]);
        prop_assert_eq!(&manual_first, &wearable_first);
        let tombstone = Tombstone::of(&manual_first[&activity_key(Uuid::from_u128(2))]);
        prop_assert_eq!(tombstone.and_then(|t| t.replaced_by), Some(Uuid::from_u128(1).to_string()));
    }

    /// A later edit under the merged duplicate's id lands on the survivor.
    #[test]
    fn edits_under_a_merged_id_are_redirected(offset in -600i64..=600) {
        let manual = run(2, ActivitySource::Manual, offset, Some("windy"));
        let wearable = run(1, ActivitySource::Wearable, 0, None);
        let mut edit = manual.clone();
        edit.notes = Some("windy, ate late".into());
        let state = apply(&[
            (Change::Activity(manual), Origin::Device),
            (Change::Activity(wearable), Origin::Backend),
            (Change::Activity(edit), Origin::Device),
        ]);
        let survivor: Activity = serde_json::from_value(state[&activity_key(Uuid::from_u128(1))].clone()).unwrap();
        prop_assert_eq!(survivor.notes.as_deref(), Some("windy, ate late"));
        prop_assert_eq!(survivor.distance_m, Some(10_120.5));
    }
}

#[test]
fn a_manual_log_eleven_minutes_away_is_not_a_duplicate() {
    let state = apply(&[
        (
            Change::Activity(run(2, ActivitySource::Manual, 660, None)),
            Origin::Device,
        ),
        (
            Change::Activity(run(1, ActivitySource::Wearable, 0, None)),
            Origin::Backend,
        ),
    ]);
    assert_eq!(state.len(), 2);
    assert!(state.values().all(|v| Tombstone::of(v).is_none()));
}
