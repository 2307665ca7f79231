//! Training plans: the backend's plan versions, their validation, and plan diffs (PRD 7.2).
//!
//! The backend owns the plan; the client never edits its structure, it only
//! asks for reschedules. A new plan version reaches the client as a
//! [`PlanDiff`] against the version it holds, which stays well under 1 KB for
//! a typical change where the full plan is tens of kilobytes.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::WorkoutId;
use crate::validation::{
    FieldError, FieldErrorCode, Validate, check_timestamp, earliest_timestamp, in_range,
    opt_in_range,
};

/// Fewest weeks a plan spans.
pub const MIN_PLAN_WEEKS: u8 = 4;
/// Most weeks a plan spans.
pub const MAX_PLAN_WEEKS: u8 = 8;
/// Most workouts in one plan (three a day over the longest plan).
pub const MAX_PLAN_WORKOUTS: usize = MAX_PLAN_WEEKS as usize * 7 * 3;
/// Most steps in one workout's structure.
pub const MAX_WORKOUT_STEPS: usize = 30;
/// Longest workout title (characters).
pub const MAX_WORKOUT_TITLE_CHARS: usize = 120;
/// Longest coach note or step description (characters).
pub const MAX_PLAN_TEXT_CHARS: usize = 2000;

/// What kind of session a planned workout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkoutType {
    /// Easy aerobic run.
    Easy,
    /// Very light run to recover.
    Recovery,
    /// Sustained run at threshold effort.
    Tempo,
    /// Repeated hard efforts with recoveries.
    Interval,
    /// The week's long run.
    LongRun,
    /// A race.
    Race,
    /// Strength training.
    Strength,
    /// Another sport (cycling, swimming, ...).
    CrossTraining,
    /// A planned rest day.
    Rest,
}

/// The role of one step within a workout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Warm-up before the main set.
    Warmup,
    /// A work interval of the main set.
    Work,
    /// Recovery between work intervals.
    Recovery,
    /// Cool-down after the main set.
    Cooldown,
}

/// A pace window in seconds per kilometre (`min` is the faster end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaceRange {
    /// Fastest pace of the window (s/km).
    pub min: u16,
    /// Slowest pace of the window (s/km).
    pub max: u16,
}

/// One step of a workout's structure (a warm-up, a set of intervals, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkoutStep {
    /// The step's role.
    pub kind: StepKind,
    /// Planned duration of one repeat (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u32>,
    /// Planned distance of one repeat (metres).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<u32>,
    /// How many times the step repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u8>,
    /// Target pace window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_pace_s_per_km: Option<PaceRange>,
    /// Target heart-rate zone (1 to 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_hr_zone: Option<u8>,
    /// Free-text instructions for the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What the whole workout aims for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkoutTargets {
    /// Total duration (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u32>,
    /// Total distance (metres).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<u32>,
    /// Intended effort, 1 to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpe: Option<u8>,
    /// Intended average pace window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace_s_per_km: Option<PaceRange>,
    /// Intended heart-rate zone (1 to 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hr_zone: Option<u8>,
}

/// One workout of the plan, on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedWorkout {
    /// Stable identity across plan versions.
    pub id: WorkoutId,
    /// The day it is planned for.
    pub date: NaiveDate,
    /// What kind of session it is.
    pub workout_type: WorkoutType,
    /// Short name shown to the user.
    pub title: String,
    /// The steps, in order.
    pub structure: Vec<WorkoutStep>,
    /// What the workout aims for as a whole.
    pub targets: WorkoutTargets,
    /// A note from the coach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coach_note: Option<String>,
}

/// One version of a user's training plan.
///
/// Workouts are kept sorted by `(date, id)` (see [`TrainingPlan::normalize`]);
/// validation refuses any other order, so equal plans serialize identically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingPlan {
    /// Plan version; every change the backend makes increments it.
    pub version: u64,
    /// When this version was produced.
    pub generated_at: DateTime<Utc>,
    /// First day of the plan.
    pub starts_on: NaiveDate,
    /// Length of the plan in weeks (4 to 8).
    pub weeks: u8,
    /// The workouts, sorted by `(date, id)`.
    pub workouts: Vec<PlannedWorkout>,
}

impl TrainingPlan {
    /// Sorts the workouts by `(date, id)`, the plan's canonical order.
    pub fn normalize(&mut self) {
        self.workouts
            .sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    }

    /// The workout with `id`, if the plan has it.
    pub fn workout(&self, id: &WorkoutId) -> Option<&PlannedWorkout> {
        self.workouts.iter().find(|w| &w.id == id)
    }

    /// Whether the plan has a workout with `id`.
    pub fn contains_workout(&self, id: &WorkoutId) -> bool {
        self.workout(id).is_some()
    }

    /// Whether `date` lies within the plan: on or after `starts_on`, before `starts_on + 7 * weeks` days.
    pub fn covers(&self, date: NaiveDate) -> bool {
        let offset = date.signed_duration_since(self.starts_on).num_days();
        (0..i64::from(self.weeks) * 7).contains(&offset)
    }

    /// A copy to edit as the next version: `version + 1`, generated `at`.
    fn next_version(&self, at: DateTime<Utc>) -> Result<TrainingPlan, PlanError> {
        let version = self
            .version
            .checked_add(1)
            .ok_or(PlanError::VersionExhausted)?;
        Ok(TrainingPlan {
            version,
            generated_at: at,
            ..self.clone()
        })
    }

    fn workout_mut(&mut self, id: &WorkoutId) -> Result<&mut PlannedWorkout, PlanError> {
        self.workouts
            .iter_mut()
            .find(|w| &w.id == id)
            .ok_or_else(|| PlanError::UnknownWorkout(id.clone()))
    }
}

fn order_key(w: &PlannedWorkout) -> (NaiveDate, &WorkoutId) {
    (w.date, &w.id)
}

/// Why a plan edit or a diff could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The diff was made against another version than the plan at hand.
    #[error("the diff applies to plan version {expected}, but this plan is version {actual}")]
    VersionMismatch {
        /// The version the diff starts from.
        expected: u64,
        /// The version of the plan it was applied to.
        actual: u64,
    },
    /// No workout with this id in the plan.
    #[error("the plan has no workout {0}")]
    UnknownWorkout(WorkoutId),
    /// A workout to add is already in the plan.
    #[error("the plan already has a workout {0}")]
    DuplicateWorkout(WorkoutId),
    /// A changed field is not a workout field, cannot change, or has a bad value.
    #[error("workout {id}, field {field}: {reason}")]
    BadField {
        /// The workout being changed.
        id: WorkoutId,
        /// The field's name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A date outside the plan's weeks.
    #[error("{date} lies outside the plan ({weeks} weeks from {starts_on})")]
    OutsidePlan {
        /// The refused date.
        date: NaiveDate,
        /// The plan's first day.
        starts_on: NaiveDate,
        /// The plan's length in weeks.
        weeks: u8,
    },
    /// The plan's version cannot be incremented any further.
    #[error("the plan version cannot be incremented any further")]
    VersionExhausted,
}

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

fn bad_field(workout: &PlannedWorkout, name: &str, reason: impl Into<String>) -> PlanError {
    PlanError::BadField {
        id: workout.id.clone(),
        field: name.to_owned(),
        reason: reason.into(),
    }
}

/// Moves a workout to `new_date` (a user's reschedule), giving the next
/// version, generated `at`. Moving to the same date still makes a new version.
pub fn reschedule(
    plan: &TrainingPlan,
    workout: &WorkoutId,
    new_date: NaiveDate,
    at: DateTime<Utc>,
) -> Result<TrainingPlan, PlanError> {
    if !plan.contains_workout(workout) {
        return Err(PlanError::UnknownWorkout(workout.clone()));
    }
    if !plan.covers(new_date) {
        return Err(PlanError::OutsidePlan {
            date: new_date,
            starts_on: plan.starts_on,
            weeks: plan.weeks,
        });
    }
    let mut next = plan.next_version(at)?;
    next.workout_mut(workout)?.date = new_date;
    next.normalize();
    Ok(next)
}

/// Sets (or with `None` clears) a workout's coach note, giving the next
/// version, generated `at`.
pub fn set_coach_note(
    plan: &TrainingPlan,
    workout: &WorkoutId,
    note: Option<String>,
    at: DateTime<Utc>,
) -> Result<TrainingPlan, PlanError> {
    let mut next = plan.next_version(at)?;
    let target = next.workout_mut(workout)?;
    let chars = note.as_deref().map_or(0, |n| n.chars().count());
    if chars > MAX_PLAN_TEXT_CHARS {
        return Err(bad_field(
            target,
            "coach_note",
            format!("must be at most {MAX_PLAN_TEXT_CHARS} characters, got {chars}"),
        ));
    }
    target.coach_note = note;
    Ok(next)
}

impl Validate for TrainingPlan {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        check_timestamp("generated_at", self.generated_at, now)?;
        let latest_start = NaiveDate::from_ymd_opt(2100, 12, 31).expect("valid date");
        in_range(
            "starts_on",
            self.starts_on,
            earliest_timestamp().date_naive(),
            latest_start,
        )?;
        in_range("weeks", self.weeks, MIN_PLAN_WEEKS, MAX_PLAN_WEEKS)?;
        if self.workouts.len() > MAX_PLAN_WORKOUTS {
            return Err(FieldError::new(
                "workouts",
                FieldErrorCode::OutOfRange,
                format!(
                    "a plan has at most {MAX_PLAN_WORKOUTS} workouts, got {}",
                    self.workouts.len()
                ),
            ));
        }
        let mut seen: HashMap<&WorkoutId, usize> = HashMap::new();
        for (i, workout) in self.workouts.iter().enumerate() {
            let path = format!("workouts[{i}]");
            if let Some(first) = seen.insert(&workout.id, i) {
                return Err(FieldError::new(
                    format!("{path}.id"),
                    FieldErrorCode::InvalidValue,
                    format!("workout id {} repeats workouts[{first}].id", workout.id),
                ));
            }
            if !self.covers(workout.date) {
                return Err(FieldError::new(
                    format!("{path}.date"),
                    FieldErrorCode::OutOfRange,
                    format!(
                        "{path}.date must lie within the plan's {} weeks from {}, got {}",
                        self.weeks, self.starts_on, workout.date
                    ),
                ));
            }
            check_workout(&path, workout)?;
            if i > 0 && order_key(&self.workouts[i - 1]) > order_key(workout) {
                return Err(FieldError::new(
                    path,
                    FieldErrorCode::InvalidValue,
                    "workouts must be sorted by date, then id",
                ));
            }
        }
        Ok(())
    }
}

fn check_workout(path: &str, workout: &PlannedWorkout) -> Result<(), FieldError> {
    check_chars(path, "title", Some(&workout.title), MAX_WORKOUT_TITLE_CHARS)?;
    check_chars(
        path,
        "coach_note",
        workout.coach_note.as_deref(),
        MAX_PLAN_TEXT_CHARS,
    )?;
    if workout.structure.len() > MAX_WORKOUT_STEPS {
        return Err(FieldError::new(
            format!("{path}.structure"),
            FieldErrorCode::OutOfRange,
            format!(
                "a workout has at most {MAX_WORKOUT_STEPS} steps, got {}",
                workout.structure.len()
            ),
        ));
    }
    for (k, step) in workout.structure.iter().enumerate() {
        check_step(&format!("{path}.structure[{k}]"), step)?;
    }
    check_targets(&format!("{path}.targets"), &workout.targets)
}

fn check_step(path: &str, step: &WorkoutStep) -> Result<(), FieldError> {
    check_opt_range(path, "duration_s", step.duration_s, 1, 86_400)?;
    check_opt_range(path, "distance_m", step.distance_m, 1, 500_000)?;
    check_opt_range(path, "repeats", step.repeats, 1, 50)?;
    check_pace(path, "target_pace_s_per_km", step.target_pace_s_per_km)?;
    check_opt_range(path, "target_hr_zone", step.target_hr_zone, 1, 5)?;
    check_chars(
        path,
        "description",
        step.description.as_deref(),
        MAX_PLAN_TEXT_CHARS,
    )
}

fn check_targets(path: &str, targets: &WorkoutTargets) -> Result<(), FieldError> {
    check_opt_range(path, "duration_s", targets.duration_s, 1, 86_400)?;
    check_opt_range(path, "distance_m", targets.distance_m, 1, 500_000)?;
    check_opt_range(path, "rpe", targets.rpe, 1, 10)?;
    check_pace(path, "pace_s_per_km", targets.pace_s_per_km)?;
    check_opt_range(path, "hr_zone", targets.hr_zone, 1, 5)
}

fn check_pace(path: &str, name: &str, pace: Option<PaceRange>) -> Result<(), FieldError> {
    let Some(pace) = pace else {
        return Ok(());
    };
    let field = format!("{path}.{name}");
    check_opt_range(&field, "min", Some(pace.min), 120, 1200)?;
    check_opt_range(&field, "max", Some(pace.max), 120, 1200)?;
    if pace.min > pace.max {
        return Err(FieldError::new(
            &field,
            FieldErrorCode::InvalidValue,
            format!(
                "{field}.min must not exceed its max, got {} > {}",
                pace.min, pace.max
            ),
        ));
    }
    Ok(())
}

fn check_opt_range<T: PartialOrd + Display + Copy>(
    path: &str,
    name: &str,
    value: Option<T>,
    min: T,
    max: T,
) -> Result<(), FieldError> {
    opt_in_range(&format!("{path}.{name}"), value, min, max)
}

fn check_chars(path: &str, name: &str, value: Option<&str>, max: usize) -> Result<(), FieldError> {
    let chars = value.map_or(0, |v| v.chars().count());
    if chars > max {
        let field = format!("{path}.{name}");
        return Err(FieldError::new(
            &field,
            FieldErrorCode::TooLong,
            format!("{field} must be at most {max} characters, got {chars}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::validate_item;
    use chrono::{Days, Duration, TimeZone};
    use proptest::prelude::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 10, 12, 0, 0).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn id(s: &str) -> WorkoutId {
        WorkoutId::parse(s).unwrap()
    }

    use crate::fixtures::step;

    /// The shared realistic plan: 8 weeks from Monday 2025-01-06.
    fn realistic_plan() -> TrainingPlan {
        crate::fixtures::realistic_plan(date(2025, 1, 6), now() - Duration::days(3), 22)
    }

    fn json_len<T: Serialize>(value: &T) -> usize {
        serde_json::to_vec(value).unwrap().len()
    }

    #[test]
    fn the_realistic_plan_is_valid() {
        let plan = realistic_plan();
        assert_eq!(plan.workouts.len(), 48);
        plan.validate(now()).unwrap();
        let parsed: TrainingPlan =
            validate_item(serde_json::to_value(&plan).unwrap(), now()).unwrap();
        assert_eq!(parsed, plan);
    }

    #[test]
    fn changing_one_workout_from_tempo_to_easy_is_a_sub_kilobyte_diff() {
        let old = realistic_plan();
        let mut new = old.clone();
        new.version += 1;
        new.generated_at = now();
        let tempo = id("w-2025-01-20-tempo");
        let workout = new.workouts.iter_mut().find(|w| w.id == tempo).unwrap();
        assert_eq!(workout.workout_type, WorkoutType::Tempo);
        workout.workout_type = WorkoutType::Easy;
        workout.title = "Easy run".into();
        workout.structure = vec![step(StepKind::Work, 2700, (360, 420), 2)];
        workout.targets = WorkoutTargets {
            duration_s: Some(2700),
            rpe: Some(3),
            hr_zone: Some(2),
            ..WorkoutTargets::default()
        };

        let d = diff(&old, &new);
        let plan_bytes = json_len(&new);
        let diff_bytes = json_len(&d);
        println!("full plan: {plan_bytes} bytes, tempo-to-easy diff: {diff_bytes} bytes");
        println!("{}", serde_json::to_string(&d).unwrap());
        assert!(plan_bytes > 20 * 1024, "plan is only {plan_bytes} bytes");
        assert!(diff_bytes < 1024, "diff is {diff_bytes} bytes");
        assert_eq!(d.ops.len(), 2);
        assert!(matches!(d.ops[0], PlanOp::Header { .. }));
        let PlanOp::Update {
            id: changed,
            fields,
        } = &d.ops[1]
        else {
            panic!("expected an update, got {:?}", d.ops[1]);
        };
        assert_eq!(changed, &tempo);
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["structure", "targets", "title", "workout_type"]);
        assert_eq!(fields["workout_type"], json!("easy"));
        assert_eq!(apply(&old, &d).unwrap(), new);
    }

    #[test]
    fn a_reschedule_is_a_sub_kilobyte_diff() {
        let old = realistic_plan();
        let long_run = id("w-2025-01-25-longrun");
        let new = reschedule(&old, &long_run, date(2025, 1, 26), now()).unwrap();
        let d = diff(&old, &new);
        let diff_bytes = json_len(&d);
        println!("reschedule diff: {diff_bytes} bytes");
        assert!(diff_bytes < 1024, "diff is {diff_bytes} bytes");
        assert_eq!(
            d.ops[1],
            PlanOp::Update {
                id: long_run,
                fields: json!({"date": "2025-01-26"}).as_object().unwrap().clone(),
            }
        );
        assert_eq!(d.ops.len(), 2);
        assert_eq!(apply(&old, &d).unwrap(), new);
    }

    #[test]
    fn diffs_travel_as_tagged_json() {
        let old = realistic_plan();
        let mut new = set_coach_note(&old, &id("w-2025-01-06-tempo"), None, now()).unwrap();
        new.workouts.retain(|w| w.id != id("w-2025-01-07-easy"));
        let d = diff(&old, &new);
        let wire = serde_json::to_value(&d).unwrap();
        assert_eq!(wire["from_version"], json!(22));
        assert_eq!(wire["to_version"], json!(23));
        assert_eq!(wire["ops"][0]["op"], json!("header"));
        assert_eq!(
            wire["ops"][1],
            json!({"op": "remove", "id": "w-2025-01-07-easy"})
        );
        assert_eq!(
            wire["ops"][2],
            json!({"op": "update", "id": "w-2025-01-06-tempo", "fields": {"coach_note": null}})
        );
        let back: PlanDiff = serde_json::from_value(wire).unwrap();
        assert_eq!(back, d);
        assert_eq!(apply(&old, &back).unwrap(), new);
    }

    #[test]
    fn diffs_refuse_unknown_fields_and_ops() {
        let base = json!({"from_version": 1, "to_version": 2, "ops": []});
        assert!(serde_json::from_value::<PlanDiff>(base.clone()).is_ok());
        let mut extra = base.clone();
        extra["note"] = json!("x");
        assert!(serde_json::from_value::<PlanDiff>(extra).is_err());
        let mut bad_op = base.clone();
        bad_op["ops"] = json!([{"op": "remove", "id": "w1", "why": "x"}]);
        assert!(serde_json::from_value::<PlanDiff>(bad_op).is_err());
        let mut unknown_op = base;
        unknown_op["ops"] = json!([{"op": "rename", "id": "w1"}]);
        assert!(serde_json::from_value::<PlanDiff>(unknown_op).is_err());
    }

    #[test]
    fn apply_refuses_diffs_that_do_not_fit() {
        let plan = realistic_plan();
        let tempo = id("w-2025-01-06-tempo");
        let ghost = id("w-ghost");
        let with_ops = |from_version: u64, ops: Vec<PlanOp>| PlanDiff {
            from_version,
            to_version: from_version + 1,
            ops,
        };
        let update = |id: &WorkoutId, fields: Value| PlanOp::Update {
            id: id.clone(),
            fields: fields.as_object().unwrap().clone(),
        };

        assert_eq!(
            apply(&plan, &with_ops(21, vec![])),
            Err(PlanError::VersionMismatch {
                expected: 21,
                actual: 22
            })
        );
        assert_eq!(
            apply(
                &plan,
                &with_ops(22, vec![PlanOp::Remove { id: ghost.clone() }])
            ),
            Err(PlanError::UnknownWorkout(ghost.clone()))
        );
        assert_eq!(
            apply(
                &plan,
                &with_ops(22, vec![update(&ghost, json!({"title": "x"}))])
            ),
            Err(PlanError::UnknownWorkout(ghost))
        );
        let existing = plan.workout(&tempo).unwrap().clone();
        assert_eq!(
            apply(
                &plan,
                &with_ops(22, vec![PlanOp::Add { workout: existing }])
            ),
            Err(PlanError::DuplicateWorkout(tempo.clone()))
        );
        for (fields, field) in [
            (json!({"workout_type": "sprint"}), "workout_type"),
            (json!({"title": null}), "title"),
            (json!({"date": "2025-02-30"}), "date"),
            (json!({"targets": {"rpee": 3}}), "targets"),
            (json!({"id": "w-other"}), "id"),
            (json!({"colour": "red"}), "colour"),
        ] {
            let err =
                apply(&plan, &with_ops(22, vec![update(&tempo, fields.clone())])).unwrap_err();
            assert!(
                matches!(&err, PlanError::BadField { id, field: f, .. } if id == &tempo && f == field),
                "{fields}: {err:?}"
            );
        }
    }

    #[test]
    fn reschedule_moves_the_workout_and_bumps_the_version() {
        let plan = realistic_plan();
        let tempo = id("w-2025-01-06-tempo");
        let moved = reschedule(&plan, &tempo, date(2025, 1, 12), now()).unwrap();
        assert_eq!(moved.version, 23);
        assert_eq!(moved.generated_at, now());
        assert_eq!(moved.workout(&tempo).unwrap().date, date(2025, 1, 12));
        assert_eq!(moved.workouts.len(), plan.workouts.len());
        // Re-sorted: it is now the last workout of the first week.
        assert_eq!(moved.workouts[5].id, tempo);
        moved.validate(now()).unwrap();
    }

    #[test]
    fn reschedule_refuses_unknown_workouts_and_dates_outside_the_plan() {
        let plan = realistic_plan();
        let tempo = id("w-2025-01-06-tempo");
        assert_eq!(
            reschedule(&plan, &id("w-ghost"), date(2025, 1, 12), now()),
            Err(PlanError::UnknownWorkout(id("w-ghost")))
        );
        for outside in [date(2025, 1, 5), date(2025, 3, 3)] {
            assert_eq!(
                reschedule(&plan, &tempo, outside, now()),
                Err(PlanError::OutsidePlan {
                    date: outside,
                    starts_on: date(2025, 1, 6),
                    weeks: 8
                })
            );
        }
        // The plan's last day is still inside.
        assert!(reschedule(&plan, &tempo, date(2025, 3, 2), now()).is_ok());
        let mut last = plan.clone();
        last.version = u64::MAX;
        assert_eq!(
            reschedule(&last, &tempo, date(2025, 1, 7), now()),
            Err(PlanError::VersionExhausted)
        );
    }

    #[test]
    fn set_coach_note_sets_and_clears_the_note() {
        let plan = realistic_plan();
        let easy = id("w-2025-01-07-easy");
        let noted = set_coach_note(&plan, &easy, Some("Go by feel.".into()), now()).unwrap();
        assert_eq!(noted.version, 23);
        assert_eq!(noted.generated_at, now());
        assert_eq!(
            noted.workout(&easy).unwrap().coach_note.as_deref(),
            Some("Go by feel.")
        );
        let cleared = set_coach_note(&noted, &easy, None, now()).unwrap();
        assert_eq!(cleared.version, 24);
        assert_eq!(cleared.workout(&easy).unwrap().coach_note, None);
        // Nothing else changed.
        assert_eq!(diff(&noted, &cleared).ops.len(), 1);
    }

    #[test]
    fn set_coach_note_refuses_unknown_workouts_and_long_notes() {
        let plan = realistic_plan();
        assert_eq!(
            set_coach_note(&plan, &id("w-ghost"), None, now()),
            Err(PlanError::UnknownWorkout(id("w-ghost")))
        );
        let easy = id("w-2025-01-07-easy");
        let err = set_coach_note(&plan, &easy, Some("x".repeat(2001)), now()).unwrap_err();
        assert!(matches!(err, PlanError::BadField { field, .. } if field == "coach_note"));
        assert!(set_coach_note(&plan, &easy, Some("é".repeat(2000)), now()).is_ok());
    }

    #[test]
    fn covers_spans_exactly_the_plans_weeks() {
        let plan = realistic_plan();
        assert!(!plan.covers(date(2025, 1, 5)));
        assert!(plan.covers(date(2025, 1, 6)));
        assert!(plan.covers(date(2025, 3, 2)));
        assert!(!plan.covers(date(2025, 3, 3)));
        assert!(plan.contains_workout(&id("w-2025-01-06-tempo")));
        assert!(!plan.contains_workout(&id("w-2025-01-12-rest")));
    }

    fn plan_error(edit: impl FnOnce(&mut Value)) -> FieldError {
        let mut value = serde_json::to_value(realistic_plan()).unwrap();
        edit(&mut value);
        validate_item::<TrainingPlan>(value, now()).unwrap_err()
    }

    #[test]
    fn each_bad_plan_value_is_named_by_its_path() {
        use FieldErrorCode::*;
        type Edit = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(Edit, &str, FieldErrorCode)> = vec![
            (Box::new(|p| p["weeks"] = json!(9)), "weeks", OutOfRange),
            (Box::new(|p| p["weeks"] = json!(3)), "weeks", OutOfRange),
            (
                Box::new(|p| p["generated_at"] = json!("2030-01-01T00:00:00Z")),
                "generated_at",
                OutOfRange,
            ),
            (
                Box::new(|p| p["workouts"][2]["id"] = p["workouts"][1]["id"].clone()),
                "workouts[2].id",
                InvalidValue,
            ),
            (
                Box::new(|p| p["workouts"][47]["date"] = json!("2025-03-03")),
                "workouts[47].date",
                OutOfRange,
            ),
            (
                Box::new(|p| p["workouts"][0]["date"] = json!("2025-01-05")),
                "workouts[0].date",
                OutOfRange,
            ),
            (
                Box::new(|p| p["workouts"][3]["targets"]["rpe"] = json!(11)),
                "workouts[3].targets.rpe",
                OutOfRange,
            ),
            (
                Box::new(|p| p["workouts"][3]["targets"]["hr_zone"] = json!(0)),
                "workouts[3].targets.hr_zone",
                OutOfRange,
            ),
            (
                Box::new(|p| {
                    p["workouts"][1]["targets"]["pace_s_per_km"] = json!({"min": 400, "max": 300})
                }),
                "workouts[1].targets.pace_s_per_km",
                InvalidValue,
            ),
            (
                Box::new(|p| {
                    p["workouts"][1]["targets"]["pace_s_per_km"] = json!({"min": 100, "max": 300})
                }),
                "workouts[1].targets.pace_s_per_km.min",
                OutOfRange,
            ),
            (
                Box::new(|p| p["workouts"][2]["structure"][1]["target_hr_zone"] = json!(6)),
                "workouts[2].structure[1].target_hr_zone",
                OutOfRange,
            ),
            (
                Box::new(|p| p["workouts"][2]["structure"][1]["repeats"] = json!(51)),
                "workouts[2].structure[1].repeats",
                OutOfRange,
            ),
            (
                Box::new(|p| p["workouts"][2]["structure"][0]["duration_s"] = json!(0)),
                "workouts[2].structure[0].duration_s",
                OutOfRange,
            ),
            (
                Box::new(|p| p["workouts"][4]["targets"]["distance_m"] = json!(500_001)),
                "workouts[4].targets.distance_m",
                OutOfRange,
            ),
            (
                Box::new(|p| p["workouts"][0]["title"] = json!("x".repeat(121))),
                "workouts[0].title",
                TooLong,
            ),
            (
                Box::new(|p| p["workouts"][0]["coach_note"] = json!("x".repeat(2001))),
                "workouts[0].coach_note",
                TooLong,
            ),
            (
                Box::new(|p| {
                    p["workouts"][0]["structure"][2]["description"] = json!("x".repeat(2001))
                }),
                "workouts[0].structure[2].description",
                TooLong,
            ),
            (
                Box::new(|p| {
                    let step = p["workouts"][0]["structure"][0].clone();
                    p["workouts"][0]["structure"] = json!(vec![step; 31]);
                }),
                "workouts[0].structure",
                OutOfRange,
            ),
            (
                Box::new(|p| p["workouts"].as_array_mut().unwrap().swap(0, 1)),
                "workouts[1]",
                InvalidValue,
            ),
            (
                Box::new(|p| p["workouts"][0]["targets"]["rpee"] = json!(5)),
                "workouts[0].targets.rpee",
                UnknownField,
            ),
            (Box::new(|p| p["weekz"] = json!(8)), "weekz", UnknownField),
            (
                Box::new(|p| p["workouts"][0]["workout_type"] = json!("sprint")),
                "workouts[0].workout_type",
                InvalidValue,
            ),
            (
                Box::new(|p| p["workouts"][0]["id"] = json!("bad id")),
                "workouts[0].id",
                InvalidFormat,
            ),
        ];
        for (edit, field, code) in cases {
            let err = plan_error(edit);
            assert_eq!((err.field.as_str(), err.code), (field, code), "{err:?}");
        }
    }

    #[test]
    fn a_plan_may_hold_at_most_168_workouts() {
        let mut plan = realistic_plan();
        let template = plan.workouts[0].clone();
        plan.workouts = (0..=MAX_PLAN_WORKOUTS)
            .map(|i| PlannedWorkout {
                id: id(&format!("w{i:03}")),
                date: plan.starts_on + Days::new((i / 3) as u64),
                ..template.clone()
            })
            .collect();
        assert_eq!(plan.validate(now()).unwrap_err().field, "workouts");
        plan.workouts.pop();
        plan.validate(now()).unwrap();
    }

    fn small_workout() -> impl Strategy<Value = PlannedWorkout> {
        let step = (
            prop_oneof![Just(StepKind::Work), Just(StepKind::Recovery)],
            proptest::option::of(prop_oneof![Just(60u32), Just(120)]),
            proptest::option::of(Just(PaceRange { min: 300, max: 330 })),
            proptest::option::of(Just("relaxed".to_owned())),
        )
            .prop_map(|(kind, duration_s, pace, description)| WorkoutStep {
                kind,
                duration_s,
                distance_m: None,
                repeats: None,
                target_pace_s_per_km: pace,
                target_hr_zone: None,
                description,
            });
        (
            0u64..28,
            prop_oneof![
                Just(WorkoutType::Easy),
                Just(WorkoutType::Tempo),
                Just(WorkoutType::LongRun)
            ],
            prop_oneof![Just("Run"), Just("Tempo")],
            proptest::collection::vec(step, 0..3),
            proptest::option::of(1u8..=3),
            proptest::option::of(prop_oneof![Just("a"), Just("b")]),
        )
            .prop_map(|(day, workout_type, title, structure, rpe, coach_note)| {
                PlannedWorkout {
                    id: id("placeholder"),
                    date: date(2025, 1, 6) + Days::new(day),
                    workout_type,
                    title: title.to_owned(),
                    structure,
                    targets: WorkoutTargets {
                        rpe,
                        ..WorkoutTargets::default()
                    },
                    coach_note: coach_note.map(str::to_owned),
                }
            })
    }

    fn plan_from(
        version: u64,
        header: (u64, u8, i64),
        workouts: BTreeMap<u8, PlannedWorkout>,
    ) -> TrainingPlan {
        let mut plan = TrainingPlan {
            version,
            generated_at: now() - Duration::hours(header.2),
            starts_on: date(2025, 1, 6) + Days::new(header.0),
            weeks: header.1,
            workouts: workouts
                .into_iter()
                .map(|(n, w)| PlannedWorkout {
                    id: id(&format!("w{n}")),
                    ..w
                })
                .collect(),
        };
        plan.normalize();
        plan
    }

    fn header() -> impl Strategy<Value = (u64, u8, i64)> {
        (0u64..2, MIN_PLAN_WEEKS..=MAX_PLAN_WEEKS, 0i64..2)
    }

    /// Two plans sharing some workouts unchanged (`keep`), some changed, some
    /// only in one of them.
    fn old_and_new() -> impl Strategy<Value = (TrainingPlan, TrainingPlan)> {
        (
            0u64..1000,
            header(),
            header(),
            proptest::collection::btree_map(0u8..24, small_workout(), 0..12),
            proptest::collection::btree_map(0u8..24, small_workout(), 0..12),
            proptest::collection::btree_set(0u8..24, 0..24),
        )
            .prop_map(|(version, old_header, new_header, old, mut new, keep)| {
                for n in keep {
                    if let Some(w) = old.get(&n) {
                        new.insert(n, w.clone());
                    }
                }
                (
                    plan_from(version, old_header, old),
                    plan_from(version + 1, new_header, new),
                )
            })
    }

    proptest! {
        #[test]
        fn applying_the_diff_gives_the_new_plan((old, new) in old_and_new()) {
            let d = diff(&old, &new);
            prop_assert_eq!(apply(&old, &d), Ok(new.clone()));
            // The same through the wire format.
            let wire: PlanDiff = serde_json::from_slice(&serde_json::to_vec(&d).unwrap()).unwrap();
            prop_assert_eq!(&wire, &d);
            prop_assert_eq!(apply(&old, &wire), Ok(new.clone()));
        }

        #[test]
        fn diffs_touch_only_what_changed((old, new) in old_and_new()) {
            let d = diff(&old, &new);
            let changed = new.workouts.iter().filter(|w| old.workout(&w.id).is_some_and(|o| o != *w)).count();
            let added = new.workouts.iter().filter(|w| !old.contains_workout(&w.id)).count();
            let removed = old.workouts.iter().filter(|w| !new.contains_workout(&w.id)).count();
            let count = |f: fn(&PlanOp) -> bool| d.ops.iter().filter(|op| f(op)).count();
            prop_assert_eq!(count(|op| matches!(op, PlanOp::Update { .. })), changed);
            prop_assert_eq!(count(|op| matches!(op, PlanOp::Add { .. })), added);
            prop_assert_eq!(count(|op| matches!(op, PlanOp::Remove { .. })), removed);
            for op in &d.ops {
                if let PlanOp::Update { fields, .. } = op {
                    prop_assert!(!fields.is_empty());
                }
            }
        }

        #[test]
        fn a_plan_diffed_with_itself_has_no_ops((plan, _) in old_and_new()) {
            let d = diff(&plan, &plan);
            prop_assert!(d.is_empty(), "{:?}", d);
            prop_assert_eq!(apply(&plan, &d), Ok(plan.clone()));
        }

        #[test]
        fn diff_is_deterministic_and_ignores_workout_order((old, new) in old_and_new()) {
            let d = diff(&old, &new);
            prop_assert_eq!(&diff(&old, &new), &d);
            let mut old_reversed = old.clone();
            old_reversed.workouts.reverse();
            let mut new_reversed = new.clone();
            new_reversed.workouts.reverse();
            let reversed = diff(&old_reversed, &new_reversed);
            prop_assert_eq!(
                serde_json::to_vec(&reversed).unwrap(),
                serde_json::to_vec(&d).unwrap()
            );
        }

        #[test]
        fn a_diff_applies_only_to_its_own_version((old, new) in old_and_new()) {
            let mut other = old.clone();
            other.version += 1;
            let err = apply(&other, &diff(&old, &new));
            prop_assert!(matches!(err, Err(PlanError::VersionMismatch { .. })), "{:?}", err);
        }
    }
}
