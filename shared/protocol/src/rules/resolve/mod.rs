//! Applying a batch of writes to a user's stored state by the conflict rules
//! of PRD 5, for client uploads and backend ingest alike. Pure: the caller
//! loads the state first ([`Batch::keys`], plus duplicate candidates and
//! redirect targets) and commits the [`Resolution`].

use crate::domain::{
    Activity, Alert, CalculatedMetrics, ConflictRecord, ConflictRule, ConflictStatus, DailyMetric,
    DeviceId, EntityKind, PlanAdjustment, SettingsChange, Tombstone, UNDO_WINDOW_HOURS, UndoAction,
    WorkoutId,
};
use crate::domain::{EntityKey, EntityWrite, Loaded};
use crate::plan::TrainingPlan;
use crate::rules::merge::Origin;
use crate::rules::resolve::by_kind::resolve_change;
use crate::validate::{FieldError, FieldErrorCode, Validate};
use crate::wire::{AcceptedItem, ConflictItem, ItemType};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

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

pub(crate) fn plan_key() -> EntityKey {
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
pub(crate) enum Outcome {
    /// Stored as sent (or merged without a conflict).
    Accepted,
    /// A rule decided; the record goes to the conflict log.
    Conflict(Box<ConflictRecord>),
    /// Refused.
    Refused(FieldError),
}

/// A domain value as stored JSON. Domain types are plain structs and enums
/// with string keys, which always serialize; a failure would be a bug in a
/// type here, never bad input, so it stops loudly instead of storing `null`.
pub(crate) fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("domain values serialize to JSON")
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(v: Option<&Value>) -> Option<T> {
    v.filter(|v| Tombstone::of(v).is_none())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The batch's working state: entity states as the batch has left them so far.
pub(crate) struct Working<'a> {
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

mod by_kind;
#[cfg(test)]
mod tests;

impl Validate for CoachNote {
    fn validate(&self, _now: DateTime<Utc>) -> Result<(), FieldError> {
        let chars = self.note.as_deref().map_or(0, |n| n.chars().count());
        if chars > crate::limits::MAX_NOTES_CHARS {
            return Err(FieldError::new(
                "note",
                FieldErrorCode::TooLong,
                format!(
                    "note must be at most {} characters",
                    crate::limits::MAX_NOTES_CHARS
                ),
            ));
        }
        Ok(())
    }
}
