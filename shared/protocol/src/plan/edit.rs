//! The two edits the server makes to a plan on a user's behalf: a reschedule and a coach's note.

use crate::domain::WorkoutId;
use crate::plan::diff::bad_field;
use crate::plan::model::MAX_PLAN_TEXT_CHARS;
use crate::plan::model::PlanError;
use crate::plan::model::TrainingPlan;
use chrono::{DateTime, NaiveDate, Utc};

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
