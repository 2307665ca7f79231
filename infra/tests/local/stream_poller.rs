//! The local stream poller against a real DynamoDB Local (DYNAMODB_ENDPOINT
//! when set, e.g. by scripts/with-dynamodb-local; else one started here):
//! filtering, batching, partial-failure retries, dead-lettering, read_all.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, StreamViewType};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use sync_core::config::Config;
use trainsync_infra::dynamodb_local::DynamoDbLocal;
use trainsync_infra::local_config;
use trainsync_infra::stream_poller::{
    self, PollerHandle, PollerOptions, PollerStats, StreamPoller,
};

use crate::helpers::dynamodb_endpoint;

const DEADLINE: Duration = Duration::from_secs(10);

struct Table {
    config: Config,
    client: aws_sdk_dynamodb::Client,
    user: String,
    _dynamodb: Option<DynamoDbLocal>,
}

/// A fresh, uniquely named table (with its NEW_IMAGE stream) on DynamoDB Local.
async fn fresh_table() -> Table {
    let table = uncreated_table().await;
    table.create().await;
    table
}

/// A configuration for a uniquely named table that does not exist yet.
async fn uncreated_table() -> Table {
    trainsync_infra::init_tracing();
    let (endpoint, dynamodb) = dynamodb_endpoint().await;
    let mut config = local_config::from_env_with_endpoint(&endpoint).expect("local config");
    config.table_name = format!("stream-poller-{}", uuid::Uuid::new_v4().simple());
    let client = sync_core::store::dynamo::client_for(&config).await;
    Table {
        config,
        client,
        user: format!("USER#{}", uuid::Uuid::new_v4()),
        _dynamodb: dynamodb,
    }
}

fn change_sk(seq: u64) -> String {
    format!("CHG#{seq:020}")
}

/// A change-log entry for an alert, shaped like `shared/tests/fixtures/stream-alerts.json`.
fn alert_change(user: &str, seq: u64, severity: &str) -> Value {
    let id = format!("01972a4e-8c00-7000-8000-{seq:012}");
    json!({
        "pk": user,
        "sk": change_sk(seq),
        "lsi1sk": format!("CHGAT#2025-06-01T12:00:00.000000Z#{seq:020}"),
        "entity": "change",
        "seq": seq,
        "at": "2025-06-01T12:00:00Z",
        "kind": "alert",
        "id": id,
        "data": {
            "id": id,
            "kind": "injury_risk",
            "severity": severity,
            "title_key": format!("alert.injury_risk.{severity}.title"),
            "body_key": format!("alert.injury_risk.{severity}.body"),
            "params": {"acwr": 1.62},
            "created_at": "2025-06-01T12:00:00Z",
        },
    })
}

/// An entity-state item (not a change-log entry) of a critical alert.
fn alert_state(user: &str, seq: u64) -> Value {
    let id = format!("01972a4e-8c00-7000-8000-{seq:012}");
    json!({
        "pk": user,
        "sk": format!("ENT#alert#{id}"),
        "entity": "alert",
        "kind": "alert",
        "id": id,
        "seq": seq,
        "updated_at": "2025-06-01T12:00:01Z",
        "data": {"severity": "critical"},
    })
}

impl Table {
    async fn create(&self) {
        sync_core::store::dynamo::schema::create_table(&self.client, &self.config.table_name)
            .await
            .expect("table created");
    }

    async fn put(&self, item: Value) {
        self.client
            .put_item()
            .table_name(&self.config.table_name)
            .set_item(Some(serde_dynamo::to_item(item).expect("item encodes")))
            .send()
            .await
            .expect("PutItem");
    }

    async fn put_critical(&self, seq: u64) {
        self.put(alert_change(&self.user, seq, "critical")).await;
    }

    /// A MODIFY of an existing change-log entry.
    async fn touch(&self, seq: u64) {
        self.client
            .update_item()
            .table_name(&self.config.table_name)
            .key("pk", AttributeValue::S(self.user.clone()))
            .key("sk", AttributeValue::S(change_sk(seq)))
            .update_expression("SET #at = :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", AttributeValue::S("2025-06-02T00:00:00Z".into()))
            .send()
            .await
            .expect("UpdateItem");
    }

    fn spawn<H, Fut>(&self, handler: H) -> PollerHandle
    where
        H: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DynamoDbEventResponse, String>> + Send + 'static,
    {
        StreamPoller::new(&self.config, fast_options()).spawn(handler)
    }
}

fn fast_options() -> PollerOptions {
    PollerOptions {
        poll_interval: Duration::from_millis(50),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..PollerOptions::default()
    }
}

/// The `sk` of every record of `event`, in order.
fn sks(event: &Event) -> Vec<String> {
    event
        .records
        .iter()
        .map(|r| match r.change.keys.get("sk") {
            Some(serde_dynamo::AttributeValue::S(sk)) => sk.clone(),
            other => panic!("record without a string sk: {other:?}"),
        })
        .collect()
}

fn failing(sequence_number: &str) -> DynamoDbEventResponse {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(sequence_number.to_owned());
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures.push(failure);
    response
}

/// The batches a handler received, as lists of `sk`s.
type Seen = Arc<Mutex<Vec<Vec<String>>>>;

/// Polls `condition` every 50 ms until it holds, failing after [`DEADLINE`].
async fn wait_until(what: &str, poller: &PollerHandle, condition: impl Fn(PollerStats) -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let stats = poller.stats();
        if condition(stats) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; stats: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn only_the_critical_alert_insert_reaches_the_handler() {
    let table = fresh_table().await;
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let poller = table.spawn(move |event: Event| {
        recorder.lock().unwrap().push(sks(&event));
        async { Ok(DynamoDbEventResponse::default()) }
    });

    // Written while the poller runs: it tails the stream.
    table.put_critical(1).await;
    table.put(alert_change(&table.user, 2, "warning")).await;
    table.put(alert_state(&table.user, 3)).await;
    wait_until("one delivery and two filtered records", &poller, |s| {
        s.invocations == 1 && s.records_filtered_out >= 2
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), vec![vec![change_sk(1)]]);

    // A MODIFY of the critical entry is read (and filtered), never delivered.
    table.touch(1).await;
    wait_until("the MODIFY to be filtered out", &poller, |s| {
        s.records_filtered_out >= 3
    })
    .await;
    let stats = poller.stats();
    poller.stop().await;
    assert_eq!(
        stats,
        PollerStats {
            invocations: 1,
            records_delivered: 1,
            records_filtered_out: 3,
            dead_lettered: 0,
        }
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_reported_failure_is_retried_until_it_succeeds() {
    let table = fresh_table().await;
    table.put_critical(1).await;
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let poller = table.spawn(move |event: Event| {
        let mut seen = recorder.lock().unwrap();
        seen.push(sks(&event));
        let response = if seen.len() <= 2 {
            let sequence = event.records[0].change.sequence_number.clone();
            failing(&sequence.expect("a sequence number"))
        } else {
            DynamoDbEventResponse::default()
        };
        async move { Ok(response) }
    });
    wait_until("the third delivery", &poller, |s| s.records_delivered == 1).await;
    // Nothing more once it succeeded.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = poller.stats();
    poller.stop().await;
    assert_eq!(*seen.lock().unwrap(), vec![vec![change_sk(1)]; 3]);
    assert_eq!((stats.invocations, stats.dead_lettered), (3, 0));
}

#[tokio::test]
async fn a_batch_resumes_at_the_failed_record() {
    let table = fresh_table().await;
    // Both in the stream before the poller starts: one GetRecords, one batch.
    table.put_critical(1).await;
    table.put_critical(2).await;
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let poller = table.spawn(move |event: Event| {
        let mut seen = recorder.lock().unwrap();
        seen.push(sks(&event));
        let response = if seen.len() == 1 {
            let second = event
                .records
                .get(1)
                .expect("two records in the first batch");
            failing(second.change.sequence_number.as_deref().unwrap_or_default())
        } else {
            DynamoDbEventResponse::default()
        };
        async move { Ok(response) }
    });
    wait_until("both records", &poller, |s| s.records_delivered == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = poller.stats();
    poller.stop().await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![vec![change_sk(1), change_sk(2)], vec![change_sk(2)]]
    );
    assert_eq!((stats.invocations, stats.dead_lettered), (2, 0));
}

#[tokio::test]
async fn a_record_that_keeps_failing_is_dead_lettered_and_the_stream_moves_on() {
    let table = fresh_table().await;
    table.put_critical(1).await;
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let poison = change_sk(1);
    let options = PollerOptions {
        max_retry_attempts: 2,
        ..fast_options()
    };
    let poller = StreamPoller::new(&table.config, options).spawn(move |event: Event| {
        let batch = sks(&event);
        let fails = batch.contains(&poison);
        recorder.lock().unwrap().push(batch);
        async move {
            if fails {
                Err("handler failed".to_owned())
            } else {
                Ok(DynamoDbEventResponse::default())
            }
        }
    });
    wait_until("the dead letter", &poller, |s| s.dead_lettered == 1).await;
    // 1 attempt + 2 retries.
    assert_eq!(poller.stats().invocations, 3);

    table.put_critical(2).await;
    wait_until("the next record", &poller, |s| s.records_delivered == 1).await;
    let stats = poller.stats();
    poller.stop().await;
    let mut expected = vec![vec![change_sk(1)]; 3];
    expected.push(vec![change_sk(2)]);
    assert_eq!(*seen.lock().unwrap(), expected);
    assert_eq!(stats.invocations, 4);
}

#[tokio::test]
async fn the_default_spawn_delivers_with_the_default_options() {
    let table = fresh_table().await;
    table.put_critical(7).await;
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let poller = stream_poller::spawn(&table.config, move |event: Event| {
        recorder.lock().unwrap().push(sks(&event));
        async { Ok::<_, Infallible>(DynamoDbEventResponse::default()) }
    });
    wait_until("the delivery", &poller, |s| s.records_delivered == 1).await;
    poller.stop().await;
    assert_eq!(*seen.lock().unwrap(), vec![vec![change_sk(7)]]);
}

#[tokio::test]
async fn read_all_returns_the_stream_in_order_converted() {
    let table = fresh_table().await;
    table.put_critical(1).await;
    table.put(alert_change(&table.user, 2, "warning")).await;
    table.put(alert_state(&table.user, 3)).await;
    table.touch(1).await;

    let records = stream_poller::read_all(&table.config)
        .await
        .expect("stream read");
    let names: Vec<&str> = records.iter().map(|r| r.event_name.as_str()).collect();
    assert_eq!(names, ["INSERT", "INSERT", "INSERT", "MODIFY"]);
    let sequences: Vec<u128> = records
        .iter()
        .map(|r| {
            let sequence = r.change.sequence_number.as_deref().expect("sequence");
            sequence.parse().expect("numeric sequence")
        })
        .collect();
    assert!(sequences.is_sorted(), "{sequences:?}");

    let first = &records[0];
    assert_eq!(first.event_source.as_deref(), Some("aws:dynamodb"));
    assert!(
        first
            .event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.contains(&table.config.table_name)),
        "{:?}",
        first.event_source_arn
    );
    assert_eq!(
        first.change.stream_view_type,
        Some(StreamViewType::NewImage)
    );
    assert!(first.change.old_image.is_empty());
    let image: HashMap<String, Value> =
        serde_dynamo::from_item(first.change.new_image.clone()).expect("image decodes");
    assert_eq!(image["data"]["severity"], "critical");
    assert_eq!(image["seq"], 1);
    let modified: HashMap<String, Value> =
        serde_dynamo::from_item(records[3].change.new_image.clone()).expect("image decodes");
    assert_eq!(modified["at"], "2025-06-02T00:00:00Z");

    // The same records Lambda's filter would let through.
    let passes: Vec<bool> = records
        .iter()
        .map(trainsync_infra::stream_filter::passes)
        .collect();
    assert_eq!(passes, [true, false, false, false]);
}

#[tokio::test]
async fn read_errors_are_retried_until_the_table_appears() {
    let table = uncreated_table().await;
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let poller = table.spawn(move |event: Event| {
        recorder.lock().unwrap().push(sks(&event));
        async { Ok(DynamoDbEventResponse::default()) }
    });
    // DescribeTable fails (no such table) for a while: logged, retried.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!poller.is_finished(), "the poller task ended");
    table.create().await;
    table.put_critical(1).await;
    wait_until("the delivery", &poller, |s| s.records_delivered == 1).await;
    poller.stop().await;
    assert_eq!(*seen.lock().unwrap(), vec![vec![change_sk(1)]]);
}
