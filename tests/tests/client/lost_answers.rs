//! A client killed or cut off at each step of a session resumes at that step
//! on the same database file: nothing lost, nothing applied twice.

use chrono::Duration;
use trainsync_client::local::WorkoutLog;
use trainsync_client::sync::Trigger;
use trainsync_client::{SessionOutcome, Step};
use trainsync_protocol::domain::ActivityType;

use crate::harness::{Device, Server, USER};

fn workout(server: &Server, notes: &str) -> WorkoutLog {
    WorkoutLog {
        activity_type: ActivityType::Ride,
        started_at: server.ctx.now() - Duration::hours(4),
        duration_s: 3600,
        distance_m: Some(30_000.0),
        avg_hr: None,
        rpe: Some(5),
        notes: Some(notes.into()),
        feeling: None,
    }
}

/// Loses the answer to `path` after the server committed it, restarts the
/// phone, and checks the next session resumes with `resumes_with` and that
/// the workout exists once on the server and on the tablet.
async fn lose_answer_then_restart(path: &str, step_after: fn(&Step) -> bool, resumes_with: &str) {
    let server = Server::start().await;
    let mut phone = Device::sign_in(&server, "phone").await;
    let tablet = Device::sign_in(&server, "tablet").await;
    let id = phone.client.log_workout(workout(&server, path)).unwrap();

    *server.wire.lose_answer_of.lock().unwrap() = Some(path.to_owned());
    let outcome = phone.client.sync(Trigger::LocalWrite).await.unwrap();
    assert!(
        matches!(outcome, SessionOutcome::WillRetry { .. }),
        "{path}: {outcome:?}"
    );
    let step = phone.client.step().unwrap();
    assert!(step_after(&step), "{path}: persisted {step:?}");

    // Killed and started again on the same file.
    phone.restart(&server, &server.url.clone());
    assert_eq!(
        phone.client.step().unwrap(),
        step,
        "the step survives a restart"
    );
    server.take_requests();
    let outcome = phone.client.sync(Trigger::Launch).await.unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Synced { .. }),
        "{path}: {outcome:?}"
    );
    assert_eq!(
        server.take_requests().first().map(String::as_str),
        Some(resumes_with),
        "{path}"
    );
    assert_eq!(phone.client.step().unwrap(), Step::Idle);

    let uploads = server.wire.upload_ids.lock().unwrap().clone();
    assert!(!uploads.is_empty());
    assert!(
        uploads.iter().all(|u| u == &uploads[0]),
        "{path}: one batch, one sync_request_id: {uploads:?}"
    );

    tablet.client.sync(Trigger::Launch).await.unwrap();
    for device in [&phone, &tablet] {
        let activities = device.client.activities().unwrap();
        assert_eq!(activities.len(), 1, "{path}: {}", device.name);
        assert_eq!(activities[0].value.id, id);
        assert_eq!(device.client.pending_count().unwrap(), 0);
    }
    let laptop = server.ctx.token(USER, "laptop");
    let (pages, _) = server.ctx.download_all(&laptop, None, 500).await;
    let on_server: usize = pages
        .iter()
        .map(|p| p["activities"].as_array().unwrap().len())
        .sum();
    assert_eq!(on_server, 1, "{path}: applied once on the server");
}

#[tokio::test]
async fn a_lost_check_answer_starts_over_with_a_check() {
    lose_answer_then_restart("/sync/check", |s| *s == Step::Checking, "POST /sync/check").await;
}

#[tokio::test]
async fn a_lost_upload_answer_is_replayed_with_the_same_sync_request_id() {
    lose_answer_then_restart(
        "/sync/upload",
        |s| matches!(s, Step::Uploading { .. }),
        "POST /sync/upload",
    )
    .await;
}

#[tokio::test]
async fn a_lost_download_page_is_fetched_again_from_the_same_cursor() {
    lose_answer_then_restart(
        "/sync/download",
        |s| matches!(s, Step::Downloading { .. }),
        "GET /sync/download",
    )
    .await;
}

#[tokio::test]
async fn a_lost_completion_is_sent_again() {
    lose_answer_then_restart(
        "/sync/complete",
        |s| matches!(s, Step::Completing { .. }),
        "POST /sync/complete",
    )
    .await;
}
