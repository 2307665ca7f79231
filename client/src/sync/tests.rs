//! Every transition of the session against a scripted server on loopback.
//! The server reads the device's database file at each request, so the tests
//! see what was persisted BEFORE the request left.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use serde_json::{Value, json};
use trainsync_protocol::domain::{ActivityType, SettingKey};
use trainsync_protocol::wire::ItemType;

use super::*;
use crate::db::{QueueState, SyncStatus};
use crate::local::WorkoutLog;
use crate::testing::{TestClock, client, epoch};
use crate::{MemorySecretStore, SecretStore, StoredTokens};

/// One request as the server saw it, with the device's persisted step then.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    body: Value,
    step: Step,
    in_flight: Vec<Option<uuid::Uuid>>,
}

type Answer = Box<dyn Fn(&str, &Value, usize) -> Option<(StatusCode, Value)> + Send + Sync>;

struct Script {
    db: PathBuf,
    seen: Mutex<Vec<Seen>>,
    /// Overrides the default answer (by path and how many requests came before).
    answer: Answer,
    check_delay_ms: u64,
}

fn access_token(exp_offset: Duration) -> String {
    let claims = json!({"sub": "u1", "device_id": "d1", "exp": (epoch() + exp_offset).timestamp()});
    format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

fn default_answer(path: &str, body: &Value) -> (StatusCode, Value) {
    let now = epoch();
    let sync_id = "0190f3a4-0000-7000-8000-000000000001";
    match path {
        "/sync/check" => (
            StatusCode::OK,
            json!({"sync_id": sync_id, "has_updates": true, "server_changes_available": [],
                   "accepts_client_changes": true, "server_timestamp": now, "cursor": "c-head"}),
        ),
        "/sync/upload" => {
            let mut accepted = Vec::new();
            for (list, item_type, id) in [
                ("activities", "activity", "id"),
                ("daily_metrics", "daily_metric", "date"),
                ("settings_changes", "settings_change", "key"),
                ("plan_adjustments", "plan_adjustment", "id"),
            ] {
                for item in body[list].as_array().into_iter().flatten() {
                    accepted.push(json!({"type": item_type, "id": item[id]}));
                }
            }
            (
                StatusCode::OK,
                json!({"accepted": accepted, "conflicts": [], "processing_errors": [], "server_timestamp": now}),
            )
        }
        "/sync/download" => (
            StatusCode::OK,
            json!({"training_plan": null, "calculated_metrics": null, "alerts": [], "activities": [],
                   "daily_metrics": [], "plan_adjustments": [], "settings": {"units": "metric"},
                   "server_timestamp": now, "next_cursor": "c-1", "has_more": false}),
        ),
        "/sync/complete" => (
            StatusCode::OK,
            json!({"sync_id": sync_id, "status": "success", "server_timestamp": now}),
        ),
        "/auth/refresh" => (
            StatusCode::OK,
            json!({"access_token": access_token(Duration::hours(24)), "token_type": "Bearer",
                   "expires_in": 86400, "expires_at": now + Duration::hours(24),
                   "refresh_token": "rt-2", "refresh_expires_at": now + Duration::days(60)}),
        ),
        _ => (StatusCode::NOT_FOUND, json!({})),
    }
}

fn error(status: StatusCode, code: &str) -> Option<(StatusCode, Value)> {
    Some((
        status,
        json!({"error": {"code": code, "message": code}, "server_timestamp": epoch()}),
    ))
}

async fn serve(
    State(script): State<Arc<Script>>,
    uri: Uri,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    let path = uri.path().to_owned();
    let body = if body.starts_with(&[0x1f, 0x8b]) {
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut json)
            .unwrap();
        json
    } else {
        body.to_vec()
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (step, in_flight) = {
        let conn = rusqlite::Connection::open(&script.db).unwrap();
        let step = serde_json::from_str(&db::sync_state(&conn).unwrap().session).unwrap();
        let in_flight = db::in_flight_batch(&conn)
            .unwrap()
            .iter()
            .map(|i| i.sync_request_id)
            .collect();
        (step, in_flight)
    };
    let count = {
        let mut seen = script.seen.lock().unwrap();
        seen.push(Seen {
            path: path.clone(),
            body: body.clone(),
            step,
            in_flight,
        });
        seen.len() - 1
    };
    if path == "/sync/check" && script.check_delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(script.check_delay_ms)).await;
    }
    let (status, value) =
        (script.answer)(&path, &body, count).unwrap_or_else(|| default_answer(&path, &body));
    (status, Json(value))
}

struct Harness {
    _dir: tempfile::TempDir,
    db: PathBuf,
    url: String,
    script: Arc<Script>,
    secrets: Arc<MemorySecretStore>,
    clock: Arc<TestClock>,
}

impl Harness {
    async fn start(answer: Answer, check_delay_ms: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("device.db");
        let script = Arc::new(Script {
            db: db.clone(),
            seen: Mutex::default(),
            answer,
            check_delay_ms,
        });
        let router = axum::Router::new()
            .fallback(serve)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let harness = Self {
            _dir: dir,
            db,
            url,
            script,
            secrets: Arc::default(),
            clock: TestClock::new(),
        };
        harness
            .client()
            .sign_in_with(StoredTokens {
                access_token: access_token(Duration::hours(24)),
                expires_at: None,
                refresh_token: Some("rt-1".into()),
            })
            .unwrap();
        harness
    }

    /// The app (re)started on the same file and keychain.
    fn client(&self) -> Client {
        client(
            &self.db,
            &self.url,
            self.secrets.clone(),
            self.clock.clone(),
        )
    }

    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.script.seen.lock().unwrap())
    }
}

fn paths(seen: &[Seen]) -> Vec<&str> {
    seen.iter().map(|s| s.path.as_str()).collect()
}

fn workout(notes: &str) -> WorkoutLog {
    WorkoutLog {
        activity_type: ActivityType::Run,
        started_at: epoch() - Duration::hours(2),
        duration_s: 1800,
        distance_m: None,
        avg_hr: None,
        rpe: Some(5),
        notes: Some(notes.into()),
        feeling: None,
    }
}

fn no_override() -> Answer {
    Box::new(|_, _, _| None)
}

#[tokio::test]
async fn each_step_is_persisted_before_its_request_leaves() {
    let h = Harness::start(no_override(), 0).await;
    let device = h.client();
    for i in 0..(MAX_BATCH + 2) {
        device.log_workout(workout(&format!("w{i}"))).unwrap();
    }
    let outcome = device.sync(Trigger::Manual).await.unwrap();
    assert_eq!(
        outcome,
        SessionOutcome::Synced {
            accepted: MAX_BATCH as u32 + 2,
            conflicts: 0,
            rejected: 0,
            pages: 1
        }
    );
    let seen = h.seen();
    assert_eq!(
        paths(&seen),
        [
            "/sync/check",
            "/sync/upload",
            "/sync/upload",
            "/sync/download",
            "/sync/complete"
        ]
    );
    assert_eq!(seen[0].step, Step::Checking);
    assert_eq!(seen[0].body["pending_changes_count"], MAX_BATCH + 2);
    for upload in &seen[1..3] {
        assert!(matches!(upload.step, Step::Uploading { .. }));
        let id = upload.body["sync_request_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(!upload.in_flight.is_empty());
        assert!(
            upload.in_flight.iter().all(|i| *i == Some(id)),
            "persisted before sending"
        );
    }
    assert_eq!(
        seen[1].body["activities"].as_array().unwrap().len(),
        MAX_BATCH
    );
    assert_eq!(seen[1].body["activities"][0]["notes"], "w0", "oldest first");
    assert!(matches!(seen[3].step, Step::Downloading { .. }));
    assert_eq!(
        seen[4].step,
        Step::Completing {
            sync_id: seen[4].body["sync_id"].as_str().unwrap().parse().unwrap(),
            cursor: "c-1".into()
        }
    );
    assert_eq!(seen[4].body["cursor"], "c-1");
    assert_eq!(device.step().unwrap(), Step::Idle);
    assert!(
        device
            .activities()
            .unwrap()
            .iter()
            .all(|a| a.sync_status == SyncStatus::Synced)
    );
    assert_eq!(device.settings().unwrap()["units"].value, "metric");

    // With a cursor and nothing new or pending, the check is the whole session.
    let quiet = Harness::start(
        Box::new(|path, _, _| {
            (path == "/sync/check").then(|| {
                let (status, mut body) = default_answer(path, &Value::Null);
                body["has_updates"] = false.into();
                (status, body)
            })
        }),
        0,
    )
    .await;
    let device = quiet.client();
    assert!(matches!(
        device.sync(Trigger::Launch).await.unwrap(),
        SessionOutcome::Synced { .. }
    ));
    quiet.seen();
    assert_eq!(
        device.sync(Trigger::Periodic).await.unwrap(),
        SessionOutcome::UpToDate
    );
    assert_eq!(paths(&quiet.seen()), ["/sync/check"]);
}

const MAX_BATCH: usize = trainsync_protocol::limits::MAX_BATCH_ITEMS;

/// A 503 on `failing` ends the session as "will retry" at that step; the
/// restarted client continues with that same request.
async fn restart_at(failing: &'static str, expected: fn(&Step) -> bool) {
    let h = Harness::start(
        Box::new(move |path, _, count| {
            (path == failing && count < 8)
                .then(|| error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"))
                .flatten()
        }),
        0,
    )
    .await;
    let device = h.client();
    device.log_workout(workout("one")).unwrap();
    let outcome = device.sync(Trigger::LocalWrite).await.unwrap();
    let SessionOutcome::WillRetry { at, .. } = outcome else {
        panic!("{failing}: {outcome:?}")
    };
    assert!(at > epoch(), "a backoff");
    let step = device.step().unwrap();
    assert!(expected(&step), "{failing}: {step:?}");
    let status = device.status().unwrap();
    assert!(
        status
            .messages
            .iter()
            .any(|m| m == "Syncing paused — will retry automatically")
    );
    let first_try = h.seen();
    drop(device);

    let device = h.client();
    assert_eq!(device.step().unwrap(), step);
    // The script fails only the first 8 requests; make sure the retry is past them.
    h.script
        .seen
        .lock()
        .unwrap()
        .extend(std::iter::repeat_n(first_try[0].clone(), 8));
    let outcome = device.sync(Trigger::Launch).await.unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Synced { .. }),
        "{failing}: {outcome:?}"
    );
    let retried: Vec<Seen> = h.seen().into_iter().skip(8).collect();
    assert_eq!(retried[0].path, failing);
    if failing == "/sync/upload" {
        let before = first_try.iter().find(|s| s.path == failing).unwrap();
        assert_eq!(
            before.body["sync_request_id"],
            retried[0].body["sync_request_id"]
        );
        assert_eq!(before.body["sync_id"], retried[0].body["sync_id"]);
    }
    assert_eq!(device.pending_count().unwrap(), 0);
    assert_eq!(device.status().unwrap().health, crate::Health::Green);
}

#[tokio::test]
async fn a_failure_at_each_step_resumes_there_after_a_restart() {
    restart_at("/sync/check", |s| *s == Step::Checking).await;
    restart_at("/sync/upload", |s| matches!(s, Step::Uploading { .. })).await;
    restart_at("/sync/download", |s| matches!(s, Step::Downloading { .. })).await;
    restart_at("/sync/complete", |s| matches!(s, Step::Completing { .. })).await;
}

#[tokio::test]
async fn refused_items_leave_the_queue_and_retryable_ones_keep_their_place() {
    let answer: Answer = Box::new(|path, body, _| {
        (path == "/sync/upload").then(|| {
            let acts = body["activities"].as_array().unwrap();
            let id = |i: usize| acts[i]["id"].clone();
            let refusal = |index: usize, retryable: bool| {
                json!({"type": "activity", "id": id(index), "index": index, "field": "notes",
                       "code": "invalid_value", "message": "no", "retryable": retryable})
            };
            (
                StatusCode::OK,
                json!({"accepted": [{"type": "activity", "id": id(0)}],
                       "conflicts": [{"type": "settings_change", "id": "units", "resolution": "superseded_by_newer_write",
                                      "message": "a newer value won"}],
                       "processing_errors": [refusal(1, false), refusal(2, true)],
                       "server_timestamp": epoch()}),
            )
        })
    });
    let h = Harness::start(answer, 0).await;
    let device = h.client();
    for notes in ["a", "b", "c"] {
        device.log_workout(workout(notes)).unwrap();
    }
    device
        .set_setting(SettingKey::Units, json!("imperial"))
        .unwrap();
    let outcome = device.sync(Trigger::Manual).await.unwrap();
    assert_eq!(
        outcome,
        SessionOutcome::Synced {
            accepted: 1,
            conflicts: 1,
            rejected: 1,
            pages: 1
        }
    );
    let rejected = device.rejected_items().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].payload["notes"], "b");
    assert_eq!(rejected[0].state, QueueState::Rejected);
    assert_eq!(
        rejected[0].rejection.as_deref(),
        Some("notes: no (invalid_value)")
    );
    let queued = db::queued(&device.db(), 10).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].payload["notes"], "c");
    assert_eq!(
        db::unsent_counts(&device.db()).unwrap(),
        vec![(ItemType::Activity, 1)]
    );
    let status = device.status().unwrap();
    assert_eq!(status.health, crate::Health::Red);
    assert!(
        status
            .messages
            .iter()
            .any(|m| m == "1 change could not be saved on the server")
    );
    assert!(
        status
            .messages
            .iter()
            .any(|m| m == "1 activity waiting to sync")
    );
}

#[tokio::test]
async fn concurrent_sync_calls_coalesce_into_one_session() {
    let h = Harness::start(no_override(), 200).await;
    let device = h.client();
    device.log_workout(workout("x")).unwrap();
    let (a, b) = tokio::join!(device.sync(Trigger::Manual), device.sync(Trigger::Push));
    assert_eq!(a.unwrap(), b.unwrap());
    let checks = h.seen().iter().filter(|s| s.path == "/sync/check").count();
    assert_eq!(checks, 1);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_request_repeated() {
    let answer: Answer = Box::new(|path, _, count| {
        (path == "/sync/check" && count == 0)
            .then(|| error(StatusCode::UNAUTHORIZED, "token_expired"))
            .flatten()
    });
    let h = Harness::start(answer, 0).await;
    let device = h.client();
    assert!(matches!(
        device.sync(Trigger::Manual).await.unwrap(),
        SessionOutcome::Synced { .. }
    ));
    let seen = h.seen();
    assert_eq!(
        paths(&seen)[..3],
        ["/sync/check", "/auth/refresh", "/sync/check"]
    );
    assert_eq!(seen[1].body["refresh_token"], "rt-1");
    assert_eq!(
        h.secrets.get().unwrap().unwrap().refresh_token.as_deref(),
        Some("rt-2")
    );
}

#[tokio::test]
async fn a_reused_refresh_token_signs_out_and_keeps_the_queue() {
    let answer: Answer = Box::new(|path, _, _| {
        (path == "/auth/refresh")
            .then(|| error(StatusCode::UNAUTHORIZED, "refresh_token_reused"))
            .flatten()
    });
    let h = Harness::start(answer, 0).await;
    h.clock.advance_to_expiry();
    let device = h.client();
    device.log_workout(workout("kept")).unwrap();
    let outcome = device.sync(Trigger::Manual).await.unwrap();
    assert!(
        matches!(outcome, SessionOutcome::SignedOut { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        paths(&h.seen()),
        ["/auth/refresh"],
        "refreshed before expiry, nothing else sent"
    );
    assert_eq!(h.secrets.get().unwrap(), None);
    assert_eq!(device.pending_count().unwrap(), 1);
}
