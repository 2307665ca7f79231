//! Plan diffs (PRD 7.2): what changed between two plan versions, and applying it.

use crate::domain::WorkoutId;
use crate::plan::model::PlanError;
use crate::plan::model::PlannedWorkout;
use crate::plan::model::TrainingPlan;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The changes from one plan version to another, as sent to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDiff {
    /// The version the diff applies to.
    pub from_version: u64,
    /// The version applying it produces.
    pub to_version: u64,
    /// The changes, in a stable order: header, removals, updates, additions
    /// (each group by workout id).
    pub ops: Vec<PlanOp>,
}

impl PlanDiff {
    /// True when the diff changes neither the header nor any workout.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// One change within a [`PlanDiff`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum PlanOp {
    /// A new workout.
    Add {
        /// The workout, in full.
        workout: PlannedWorkout,
    },
    /// Changes to an existing workout.
    Update {
        /// The workout to change.
        id: WorkoutId,
        /// The changed top-level fields with their new values, by field name
        /// (`date`, `workout_type`, `title`, `structure`, `targets`,
        /// `coach_note`); a field that became empty is present as `null`.
        fields: Map<String, Value>,
    },
    /// A workout taken out of the plan.
    Remove {
        /// The workout to remove.
        id: WorkoutId,
    },
    /// New plan header; present only when one of its values changed.
    Header {
        /// The plan's first day.
        starts_on: NaiveDate,
        /// The plan's length in weeks.
        weeks: u8,
        /// When the new version was produced.
        generated_at: DateTime<Utc>,
    },
}

/// The diff that turns `old` into `new`. Pure and deterministic: the ops do
/// not depend on the order of either plan's workouts. Workout ids are
/// assumed unique within each plan (as validation guarantees).
pub fn diff(old: &TrainingPlan, new: &TrainingPlan) -> PlanDiff {
    let mut ops = Vec::new();
    if (old.starts_on, old.weeks, old.generated_at) != (new.starts_on, new.weeks, new.generated_at)
    {
        ops.push(PlanOp::Header {
            starts_on: new.starts_on,
            weeks: new.weeks,
            generated_at: new.generated_at,
        });
    }
    let old_by_id = by_id(old);
    let new_by_id = by_id(new);
    ops.extend(
        old_by_id
            .keys()
            .filter(|id| !new_by_id.contains_key(*id))
            .map(|id| PlanOp::Remove { id: (*id).clone() }),
    );
    ops.extend(new_by_id.iter().filter_map(|(id, after)| {
        let before = old_by_id.get(id)?;
        let fields = changed_fields(before, after);
        (!fields.is_empty()).then(|| PlanOp::Update {
            id: (*id).clone(),
            fields,
        })
    }));
    ops.extend(
        new_by_id
            .iter()
            .filter(|(id, _)| !old_by_id.contains_key(*id))
            .map(|(_, workout)| PlanOp::Add {
                workout: (*workout).clone(),
            }),
    );
    PlanDiff {
        from_version: old.version,
        to_version: new.version,
        ops,
    }
}

fn by_id(plan: &TrainingPlan) -> BTreeMap<&WorkoutId, &PlannedWorkout> {
    plan.workouts.iter().map(|w| (&w.id, w)).collect()
}

fn changed_fields(old: &PlannedWorkout, new: &PlannedWorkout) -> Map<String, Value> {
    // Destructured so that a new workout field fails to compile until it is diffed.
    let PlannedWorkout {
        id: _,
        date,
        workout_type,
        title,
        structure,
        targets,
        coach_note,
    } = new;
    let mut fields = Map::new();
    put_if_changed(&mut fields, "date", &old.date, date);
    put_if_changed(&mut fields, "workout_type", &old.workout_type, workout_type);
    put_if_changed(&mut fields, "title", &old.title, title);
    put_if_changed(&mut fields, "structure", &old.structure, structure);
    put_if_changed(&mut fields, "targets", &old.targets, targets);
    put_if_changed(&mut fields, "coach_note", &old.coach_note, coach_note);
    fields
}

fn put_if_changed<T: PartialEq + Serialize>(
    fields: &mut Map<String, Value>,
    name: &str,
    old: &T,
    new: &T,
) {
    if old != new {
        let value = serde_json::to_value(new)
            .expect("plan types have only string map keys, so they always serialize to JSON");
        fields.insert(name.to_owned(), value);
    }
}

/// Applies `diff` to `old`, giving the plan of version `diff.to_version` with
/// its workouts in canonical order. Checks the diff's structure only; validate
/// the result before trusting it.
pub fn apply(old: &TrainingPlan, diff: &PlanDiff) -> Result<TrainingPlan, PlanError> {
    if diff.from_version != old.version {
        return Err(PlanError::VersionMismatch {
            expected: diff.from_version,
            actual: old.version,
        });
    }
    let mut plan = TrainingPlan {
        version: diff.to_version,
        ..old.clone()
    };
    let mut workouts: BTreeMap<WorkoutId, PlannedWorkout> = old
        .workouts
        .iter()
        .map(|w| (w.id.clone(), w.clone()))
        .collect();
    for op in &diff.ops {
        match op {
            PlanOp::Header {
                starts_on,
                weeks,
                generated_at,
            } => {
                plan.starts_on = *starts_on;
                plan.weeks = *weeks;
                plan.generated_at = *generated_at;
            }
            PlanOp::Remove { id } => {
                workouts
                    .remove(id)
                    .ok_or_else(|| PlanError::UnknownWorkout(id.clone()))?;
            }
            PlanOp::Update { id, fields } => {
                let workout = workouts
                    .get_mut(id)
                    .ok_or_else(|| PlanError::UnknownWorkout(id.clone()))?;
                for (name, value) in fields {
                    set_field(workout, name, value)?;
                }
            }
            PlanOp::Add { workout } => {
                if workouts.contains_key(&workout.id) {
                    return Err(PlanError::DuplicateWorkout(workout.id.clone()));
                }
                workouts.insert(workout.id.clone(), workout.clone());
            }
        }
    }
    plan.workouts = workouts.into_values().collect();
    plan.normalize();
    Ok(plan)
}

fn set_field(workout: &mut PlannedWorkout, name: &str, value: &Value) -> Result<(), PlanError> {
    let parsed = match name {
        "date" => Deserialize::deserialize(value).map(|v| workout.date = v),
        "workout_type" => Deserialize::deserialize(value).map(|v| workout.workout_type = v),
        "title" => Deserialize::deserialize(value).map(|v| workout.title = v),
        "structure" => Deserialize::deserialize(value).map(|v| workout.structure = v),
        "targets" => Deserialize::deserialize(value).map(|v| workout.targets = v),
        "coach_note" => Deserialize::deserialize(value).map(|v| workout.coach_note = v),
        "id" => {
            return Err(bad_field(
                workout,
                name,
                "a workout's id never changes; remove it and add a new one",
            ));
        }
        _ => return Err(bad_field(workout, name, "not a workout field")),
    };
    parsed.map_err(|e| bad_field(workout, name, e.to_string()))
}

pub(crate) fn bad_field(
    workout: &PlannedWorkout,
    name: &str,
    reason: impl Into<String>,
) -> PlanError {
    PlanError::BadField {
        id: workout.id.clone(),
        field: name.to_owned(),
        reason: reason.into(),
    }
}
