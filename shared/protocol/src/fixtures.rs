//! Example data for tests and benchmarks of the server and the client
//! (feature `fixtures`; never in a release build).

use chrono::{DateTime, Days, NaiveDate, Utc};

use crate::domain::WorkoutId;
use crate::plan::{
    PaceRange, PlannedWorkout, StepKind, TrainingPlan, WorkoutStep, WorkoutTargets, WorkoutType,
};

/// A workout id (panics on an invalid one: fixtures only).
pub fn workout_id(text: &str) -> WorkoutId {
    WorkoutId::parse(text).expect("a valid workout id")
}

/// A timed step at a pace window and heart-rate zone.
pub fn step(kind: StepKind, duration_s: u32, pace: (u16, u16), zone: u8) -> WorkoutStep {
    WorkoutStep {
        kind,
        duration_s: Some(duration_s),
        distance_m: None,
        repeats: None,
        target_pace_s_per_km: Some(PaceRange {
            min: pace.0,
            max: pace.1,
        }),
        target_hr_zone: Some(zone),
        description: Some(format!("{kind:?} at zone {zone}, stay relaxed and tall")),
    }
}

/// A realistic plan of `version`: 8 weeks from `starts_on`, six workouts a
/// week (the seventh day off), 3 to 5 steps each and a ~150-character coach
/// note, about 50 KB of JSON. Ids are `w-<date>-<type>`.
pub fn realistic_plan(
    starts_on: NaiveDate,
    generated_at: DateTime<Utc>,
    version: u64,
) -> TrainingPlan {
    let week = [
        (WorkoutType::Tempo, "Tempo run", 5),
        (WorkoutType::Easy, "Easy run", 3),
        (WorkoutType::Interval, "6 x 800 m", 5),
        (WorkoutType::Recovery, "Recovery jog", 3),
        (WorkoutType::Strength, "Strength circuit", 4),
        (WorkoutType::LongRun, "Long run", 4),
    ];
    let mut workouts = Vec::new();
    for w in 0..8u64 {
        for (d, (workout_type, title, steps)) in week.iter().enumerate() {
            let day = starts_on + Days::new(w * 7 + d as u64);
            let name = format!("{workout_type:?}").to_lowercase();
            let mut structure = vec![step(StepKind::Warmup, 900, (360, 420), 2)];
            for s in 0..steps - 2 {
                let kind = if s % 2 == 0 {
                    StepKind::Work
                } else {
                    StepKind::Recovery
                };
                let mut work = step(kind, 600 + 60 * s as u32, (270, 300), 4);
                work.repeats = Some(2);
                work.distance_m = Some(2000);
                structure.push(work);
            }
            structure.push(step(StepKind::Cooldown, 600, (380, 440), 1));
            workouts.push(PlannedWorkout {
                id: workout_id(&format!("w-{day}-{name}")),
                date: day,
                workout_type: *workout_type,
                title: (*title).to_owned(),
                structure,
                targets: WorkoutTargets {
                    duration_s: Some(3600),
                    distance_m: Some(10_000),
                    rpe: Some(6),
                    pace_s_per_km: Some(PaceRange { min: 300, max: 360 }),
                    hr_zone: Some(3),
                },
                coach_note: Some(format!(
                    "Week {}: keep the first half controlled, fuel before you start, and note \
                     how your legs feel afterwards so we can adapt the next block accordingly.",
                    w + 1
                )),
            });
        }
    }
    let mut plan = TrainingPlan {
        version,
        generated_at,
        starts_on,
        weeks: 8,
        workouts,
    };
    plan.normalize();
    plan
}
