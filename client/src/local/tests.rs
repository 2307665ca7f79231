use chrono::{Duration, NaiveDate};
use serde_json::json;
use trainsync_protocol::domain::{ActivityType, SettingKey};
use trainsync_protocol::fixtures::realistic_plan;

use super::*;
use crate::testing::{epoch, offline_client};

fn run() -> WorkoutLog {
    WorkoutLog {
        activity_type: ActivityType::Run,
        started_at: epoch() - Duration::hours(3),
        duration_s: 2700,
        distance_m: Some(8000.0),
        avg_hr: Some(150),
        rpe: Some(6),
        notes: Some("easy".into()),
        feeling: Some(4),
    }
}

#[test]
fn a_logged_workout_is_stored_pending_and_queued_with_the_same_item() {
    let dir = tempfile::tempdir().unwrap();
    let client = offline_client(&dir.path().join("db"));
    let id = client.log_workout(run()).unwrap();
    let activities = client.activities().unwrap();
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].value.id, id);
    assert_eq!(activities[0].sync_status, SyncStatus::Pending);
    let queue = db::queued(&client.db(), 10).unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].item_type, ItemType::Activity);
    assert_eq!(
        queue[0].payload,
        serde_json::to_value(&activities[0].value).unwrap()
    );
    assert_eq!(client.pending_count().unwrap(), 1);
}

#[test]
fn invalid_writes_are_refused_naming_the_field_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let client = offline_client(&dir.path().join("db"));
    let error = client
        .log_workout(WorkoutLog {
            rpe: Some(11),
            ..run()
        })
        .unwrap_err();
    assert_eq!(error.field(), Some("rpe"));
    let error = client
        .log_workout(WorkoutLog {
            started_at: epoch() + Duration::days(3),
            ..run()
        })
        .unwrap_err();
    assert_eq!(error.field(), Some("started_at"));
    let error = client
        .check_in(CheckIn {
            recovery_rating: Some(0),
            ..CheckIn::default()
        })
        .unwrap_err();
    assert_eq!(error.field(), Some("recovery_rating"));
    let error = client
        .set_setting(SettingKey::Units, json!("furlongs"))
        .unwrap_err();
    assert_eq!(error.field(), Some("value"));
    let error = client
        .set_setting(SettingKey::AvailableTrainingDays, json!(["mon", "mon"]))
        .unwrap_err();
    assert_eq!(error.field(), Some("value[1]"));
    assert!(client.activities().unwrap().is_empty());
    assert!(client.settings().unwrap().is_empty());
    assert_eq!(client.pending_count().unwrap(), 0);
}

#[test]
fn the_entity_row_and_its_queue_entry_commit_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let client = offline_client(&dir.path().join("db"));
    client
        .db()
        .execute_batch(
            "CREATE TRIGGER queue_full BEFORE INSERT ON pending_queue
             BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();
    assert!(matches!(
        client.log_workout(run()),
        Err(ClientError::Database(_))
    ));
    assert!(
        client.activities().unwrap().is_empty(),
        "the activity row was rolled back"
    );
    client
        .db()
        .execute_batch("DROP TRIGGER queue_full")
        .unwrap();
    client.log_workout(run()).unwrap();
    assert_eq!(client.activities().unwrap().len(), 1);
}

#[test]
fn check_ins_of_a_day_merge_locally_and_each_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let client = offline_client(&dir.path().join("db"));
    let date = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
    client
        .check_in(CheckIn {
            date: Some(date),
            recovery_rating: Some(7),
            sleep_hours: Some(7.5),
            ..CheckIn::default()
        })
        .unwrap();
    client
        .check_in(CheckIn {
            date: Some(date),
            soreness: Some(3),
            recovery_rating: Some(6),
            ..CheckIn::default()
        })
        .unwrap();
    let shown = &client.check_ins().unwrap()[0].value;
    assert_eq!(
        (shown.recovery_rating, shown.sleep_hours, shown.soreness),
        (Some(6), Some(7.5), Some(3))
    );
    assert_eq!(client.pending_count().unwrap(), 2);
}

#[test]
fn a_started_workout_is_a_local_draft_until_finished() {
    let dir = tempfile::tempdir().unwrap();
    let client = offline_client(&dir.path().join("db"));
    let started = epoch() - Duration::minutes(40);
    let id = client.start_workout(ActivityType::Ride, started).unwrap();
    client
        .update_workout(
            id,
            DraftUpdate {
                distance_m: Some(12_000.0),
                ..DraftUpdate::default()
            },
        )
        .unwrap();
    let error = client
        .update_workout(
            id,
            DraftUpdate {
                avg_hr: Some(400),
                ..DraftUpdate::default()
            },
        )
        .unwrap_err();
    assert_eq!(error.field(), Some("avg_hr"));
    assert_eq!(
        client.pending_count().unwrap(),
        0,
        "a draft is never queued"
    );
    assert!(client.activities().unwrap().is_empty());
    assert_eq!(client.workout_drafts().unwrap().len(), 1);

    let finished = client
        .finish_workout(
            id,
            WorkoutFinish {
                ended_at: Some(epoch()),
                rpe: Some(5),
                ..WorkoutFinish::default()
            },
        )
        .unwrap();
    assert_eq!(finished, id);
    let activity = &client.activities().unwrap()[0].value;
    assert_eq!(
        (activity.duration_s, activity.distance_m, activity.rpe),
        (2400, Some(12_000.0), Some(5))
    );
    assert!(client.workout_drafts().unwrap().is_empty());
    assert_eq!(client.pending_count().unwrap(), 1);
    assert!(matches!(
        client.finish_workout(id, WorkoutFinish::default()),
        Err(ClientError::UnknownDraft(_))
    ));
}

#[test]
fn a_reschedule_is_checked_against_the_held_plan_and_shown_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let client = offline_client(&dir.path().join("db"));
    let starts = NaiveDate::from_ymd_opt(2025, 6, 2).unwrap();
    let plan = realistic_plan(starts, epoch(), 4);
    db::put_plan(&client.db(), &plan, epoch()).unwrap();
    let workout = plan.workouts[0].id.clone();
    let error = client.reschedule("w-nope", starts).unwrap_err();
    assert_eq!(error.field(), Some("workout_id"));
    let error = client
        .reschedule(workout.as_str(), starts + chrono::Days::new(100))
        .unwrap_err();
    assert_eq!(error.field(), Some("new_date"));
    let moved_to = starts + chrono::Days::new(3);
    client.reschedule(workout.as_str(), moved_to).unwrap();
    let shown = client.plan().unwrap().unwrap();
    assert_eq!(
        shown.version, 4,
        "the held version until the server answers"
    );
    assert_eq!(shown.workout(&workout).unwrap().date, moved_to);
    let queued = db::queued(&client.db(), 10).unwrap();
    assert_eq!(queued[0].payload["plan_version"], 4);
    assert!(client.coach_note(workout.as_str()).unwrap().is_some());
}
