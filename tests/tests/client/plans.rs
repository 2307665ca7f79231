//! The backend's plan on the devices: updates arrive as diffs, an offline
//! reschedule made against an older plan is superseded with the server's
//! message, and its conflict-log entry can be undone from the device.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use trainsync_client::SessionOutcome;
use trainsync_client::sync::Trigger;
use trainsync_protocol::domain::{ConflictRule, ConflictStatus, WorkoutId};

use crate::harness::{Device, Server, USER, unreachable_url};

fn plan(now: DateTime<Utc>, title: &str) -> Value {
    let day = |d: i64| (now + Duration::days(d)).date_naive().to_string();
    json!({
        "version": 1, "generated_at": now, "starts_on": day(0), "weeks": 4,
        "workouts": [
            {"id": "w1", "date": day(1), "workout_type": "tempo", "title": title,
             "structure": [{"kind": "work", "duration_s": 1200}], "targets": {"rpe": 7}},
            {"id": "w2", "date": day(7), "workout_type": "long_run", "title": "Long run",
             "structure": [], "targets": {"distance_m": 18000}}
        ]
    })
}

async fn sync(device: &Device) {
    let outcome = device.client.sync(Trigger::Push).await.unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Synced { .. }),
        "{}: {outcome:?}",
        device.name
    );
}

fn title(device: &Device) -> (u64, String) {
    let plan = device.client.plan().unwrap().expect("a plan");
    let w1 = plan.workout(&WorkoutId::parse("w1").unwrap()).unwrap();
    (plan.version, w1.title.clone())
}

#[tokio::test]
async fn a_plan_update_reaches_both_devices_as_a_diff() {
    let server = Server::start().await;
    let phone = Device::sign_in(&server, "phone").await;
    let tablet = Device::sign_in(&server, "tablet").await;
    server
        .ctx
        .ingest_for(
            USER,
            json!({"training_plan": plan(server.ctx.now(), "Tempo 20'")}),
        )
        .await;
    sync(&phone).await;
    sync(&tablet).await;
    assert_eq!(title(&phone), (1, "Tempo 20'".into()));
    assert_eq!(title(&tablet), (1, "Tempo 20'".into()));

    server
        .ctx
        .ingest_for(
            USER,
            json!({"training_plan": plan(server.ctx.now(), "Tempo 25'")}),
        )
        .await;
    server.wire.download_queries.lock().unwrap().clear();
    sync(&phone).await;
    sync(&tablet).await;
    assert_eq!(title(&phone), (2, "Tempo 25'".into()));
    assert_eq!(title(&tablet), (2, "Tempo 25'".into()));
    let queries = server.wire.download_queries.lock().unwrap().clone();
    assert_eq!(queries.len(), 2);
    assert!(
        queries.iter().all(|q| q.contains("plan_version=1")),
        "{queries:?}"
    );
    // The diff applied gives exactly the server's plan.
    let laptop = server.ctx.token(USER, "laptop");
    let (pages, _) = server.ctx.download_all(&laptop, None, 500).await;
    let mut full = pages
        .iter()
        .find_map(|p| p["training_plan"].as_object().cloned())
        .unwrap();
    full.remove("seq");
    let held = serde_json::to_value(phone.client.plan().unwrap().unwrap()).unwrap();
    assert_eq!(held, Value::Object(full));
}

#[tokio::test]
async fn an_offline_reschedule_superseded_by_a_new_plan_is_marked_and_can_be_undone() {
    let server = Server::start().await;
    let mut phone = Device::sign_in(&server, "phone").await;
    server
        .ctx
        .ingest_for(
            USER,
            json!({"training_plan": plan(server.ctx.now(), "Tempo 20'")}),
        )
        .await;
    sync(&phone).await;
    let w1 = WorkoutId::parse("w1").unwrap();
    let planned = phone
        .client
        .plan()
        .unwrap()
        .unwrap()
        .workout(&w1)
        .unwrap()
        .date;

    phone.restart(&server, &unreachable_url());
    let new_date = planned + chrono::Days::new(1);
    let id = phone.client.reschedule("w1", new_date).unwrap();
    assert_eq!(
        phone
            .client
            .plan()
            .unwrap()
            .unwrap()
            .workout(&w1)
            .unwrap()
            .date,
        new_date
    );
    // Meanwhile the engine adapts the plan.
    server
        .ctx
        .ingest_for(
            USER,
            json!({"training_plan": plan(server.ctx.now(), "Tempo 25'")}),
        )
        .await;

    phone.restart(&server, &server.url.clone());
    sync(&phone).await;
    assert_eq!(title(&phone), (2, "Tempo 25'".into()));
    assert_eq!(
        phone
            .client
            .plan()
            .unwrap()
            .unwrap()
            .workout(&w1)
            .unwrap()
            .date,
        planned
    );
    let reschedule = phone
        .client
        .reschedules()
        .unwrap()
        .into_iter()
        .find(|r| r.adjustment.id == id)
        .unwrap();
    assert_eq!(
        reschedule.status.as_deref(),
        Some("superseded_by_adaptive_plan")
    );
    let message = reschedule.message.expect("the server's message");
    assert!(
        message.contains("manual reschedule has been replaced"),
        "{message}"
    );

    let conflicts = phone.client.conflicts().unwrap();
    let conflict = conflicts
        .iter()
        .find(|c| c.rule == ConflictRule::SupersededByAdaptivePlan)
        .expect("the conflict-log entry was downloaded");
    let undone = phone.client.undo_conflict(conflict.id).await.unwrap();
    assert_eq!(undone.status, ConflictStatus::Undone);
    sync(&phone).await;
    let plan = phone.client.plan().unwrap().unwrap();
    assert_eq!(
        plan.workout(&w1).unwrap().date,
        new_date,
        "the undo moved the workout"
    );
    assert_eq!(plan.version, 3);
    assert!(
        phone
            .client
            .conflicts()
            .unwrap()
            .iter()
            .any(|c| c.id == conflict.id && c.status == ConflictStatus::Undone)
    );
}
