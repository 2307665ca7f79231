//! Two devices of one user converge (PRD 12.3): workouts, settings (scenario
//! 4) and a week offline.

use chrono::Duration;
use serde_json::json;
use trainsync_client::db::SyncStatus;
use trainsync_client::local::{CheckIn, WorkoutLog};
use trainsync_client::sync::Trigger;
use trainsync_client::{Health, SessionOutcome};
use trainsync_protocol::domain::{ActivityType, SettingKey};
use trainsync_protocol::limits::MAX_BATCH_ITEMS;
use uuid::Uuid;

use crate::harness::{Device, Server, unreachable_url};

fn workout(server: &Server, hours_ago: i64, notes: &str) -> WorkoutLog {
    WorkoutLog {
        activity_type: ActivityType::Run,
        started_at: server.ctx.now() - Duration::hours(hours_ago),
        duration_s: 2400,
        distance_m: Some(7000.0),
        avg_hr: Some(148),
        rpe: Some(6),
        notes: Some(notes.into()),
        feeling: Some(4),
    }
}

fn synced(outcome: SessionOutcome) {
    assert!(
        matches!(outcome, SessionOutcome::Synced { .. }),
        "{outcome:?}"
    );
}

fn ids(device: &Device) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = device
        .client
        .activities()
        .unwrap()
        .iter()
        .map(|a| a.value.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn workouts_logged_on_the_phone_reach_the_tablet() {
    let server = Server::start().await;
    let phone = Device::sign_in(&server, "phone").await;
    let tablet = Device::sign_in(&server, "tablet").await;
    let first = phone
        .client
        .log_workout(workout(&server, 30, "hills"))
        .unwrap();
    let second = phone
        .client
        .log_workout(workout(&server, 5, "easy"))
        .unwrap();
    assert_eq!(phone.client.status().unwrap().health, Health::Yellow);

    synced(phone.client.sync(Trigger::LocalWrite).await.unwrap());
    synced(tablet.client.sync(Trigger::Launch).await.unwrap());

    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(ids(&phone), expected);
    assert_eq!(ids(&tablet), expected);
    for device in [&phone, &tablet] {
        let activities = device.client.activities().unwrap();
        assert!(
            activities
                .iter()
                .all(|a| a.sync_status == SyncStatus::Synced)
        );
        let hills = activities.iter().find(|a| a.value.id == first).unwrap();
        assert_eq!(hills.value.notes.as_deref(), Some("hills"));
        assert_eq!(device.client.pending_count().unwrap(), 0);
    }
    assert_eq!(phone.client.status().unwrap().health, Health::Green);
    // Nothing new: the next session is one empty check.
    server.take_requests();
    assert_eq!(
        tablet.client.sync(Trigger::Periodic).await.unwrap(),
        SessionOutcome::UpToDate
    );
    assert_eq!(server.take_requests(), vec!["POST /sync/check"]);
}

#[tokio::test]
async fn concurrent_setting_changes_converge_on_the_last_write() {
    let server = Server::start().await;
    let phone = Device::sign_in(&server, "phone").await;
    let tablet = Device::sign_in(&server, "tablet").await;
    phone
        .client
        .set_setting(SettingKey::Units, json!("imperial"))
        .unwrap();
    tablet
        .client
        .set_setting(SettingKey::Units, json!("metric"))
        .unwrap();
    phone
        .client
        .set_setting(SettingKey::GoalRaceDate, json!("2025-10-12"))
        .unwrap();

    synced(phone.client.sync(Trigger::LocalWrite).await.unwrap());
    server.ctx.clock.advance(Duration::seconds(5));
    // The tablet's write reaches the server later: it wins (scenario 4).
    synced(tablet.client.sync(Trigger::LocalWrite).await.unwrap());
    synced(phone.client.sync(Trigger::Periodic).await.unwrap());

    for device in [&phone, &tablet] {
        let settings = device.client.settings().unwrap();
        assert_eq!(settings["units"].value, json!("metric"), "{}", device.name);
        assert_eq!(settings["units"].sync_status, SyncStatus::Synced);
        assert_eq!(
            settings["goal_race_date"].value,
            json!("2025-10-12"),
            "{}",
            device.name
        );
    }
}

#[tokio::test]
async fn a_week_in_airplane_mode_uploads_in_batches_and_lands_once_everywhere() {
    let server = Server::start().await;
    let mut phone = Device::sign_in(&server, "phone").await;
    let tablet = Device::sign_in(&server, "tablet").await;
    synced(phone.client.sync(Trigger::Launch).await.unwrap());

    // Offline for a week: every write is local and instant, syncs pause.
    phone.restart(&server, &unreachable_url());
    let mut logged = Vec::new();
    for day in 0..7 {
        server.ctx.clock.advance(Duration::days(1));
        phone
            .client
            .check_in(CheckIn {
                recovery_rating: Some(6 + day % 3),
                sleep_hours: Some(7.0),
                ..CheckIn::default()
            })
            .unwrap();
        logged.push(
            phone
                .client
                .log_workout(workout(&server, 2, &format!("day {day}")))
                .unwrap(),
        );
        if day % 2 == 0 && day < 6 {
            logged.push(
                phone
                    .client
                    .log_workout(workout(&server, 1, &format!("double {day}")))
                    .unwrap(),
            );
        }
        let outcome = phone.client.sync(Trigger::LocalWrite).await.unwrap();
        assert!(
            matches!(outcome, SessionOutcome::WillRetry { .. }),
            "{outcome:?}"
        );
    }
    // Ten workouts and seven check-ins: more than one batch.
    assert_eq!(logged.len(), 10);
    let status = phone.client.status().unwrap();
    assert_eq!(status.health, Health::Yellow);
    assert!(
        status
            .messages
            .iter()
            .any(|m| m == "Syncing paused — will retry automatically"),
        "{:?}",
        status.messages
    );
    assert!(
        status
            .messages
            .iter()
            .any(|m| m == "10 activities waiting to sync"),
        "{:?}",
        status.messages
    );
    assert!(status.retry_at.is_some());
    let unsent = phone.client.pending_count().unwrap() as usize;
    assert_eq!(unsent, 17);
    assert!(unsent > MAX_BATCH_ITEMS);

    // Back online.
    phone.restart(&server, &server.url.clone());
    server.wire.upload_ids.lock().unwrap().clear();
    synced(phone.client.sync(Trigger::Launch).await.unwrap());
    let uploads = server.wire.upload_ids.lock().unwrap().clone();
    assert_eq!(
        uploads.len(),
        unsent.div_ceil(MAX_BATCH_ITEMS),
        "{uploads:?}"
    );
    assert_ne!(
        uploads[0], uploads[1],
        "each batch has its own sync_request_id"
    );
    synced(tablet.client.sync(Trigger::Periodic).await.unwrap());

    logged.sort();
    assert_eq!(ids(&phone), logged);
    assert_eq!(
        ids(&tablet),
        logged,
        "every workout on the tablet exactly once"
    );
    assert_eq!(tablet.client.check_ins().unwrap().len(), 7);
    assert_eq!(phone.client.check_ins().unwrap().len(), 7);
    let laptop = server.ctx.token(crate::harness::USER, "laptop");
    let (pages, _) = server.ctx.download_all(&laptop, None, 500).await;
    let count = |list: &str| {
        pages
            .iter()
            .map(|p| p[list].as_array().unwrap().len())
            .sum::<usize>()
    };
    assert_eq!(
        count("activities"),
        logged.len(),
        "the server holds each workout once"
    );
    assert_eq!(count("daily_metrics"), 7);
    assert_eq!(phone.client.status().unwrap().health, Health::Green);
}
