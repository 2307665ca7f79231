//! Applying a batch of writes to a user's stored state by the conflict rules
//! of PRD 5, for client uploads and backend ingest alike. Pure: the caller
//! loads the state first ([`Batch::keys`], plus duplicate candidates and
//! redirect targets) and commits the [`Resolution`].

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::{
    Activity, ActivitySource, Alert, CalculatedMetrics, ConflictRecord, ConflictRule,
    ConflictStatus, DailyMetric, DeviceId, EntityKind, PlanAdjustment, RestoreTarget, SettingValue,
    SettingsChange, Tombstone, TombstoneReason, UNDO_WINDOW_HOURS, UndoAction, WorkoutId,
};
use crate::merge::{
    MergeEffect, Origin, find_duplicate, merge_activity, merge_daily_metric, merge_duplicate,
    setting_wins,
};
use crate::plan::{TrainingPlan, reschedule, set_coach_note};
use crate::protocol::{AcceptedItem, ConflictItem, ItemType};
use crate::store::{EntityKey, EntityWrite, Loaded};
use crate::validation::{FieldError, FieldErrorCode};

/// The PRD's message for a reschedule made against a superseded plan.
pub const SUPERSEDED_PLAN_MESSAGE: &str = "Your training plan was updated based on your recent workouts. The manual reschedule has been replaced.";

/// The id of the single training-plan and metrics entities.
pub const CURRENT: &str = "current";

/// A coach's note for one upcoming workout.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoachNote {
    /// The workout.
    pub workout_id: WorkoutId,
    /// The note; `null` clears it.
    pub note: Option<String>,
}

/// One validated write, from a device or the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A logged or imported workout.
    Activity(Activity),
    /// A daily check-in.
    DailyMetric(DailyMetric),
    /// A settings change.
    Setting(SettingsChange),
    /// A reschedule request.
    PlanAdjustment(PlanAdjustment),
    /// A new plan version from the engine.
    TrainingPlan(TrainingPlan),
    /// Computed metrics.
    Metrics(CalculatedMetrics),
    /// A new or updated alert.
    Alert(Alert),
    /// An alert the backend withdraws.
    WithdrawAlert(Uuid),
    /// A coach's note.
    CoachNote(CoachNote),
    /// A GPS track stored for an activity, announced as low-priority data.
    Track(TrackReady),
}

/// The change-log entry announcing a stored GPS track (kind `track`, low priority).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TrackReady {
    /// The activity it belongs to.
    pub activity_id: Uuid,
    /// Where and how big.
    pub track: crate::domain::TrackRef,
}

fn plan_key() -> EntityKey {
    EntityKey::new(EntityKind::TrainingPlan, CURRENT)
}

/// An activity's entity key.
pub fn activity_key(id: Uuid) -> EntityKey {
    EntityKey::new(EntityKind::Activity, id.to_string())
}

impl Change {
    /// The entity this change writes.
    pub fn key(&self) -> EntityKey {
        match self {
            Change::Activity(a) => activity_key(a.id),
            Change::DailyMetric(m) => EntityKey::new(EntityKind::DailyMetric, m.date.to_string()),
            Change::Setting(s) => EntityKey::new(EntityKind::Setting, s.key.as_str()),
            Change::PlanAdjustment(p) => {
                EntityKey::new(EntityKind::PlanAdjustment, p.id.to_string())
            }
            Change::TrainingPlan(_) | Change::CoachNote(_) => plan_key(),
            Change::Metrics(_) => EntityKey::new(EntityKind::CalculatedMetrics, CURRENT),
            Change::Alert(a) => EntityKey::new(EntityKind::Alert, a.id.to_string()),
            Change::WithdrawAlert(id) => EntityKey::new(EntityKind::Alert, id.to_string()),
            Change::Track(t) => EntityKey::new(EntityKind::Track, t.activity_id.to_string()),
        }
    }

    /// How the change is reported back.
    pub fn item_type(&self) -> ItemType {
        match self {
            Change::Activity(_) | Change::Track(_) => ItemType::Activity,
            Change::DailyMetric(_) => ItemType::DailyMetric,
            Change::Setting(_) => ItemType::SettingsChange,
            Change::PlanAdjustment(_) => ItemType::PlanAdjustment,
            Change::TrainingPlan(_) => ItemType::TrainingPlan,
            Change::Metrics(_) => ItemType::CalculatedMetrics,
            Change::Alert(_) => ItemType::Alert,
            Change::WithdrawAlert(_) => ItemType::AlertWithdrawal,
            Change::CoachNote(_) => ItemType::CoachNote,
        }
    }

    /// The id the sender knows the item by.
    fn reported_id(&self) -> String {
        match self {
            Change::TrainingPlan(p) => p.version.to_string(),
            Change::CoachNote(n) => n.workout_id.to_string(),
            other => other.key().id,
        }
    }
}

/// Who is writing and when.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The commit time (server receive time: settings' last-write-wins clock).
    pub at: DateTime<Utc>,
    /// Device upload or backend ingest.
    pub origin: Origin,
    /// The uploading device (settings' tie-breaker); `None` for the backend.
    pub device: Option<&'a DeviceId>,
}

/// A change refused while resolving (e.g. a reschedule of a workout the plan lacks).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Position of the change in the batch.
    pub index: usize,
    /// Why.
    pub error: FieldError,
}

/// What resolving a batch against stored state produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolution {
    /// New entity states, one per entity, in first-touched order (conflict-log entries included).
    pub writes: Vec<EntityWrite>,
    /// Changes taken as sent (or already stored identically).
    pub accepted: Vec<AcceptedItem>,
    /// Changes a conflict rule decided.
    pub conflicts: Vec<ConflictItem>,
    /// Changes refused.
    pub refused: Vec<Refusal>,
    /// The plan version this batch leaves, when it writes the plan.
    pub plan_version: Option<u64>,
    /// Activities written (for the training-load recompute).
    pub activities_written: usize,
}

/// A batch of validated changes, in the order they were sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// The changes.
    pub changes: Vec<Change>,
}

/// A change's outcome before it is recorded.
enum Outcome {
    /// Stored as sent (or merged without a conflict).
    Accepted,
    /// A rule decided; the record goes to the conflict log.
    Conflict(Box<ConflictRecord>),
    /// Refused.
    Refused(FieldError),
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn parse<T: serde::de::DeserializeOwned>(v: Option<&Value>) -> Option<T> {
    v.filter(|v| Tombstone::of(v).is_none())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The batch's working state: entity states as the batch has left them so far.
struct Working<'a> {
    current: BTreeMap<EntityKey, Value>,
    order: Vec<EntityKey>,
    ctx: Context<'a>,
}

impl Working<'_> {
    fn get(&self, key: &EntityKey) -> Option<&Value> {
        self.current.get(key)
    }

    fn set(&mut self, key: EntityKey, value: Value) {
        if !self.order.contains(&key) {
            self.order.push(key.clone());
        }
        self.current.insert(key, value);
    }

    fn plan(&self) -> Option<TrainingPlan> {
        parse(self.get(&plan_key()))
    }

    /// Builds a conflict-log entry resolved now.
    fn record(
        &self,
        rule: ConflictRule,
        key: &EntityKey,
        message: String,
        winner: Value,
        user_version: Value,
        undo: UndoAction,
    ) -> ConflictRecord {
        ConflictRecord {
            id: Uuid::now_v7(),
            rule,
            entity_type: key.kind,
            entity_id: key.id.clone(),
            other_id: None,
            message,
            winner,
            user_version,
            resolved_at: self.ctx.at,
            undo_until: self.ctx.at + Duration::hours(UNDO_WINDOW_HOURS),
            status: ConflictStatus::Resolved,
            undone_at: None,
            undo,
        }
    }
}

impl Batch {
    /// The entities the batch reads (load them before [`Batch::resolve`]).
    pub fn keys(&self) -> Vec<EntityKey> {
        let mut keys: Vec<EntityKey> = self.changes.iter().map(Change::key).collect();
        if self
            .changes
            .iter()
            .any(|c| matches!(c, Change::PlanAdjustment(_)))
        {
            keys.push(plan_key());
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// The activities whose duplicates must be looked up (new ones may match a stored record).
    pub fn activities(&self) -> impl Iterator<Item = &Activity> {
        self.changes.iter().filter_map(|c| match c {
            Change::Activity(a) => Some(a),
            _ => None,
        })
    }

    /// Applies the conflict rules against `loaded` (which holds the batch's
    /// keys, duplicate candidates and redirect targets).
    pub fn resolve(&self, loaded: &Loaded, ctx: Context<'_>) -> Resolution {
        let mut work = Working {
            current: loaded
                .entities
                .iter()
                .map(|(k, e)| (k.clone(), e.data.clone()))
                .collect(),
            order: Vec::new(),
            ctx,
        };
        let mut resolution = Resolution::default();
        for (index, change) in self.changes.iter().enumerate() {
            let outcome = resolve_change(&mut work, change, loaded);
            if matches!(change, Change::Track(_)) {
                // Announced with its activity; not reported on its own.
                continue;
            }
            let item_type = change.item_type();
            let id = match change {
                // The server numbers plan versions: report the one it assigned.
                Change::TrainingPlan(_) => work
                    .plan()
                    .map_or_else(|| change.reported_id(), |p| p.version.to_string()),
                _ => change.reported_id(),
            };
            match outcome {
                Outcome::Accepted => resolution.accepted.push(AcceptedItem { item_type, id }),
                Outcome::Conflict(record) => {
                    resolution.conflicts.push(ConflictItem {
                        item_type,
                        id,
                        resolution: record.rule.as_str().into(),
                        message: record.message.clone(),
                        conflict_id: Some(record.id),
                    });
                    work.set(
                        EntityKey::new(EntityKind::Conflict, record.id.to_string()),
                        to_value(&record),
                    );
                }
                Outcome::Refused(error) => resolution.refused.push(Refusal { index, error }),
            }
        }
        let stored = |key: &EntityKey| loaded.entities.get(key).map(|e| &e.data);
        for key in work.order {
            let Some(data) = work.current.remove(&key) else {
                continue;
            };
            if stored(&key) == Some(&data) {
                continue;
            }
            if key.kind == EntityKind::TrainingPlan {
                resolution.plan_version = data.get("version").and_then(Value::as_u64);
            }
            if key.kind == EntityKind::Activity {
                resolution.activities_written += 1;
            }
            resolution.writes.push(EntityWrite { key, data });
        }
        resolution
    }
}

fn resolve_change(work: &mut Working<'_>, change: &Change, loaded: &Loaded) -> Outcome {
    match change {
        Change::Activity(a) => resolve_activity(work, a),
        Change::DailyMetric(m) => resolve_daily_metric(work, m),
        Change::Setting(s) => resolve_setting(work, s),
        Change::PlanAdjustment(p) => resolve_adjustment(work, p, loaded),
        Change::TrainingPlan(plan) => {
            let current = work.plan().map_or(0, |p| p.version);
            let mut next = plan.clone();
            // The server numbers versions, so they only ever go up.
            next.version = current.max(loaded.head.plan_version.unwrap_or(0)) + 1;
            next.normalize();
            work.set(plan_key(), to_value(&next));
            Outcome::Accepted
        }
        Change::CoachNote(note) => match work.plan() {
            None => Outcome::Refused(FieldError::new(
                "workout_id",
                FieldErrorCode::InvalidValue,
                "the user has no training plan yet",
            )),
            Some(plan) => {
                match set_coach_note(&plan, &note.workout_id, note.note.clone(), work.ctx.at) {
                    Ok(next) => {
                        work.set(plan_key(), to_value(&next));
                        Outcome::Accepted
                    }
                    Err(e) => Outcome::Refused(FieldError::new(
                        "workout_id",
                        FieldErrorCode::InvalidValue,
                        e.to_string(),
                    )),
                }
            }
        },
        Change::Metrics(m) => {
            work.set(change.key(), to_value(m));
            Outcome::Accepted
        }
        Change::Alert(a) => {
            work.set(change.key(), to_value(a));
            Outcome::Accepted
        }
        Change::Track(t) => {
            work.set(change.key(), to_value(t));
            Outcome::Accepted
        }
        Change::WithdrawAlert(_) => {
            let key = change.key();
            match work.get(&key) {
                None => Outcome::Refused(FieldError::new(
                    "id",
                    FieldErrorCode::InvalidValue,
                    "no alert with this id",
                )),
                Some(v) if Tombstone::of(v).is_some() => Outcome::Accepted,
                Some(_) => {
                    work.set(
                        key,
                        to_value(&Tombstone::new(TombstoneReason::Withdrawn, None)),
                    );
                    Outcome::Accepted
                }
            }
        }
    }
}

fn resolve_activity(work: &mut Working<'_>, sent: &Activity) -> Outcome {
    let mut incoming = sent.clone();
    let mut key = activity_key(incoming.id);
    // A later edit sent under a merged duplicate's id goes to the survivor.
    let redirected = match work.get(&key).and_then(Tombstone::of) {
        Some(Tombstone {
            replaced_by: Some(survivor),
            ..
        }) => match Uuid::parse_str(&survivor) {
            Ok(survivor) => {
                incoming.id = survivor;
                key = activity_key(survivor);
                true
            }
            Err(_) => false,
        },
        _ => false,
    };
    if let Some(stored) = parse::<Activity>(work.get(&key)) {
        let merge = merge_activity(&stored, &incoming, work.ctx.origin);
        if merge.effect == MergeEffect::Updated {
            work.set(key.clone(), to_value(&merge.merged));
        }
        if !merge.objective_kept || redirected {
            return Outcome::Accepted;
        }
        // The user's version: their objective values with the merged subjective ones.
        let mut users = merge.merged.clone();
        users.activity_type = incoming.activity_type;
        users.started_at = incoming.started_at;
        users.duration_s = incoming.duration_s;
        users.distance_m = incoming.distance_m;
        users.avg_hr = incoming.avg_hr;
        let record = work.record(
            ConflictRule::ObjectiveFieldsKept,
            &key,
            "This activity was already recorded with other time, duration, distance or heart rate: those values were kept; your notes, RPE and feeling were applied.".into(),
            to_value(&merge.merged),
            to_value(sent),
            UndoAction::Restore {
                targets: vec![RestoreTarget {
                    kind: key.kind,
                    id: key.id.clone(),
                    expected: Some(to_value(&merge.merged)),
                    restore: to_value(&users),
                }],
            },
        );
        return Outcome::Conflict(Box::new(record));
    }
    let candidates: Vec<Activity> = work
        .current
        .iter()
        .filter(|(k, _)| k.kind == EntityKind::Activity && **k != key)
        .filter_map(|(_, v)| parse::<Activity>(Some(v)))
        .collect();
    let Some(other) = find_duplicate(&incoming, &candidates).cloned() else {
        work.set(key, to_value(&incoming));
        return Outcome::Accepted;
    };
    let Some(merged) = merge_duplicate(&incoming, &other) else {
        work.set(key, to_value(&incoming));
        return Outcome::Accepted;
    };
    let (manual, wearable) = if incoming.source == ActivitySource::Manual {
        (&incoming, &other)
    } else {
        (&other, &incoming)
    };
    let survivor = activity_key(merged.id);
    let loser = activity_key(manual.id);
    let tombstone = to_value(&Tombstone::new(
        TombstoneReason::MergedDuplicate,
        Some(merged.id.to_string()),
    ));
    work.set(survivor.clone(), to_value(&merged));
    work.set(loser.clone(), tombstone.clone());
    // Undo keeps both, each told the other is not its duplicate.
    let mut manual_alone = manual.clone();
    manual_alone.distinct_from.push(wearable.id);
    let mut wearable_alone = wearable.clone();
    wearable_alone.distinct_from.push(manual.id);
    let provider = wearable.source_device.as_deref().unwrap_or("wearable");
    let mut record = work.record(
        ConflictRule::DuplicateActivityMerged,
        &survivor,
        format!("Your manual activity log was merged with {provider} data."),
        to_value(&merged),
        to_value(manual),
        UndoAction::Restore {
            targets: vec![
                RestoreTarget {
                    kind: EntityKind::Activity,
                    id: survivor.id.clone(),
                    expected: Some(to_value(&merged)),
                    restore: to_value(&wearable_alone),
                },
                RestoreTarget {
                    kind: EntityKind::Activity,
                    id: loser.id.clone(),
                    expected: Some(tombstone),
                    restore: to_value(&manual_alone),
                },
            ],
        },
    );
    record.other_id = Some(loser.id);
    Outcome::Conflict(Box::new(record))
}

fn resolve_daily_metric(work: &mut Working<'_>, incoming: &DailyMetric) -> Outcome {
    let key = EntityKey::new(EntityKind::DailyMetric, incoming.date.to_string());
    let Some(stored) = parse::<DailyMetric>(work.get(&key)) else {
        work.set(key, to_value(incoming));
        return Outcome::Accepted;
    };
    let (merged, effect) = merge_daily_metric(&stored, incoming);
    if effect == MergeEffect::Updated {
        work.set(key.clone(), to_value(&merged));
    }
    let lost = [
        incoming.recovery_rating.is_some() && incoming.recovery_rating != merged.recovery_rating,
        incoming.sleep_hours.is_some() && incoming.sleep_hours != merged.sleep_hours,
        incoming.soreness.is_some() && incoming.soreness != merged.soreness,
    ]
    .contains(&true);
    if !lost {
        return Outcome::Accepted;
    }
    let users = DailyMetric {
        recovery_rating: incoming.recovery_rating.or(merged.recovery_rating),
        sleep_hours: incoming.sleep_hours.or(merged.sleep_hours),
        soreness: incoming.soreness.or(merged.soreness),
        ..merged.clone()
    };
    let record = work.record(
        ConflictRule::SupersededByNewerCheckIn,
        &key,
        "A later check-in for this day was already recorded; its values were kept.".into(),
        to_value(&merged),
        to_value(incoming),
        UndoAction::Restore {
            targets: vec![RestoreTarget {
                kind: key.kind,
                id: key.id.clone(),
                expected: Some(to_value(&merged)),
                restore: to_value(&users),
            }],
        },
    );
    Outcome::Conflict(Box::new(record))
}

fn resolve_setting(work: &mut Working<'_>, change: &SettingsChange) -> Outcome {
    let key = EntityKey::new(EntityKind::Setting, change.key.as_str());
    let incoming = SettingValue {
        key: change.key,
        value: change.value.clone(),
        changed_at: change.changed_at,
        received_at: work.ctx.at,
        device_id: work
            .ctx
            .device
            .map_or_else(|| "backend".to_owned(), ToString::to_string),
    };
    match parse::<SettingValue>(work.get(&key)) {
        Some(stored) if stored.value == incoming.value => Outcome::Accepted,
        Some(stored) if !setting_wins(&stored, &incoming) => {
            let record = work.record(
                ConflictRule::SupersededByNewerWrite,
                &key,
                "This setting was changed on another device at the same time; that value was kept."
                    .into(),
                to_value(&stored),
                to_value(&incoming),
                UndoAction::Restore {
                    targets: vec![RestoreTarget {
                        kind: key.kind,
                        id: key.id.clone(),
                        expected: Some(to_value(&stored)),
                        restore: to_value(&incoming),
                    }],
                },
            );
            Outcome::Conflict(Box::new(record))
        }
        _ => {
            work.set(key, to_value(&incoming));
            Outcome::Accepted
        }
    }
}

fn strip_status(stored: &Value) -> Value {
    let mut value = stored.clone();
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
        map.remove("applied_in_version");
    }
    value
}

fn resolve_adjustment(
    work: &mut Working<'_>,
    adjustment: &PlanAdjustment,
    loaded: &Loaded,
) -> Outcome {
    let key = EntityKey::new(EntityKind::PlanAdjustment, adjustment.id.to_string());
    if let Some(stored) = work.get(&key) {
        let same = serde_json::from_value::<PlanAdjustment>(strip_status(stored))
            .ok()
            .as_ref()
            == Some(adjustment);
        return if same {
            Outcome::Accepted
        } else {
            Outcome::Refused(FieldError::new(
                "id",
                FieldErrorCode::InvalidValue,
                "a different reschedule with this id was already recorded",
            ))
        };
    }
    let Some(plan) = work.plan() else {
        // No plan yet: kept as a request for the engine to consider.
        let mut state = to_value(adjustment);
        state["status"] = json!("pending");
        work.set(key, state);
        return Outcome::Accepted;
    };
    let current = plan.version.max(loaded.head.plan_version.unwrap_or(0));
    let mut state = to_value(adjustment);
    if adjustment.plan_version.is_some_and(|asked| asked < current) {
        state["status"] = json!("superseded_by_adaptive_plan");
        work.set(key.clone(), state.clone());
        let record = work.record(
            ConflictRule::SupersededByAdaptivePlan,
            &key,
            SUPERSEDED_PLAN_MESSAGE.into(),
            to_value(&plan),
            to_value(adjustment),
            UndoAction::Reschedule {
                adjustment_id: adjustment.id,
                workout_id: adjustment.workout_id.clone(),
                new_date: adjustment.new_date,
            },
        );
        return Outcome::Conflict(Box::new(record));
    }
    match reschedule(
        &plan,
        &adjustment.workout_id,
        adjustment.new_date,
        work.ctx.at,
    ) {
        Ok(next) => {
            state["status"] = json!("applied");
            state["applied_in_version"] = json!(next.version);
            work.set(plan_key(), to_value(&next));
            work.set(key, state);
            Outcome::Accepted
        }
        Err(e) => Outcome::Refused(FieldError::new(
            "workout_id",
            FieldErrorCode::InvalidValue,
            e.to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ActivityType;
    use crate::store::StoredEntity;
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
}
