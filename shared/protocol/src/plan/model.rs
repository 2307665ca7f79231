//! The training plan as the backend publishes it: workouts, steps, targets, and its limits.

use crate::domain::WorkoutId;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

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
    pub(crate) fn next_version(&self, at: DateTime<Utc>) -> Result<TrainingPlan, PlanError> {
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

    pub(crate) fn workout_mut(&mut self, id: &WorkoutId) -> Result<&mut PlannedWorkout, PlanError> {
        self.workouts
            .iter_mut()
            .find(|w| &w.id == id)
            .ok_or_else(|| PlanError::UnknownWorkout(id.clone()))
    }
}

pub(crate) fn order_key(w: &PlannedWorkout) -> (NaiveDate, &WorkoutId) {
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
