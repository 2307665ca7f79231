//! The rules a plan version must meet before it is stored or applied.

use crate::domain::WorkoutId;
use crate::plan::model::MAX_PLAN_TEXT_CHARS;
use crate::plan::model::MAX_PLAN_WEEKS;
use crate::plan::model::MAX_PLAN_WORKOUTS;
use crate::plan::model::MAX_WORKOUT_STEPS;
use crate::plan::model::MAX_WORKOUT_TITLE_CHARS;
use crate::plan::model::MIN_PLAN_WEEKS;
use crate::plan::model::PaceRange;
use crate::plan::model::PlannedWorkout;
use crate::plan::model::TrainingPlan;
use crate::plan::model::WorkoutStep;
use crate::plan::model::WorkoutTargets;
use crate::plan::model::order_key;
use crate::validate::{
    FieldError, FieldErrorCode, Validate, check_timestamp, earliest_timestamp, in_range,
    opt_in_range,
};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::fmt::Display;

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
