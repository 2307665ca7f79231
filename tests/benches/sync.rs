//! `scripts/bench`: what each endpoint costs against DynamoDB Local, in
//! latency and DynamoDB requests, and how that scales with a user's history.
//! Prints a table and the ratios that must stay flat (large/small history).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sync_core::services::publish::publish;
use sync_core::store::{EntityKey, EntityWrite};
use trainsync_protocol::domain::{EntityKind, UserId};
use trainsync_tests::{TestContext, TestResponse, activity};
use uuid::Uuid;

const ROUNDS: usize = 30;

/// Latency samples and DynamoDB request counts of one operation.
#[derive(Default)]
struct Figures {
    latencies: Vec<Duration>,
    requests: Vec<u64>,
}

impl Figures {
    fn record(&mut self, started: Instant, response: &TestResponse) {
        assert!(
            response.status.is_success(),
            "{}",
            String::from_utf8_lossy(&response.bytes)
        );
        self.latencies.push(started.elapsed());
        self.requests.push(response.ddb_requests());
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index].as_secs_f64() * 1000.0
    }

    fn requests(&self) -> f64 {
        self.requests.iter().sum::<u64>() as f64 / self.requests.len() as f64
    }
}

async fn seed_history(ctx: &TestContext, user: &str, size: usize) {
    let id = UserId::parse(user).unwrap();
    // Real activities, one every six hours back in time, so the start-time
    // index (duplicate matching, snapshots) holds the whole history too.
    let writes: Vec<EntityWrite> = (0..size)
        .map(|i| {
            let id = Uuid::new_v4();
            let started_at = ctx.now() - chrono::Duration::hours(6 * (i as i64 + 1));
            EntityWrite {
                key: EntityKey::new(EntityKind::Activity, id.to_string()),
                data: json!({"id": id, "activity_type": "run", "started_at": started_at,
                             "duration_s": 1800, "notes": "history", "source": "manual"}),
            }
        })
        .collect();
    publish(ctx.store.as_ref(), &id, writes, None, ctx.now())
        .await
        .unwrap();
}

async fn measure(ctx: &TestContext, user: &str) -> Vec<(&'static str, Figures)> {
    let token = ctx.token(user, "phone");
    let (mut check, mut upload, mut incremental, mut status) = (
        Figures::default(),
        Figures::default(),
        Figures::default(),
        Figures::default(),
    );
    let mut cursor = ctx.get("/sync/status", &token, &[]).await.json()["head_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let response = ctx
            .post(
                "/sync/check",
                &token,
                &json!({"user_id": user, "cursor": cursor, "pending_changes_count": 3}),
            )
            .await;
        check.record(started, &response);
        let sync_id = response.json()["sync_id"].as_str().unwrap().to_owned();

        let items: Vec<Value> = (0..3).map(|_| activity(Uuid::new_v4(), "bench")).collect();
        let started = Instant::now();
        let response = ctx
            .upload(&token, &sync_id, json!({"activities": items}))
            .await;
        upload.record(started, &response);

        let started = Instant::now();
        let response = ctx
            .get("/sync/download", &token, &[("since", &cursor)])
            .await;
        incremental.record(started, &response);
        let page = response.json();
        assert_eq!(page["activities"].as_array().unwrap().len(), 3);
        cursor = page["next_cursor"].as_str().unwrap().to_owned();

        let started = Instant::now();
        status.record(started, &ctx.get("/sync/status", &token, &[]).await);
    }
    vec![
        ("check", check),
        ("upload (3 items)", upload),
        ("download (incremental)", incremental),
        ("status", status),
    ]
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The critical-alert fan-out for users with 1, 5 and 20 live devices: the
/// DynamoDB requests and time one alert costs (the stream batch read from
/// DynamoDB Local's real stream, pushed to a local receiver).
async fn measure_fanout(ctx: &mut TestContext) {
    use sync_core::push::HttpPushProvider;
    use trainsync_infra::push_receiver::PushReceiver;
    let receiver = PushReceiver::start().await.expect("a loopback port");
    ctx.state.push = Some(std::sync::Arc::new(HttpPushProvider::new(receiver.url())));
    println!("\ncritical-alert fan-out, one alert:");
    for devices in [1usize, 5, 20] {
        let user = format!("fanout-{devices}");
        for i in 0..devices {
            let device = format!("device-{i}");
            let token = ctx.token(&user, &device);
            let response = ctx
                .register(&token, &device, Some(&format!("token-{i}")))
                .await;
            assert!(response.status.is_success());
        }
        ctx.clock.advance(chrono::Duration::minutes(1));
        ctx.ingest_for(
            &user,
            json!({"alerts": [{"id": Uuid::new_v4(), "kind": "injury_risk", "severity": "critical",
                "title_key": "t", "body_key": "b", "created_at": ctx.now()}]}),
        )
        .await;
        let records =
            trainsync_infra::stream_poller::read_all(&trainsync_tests::config(&ctx.table))
                .await
                .expect("the stream");
        let mut event = aws_lambda_events::event::dynamodb::Event::default();
        event.records = records
            .into_iter()
            .rfind(trainsync_infra::stream_filter::passes)
            .into_iter()
            .collect();
        let before = ctx.counter.total();
        let pushed_before = receiver.received().len();
        let started = Instant::now();
        let response = sync_core::handlers::fanout::fan_out(&ctx.state, event.clone()).await;
        let elapsed = started.elapsed();
        assert!(response.batch_item_failures.is_empty());
        let requests = ctx.counter.total() - before;
        let before_replay = ctx.counter.total();
        sync_core::handlers::fanout::fan_out(&ctx.state, event).await;
        println!(
            "  {devices:>2} devices: {} pushes, {requests} DynamoDB requests ({:.2} per device), {:.1} ms; a replay: {} requests, no push",
            receiver.received().len() - pushed_before,
            requests as f64 / devices as f64,
            elapsed.as_secs_f64() * 1000.0,
            ctx.counter.total() - before_replay,
        );
    }
}

#[tokio::main]
async fn main() {
    let mut ctx = TestContext::new().await;
    let sizes = [("small", 10usize), ("large", 2000usize)];
    let mut results = Vec::new();
    for (user, size) in sizes {
        seed_history(&ctx, user, size).await;
        results.push((user, size, measure(&ctx, user).await));
    }

    println!("trainsync bench: {ROUNDS} rounds per operation against DynamoDB Local\n");
    println!(
        "{:<8} {:>8} {:<24} {:>9} {:>9} {:>13}",
        "user", "history", "operation", "p50 ms", "p95 ms", "ddb req/call"
    );
    for (user, size, figures) in &results {
        for (name, f) in figures {
            println!(
                "{user:<8} {size:>8} {name:<24} {:>9.2} {:>9.2} {:>13.2}",
                f.percentile(0.5),
                f.percentile(0.95),
                f.requests()
            );
        }
    }

    println!("\nratios, large history / small history (flat = 1.00):");
    let (small, large) = (&results[0].2, &results[1].2);
    for ((name, s), (_, l)) in small.iter().zip(large) {
        println!(
            "  {name:<24} ddb requests {:>5.2}   p50 latency {:>5.2}",
            l.requests() / s.requests(),
            l.percentile(0.5) / s.percentile(0.5)
        );
    }

    // A first sync of the large history: snapshot pages (the last 90 days of
    // it, PRD 9.3), and what gzip saves on them.
    let token = ctx.token("large", "new-tablet");
    let started = Instant::now();
    let before = ctx.counter.total();
    let (pages, _) = ctx.download_all(&token, None, 100).await;
    let elapsed = started.elapsed();
    let snapshot_requests = ctx.counter.total() - before;
    let entities: usize = pages
        .iter()
        .map(|p| p["activities"].as_array().map_or(0, Vec::len))
        .sum();
    let json_bytes: usize = pages.iter().map(|p| p.to_string().len()).sum();
    let gzip_bytes: usize = pages
        .iter()
        .map(|p| sync_core::compression::gzip(p.to_string().as_bytes()).len())
        .sum();
    println!(
        "\nfull download (snapshot of the last 90 days, {} of {} activities): {} pages, {} DynamoDB requests, in {:.1} ms; {} KiB JSON, {} KiB gzip ({:.0}% smaller)",
        entities,
        results[1].1 + ROUNDS * 3,
        pages.len(),
        snapshot_requests,
        elapsed.as_secs_f64() * 1000.0,
        json_bytes / 1024,
        gzip_bytes / 1024,
        100.0 * (1.0 - gzip_bytes as f64 / json_bytes as f64)
    );
    measure_fanout(&mut ctx).await;
    if let Some(kib) = peak_rss_kib() {
        println!(
            "peak resident memory of the bench process: {} MiB",
            kib / 1024
        );
    }
    println!(
        "total DynamoDB requests: {} ({:?})",
        ctx.counter.total(),
        ctx.counter.by_operation()
    );
}
