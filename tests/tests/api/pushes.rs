//! Critical-alert pushes on DynamoDB Local: the stream batch is read from
//! the table's real stream (as Lambda's poller would deliver it), filtered
//! by the event-source mapping's pattern, and handed to the fan-out handler,
//! which pushes to a real HTTP push receiver on loopback. One push per live
//! device, exactly once through outages and replays; nothing for other
//! alerts; and, end to end through the local stream poller, within seconds.
//! The ledger's claims: a sender whose claim was taken over cannot finish or
//! release the new holder's, and a claim left by a crashed invocation is
//! waited out, not burned through Lambda's few retries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use aws_lambda_events::event::dynamodb::Event;
use chrono::{DateTime, Duration, Utc};
use http::{Method, StatusCode};
use serde_json::json;
use sync_core::handlers::fanout::{fan_out, fan_out_within};
use sync_core::push::HttpPushProvider;
use sync_core::services::fanout::{ManualWait, SEND_RESERVE};
use sync_core::store::{ClaimHold, ClaimOwner, DeliveryClaim, DeliveryOutcome, DeliveryStore};
use trainsync_infra::push_receiver::PushReceiver;
use trainsync_infra::stream_filter::passes;
use trainsync_infra::stream_poller;
use trainsync_protocol::cursor::Cursor;
use trainsync_protocol::domain::UserId;
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
    // the others wait for the claim in flight to end and find it sent,
    // without reporting the record for retry.
    let responses =
        futures::future::join_all((0..4).map(|_| fan_out(&ctx.state, batch.clone()))).await;
    for response in responses {
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    assert_eq!(
        per_device(&receiver),
        ["laptop", "phone", "tablet", "watch"]
            .into_iter()
            .map(|d| (d.to_owned(), 1))
            .collect()
    );
}

// ------------------------------------------------------------------ the ledger's claims

/// The user the ledger tests deliver to.
fn user() -> UserId {
    UserId::parse(USER).expect("a valid user id")
}

/// Claims `alert`'s delivery to the phone at the test clock's time.
async fn claim_phone(ctx: &TestContext, alert: Uuid) -> DeliveryClaim {
    ctx.store
        .claim_delivery(&user(), alert, "phone", ctx.now())
        .await
        .expect("the claim")
}

/// Claims `alert`'s delivery to the phone, which must be free; its owner.
async fn claimed(ctx: &TestContext, alert: Uuid) -> ClaimOwner {
    match claim_phone(ctx, alert).await {
        DeliveryClaim::Claimed(owner) => owner,
        other => panic!("the claim should be ours: {other:?}"),
    }
}

/// When the live claim on `alert`'s phone delivery ends (there must be one).
async fn lease_end(ctx: &TestContext, alert: Uuid) -> DateTime<Utc> {
    match claim_phone(ctx, alert).await {
        DeliveryClaim::InFlight { lease_until } => lease_until,
        other => panic!("a claim should be in flight: {other:?}"),
    }
}

/// A claim taken over: a first owner claimed the phone delivery, its lease
/// ran out, and a second owner claimed it. Returns both owners and the end of
/// the second's lease.
async fn taken_over(ctx: &TestContext, alert: Uuid) -> (ClaimOwner, ClaimOwner, DateTime<Utc>) {
    let stale = claimed(ctx, alert).await;
    let stale_lease = lease_end(ctx, alert).await;
    ctx.clock.set(stale_lease + Duration::seconds(1));
    let taker = claimed(ctx, alert).await;
    let taker_lease = lease_end(ctx, alert).await;
    assert!(taker_lease > stale_lease, "a new lease");
    (stale, taker, taker_lease)
}

/// `owner` records the phone delivery of `alert` as sent.
async fn finish_phone(ctx: &TestContext, alert: Uuid, owner: ClaimOwner) -> ClaimHold {
    ctx.store
        .finish_delivery(
            &user(),
            alert,
            "phone",
            owner,
            DeliveryOutcome::Sent,
            ctx.now(),
        )
        .await
        .expect("the finish")
}

/// `owner` releases the phone delivery of `alert`.
async fn release_phone(ctx: &TestContext, alert: Uuid, owner: ClaimOwner) -> ClaimHold {
    ctx.store
        .release_delivery(&user(), alert, "phone", owner)
        .await
        .expect("the release")
}

/// The fan-out function's properties in template.yaml.
fn fanout_function() -> serde_yaml::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml parses");
    template["Resources"]["AlertsFanoutFunction"]["Properties"].clone()
}

#[tokio::test]
async fn a_finish_by_an_owner_whose_claim_was_taken_over_leaves_the_new_claim_alone() {
    let ctx = TestContext::new().await;
    let alert = Uuid::new_v4();
    let (stale, taker, taker_lease) = taken_over(&ctx, alert).await;

    assert_eq!(finish_phone(&ctx, alert, stale).await, ClaimHold::Lost);
    assert_eq!(
        lease_end(&ctx, alert).await,
        taker_lease,
        "the new holder's claim is unchanged and still in flight"
    );
    assert_eq!(finish_phone(&ctx, alert, taker).await, ClaimHold::Held);
    assert_eq!(claim_phone(&ctx, alert).await, DeliveryClaim::Done);
    assert_eq!(
        finish_phone(&ctx, alert, stale).await,
        ClaimHold::Lost,
        "nor can it rewrite the finished record"
    );
}

#[tokio::test]
async fn a_release_by_an_owner_whose_claim_was_taken_over_leaves_the_new_claim_alone() {
    let ctx = TestContext::new().await;
    let alert = Uuid::new_v4();
    let (stale, taker, taker_lease) = taken_over(&ctx, alert).await;

    assert_eq!(release_phone(&ctx, alert, stale).await, ClaimHold::Lost);
    assert_eq!(
        lease_end(&ctx, alert).await,
        taker_lease,
        "the new holder's claim is still there: nobody else may send"
    );
    assert_eq!(release_phone(&ctx, alert, taker).await, ClaimHold::Held);
    claimed(&ctx, alert).await;
}

#[tokio::test]
async fn a_claim_left_by_a_crashed_invocation_is_pushed_once_by_the_retry_after_its_lease() {
    let (ctx, receiver) = pushing().await;
    live_device(&ctx, "phone").await;
    live_device(&ctx, "tablet").await;
    ctx.clock.advance(Duration::minutes(1));
    let alert_id = Uuid::new_v4();
    ctx.ingest_for(
        USER,
        json!({"alerts": [alert(alert_id, "injury_risk", "critical", RAISED_AT, None)]}),
    )
    .await;
    let batch = stream_batch(&ctx).await;
    // An invocation claimed the phone's delivery and died before sending.
    claimed(&ctx, alert_id).await;

    // Lambda's retry comes after the lease: it takes the claim over.
    ctx.clock
        .set(lease_end(&ctx, alert_id).await + Duration::seconds(1));
    let response = fan_out(&ctx.state, batch.clone()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let expected = BTreeMap::from([("phone".to_owned(), 1), ("tablet".to_owned(), 1)]);
    assert_eq!(per_device(&receiver), expected);

    let again = fan_out(&ctx.state, batch).await;
    assert!(again.batch_item_failures.is_empty(), "{again:?}");
    assert_eq!(per_device(&receiver), expected, "a replay pushes nothing");
}

#[tokio::test]
async fn quick_retries_while_a_crashed_invocation_holds_a_claim_neither_give_up_nor_push_twice() {
    let (ctx, receiver) = pushing().await;
    live_device(&ctx, "phone").await;
    live_device(&ctx, "tablet").await;
    ctx.clock.advance(Duration::minutes(1));
    let alert_id = Uuid::new_v4();
    ctx.ingest_for(
        USER,
        json!({"alerts": [alert(alert_id, "injury_risk", "critical", RAISED_AT, None)]}),
    )
    .await;
    let batch = stream_batch(&ctx).await;
    // An invocation claimed the phone's delivery and timed out before sending.
    claimed(&ctx, alert_id).await;

    // Lambda retries the record at once, each time with the function's
    // whole timeout, up to the mapping's retry limit; then it gives the
    // record up to the failure queue. Time passes only while an invocation
    // waits (the test clock moves instead of sleeping).
    let function = fanout_function();
    let timeout = function["Timeout"].as_u64().expect("the timeout");
    let retries = function["Events"]["AlertStream"]["Properties"]["MaximumRetryAttempts"]
        .as_u64()
        .expect("MaximumRetryAttempts");
    let waiting = StdDuration::from_secs(timeout).saturating_sub(SEND_RESERVE);
    let mut failed_invocations = 0;
    loop {
        let waits = ManualWait::within(&ctx.clock, waiting);
        let response = fan_out_within(&ctx.state, batch.clone(), &waits).await;
        assert_eq!(
            per_device(&receiver).get("tablet"),
            Some(&1),
            "the other devices are pushed at once, not held up by the wait"
        );
        if response.batch_item_failures.is_empty() {
            break;
        }
        failed_invocations += 1;
        assert!(
            failed_invocations <= retries,
            "{failed_invocations} failed invocations: the alert went to the failure queue; pushes: {:?}",
            per_device(&receiver)
        );
    }
    assert_eq!(
        per_device(&receiver),
        BTreeMap::from([("phone".to_owned(), 1), ("tablet".to_owned(), 1)])
    );
}
