//! What `/sync/download` sends: plan diffs (PRD 7.2), priorities on cellular
//! (7.3/7.4), full snapshots (9.3), change-log retention, tombstones, and
//! uploads queued across a resync; against DynamoDB Local.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use sync_core::store::ChangeLogStore;
use trainsync_protocol::domain::UserId;
use trainsync_protocol::fixtures::{step, workout_id};
use trainsync_protocol::plan::{
    PlanDiff, StepKind, TrainingPlan, WorkoutTargets, WorkoutType, apply,
};
use trainsync_tests::{TestContext, get_request};
use uuid::Uuid;

use crate::helpers::{alert, text};

const USER: &str = "dana";

/// Every element of the list `field` over all `pages`.
fn list<'a>(pages: &'a [Value], field: &str) -> Vec<&'a Value> {
    pages
        .iter()
        .flat_map(|p| {
            p[field]
                .as_array()
                .unwrap_or_else(|| panic!("{field} is not a list in {p}"))
        })
        .collect()
}

/// The `key` of every element of the list `field` over all `pages`, in order.
fn ids(pages: &[Value], field: &str, key: &str) -> Vec<String> {
    list(pages, field)
        .into_iter()
        .map(|e| {
            e[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {e}"))
                .to_owned()
        })
        .collect()
}

/// How often each value occurs.
fn counts(values: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    values.into_iter().fold(BTreeMap::new(), |mut map, v| {
        *map.entry(v).or_default() += 1;
        map
    })
}

/// A downloaded entity without the `seq` the download adds.
fn without_seq(value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(map) = value.as_object_mut() {
        map.remove("seq");
    }
    value
}

/// A downloaded training plan, as the plan type.
fn plan_of(value: &Value) -> TrainingPlan {
    serde_json::from_value(without_seq(value))
        .unwrap_or_else(|e| panic!("not a plan ({e}): {value}"))
}

/// The one full plan in `pages`, if any.
fn full_plan(pages: &[Value]) -> Option<TrainingPlan> {
    let plans: Vec<&Value> = pages
        .iter()
        .map(|p| &p["training_plan"])
        .filter(|p| !p.is_null())
        .collect();
    assert!(plans.len() <= 1, "the plan came more than once: {plans:?}");
    plans.first().map(|p| plan_of(p))
}

fn json_len(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).expect("serializable").len()
}

/// The shared realistic 8-week plan (version 1), from `starts_on`.
fn realistic_plan(starts_on: NaiveDate, generated_at: DateTime<Utc>) -> TrainingPlan {
    trainsync_protocol::fixtures::realistic_plan(starts_on, generated_at, 1)
}

/// Ingests `plan` as the user's new plan; returns the version the server gave it.
async fn ingest_plan(ctx: &TestContext, plan: &TrainingPlan) -> u64 {
    let answer = ctx.ingest_for(USER, json!({ "training_plan": plan })).await;
    assert_eq!(
        answer["processing_errors"].as_array().map(Vec::len),
        Some(0),
        "{answer}"
    );
    answer["plan_version"].as_u64().expect("plan_version")
}

/// A daily check-in for `date`.
fn check_in(date: NaiveDate, submitted_at: DateTime<Utc>) -> Value {
    json!({"date": date, "recovery_rating": 7, "sleep_hours": 7.5, "submitted_at": submitted_at})
}

/// A manual run with RPE.
fn run(id: Uuid, started_at: DateTime<Utc>, notes: &str) -> Value {
    json!({
        "id": id,
        "activity_type": "run",
        "started_at": started_at,
        "duration_s": 2400,
        "distance_m": 6000,
        "rpe": 4,
        "notes": notes,
        "source": "manual"
    })
}

/// Uploads `items` in the session, asserting every item was accepted as is.
async fn upload_ok(ctx: &TestContext, token: &str, sync_id: &str, items: Value) {
    let expected: usize = items
        .as_object()
        .expect("object")
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    let response = ctx.upload(token, sync_id, items).await;
    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    assert_eq!(
        body["accepted"].as_array().map(Vec::len),
        Some(expected),
        "{body}"
    );
    assert!(
        body["conflicts"].as_array().is_some_and(Vec::is_empty),
        "{body}"
    );
    assert!(
        body["processing_errors"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{body}"
    );
}

/// `POST /sync/complete` acknowledging `cursor`.
async fn complete(ctx: &TestContext, token: &str, sync_id: &str, cursor: &str) {
    let response = ctx
        .post(
            "/sync/complete",
            token,
            &json!({"sync_id": sync_id, "status": "success", "cursor": cursor}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
}

// ---------------------------------------------------------------------------
// 1. Plan diffs (PRD 7.2)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_new_plan_version_reaches_a_device_as_a_small_diff() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let starts_on = ctx.now().date_naive();
    let mut plan = realistic_plan(starts_on, ctx.now());
    assert_eq!(plan.workouts.len(), 48);
    let v1 = ingest_plan(&ctx, &plan).await;
    assert_eq!(v1, 1, "the server numbers plan versions from 1");

    // The phone gets the whole plan once.
    let (pages, cursor_v1) = ctx.download_all(&phone, None, 100).await;
    let held = full_plan(&pages).expect("the first download carries the plan");
    plan.version = v1;
    assert_eq!(held, plan);
    let full_bytes = json_len(&held);

    // The engine turns one tempo run into an easy run.
    ctx.clock.advance(Duration::hours(1));
    let tempo = workout_id(&format!("w-{}-tempo", starts_on + Days::new(14)));
    let mut next = plan.clone();
    next.generated_at = ctx.now();
    let workout = next
        .workouts
        .iter_mut()
        .find(|w| w.id == tempo)
        .expect("a tempo run in week 3");
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
    let v2 = ingest_plan(&ctx, &next).await;
    assert_eq!(v2, 2);
    next.version = v2;

    // The phone, quoting the version it holds, gets a diff and no plan.
    let v1_text = v1.to_string();
    let (pages, cursor_v2) = ctx
        .download_all_with(&phone, Some(&cursor_v1), &[("plan_version", &v1_text)])
        .await;
    assert!(
        pages.iter().all(|p| p["training_plan"].is_null()),
        "no full plan for a device that holds a diffable version: {pages:?}"
    );
    let diffs: Vec<&Value> = pages
        .iter()
        .map(|p| &p["training_plan_diff"])
        .filter(|d| !d.is_null())
        .collect();
    assert_eq!(diffs.len(), 1, "exactly one diff: {pages:?}");
    let diff_bytes = json_len(diffs[0]);
    let diff: PlanDiff = serde_json::from_value(diffs[0].clone()).expect("a plan diff");
    assert_eq!((diff.from_version, diff.to_version), (1, 2));
    let updates: Vec<&Value> = diffs[0]["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .filter(|op| op["op"] == "update")
        .collect();
    assert_eq!(updates.len(), 1, "{}", diffs[0]);
    assert_eq!(updates[0]["id"], tempo.to_string());
    assert_eq!(updates[0]["fields"]["workout_type"], "easy");
    let applied = apply(&held, &diff).expect("the diff applies to the plan the phone holds");
    assert_eq!(applied, next);

    // The same as what a device without any plan receives in full.
    let (fresh, _) = ctx
        .download_all(&ctx.token(USER, "tablet"), None, 100)
        .await;
    let fresh = full_plan(&fresh).expect("a snapshot carries the plan");
    assert_eq!(applied, fresh);

    println!(
        "8-week plan ({} workouts): full {full_bytes} bytes, tempo-to-easy diff {diff_bytes} bytes",
        held.workouts.len()
    );
    assert!(full_bytes > 20 * 1024, "full plan only {full_bytes} bytes");
    assert!(
        diff_bytes < 1024,
        "diff is {diff_bytes} bytes: {}",
        diffs[0]
    );

    // A coach's note is a new version too, and again a small diff.
    ctx.clock.advance(Duration::hours(1));
    let long_run = workout_id(&format!("w-{}-longrun", starts_on + Days::new(26)));
    let answer = ctx
        .ingest_for(
            USER,
            json!({"coach_notes": [{"workout_id": long_run, "note": "Heat forecast: start at 7 and carry water."}]}),
        )
        .await;
    assert_eq!(answer["plan_version"], 3, "{answer}");
    let v2_text = v2.to_string();
    let (pages, _) = ctx
        .download_all_with(&phone, Some(&cursor_v2), &[("plan_version", &v2_text)])
        .await;
    assert!(pages.iter().all(|p| p["training_plan"].is_null()));
    let note_diff = pages
        .iter()
        .map(|p| &p["training_plan_diff"])
        .find(|d| !d.is_null())
        .expect("a diff for the coach note");
    let note_diff_bytes = json_len(note_diff);
    println!("coach-note diff {note_diff_bytes} bytes");
    assert!(note_diff_bytes < 1024);
    let note_diff: PlanDiff = serde_json::from_value(note_diff.clone()).expect("a plan diff");
    let v3 = apply(&applied, &note_diff).expect("applies to v2");
    assert_eq!(v3.version, 3);
    assert_eq!(
        v3.workout(&long_run).and_then(|w| w.coach_note.as_deref()),
        Some("Heat forecast: start at 7 and carry water.")
    );
    let (fresh, _) = ctx.download_all(&ctx.token(USER, "watch"), None, 100).await;
    assert_eq!(Some(v3.clone()), full_plan(&fresh));

    // A version the server does not know, or none: the full plan.
    for extra in [&[("plan_version", "999")][..], &[]] {
        let (pages, _) = ctx.download_all_with(&phone, Some(&cursor_v1), extra).await;
        assert_eq!(full_plan(&pages).as_ref(), Some(&v3), "{extra:?}");
        assert!(
            pages.iter().all(|p| p["training_plan_diff"].is_null()),
            "{extra:?}: {pages:?}"
        );
    }
    let (pages, _) = ctx
        .download_all_with(&ctx.token(USER, "laptop"), None, &[("plan_version", "999")])
        .await;
    assert_eq!(full_plan(&pages).as_ref(), Some(&v3));

    // A device already at the current version gets neither.
    let (pages, _) = ctx
        .download_all_with(&phone, Some(&cursor_v1), &[("plan_version", "3")])
        .await;
    assert!(
        pages
            .iter()
            .all(|p| p["training_plan"].is_null() && p["training_plan_diff"].is_null()),
        "{pages:?}"
    );
}

// ---------------------------------------------------------------------------
// 2. Priorities and the network (PRD 7.3/7.4)
// ---------------------------------------------------------------------------

/// A wearable run with a GPS track of `points` fixes, one a second.
fn wearable_with_track(id: Uuid, started_at: DateTime<Utc>, points: usize) -> Value {
    let start_ms = started_at.timestamp_millis();
    let fixes: Vec<Value> = (0..points)
        .map(|i| {
            let i_f = i as f64;
            json!({
                "t_ms": start_ms + 1000 * i as i64,
                "lat": 52.52 + 0.00003 * i_f,
                "lon": 13.405 + 0.00002 * i_f,
                "elevation_m": 34.0 + (i % 7) as f64 * 0.5,
                "hr": 130 + (i % 20) as u16
            })
        })
        .collect();
    json!({
        "id": id,
        "activity_type": "run",
        "started_at": started_at,
        "duration_s": points,
        "distance_m": 420.0,
        "avg_hr": 140,
        "source_device": "Garmin Forerunner 265",
        "external_id": format!("garmin-{id}"),
        "track": {"points": fixes}
    })
}

#[tokio::test]
async fn cellular_defers_tracks_and_wifi_catches_up_without_losing_anything() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    let (_, c0) = ctx.download_all(&phone, None, 100).await;

    // The wearable pipeline brings a run with its GPS track.
    let run_id = Uuid::new_v4();
    let started = ctx.now() - Duration::hours(3);
    let answer = ctx
        .ingest_for(
            USER,
            json!({"activities": [wearable_with_track(run_id, started, 120)]}),
        )
        .await;
    assert_eq!(answer["accepted"][0]["id"], run_id.to_string(), "{answer}");

    // On cellular: the activity (with its track reference) but not the track entry.
    let (cellular, c1) = ctx
        .download_all_with(&phone, Some(&c0), &[("network", "cellular")])
        .await;
    let activities = list(&cellular, "activities");
    assert_eq!(activities.len(), 1, "{cellular:?}");
    let track_ref = &activities[0]["track"];
    assert_eq!(track_ref["points"], 120, "{}", activities[0]);
    assert_eq!(track_ref["url"], format!("/sync/tracks/{run_id}"));
    assert!(list(&cellular, "tracks").is_empty(), "{cellular:?}");
    let deferred_in_pages: u64 = cellular
        .iter()
        .filter_map(|p| p["deferred"]["in_page"].as_u64())
        .sum();
    assert!(deferred_in_pages >= 1, "{cellular:?}");
    let last = cellular.last().expect("a page");
    assert_eq!(last["deferred"]["pending"], true, "{last}");

    // The track itself is there for whoever fetches it.
    let response = ctx
        .send(get_request(
            &format!("/sync/tracks/{run_id}"),
            Some(&phone),
            &[],
        ))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.bytes.len() as u64,
        track_ref["bytes"].as_u64().unwrap()
    );
    let track = trainsync_protocol::track::decode(&response.bytes).expect("a valid track");
    assert_eq!(track.points.len(), 120);

    // A high-priority change from another device while the phone is on cellular.
    let sync_id = ctx.check(&tablet, USER).await;
    let day = ctx.now().date_naive();
    upload_ok(
        &ctx,
        &tablet,
        &sync_id,
        json!({"daily_metrics": [check_in(day, ctx.now())]}),
    )
    .await;

    // A further cellular download delivers it and keeps the track owed.
    let (cellular2, c2) = ctx
        .download_all_with(&phone, Some(&c1), &[("network", "cellular")])
        .await;
    assert_eq!(ids(&cellular2, "daily_metrics", "date"), [day.to_string()]);
    assert!(list(&cellular2, "tracks").is_empty());
    assert!(
        list(&cellular2, "activities").is_empty(),
        "no repeat: {cellular2:?}"
    );
    let last = cellular2.last().expect("a page");
    assert_eq!(last["deferred"]["pending"], true, "{last}");

    // And another change before the phone reaches Wi-Fi.
    upload_ok(
        &ctx,
        &tablet,
        &sync_id,
        json!({"settings_changes": [{"key": "units", "value": "imperial", "changed_at": ctx.now()}]}),
    )
    .await;

    // On Wi-Fi from either cellular cursor: the track once, then the log continues.
    for (cursor, already_has_check_in) in [(&c1, false), (&c2, true)] {
        let (wifi, c3) = ctx
            .download_all_with(&phone, Some(cursor), &[("network", "wifi")])
            .await;
        let tracks = list(&wifi, "tracks");
        assert_eq!(tracks.len(), 1, "{wifi:?}");
        assert_eq!(tracks[0]["activity_id"], run_id.to_string());
        assert_eq!(tracks[0]["track"], *track_ref);
        assert!(list(&wifi, "activities").is_empty(), "no repeat: {wifi:?}");
        let check_ins = ids(&wifi, "daily_metrics", "date");
        if already_has_check_in {
            assert!(check_ins.is_empty(), "{wifi:?}");
        } else {
            assert_eq!(check_ins, [day.to_string()], "not lost: {wifi:?}");
        }
        let units: Vec<&Value> = wifi
            .iter()
            .filter_map(|p| p["settings"].get("units"))
            .collect();
        assert_eq!(units, [&json!("imperial")], "{wifi:?}");
        assert!(
            wifi.iter().all(|p| p["deferred"].is_null()),
            "nothing owed any more: {wifi:?}"
        );
        // Nothing more after the Wi-Fi cursor.
        let after = ctx
            .download_page(&phone, Some(&c3), &[("network", "wifi")])
            .await;
        assert!(
            list(std::slice::from_ref(&after), "tracks").is_empty(),
            "{after}"
        );
        assert!(
            after["settings"].as_object().is_some_and(|s| s.is_empty()),
            "{after}"
        );
        assert_eq!(after["next_cursor"], c3);
    }
}

// ---------------------------------------------------------------------------
// 3. Full resync (PRD 9.3)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_download_without_cursor_is_a_paged_90_day_snapshot_that_continues_incrementally() {
    let mut ctx = TestContext::new().await;
    // The reference brain publishes the metrics the snapshot must carry.
    ctx.state.brain = true;
    let phone = ctx.token(USER, "phone");
    let now = ctx.now();
    let today = now.date_naive();

    // Activities and check-ins, some older than 90 days (none in the last
    // week, so the brain's ACWR is 0 and it raises no alert).
    let recent_runs: Vec<(Uuid, i64)> = [10, 20, 60].map(|d| (Uuid::new_v4(), d)).to_vec();
    let old_runs: Vec<(Uuid, i64)> = [100, 200].map(|d| (Uuid::new_v4(), d)).to_vec();
    let runs: Vec<Value> = recent_runs
        .iter()
        .chain(&old_runs)
        .map(|(id, days)| run(*id, now - Duration::days(*days), "steady"))
        .collect();
    let recent_days = [3u64, 45];
    let old_days = [95u64, 150];
    let check_ins: Vec<Value> = recent_days
        .iter()
        .chain(&old_days)
        .map(|d| check_in(today - Days::new(*d), now - Duration::days(*d as i64)))
        .collect();
    let sync_id = ctx.check(&phone, USER).await;
    upload_ok(
        &ctx,
        &phone,
        &sync_id,
        json!({
            "activities": runs,
            "daily_metrics": check_ins,
            "settings_changes": [
                {"key": "units", "value": "metric", "changed_at": now},
                {"key": "timezone", "value": "Europe/Berlin", "changed_at": now}
            ]
        }),
    )
    .await;

    // The plan and alerts: open ones, an expired one and a withdrawn one.
    ingest_plan(&ctx, &realistic_plan(today, now)).await;
    let open = Uuid::new_v4();
    let open_forever = Uuid::new_v4();
    let expired = Uuid::new_v4();
    let withdrawn = Uuid::new_v4();
    ctx.ingest_for(
        USER,
        json!({"alerts": [
            alert(open, "notification", "info", now - Duration::hours(1),
                  Some(now + Duration::days(7))),
            alert(open_forever, "notification", "info", now - Duration::hours(1), None),
            alert(expired, "notification", "info", now - Duration::days(10),
                  Some(now - Duration::days(1))),
            alert(withdrawn, "notification", "info", now - Duration::hours(2),
                  Some(now + Duration::days(7))),
        ]}),
    )
    .await;
    let answer = ctx
        .ingest_for(USER, json!({"withdrawn_alerts": [withdrawn]}))
        .await;
    assert_eq!(
        answer["accepted"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );

    // The tablet has no cursor: a snapshot, three entities a page.
    let tablet = ctx.token(USER, "tablet");
    let mut snapshot = Vec::new();
    let mut cursor: Option<String> = None;
    let late_run = Uuid::new_v4();
    let mut changed_during = false;
    loop {
        let p = ctx
            .download_page(&tablet, cursor.as_deref(), &[("limit", "3")])
            .await;
        assert_eq!(p["resync_required"], true, "{p}");
        let reason = if cursor.is_none() {
            json!("no_cursor")
        } else {
            Value::Null
        };
        assert_eq!(
            p["resync_reason"], reason,
            "the reason comes with the first page: {p}"
        );
        assert!(p["deleted"].as_array().is_some_and(Vec::is_empty), "{p}");
        cursor = Some(p["next_cursor"].as_str().expect("next_cursor").to_owned());
        let more = p["has_more"] == true;
        snapshot.push(p);
        let seen = |key: &str| snapshot.iter().any(|p| p["settings"].get(key).is_some());
        if !changed_during && seen("units") && seen("timezone") {
            // Mid-snapshot, after the settings went by: a change to one of them and a new run.
            changed_during = true;
            ctx.clock.advance(Duration::minutes(1));
            upload_ok(
                &ctx,
                &phone,
                &sync_id,
                json!({
                    "settings_changes": [{"key": "units", "value": "imperial", "changed_at": ctx.now()}],
                    "activities": [run(late_run, ctx.now() - Duration::minutes(30), "during the snapshot")]
                }),
            )
            .await;
        }
        if !more {
            break;
        }
        assert!(snapshot.len() < 50, "the snapshot does not end");
    }
    assert!(changed_during, "the settings never came: {snapshot:?}");
    assert!(
        snapshot.len() >= 4,
        "a small limit pages: {} pages",
        snapshot.len()
    );
    assert!(
        snapshot
            .iter()
            .all(|p| list(std::slice::from_ref(p), "activities").len()
                + list(std::slice::from_ref(p), "alerts").len()
                + list(std::slice::from_ref(p), "daily_metrics").len()
                <= 3),
        "pages respect the limit"
    );

    // Every current entity exactly once; nothing older than 90 days, nothing withdrawn or expired.
    assert_eq!(
        snapshot
            .iter()
            .filter(|p| !p["training_plan"].is_null())
            .count(),
        1
    );
    assert_eq!(
        snapshot
            .iter()
            .filter(|p| !p["calculated_metrics"].is_null())
            .count(),
        1
    );
    let settings = counts(
        snapshot
            .iter()
            .flat_map(|p| {
                p["settings"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
            })
            .map(|(k, _)| k),
    );
    assert_eq!(
        settings,
        counts(["timezone".to_owned(), "units".to_owned()])
    );
    assert_eq!(
        counts(ids(&snapshot, "alerts", "id")),
        counts([open.to_string(), open_forever.to_string()])
    );
    let mut expected_runs: Vec<String> = recent_runs.iter().map(|(id, _)| id.to_string()).collect();
    let runs = counts(ids(&snapshot, "activities", "id"));
    // The run added mid-snapshot may or may not be in it (at most once); the log brings it anyway.
    if runs.get(&late_run.to_string()) == Some(&1) {
        expected_runs.push(late_run.to_string());
    }
    assert_eq!(runs, counts(expected_runs));
    assert_eq!(
        counts(ids(&snapshot, "daily_metrics", "date")),
        counts(recent_days.map(|d| (today - Days::new(d)).to_string()))
    );
    assert!(list(&snapshot, "plan_adjustments").is_empty());

    // Then incrementally: what changed during the snapshot arrives.
    let (after, _) = ctx.download_all(&tablet, cursor.as_deref(), 3).await;
    assert!(
        after.iter().all(|p| p["resync_required"] == false),
        "{after:?}"
    );
    let units: Vec<&Value> = after
        .iter()
        .filter_map(|p| p["settings"].get("units"))
        .collect();
    assert_eq!(units, [&json!("imperial")], "{after:?}");
    assert!(
        ids(&after, "activities", "id").contains(&late_run.to_string()),
        "{after:?}"
    );
    assert!(
        !ids(&after, "activities", "id")
            .iter()
            .any(|id| old_runs.iter().any(|(old, _)| old.to_string() == *id)),
        "old runs stay out of the continuation too"
    );
}

// ---------------------------------------------------------------------------
// 4. Retention
// ---------------------------------------------------------------------------

#[tokio::test]
async fn history_is_kept_for_active_devices_and_a_long_silent_one_resyncs() {
    let ctx = TestContext::new().await;
    let user = UserId::parse(USER).expect("user");
    let t0 = ctx.now();
    // 19 check-ins on distinct days, all within 90 days even a month later.
    let dates: Vec<NaiveDate> = (0..19u64)
        .map(|i| t0.date_naive() - Days::new(40) + Days::new(i))
        .collect();
    let check_ins = |range: std::ops::Range<usize>, at: DateTime<Utc>| -> Value {
        Value::Array(dates[range].iter().map(|d| check_in(*d, at)).collect())
    };
    let date_strings = |range: std::ops::Range<usize>| -> Vec<String> {
        dates[range].iter().map(ToString::to_string).collect()
    };

    let a = ctx.token(USER, "phone");
    let a_session = ctx.check(&a, USER).await;
    upload_ok(
        &ctx,
        &a,
        &a_session,
        json!({"daily_metrics": check_ins(0..6, t0)}),
    )
    .await;

    // B (silent later) and D both sync and acknowledge seq 6.
    let b = ctx.token(USER, "tablet");
    let d = ctx.token(USER, "laptop");
    let mut acknowledged = BTreeMap::new();
    for (name, token) in [("b", &b), ("d", &d)] {
        let session = ctx.check(token, USER).await;
        let (_, cursor) = ctx.download_all(token, None, 100).await;
        complete(&ctx, token, &session, &cursor).await;
        acknowledged.insert(name, cursor);
    }
    let b_cursor = acknowledged["b"].clone();

    upload_ok(
        &ctx,
        &a,
        &a_session,
        json!({"daily_metrics": check_ins(6..16, t0)}),
    )
    .await;

    // C and A acknowledge the head (seq 16); A's completion trims what every active device has.
    let c = ctx.token(USER, "watch");
    let c_session = ctx.check(&c, USER).await;
    let (_, c_cursor) = ctx.download_all(&c, None, 100).await;
    complete(&ctx, &c, &c_session, &c_cursor).await;
    let (_, a_cursor) = ctx.download_all(&a, None, 100).await;
    complete(&ctx, &a, &a_session, &a_cursor).await;
    assert_eq!(
        ctx.store.log_floor(&user).await.expect("floor"),
        6,
        "trimmed up to the slowest active acknowledgement (B and D at 6)"
    );

    // D (active, old acknowledgement) continues gap-free from it.
    let d_session = ctx.check(&d, USER).await;
    let (pages, d_cursor) = ctx.download_all(&d, Some(&acknowledged["d"]), 100).await;
    assert!(
        pages.iter().all(|p| p["resync_required"] == false),
        "{pages:?}"
    );
    assert_eq!(ids(&pages, "daily_metrics", "date"), date_strings(6..16));
    complete(&ctx, &d, &d_session, &d_cursor).await;
    assert_eq!(
        ctx.store.log_floor(&user).await.expect("floor"),
        6,
        "B, still active, holds seq 6"
    );

    // A month passes; B stays silent, the others keep syncing.
    ctx.clock.advance(Duration::days(31));
    let (a, c, d) = (
        ctx.token(USER, "phone"),
        ctx.token(USER, "watch"),
        ctx.token(USER, "laptop"),
    );
    ctx.check(&c, USER).await;
    ctx.check(&d, USER).await;
    let a_session = ctx.check(&a, USER).await;
    upload_ok(
        &ctx,
        &a,
        &a_session,
        json!({"daily_metrics": check_ins(16..19, ctx.now())}),
    )
    .await;
    let (pages, a_cursor) = ctx.download_all(&a, Some(&a_cursor), 100).await;
    assert_eq!(ids(&pages, "daily_metrics", "date"), date_strings(16..19));
    complete(&ctx, &a, &a_session, &a_cursor).await;
    assert_eq!(
        ctx.store.log_floor(&user).await.expect("floor"),
        16,
        "B no longer holds history; C and D acknowledged 16"
    );

    // B returns with its old cursor: a full snapshot, and then the log again.
    let b = ctx.token(USER, "tablet");
    let first = ctx
        .download_page(&b, Some(&b_cursor), &[("limit", "5")])
        .await;
    assert_eq!(first["resync_required"], true, "{first}");
    assert_eq!(first["resync_reason"], "cursor_too_old", "{first}");
    let next = first["next_cursor"].as_str().expect("cursor").to_owned();
    let (rest, b_next) = ctx.download_all(&b, Some(&next), 5).await;
    assert!(
        rest.iter().all(|p| p["resync_required"] == true),
        "{rest:?}"
    );
    let mut snapshot = vec![first];
    snapshot.extend(rest);
    assert_eq!(
        counts(ids(&snapshot, "daily_metrics", "date")),
        counts(date_strings(0..19)),
        "every check-in exactly once"
    );
    let (after, _) = ctx.download_all(&b, Some(&b_next), 100).await;
    assert!(after.iter().all(|p| p["resync_required"] == false));
    assert!(list(&after, "daily_metrics").is_empty(), "{after:?}");

    // C and D, whose acknowledgements are recent, continue incrementally.
    for (token, cursor) in [(&c, &c_cursor), (&d, &d_cursor)] {
        let (pages, _) = ctx.download_all(token, Some(cursor), 100).await;
        assert!(
            pages.iter().all(|p| p["resync_required"] == false),
            "{pages:?}"
        );
        assert_eq!(ids(&pages, "daily_metrics", "date"), date_strings(16..19));
    }

    // A device quoting a time (PRD 4.3 compatibility) after the trim point needs no resync either.
    let since = (ctx.now() - Duration::minutes(1)).to_rfc3339();
    let (pages, _) = ctx
        .download_all(&ctx.token(USER, "web"), Some(&since), 100)
        .await;
    assert!(
        pages.iter().all(|p| p["resync_required"] == false),
        "everything after {since} is still in the log: {pages:?}"
    );
    let got: BTreeSet<String> = ids(&pages, "daily_metrics", "date").into_iter().collect();
    assert!(
        date_strings(16..19).iter().all(|d| got.contains(d)),
        "{pages:?}"
    );
}

/// A time before history the log no longer holds (trimmed by acknowledgements)
/// cannot be served from the log: the device gets a full snapshot, never a
/// page that silently starts after the trimmed changes.
#[tokio::test]
async fn a_time_before_trimmed_history_resyncs_instead_of_skipping_it() {
    let ctx = TestContext::new().await;
    let user = UserId::parse(USER).expect("user");
    let before = (ctx.now() - Duration::minutes(1)).to_rfc3339();
    let t0 = ctx.now();
    let dates: Vec<NaiveDate> = (0..20u64)
        .map(|i| t0.date_naive() - Days::new(30) + Days::new(i))
        .collect();
    let check_ins = |range: std::ops::Range<usize>| -> Value {
        Value::Array(dates[range].iter().map(|d| check_in(*d, t0)).collect())
    };

    // One device uploads 20 check-ins, downloads them and acknowledges: being
    // the only device, its acknowledgement trims the log.
    let phone = ctx.token(USER, "phone");
    let session = ctx.check(&phone, USER).await;
    upload_ok(
        &ctx,
        &phone,
        &session,
        json!({"daily_metrics": check_ins(0..10)}),
    )
    .await;
    upload_ok(
        &ctx,
        &phone,
        &session,
        json!({"daily_metrics": check_ins(10..20)}),
    )
    .await;
    ctx.clock.advance(Duration::minutes(5));
    let (_, cursor) = ctx.download_all(&phone, None, 100).await;
    complete(&ctx, &phone, &session, &cursor).await;
    let floor = ctx.store.log_floor(&user).await.expect("floor");
    assert!(
        floor > 1,
        "the acknowledgement trimmed history (floor {floor})"
    );

    // A new device quotes a time before all of it.
    let tablet = ctx.token(USER, "tablet");
    let first = ctx
        .download_page(&tablet, Some(&before), &[("limit", "5")])
        .await;
    assert_eq!(first["resync_required"], true, "{first}");
    assert_eq!(first["resync_reason"], "cursor_too_old", "{first}");
    let next = first["next_cursor"].as_str().expect("cursor").to_owned();
    let (rest, _) = ctx.download_all(&tablet, Some(&next), 5).await;
    let mut pages = vec![first];
    pages.extend(rest);
    let expected: Vec<String> = dates.iter().map(ToString::to_string).collect();
    assert_eq!(
        counts(ids(&pages, "daily_metrics", "date")),
        counts(expected),
        "all 20 check-ins, each once"
    );
}

// ---------------------------------------------------------------------------
// 5. Tombstones
// ---------------------------------------------------------------------------

#[tokio::test]
async fn withdrawn_alerts_and_removed_workouts_reach_devices_as_deletions() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let now = ctx.now();
    let starts_on = now.date_naive();
    let mut plan = realistic_plan(starts_on, now);
    plan.version = ingest_plan(&ctx, &plan).await;
    let keep = Uuid::new_v4();
    let drop = Uuid::new_v4();
    ctx.ingest_for(
        USER,
        json!({"alerts": [
            alert(keep, "notification", "info", now, None),
            alert(drop, "notification", "info", now, None),
        ]}),
    )
    .await;
    let (pages, cursor) = ctx.download_all(&phone, None, 100).await;
    assert_eq!(
        counts(ids(&pages, "alerts", "id")),
        counts([keep.to_string(), drop.to_string()])
    );
    let held = full_plan(&pages).expect("plan");
    assert_eq!(held, plan);

    // The engine withdraws one alert and takes a workout out of the plan.
    ctx.clock.advance(Duration::minutes(5));
    let answer = ctx
        .ingest_for(USER, json!({"withdrawn_alerts": [drop]}))
        .await;
    assert_eq!(answer["accepted"][0]["id"], drop.to_string(), "{answer}");
    let removed = workout_id(&format!("w-{}-interval", starts_on + Days::new(2)));
    let mut next = plan.clone();
    next.generated_at = ctx.now();
    next.workouts.retain(|w| w.id != removed);
    assert_eq!(next.workouts.len(), 47);
    next.version = ingest_plan(&ctx, &next).await;

    let version = plan.version.to_string();
    let (pages, _) = ctx
        .download_all_with(&phone, Some(&cursor), &[("plan_version", &version)])
        .await;
    let deleted = list(&pages, "deleted");
    assert_eq!(deleted.len(), 1, "{pages:?}");
    assert_eq!(deleted[0]["type"], "alert");
    assert_eq!(deleted[0]["id"], drop.to_string());
    assert_eq!(deleted[0]["reason"], "withdrawn");
    assert!(deleted[0]["seq"].as_u64().is_some());
    assert!(list(&pages, "alerts").is_empty(), "{pages:?}");

    let diff = pages
        .iter()
        .map(|p| &p["training_plan_diff"])
        .find(|d| !d.is_null())
        .unwrap_or_else(|| panic!("a plan diff: {pages:?}"));
    let removes: Vec<&Value> = diff["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .filter(|op| op["op"] != "header")
        .collect();
    assert_eq!(removes, [&json!({"op": "remove", "id": removed})], "{diff}");
    let diff: PlanDiff = serde_json::from_value(diff.clone()).expect("diff");
    assert_eq!(apply(&held, &diff).expect("applies"), next);

    // A snapshot leaves the withdrawn alert out altogether.
    let (snapshot, _) = ctx
        .download_all(&ctx.token(USER, "tablet"), None, 100)
        .await;
    assert_eq!(ids(&snapshot, "alerts", "id"), [keep.to_string()]);
    assert!(list(&snapshot, "deleted").is_empty());
}

// ---------------------------------------------------------------------------
// 6. Uploads queued across a resync
// ---------------------------------------------------------------------------

#[tokio::test]
async fn uploads_queued_before_a_resync_are_accepted_after_it() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let now = ctx.now();
    let known = Uuid::new_v4();
    let known_start = now - Duration::days(2);
    let phone_session = ctx.check(&phone, USER).await;
    upload_ok(
        &ctx,
        &phone,
        &phone_session,
        json!({"activities": [run(known, known_start, "")], "settings_changes": [{"key": "units", "value": "metric", "changed_at": now}]}),
    )
    .await;
    ingest_plan(&ctx, &realistic_plan(now.date_naive(), now)).await;

    // The tablet queued work offline (a new run, a check-in, notes on a known
    // run), then lost its cursor: it checks in, resyncs, and only then uploads.
    ctx.clock.advance(Duration::hours(2));
    let tablet = ctx.token(USER, "tablet");
    let queued_run = Uuid::new_v4();
    let queued_at = ctx.now() - Duration::hours(1);
    let queued = json!({
        "activities": [
            run(queued_run, queued_at - Duration::hours(1), "logged offline"),
            run(known, known_start, "legs heavy, added offline")
        ],
        "daily_metrics": [check_in(queued_at.date_naive(), queued_at)]
    });
    let session = ctx.check(&tablet, USER).await;
    let (snapshot, cursor) = ctx.download_all(&tablet, None, 2).await;
    assert!(snapshot.iter().all(|p| p["resync_required"] == true));
    assert_eq!(ids(&snapshot, "activities", "id"), [known.to_string()]);

    let response = ctx.upload(&tablet, &session, queued).await;
    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    let accepted: BTreeSet<String> = body["accepted"]
        .as_array()
        .expect("accepted")
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        accepted.contains(&queued_run.to_string()) && accepted.contains(&known.to_string()),
        "{body}"
    );
    assert!(
        body["processing_errors"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{body}"
    );
    assert!(
        body["conflicts"].as_array().is_some_and(Vec::is_empty),
        "{body}"
    );
    complete(&ctx, &tablet, &session, &cursor).await;

    // Visible to the tablet after its snapshot cursor, and to the phone.
    for (token, since) in [(&tablet, Some(cursor.as_str())), (&phone, None)] {
        let (pages, _) = ctx.download_all(token, since, 100).await;
        let activities: BTreeMap<String, Value> = list(&pages, "activities")
            .into_iter()
            .map(|a| (a["id"].as_str().unwrap_or_default().to_owned(), a.clone()))
            .collect();
        assert_eq!(
            activities[&queued_run.to_string()]["notes"],
            "logged offline",
            "{pages:?}"
        );
        assert_eq!(
            activities[&known.to_string()]["notes"],
            "legs heavy, added offline"
        );
        assert_eq!(
            ids(&pages, "daily_metrics", "date"),
            [queued_at.date_naive().to_string()]
        );
    }
}
