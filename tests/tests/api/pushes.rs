//! Critical-alert pushes on DynamoDB Local: the stream batch is read from
//! the table's real stream (as Lambda's poller would deliver it), filtered
//! by the event-source mapping's pattern, and handed to the fan-out handler,
//! which pushes to a real HTTP push receiver on loopback. One push per live
//! device, exactly once through outages and replays; nothing for other
//! alerts; and, end to end through the local stream poller, within seconds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use aws_lambda_events::event::dynamodb::Event;
use chrono::Duration;
use http::{Method, StatusCode};
use serde_json::json;
use sync_core::handlers::fanout::fan_out;
use sync_core::push::HttpPushProvider;
use trainsync_infra::push_receiver::PushReceiver;
use trainsync_infra::stream_filter::passes;
use trainsync_infra::stream_poller;
use trainsync_protocol::cursor::Cursor;
use trainsync_tests::{TestContext, config};
use uuid::Uuid;

use crate::helpers::alert;

const USER: &str = "runner-9";
/// When the alerts were raised.
const RAISED_AT: &str = "2025-06-01T06:00:00Z";

/// A context whose pushes go to a fresh receiver.
async fn pushing() -> (TestContext, PushReceiver) {
    let mut ctx = TestContext::new().await;
    let receiver = PushReceiver::start().await.expect("a loopback port");
    ctx.state.push = Some(Arc::new(HttpPushProvider::new(receiver.url())));
    (ctx, receiver)
}

/// Registers `device` with a push token; returns its access token.
async fn live_device(ctx: &TestContext, device: &str) -> String {
    let token = ctx.token(USER, device);
    let response = ctx
        .register(&token, device, Some(&format!("token-{device}")))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["push_enabled"], true);
    token
}

/// The batch the event-source mapping would invoke the fan-out with: every
/// record of the table's stream that passes its filter.
async fn stream_batch(ctx: &TestContext) -> Event {
    let records = stream_poller::read_all(&config(&ctx.table))
        .await
        .expect("the table's stream");
    let mut event = Event::default();
    event.records = records.into_iter().filter(passes).collect();
    event
}

/// Deliveries per device.
fn per_device(receiver: &PushReceiver) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for delivery in receiver.received() {
        *counts.entry(delivery.target.device_id).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_critical_alert_reaches_each_live_device_exactly_once() {
    let (ctx, receiver) = pushing().await;
    live_device(&ctx, "phone").await;
    let tablet = live_device(&ctx, "tablet").await;
    // Registered without a push token (notifications declined): nothing to push to.
    let watch = ctx.token(USER, "watch");
    assert_eq!(
        ctx.register(&watch, "watch", None).await.status,
        StatusCode::OK
    );
    // Logged out: gets nothing.
    live_device(&ctx, "old-phone").await;
    let logout = ctx
        .request(Method::DELETE, "/devices/old-phone", Some(&tablet), None)
        .await;
    assert_eq!(logout.status, StatusCode::OK);

    ctx.clock.advance(Duration::minutes(1));
    let alert_id = Uuid::new_v4();
    let answer = ctx
        .ingest_for(
            USER,
            json!({"alerts": [alert(alert_id, "injury_risk", "critical", RAISED_AT, None)]}),
        )
        .await;
    let seq = answer["seqs"][0].as_u64().expect("the alert's seq");

    let batch = stream_batch(&ctx).await;
    assert_eq!(
        batch.records.len(),
        1,
        "only the critical alert passes the filter"
    );
    let response = fan_out(&ctx.state, batch.clone()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(
        per_device(&receiver),
        BTreeMap::from([("phone".to_owned(), 1), ("tablet".to_owned(), 1)])
    );
    for delivery in receiver.received() {
        let push = &delivery.message;
        assert_eq!(push.alert_id, alert_id);
        assert_eq!(push.title_key, "alert.injury_risk.critical.title");
        assert_eq!(push.body_key, "alert.injury_risk.critical.body");
        assert_eq!(push.seq, seq);
        assert_eq!(
            Cursor::decode(&push.cursor, USER),
            Ok(Cursor::Log { seq }),
            "the download position that holds the alert"
        );
        let wire = serde_json::to_value(&delivery).unwrap();
        assert!(
            !wire.to_string().contains("acwr"),
            "no health data in a push: {wire}"
        );
    }
    // The download from the push's cursor does not show the alert again.
    let (pages, _) = ctx
        .download_all(&tablet, Some(&receiver.received()[0].message.cursor), 100)
        .await;
    assert!(
        pages
            .iter()
            .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
            .all(|a| a["id"] != json!(alert_id))
    );

    // Lambda delivering the same batch again pushes nothing more, and a
    // device registered after the alert does not get it retroactively.
    ctx.clock.advance(Duration::minutes(1));
    live_device(&ctx, "laptop").await;
    let again = fan_out(&ctx.state, batch).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn a_push_outage_is_retried_until_every_device_has_exactly_one() {
    let (ctx, receiver) = pushing().await;
    for device in ["phone", "tablet", "watch"] {
        live_device(&ctx, device).await;
    }
    ctx.clock.advance(Duration::minutes(1));
    ctx.ingest_for(
        USER,
        json!({"alerts": [alert(Uuid::new_v4(), "injury_risk", "critical", RAISED_AT, None)]}),
    )
    .await;
    let batch = stream_batch(&ctx).await;
    let sequence_number = batch.records[0].change.sequence_number.clone();

    // The provider fails the next 4 sends: the first invocation pushes none
    // or some of the three devices and reports the record for retry.
    receiver.fail_next(4);
    let mut invocations = 0;
    loop {
        invocations += 1;
        assert!(invocations <= 10, "the outage never ended");
        let response = fan_out(&ctx.state, batch.clone()).await;
        match response.batch_item_failures.as_slice() {
            [] => break,
            [failure] => assert_eq!(failure.item_identifier, sequence_number),
            more => panic!("one record, several failures: {more:?}"),
        }
    }
    assert!(invocations >= 2, "the outage must have cost a retry");
    assert_eq!(
        per_device(&receiver),
        BTreeMap::from([
            ("phone".to_owned(), 1),
            ("tablet".to_owned(), 1),
            ("watch".to_owned(), 1)
        ])
    );
}

#[tokio::test]
async fn only_critical_alerts_invoke_the_local_fan_out_and_they_arrive_within_seconds() {
    let (ctx, receiver) = pushing().await;
    live_device(&ctx, "phone").await;
    ctx.clock.advance(Duration::minutes(1));
    let state = ctx.state.clone();
    let poller = stream_poller::spawn(&config(&ctx.table), move |event| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(fan_out(&state, event).await) }
    });

    ctx.ingest_for(
        USER,
        json!({"alerts": [
            alert(Uuid::new_v4(), "injury_risk", "warning", RAISED_AT, None),
            alert(Uuid::new_v4(), "injury_risk", "info", RAISED_AT, None),
        ]}),
    )
    .await;
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while poller.stats().records_filtered_out == 0 {
        assert!(Instant::now() < deadline, "the poller read nothing");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    assert_eq!(
        poller.stats().invocations,
        0,
        "non-critical alerts invoke nothing"
    );

    let critical = Uuid::new_v4();
    let started = Instant::now();
    ctx.ingest_for(
        USER,
        json!({"alerts": [alert(critical, "injury_risk", "critical", RAISED_AT, None)]}),
    )
    .await;
    while receiver.received().is_empty() {
        assert!(
            started.elapsed() < StdDuration::from_secs(10),
            "no push within 10 s"
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].message.alert_id, critical);
    assert_eq!(poller.stats().invocations, 1);
    poller.stop().await;
    println!(
        "critical alert pushed {} ms after ingest",
        elapsed.as_millis()
    );
}

#[tokio::test]
async fn a_disabled_endpoint_is_dropped_without_blocking_the_others() {
    let (ctx, receiver) = pushing().await;
    let phone = live_device(&ctx, "phone").await;
    live_device(&ctx, "tablet").await;
    // The app was uninstalled from the tablet: the provider reports it gone.
    receiver.disable("tablet");
    ctx.clock.advance(Duration::minutes(1));
    ctx.ingest_for(
        USER,
        json!({"alerts": [alert(Uuid::new_v4(), "injury_risk", "critical", RAISED_AT, None)]}),
    )
    .await;
    let response = fan_out(&ctx.state, stream_batch(&ctx).await).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a gone endpoint is final, not retried: {response:?}"
    );
    assert_eq!(
        per_device(&receiver),
        BTreeMap::from([("phone".to_owned(), 1)])
    );
    let devices = ctx.get("/devices", &phone, &[]).await.json();
    let push_enabled: BTreeMap<String, bool> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device_id"].as_str().unwrap().to_owned(),
                d["push_enabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        push_enabled,
        BTreeMap::from([("phone".to_owned(), true), ("tablet".to_owned(), false)])
    );
}

#[tokio::test]
async fn concurrent_invocations_of_one_batch_push_each_device_once() {
    let (ctx, receiver) = pushing().await;
    for device in ["phone", "tablet", "watch", "laptop"] {
        live_device(&ctx, device).await;
    }
    ctx.clock.advance(Duration::minutes(1));
    ctx.ingest_for(
        USER,
        json!({"alerts": [alert(Uuid::new_v4(), "injury_risk", "critical", RAISED_AT, None)]}),
    )
    .await;
    let batch = stream_batch(&ctx).await;
    // Duplicate deliveries of one batch racing each other (a re-invocation
    // while the first is still running): the ledger lets one send per device;
    // the others see the claim in flight and report the record for retry.
    let responses =
        futures::future::join_all((0..4).map(|_| fan_out(&ctx.state, batch.clone()))).await;
    let mut retried = responses
        .iter()
        .filter(|r| !r.batch_item_failures.is_empty())
        .count();
    while retried > 0 {
        let response = fan_out(&ctx.state, batch.clone()).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        retried -= 1;
    }
    assert_eq!(
        per_device(&receiver),
        ["laptop", "phone", "tablet", "watch"]
            .into_iter()
            .map(|d| (d.to_owned(), 1))
            .collect()
    );
}
