//! Plan model, diff, edit and validation tests.

use super::*;
use crate::domain::*;
use crate::validate::validate_item;
use crate::validate::*;
use chrono::{DateTime, NaiveDate, Utc};
use chrono::{Days, Duration, TimeZone};
use proptest::prelude::*;
use serde::Serialize;
use serde_json::Value;
use serde_json::json;
use std::collections::BTreeMap;

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
    let parsed: TrainingPlan = validate_item(serde_json::to_value(&plan).unwrap(), now()).unwrap();
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
        let err = apply(&plan, &with_ops(22, vec![update(&tempo, fields.clone())])).unwrap_err();
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
            Box::new(|p| p["workouts"][0]["structure"][2]["description"] = json!("x".repeat(2001))),
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
        .prop_map(
            |(day, workout_type, title, structure, rpe, coach_note)| PlannedWorkout {
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
            },
        )
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
