//! The reference brain: after activities change, devices receive training
//! load (`calculated_metrics`) with its provenance, and an injury-risk alert
//! once per upward ACWR crossing; against DynamoDB Local.

use chrono::{Days, NaiveDate, NaiveTime};
use http::StatusCode;
use serde_json::{Value, json};
use trainsync_protocol::domain::CalculatedMetrics;
use trainsync_protocol::rules::training_load::{ALGORITHM_VERSION, TrainingLoad, compute};
use trainsync_tests::TestContext;
use uuid::Uuid;

const USER: &str = "erin";

/// A test context with the reference brain switched on; the clock stands at
/// noon (the harness's epoch), so "days ago" never straddles midnight.
async fn context() -> TestContext {
    let mut ctx = TestContext::new().await;
    ctx.state.brain = true;
    ctx
}

/// One logged session `days_ago` days before today (the clock's date), at `hour`:00 UTC.
struct Session {
    id: Uuid,
    days_ago: u64,
    hour: u32,
    minutes: u32,
    rpe: u8,
}

impl Session {
    fn new(days_ago: u64, minutes: u32, rpe: u8) -> Self {
        Self {
            id: Uuid::new_v4(),
            days_ago,
            hour: 7,
            minutes,
            rpe,
        }
    }

    fn at(mut self, hour: u32) -> Self {
        self.hour = hour;
        self
    }

    fn date(&self, today: NaiveDate) -> NaiveDate {
        today - Days::new(self.days_ago)
    }

    fn json(&self, today: NaiveDate) -> Value {
        let started_at = self
            .date(today)
            .and_time(NaiveTime::from_hms_opt(self.hour, 0, 0).expect("hour"))
            .and_utc();
        json!({
            "id": self.id,
            "activity_type": "run",
            "started_at": started_at,
            "duration_s": self.minutes * 60,
            "rpe": self.rpe,
            "source": "manual"
        })
    }

    /// Session-RPE load: minutes × RPE.
    fn load(&self, today: NaiveDate) -> (NaiveDate, f64) {
        (
            self.date(today),
            f64::from(self.minutes * u32::from(self.rpe)),
        )
    }
}

/// Uploads `sessions` (15 per upload) in one sync session, each accepted.
async fn upload(ctx: &TestContext, token: &str, sessions: &[Session]) {
    let today = ctx.now().date_naive();
    let sync_id = ctx.check(token, USER).await;
    for chunk in sessions.chunks(15) {
        let items: Vec<Value> = chunk.iter().map(|s| s.json(today)).collect();
        let response = ctx
            .upload(token, &sync_id, json!({"activities": items}))
            .await;
        assert_eq!(response.status, StatusCode::OK);
        let body = response.json();
        assert_eq!(
            body["accepted"].as_array().map(Vec::len),
            Some(chunk.len()),
            "{body}"
        );
    }
}

/// What a device receives after `cursor`: the latest metrics (if they
/// changed), the metrics' `seq`, every alert, and the next cursor.
struct Received {
    metrics: Option<CalculatedMetrics>,
    metrics_seq: Option<u64>,
    alerts: Vec<Value>,
    cursor: String,
}

async fn receive(ctx: &TestContext, token: &str, cursor: &str) -> Received {
    let (pages, cursor) = ctx.download_all(token, Some(cursor), 100).await;
    let latest = pages
        .iter()
        .rev()
        .map(|p| &p["calculated_metrics"])
        .find(|m| !m.is_null());
    let metrics_seq = latest.and_then(|m| m["seq"].as_u64());
    let metrics = latest.map(|m| {
        let mut m = m.clone();
        m.as_object_mut().expect("object").remove("seq");
        serde_json::from_value(m.clone()).unwrap_or_else(|e| panic!("metrics ({e}): {m}"))
    });
    let alerts = pages
        .iter()
        .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
        .collect();
    Received {
        metrics,
        metrics_seq,
        alerts,
        cursor,
    }
}

/// The position before anything happened.
async fn start(ctx: &TestContext, token: &str) -> String {
    ctx.download_all(token, None, 100).await.1
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Asserts the published figures are the reference formulas' (rounded as published).
fn assert_figures(metrics: &CalculatedMetrics, expected: &TrainingLoad) {
    assert_eq!(metrics.as_of, expected.as_of);
    let acwr_matches = match (metrics.acwr, expected.acwr) {
        (Some(a), Some(b)) => close(a, b),
        (a, b) => a == b,
    };
    assert!(
        acwr_matches,
        "acwr {:?} vs {:?}",
        metrics.acwr, expected.acwr
    );
    assert!(
        close(metrics.atl, expected.atl),
        "atl {} vs {}",
        metrics.atl,
        expected.atl
    );
    assert!(
        close(metrics.ctl, expected.ctl),
        "ctl {} vs {}",
        metrics.ctl,
        expected.ctl
    );
    assert!(
        close(metrics.tsb, expected.tsb),
        "tsb {} vs {}",
        metrics.tsb,
        expected.tsb
    );
    assert_eq!(metrics.risk_level, Some(expected.risk_level()));
}

#[tokio::test]
async fn uploaded_activities_publish_training_load_with_provenance() {
    let ctx = context().await;
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    let today = ctx.now().date_naive();
    let cursor = start(&ctx, &tablet).await;

    // Loads (minutes × RPE): 30 × 5 = 150 on each of the six days 8 to 13
    // days ago, then 60 × 6 = 360 two days ago, 30 × 4 = 120 yesterday,
    // 45 × 8 = 360 today.
    let mut sessions: Vec<Session> = (8..14).map(|d| Session::new(d, 30, 5)).collect();
    sessions.extend([
        Session::new(2, 60, 6),
        Session::new(1, 30, 4),
        Session::new(0, 45, 8),
    ]);
    upload(&ctx, &phone, &sessions).await;

    let received = receive(&ctx, &tablet, &cursor).await;
    let metrics = received.metrics.expect("metrics in the next download");
    let expected = compute(sessions.iter().map(|s| s.load(today)), today).rounded();
    // By hand: acute = (360 + 120 + 360) / 7 = 120;
    // chronic = (6 × 150 + 840) / 28 = 1740 / 28 = 62.142857; acwr = 1.9310 → 1.93.
    assert_eq!(expected.acute_load, 120.0);
    assert_eq!(expected.acwr, Some(1.93));
    assert_figures(&metrics, &expected);
    assert_eq!(metrics.as_of, today);
    assert!(metrics.tsb < 0.0, "a hard last week leaves form negative");

    let provenance = &metrics.provenance;
    assert_eq!(provenance.algorithm, ALGORITHM_VERSION);
    assert_eq!(provenance.activities, 9);
    assert_eq!(
        provenance.last_activity_id,
        Some(sessions[8].id),
        "the latest-starting activity"
    );
    // Nine activities were seqs 1..=9; the metrics were computed from that state.
    assert_eq!(provenance.through_seq, 9);
    assert!(
        received
            .metrics_seq
            .is_some_and(|seq| seq > provenance.through_seq)
    );
    assert_eq!(provenance.computed_at, ctx.now());
}

#[tokio::test]
async fn a_late_offline_workout_changes_the_published_load() {
    let ctx = context().await;
    let phone = ctx.token(USER, "phone");
    let watch = ctx.token(USER, "watch");
    let today = ctx.now().date_naive();
    let cursor = start(&ctx, &phone).await;

    // 60 × 5 = 300 yesterday and today: acute 600 / 7 = 85.71,
    // chronic 600 / 28 = 21.43, acwr = 4.
    let mut sessions = vec![Session::new(1, 60, 5), Session::new(0, 60, 5)];
    upload(&ctx, &phone, &sessions).await;
    let before = receive(&ctx, &phone, &cursor).await;
    let first = before.metrics.expect("metrics");
    assert_eq!(first.acwr, Some(4.0));
    assert_eq!(first.provenance.activities, 2);

    // The watch syncs a run from ten days ago only now: 60 × 7 = 420. It
    // lies outside the acute week but inside the chronic window:
    // chronic = 1020 / 28, acwr = (600 / 7) / (1020 / 28) = 2400 / 1020 = 2.35.
    let late = Session::new(10, 60, 7);
    upload(&ctx, &watch, std::slice::from_ref(&late)).await;
    sessions.push(late);
    let after = receive(&ctx, &phone, &before.cursor).await;
    let second = after
        .metrics
        .expect("the late workout republishes the metrics");
    assert_ne!(second, first);
    assert_eq!(second.acwr, Some(2.35));
    assert_figures(
        &second,
        &compute(sessions.iter().map(|s| s.load(today)), today).rounded(),
    );
    assert_eq!(second.provenance.activities, 3);
    assert_eq!(
        second.provenance.last_activity_id,
        Some(sessions[1].id),
        "still today's run: the late one started earlier"
    );
    assert!(second.provenance.through_seq > first.provenance.through_seq);
    assert!(second.ctl > first.ctl);
}

/// 21 steady days at `steady` minutes × RPE 5 (27 to 7 days ago), then a
/// week (6 days ago to today) at `week` minutes × RPE 5.
fn four_weeks(steady: u32, week: u32) -> Vec<Session> {
    (7..28)
        .rev()
        .map(|d| Session::new(d, steady, 5))
        .chain((0..7).rev().map(|d| Session::new(d, week, 5)))
        .collect()
}

fn injury_alerts(alerts: &[Value]) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| a["kind"] == "injury_risk")
        .collect()
}

#[tokio::test]
async fn a_sharp_week_raises_one_critical_injury_alert() {
    let ctx = context().await;
    let phone = ctx.token(USER, "phone");
    let today = ctx.now().date_naive();
    let mut cursor = start(&ctx, &phone).await;

    // 100 a day for three weeks, then 200 a day: acute 200,
    // chronic (21 × 100 + 7 × 200) / 28 = 125, acwr 1.6 > 1.5.
    let mut sessions = four_weeks(20, 40);
    // The steady weeks first (two uploads): nothing in the last 7 days yet, acwr 0.
    upload(&ctx, &phone, &sessions[..21]).await;
    let steady = receive(&ctx, &phone, &cursor).await;
    assert_eq!(steady.metrics.as_ref().and_then(|m| m.acwr), Some(0.0));
    assert!(injury_alerts(&steady.alerts).is_empty());
    cursor = steady.cursor;

    upload(&ctx, &phone, &sessions[21..]).await;
    let sharp = receive(&ctx, &phone, &cursor).await;
    let metrics = sharp.metrics.expect("metrics");
    assert_eq!(metrics.acwr, Some(1.6));
    assert_figures(
        &metrics,
        &compute(sessions.iter().map(|s| s.load(today)), today).rounded(),
    );
    let alerts = injury_alerts(&sharp.alerts);
    assert_eq!(alerts.len(), 1, "{:?}", sharp.alerts);
    assert_eq!(alerts[0]["severity"], "critical");
    assert_eq!(alerts[0]["kind"], "injury_risk");
    assert_eq!(alerts[0]["params"]["acwr"], 1.6);
    let alert_id = alerts[0]["id"].clone();

    // One more run today keeps the ACWR above 1.5: new metrics, no second alert.
    // acute (1400 + 100) / 7 = 214.29, chronic 3600 / 28 = 128.57, acwr 1.67.
    let extra = Session::new(0, 20, 5).at(18);
    upload(&ctx, &phone, std::slice::from_ref(&extra)).await;
    sessions.push(extra);
    let still = receive(&ctx, &phone, &sharp.cursor).await;
    let metrics = still.metrics.expect("the extra run changes the metrics");
    assert_eq!(metrics.acwr, Some(1.67));
    assert!(
        injury_alerts(&still.alerts).is_empty(),
        "{:?}",
        still.alerts
    );

    // A device starting afresh sees exactly the one alert.
    let (snapshot, _) = ctx
        .download_all(&ctx.token(USER, "tablet"), None, 100)
        .await;
    let all: Vec<Value> = snapshot
        .iter()
        .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
        .collect();
    let all = injury_alerts(&all);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["id"], alert_id);
}

#[tokio::test]
async fn a_warning_then_a_critical_crossing_raise_one_alert_each() {
    let ctx = context().await;
    let phone = ctx.token(USER, "phone");
    let mut cursor = start(&ctx, &phone).await;

    // 100 a day for three weeks, then 150 a day: acute 150,
    // chronic (2100 + 1050) / 28 = 112.5, acwr 1.333 → 1.33: a warning.
    let sessions = four_weeks(20, 30);
    upload(&ctx, &phone, &sessions[..21]).await;
    cursor = receive(&ctx, &phone, &cursor).await.cursor;
    upload(&ctx, &phone, &sessions[21..]).await;
    let warned = receive(&ctx, &phone, &cursor).await;
    assert_eq!(warned.metrics.as_ref().and_then(|m| m.acwr), Some(1.33));
    let alerts = injury_alerts(&warned.alerts);
    assert_eq!(alerts.len(), 1, "{:?}", warned.alerts);
    assert_eq!(alerts[0]["severity"], "warning");

    // 60 × 5 = 300 more today: acute 1350 / 7, chronic 3450 / 28,
    // acwr 5400 / 3450 = 1.565 → 1.57: critical, a second (critical) alert.
    upload(&ctx, &phone, &[Session::new(0, 60, 5).at(18)]).await;
    let critical = receive(&ctx, &phone, &warned.cursor).await;
    assert_eq!(critical.metrics.as_ref().and_then(|m| m.acwr), Some(1.57));
    let alerts = injury_alerts(&critical.alerts);
    assert_eq!(alerts.len(), 1, "{:?}", critical.alerts);
    assert_eq!(alerts[0]["severity"], "critical");
}

#[tokio::test]
async fn with_the_brain_off_no_metrics_are_published() {
    let mut ctx = TestContext::new().await;
    // Explicitly off (the harness's default may change).
    ctx.state.brain = false;
    let phone = ctx.token(USER, "phone");
    let cursor = start(&ctx, &phone).await;
    upload(&ctx, &phone, &four_weeks(20, 40)).await;
    ctx.ingest_for(
        USER,
        json!({"activities": [{
            "activity_type": "ride",
            "started_at": ctx.now() - chrono::Duration::hours(2),
            "duration_s": 3600,
            "source_device": "Wahoo ELEMNT",
            "external_id": "ride-1"
        }]}),
    )
    .await;
    let received = receive(&ctx, &phone, &cursor).await;
    assert!(received.metrics.is_none());
    assert!(received.alerts.is_empty(), "{:?}", received.alerts);
    let (snapshot, _) = ctx
        .download_all(&ctx.token(USER, "tablet"), None, 100)
        .await;
    assert!(snapshot.iter().all(|p| p["calculated_metrics"].is_null()));
    let activities: usize = snapshot
        .iter()
        .map(|p| p["activities"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(activities, 29, "the data itself is stored");
}
