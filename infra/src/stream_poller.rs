//! The local stand-in for Lambda's DynamoDB-stream event-source mapping.
//!
//! Deployed, `alerts-fanout` is invoked by an event-source mapping on the
//! table's stream: records are filtered by `FilterCriteria`, delivered in
//! small batches in stream order, partial failures are reported back
//! (`ReportBatchItemFailures`) and retried from the first failed record, and a
//! record that keeps failing goes to an on-failure destination. Locally this
//! poller reads DynamoDB Local's stream (DescribeTable -> DescribeStream ->
//! GetShardIterator -> GetRecords) and does the same, calling the handler
//! with the same `aws_lambda_events` types. The dead-letter destination is an
//! `error!` log line.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{
    Event, EventRecord, StreamRecord, StreamViewType, UserIdentity,
};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::error::SdkError;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use chrono::{DateTime, Utc};
use sync_core::config::Config;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Most records handed to the handler in one invocation (the mapping's `BatchSize`).
pub const BATCH_SIZE: usize = 10;
/// Retries of a failing record before it is dead-lettered (the mapping's `MaximumRetryAttempts`).
pub const MAX_RETRY_ATTEMPTS: u32 = 5;
/// Pause after a read that returned nothing new.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// First pause before retrying a failed batch; doubles per retry.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause between retries of a failed batch.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often the table's stream and shards are looked up again while polling.
const REDISCOVER_EVERY: Duration = Duration::from_secs(5);
/// Pause after a failed stream request (e.g. DynamoDB Local restarting).
const ERROR_DELAY: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why reading the table's stream failed.
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    /// DescribeTable failed (e.g. the table does not exist yet).
    #[error("DescribeTable on table {table} failed")]
    DescribeTable {
        /// The table.
        table: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// The table has no stream enabled.
    #[error("table {table} has no stream (LatestStreamArn is missing)")]
    NoStream {
        /// The table.
        table: String,
    },
    /// DescribeStream failed.
    #[error("DescribeStream on {stream_arn} failed")]
    DescribeStream {
        /// The stream.
        stream_arn: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// GetShardIterator failed.
    #[error("GetShardIterator on shard {shard_id} failed")]
    GetShardIterator {
        /// The shard.
        shard_id: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// GetRecords failed.
    #[error("GetRecords on shard {shard_id} failed")]
    GetRecords {
        /// The shard.
        shard_id: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
}

/// Timing and limits of the poller; [`Default`] is what the deployed mapping uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollerOptions {
    /// Pause after a read that returned nothing new.
    pub poll_interval: Duration,
    /// First pause before retrying a failed batch.
    pub initial_backoff: Duration,
    /// Longest pause before retrying a failed batch.
    pub max_backoff: Duration,
    /// Retries of a failing record before it is dead-lettered.
    pub max_retry_attempts: u32,
    /// Most records per handler invocation (at least 1).
    pub batch_size: usize,
}

impl Default for PollerOptions {
    fn default() -> Self {
        Self {
            poll_interval: POLL_INTERVAL,
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
            max_retry_attempts: MAX_RETRY_ATTEMPTS,
            batch_size: BATCH_SIZE,
        }
    }
}

/// A snapshot of a poller's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollerStats {
    /// Handler calls, retries included.
    pub invocations: u64,
    /// Records the handler acknowledged (each counted once, however often it was retried).
    pub records_delivered: u64,
    /// Records dropped by the fan-out filter without an invocation.
    pub records_filtered_out: u64,
    /// Records given up on after the last retry.
    pub dead_lettered: u64,
}

#[derive(Debug, Default)]
struct Counters {
    invocations: AtomicU64,
    records_delivered: AtomicU64,
    records_filtered_out: AtomicU64,
    dead_lettered: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> PollerStats {
        PollerStats {
            invocations: self.invocations.load(Ordering::Relaxed),
            records_delivered: self.records_delivered.load(Ordering::Relaxed),
            records_filtered_out: self.records_filtered_out.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
        }
    }
}

/// A configured poller for the table in a [`Config`]; [`StreamPoller::spawn`] starts it.
#[derive(Debug, Clone)]
pub struct StreamPoller {
    config: Config,
    options: PollerOptions,
}

/// The running poller task.
#[derive(Debug)]
pub struct PollerHandle {
    task: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl PollerHandle {
    /// The poller's counters so far.
    pub fn stats(&self) -> PollerStats {
        self.counters.snapshot()
    }

    /// Whether the task has ended (it only does when stopped, or if the handler panicked).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the poller (mid-batch if need be) and waits for the task to end.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Starts a poller on `config`'s table with the default options, calling `handler` with each batch.
pub fn spawn<H, Fut, E>(config: &Config, handler: H) -> PollerHandle
where
    H: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<DynamoDbEventResponse, E>> + Send + 'static,
    E: Display + 'static,
{
    StreamPoller::new(config, PollerOptions::default()).spawn(handler)
}

impl StreamPoller {
    /// A poller on `config`'s table (and endpoint) with `options`.
    pub fn new(config: &Config, options: PollerOptions) -> Self {
        Self {
            config: config.clone(),
            options,
        }
    }

    /// Spawns the polling task on the current tokio runtime; it runs until stopped.
    pub fn spawn<H, Fut, E>(self, handler: H) -> PollerHandle
    where
        H: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DynamoDbEventResponse, E>> + Send + 'static,
        E: Display + 'static,
    {
        let counters = Arc::new(Counters::default());
        let task_counters = counters.clone();
        let task = tokio::spawn(async move {
            let clients = Clients::new(&self.config).await;
            let mut options = self.options;
            options.batch_size = options.batch_size.max(1);
            Poller {
                clients,
                table: self.config.table_name.clone(),
                options,
                counters: task_counters,
                handler,
            }
            .run()
            .await;
        });
        PollerHandle { task, counters }
    }
}

/// Every record currently in the table's stream, all shards from the trim
/// horizon, unfiltered and converted to the Lambda event type.
pub async fn read_all(config: &Config) -> Result<Vec<EventRecord>, PollerError> {
    let clients = Clients::new(config).await;
    let stream_arn = clients.stream_arn(&config.table_name).await?;
    let mut shards = clients.shards(&stream_arn).await?;
    // Parents before children, so records come out in stream order.
    let mut ordered = Vec::with_capacity(shards.len());
    while !shards.is_empty() {
        let ready = shards
            .iter()
            .position(|s| {
                s.parent
                    .as_ref()
                    .is_none_or(|p| !shards.iter().any(|o| &o.id == p))
            })
            .unwrap_or(0);
        ordered.push(shards.remove(ready));
    }
    let mut records = Vec::new();
    for shard in ordered {
        let mut iterator = clients.iterator(&stream_arn, &shard.id, None).await?;
        while let Some(current) = iterator {
            let page =
                clients
                    .get_records(&current)
                    .await
                    .map_err(|source| PollerError::GetRecords {
                        shard_id: shard.id.clone(),
                        source: Box::new(source),
                    })?;
            if page.records.is_empty() {
                break;
            }
            records.extend(page.records.into_iter().map(|r| convert(r, &stream_arn)));
            iterator = page.next_iterator;
        }
    }
    Ok(records)
}

/// Converts a DynamoDB Streams record into the event record Lambda delivers.
fn convert(record: Record, stream_arn: &str) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id.unwrap_or_default();
    out.event_name = record
        .event_name
        .map(|name| name.as_str().to_owned())
        .unwrap_or_default();
    out.event_source = Some(
        record
            .event_source
            .unwrap_or_else(|| "aws:dynamodb".to_owned()),
    );
    out.event_version = record.event_version;
    out.aws_region = record.aws_region.unwrap_or_default();
    out.event_source_arn = Some(stream_arn.to_owned());
    out.user_identity = record.user_identity.map(|identity| {
        let mut user = UserIdentity::default();
        user.type_ = identity.r#type.unwrap_or_default();
        user.principal_id = identity.principal_id.unwrap_or_default();
        user
    });
    if let Some(change) = record.dynamodb {
        let mut stream_record = StreamRecord::default();
        if let Some(at) = change.approximate_creation_date_time {
            stream_record.approximate_creation_date_time =
                DateTime::<Utc>::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default();
        }
        stream_record.keys = item(change.keys);
        stream_record.new_image = item(change.new_image);
        stream_record.old_image = item(change.old_image);
        stream_record.sequence_number = change.sequence_number;
        stream_record.size_bytes = change.size_bytes.unwrap_or_default();
        stream_record.stream_view_type =
            change
                .stream_view_type
                .and_then(|view| match view.as_str() {
                    "NEW_IMAGE" => Some(StreamViewType::NewImage),
                    "OLD_IMAGE" => Some(StreamViewType::OldImage),
                    "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
                    "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
                    _ => None,
                });
        out.change = stream_record;
    }
    out
}

fn item(map: Option<HashMap<String, AttributeValue>>) -> serde_dynamo::Item {
    serde_dynamo::Item::from(map.unwrap_or_default())
}

fn sequence_of(record: &EventRecord) -> &str {
    record.change.sequence_number.as_deref().unwrap_or("")
}

/// `err` and its sources, `: `-separated (SDK errors say little at the top level).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
}

struct ShardInfo {
    id: String,
    parent: Option<String>,
}

struct Page {
    records: Vec<Record>,
    next_iterator: Option<String>,
}

impl Clients {
    /// The DynamoDB client as the handlers build it, and a streams client on
    /// the same SDK configuration (credentials, region) and endpoint.
    async fn new(config: &Config) -> Self {
        let sdk = sync_core::store::dynamo::sdk_config(config).await;
        let dynamodb = sync_core::store::dynamo::client_from(&sdk, config, Default::default());
        let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(&sdk);
        if let Some(endpoint) = &config.dynamodb_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(builder.build());
        Self { dynamodb, streams }
    }

    async fn stream_arn(&self, table: &str) -> Result<String, PollerError> {
        let output = self
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|source| PollerError::DescribeTable {
                table: table.to_owned(),
                source: Box::new(source),
            })?;
        output
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| PollerError::NoStream {
                table: table.to_owned(),
            })
    }

    async fn shards(&self, stream_arn: &str) -> Result<Vec<ShardInfo>, PollerError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let output = self
                .streams
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|source| PollerError::DescribeStream {
                    stream_arn: stream_arn.to_owned(),
                    source: Box::new(source),
                })?;
            let Some(description) = output.stream_description else {
                break;
            };
            shards.extend(
                description
                    .shards
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|shard| {
                        Some(ShardInfo {
                            id: shard.shard_id?,
                            parent: shard.parent_shard_id,
                        })
                    }),
            );
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        Ok(shards)
    }

    /// An iterator at the trim horizon, or just after `after` (a sequence
    /// number); `None` when the shard has nothing more to read.
    async fn iterator(
        &self,
        stream_arn: &str,
        shard_id: &str,
        after: Option<&str>,
    ) -> Result<Option<String>, PollerError> {
        let kind = match after {
            Some(_) => ShardIteratorType::AfterSequenceNumber,
            None => ShardIteratorType::TrimHorizon,
        };
        let output = self
            .streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(after.map(str::to_owned))
            .send()
            .await
            .map_err(|source| PollerError::GetShardIterator {
                shard_id: shard_id.to_owned(),
                source: Box::new(source),
            })?;
        Ok(output.shard_iterator)
    }

    async fn get_records(&self, iterator: &str) -> Result<Page, SdkError<GetRecordsError>> {
        let output = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await?;
        Ok(Page {
            records: output.records.unwrap_or_default(),
            next_iterator: output.next_shard_iterator,
        })
    }
}

/// Reading progress in one shard.
struct Shard {
    id: String,
    parent: Option<String>,
    iterator: Option<String>,
    /// Sequence number of the last record fully handled (delivered, filtered or dead-lettered).
    checkpoint: Option<String>,
    closed: bool,
}

struct Poller<H> {
    clients: Clients,
    table: String,
    options: PollerOptions,
    counters: Arc<Counters>,
    handler: H,
}

/// Where a handler invocation left its batch.
enum Outcome {
    Done,
    /// Records before this position succeeded; it and the rest are retried.
    FailedAt(usize),
}

impl<H, Fut, E> Poller<H>
where
    H: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<DynamoDbEventResponse, E>> + Send + 'static,
    E: Display + 'static,
{
    async fn run(self) {
        let mut stream_arn: Option<String> = None;
        let mut shards: Vec<Shard> = Vec::new();
        let mut discovered_at: Option<Instant> = None;
        let mut consecutive_errors: u32 = 0;
        loop {
            let due = discovered_at.is_none_or(|at| at.elapsed() >= REDISCOVER_EVERY);
            if due {
                match self.discover(&mut stream_arn, &mut shards).await {
                    Ok(()) => discovered_at = Some(Instant::now()),
                    Err(err) => {
                        self.report(&err, &mut consecutive_errors);
                        tokio::time::sleep(ERROR_DELAY).await;
                        continue;
                    }
                }
            }
            let Some(arn) = stream_arn.clone() else {
                continue;
            };
            let mut read_any = false;
            let mut failed = false;
            for index in 0..shards.len() {
                if shards[index].closed || !parent_done(&shards, index) {
                    continue;
                }
                match self.poll_shard(&arn, &mut shards[index]).await {
                    Ok(count) => {
                        read_any |= count > 0;
                        if shards[index].closed {
                            // Its children are (or will soon be) listed.
                            discovered_at = None;
                        }
                    }
                    Err(err) => {
                        self.report(&err, &mut consecutive_errors);
                        failed = true;
                        // The stream may be gone (table re-created, DynamoDB Local restarted).
                        shards[index].iterator = None;
                        discovered_at = None;
                    }
                }
            }
            if failed {
                tokio::time::sleep(ERROR_DELAY).await;
            } else {
                consecutive_errors = 0;
                if !read_any {
                    tokio::time::sleep(self.options.poll_interval).await;
                }
            }
        }
    }

    /// Logs a read error: every one at first, then one in 30 while they persist.
    fn report(&self, err: &PollerError, consecutive: &mut u32) {
        if (*consecutive).is_multiple_of(30) {
            tracing::warn!(
                table = %self.table,
                consecutive_errors = *consecutive + 1,
                error = %error_chain(err),
                "stream poller cannot read the stream; retrying"
            );
        }
        *consecutive += 1;
    }

    /// Looks up the table's current stream and adds shards not seen yet.
    async fn discover(
        &self,
        stream_arn: &mut Option<String>,
        shards: &mut Vec<Shard>,
    ) -> Result<(), PollerError> {
        let latest = self.clients.stream_arn(&self.table).await?;
        if stream_arn.as_deref() != Some(latest.as_str()) {
            if stream_arn.is_some() {
                tracing::info!(table = %self.table, stream_arn = %latest, "table has a new stream; reading it from the start");
            }
            *stream_arn = Some(latest.clone());
            shards.clear();
        }
        let listed = self.clients.shards(&latest).await?;
        // Shards trimmed from the stream and fully read are forgotten.
        shards.retain(|s| !s.closed || listed.iter().any(|l| l.id == s.id));
        for info in listed {
            if !shards.iter().any(|s| s.id == info.id) {
                shards.push(Shard {
                    id: info.id,
                    parent: info.parent,
                    iterator: None,
                    checkpoint: None,
                    closed: false,
                });
            }
        }
        Ok(())
    }

    /// One GetRecords on `shard`, then filtering and delivery of what it returned.
    /// Returns how many records were read.
    async fn poll_shard(&self, stream_arn: &str, shard: &mut Shard) -> Result<usize, PollerError> {
        let iterator = match shard.iterator.take() {
            Some(iterator) => iterator,
            None => {
                let fresh = self
                    .clients
                    .iterator(stream_arn, &shard.id, shard.checkpoint.as_deref())
                    .await?;
                let Some(fresh) = fresh else {
                    shard.closed = true;
                    return Ok(0);
                };
                fresh
            }
        };
        let page = match self.clients.get_records(&iterator).await {
            Ok(page) => page,
            Err(SdkError::ServiceError(e)) if e.err().is_expired_iterator_exception() => {
                // Iterators live 15 minutes; resume after the checkpoint.
                tracing::debug!(shard = %shard.id, "shard iterator expired; getting a new one");
                return Ok(0);
            }
            Err(SdkError::ServiceError(e)) if e.err().is_trimmed_data_access_exception() => {
                tracing::warn!(shard = %shard.id, "records past the checkpoint were trimmed; restarting at the trim horizon");
                shard.checkpoint = None;
                return Ok(0);
            }
            Err(source) => {
                return Err(PollerError::GetRecords {
                    shard_id: shard.id.clone(),
                    source: Box::new(source),
                });
            }
        };
        match page.next_iterator {
            Some(next) => shard.iterator = Some(next),
            None => shard.closed = true,
        }
        let Some(last) = page.records.last() else {
            return Ok(0);
        };
        let last_sequence = last
            .dynamodb
            .as_ref()
            .and_then(|d| d.sequence_number.clone());
        let count = page.records.len();
        let (passing, filtered): (Vec<EventRecord>, Vec<EventRecord>) = page
            .records
            .into_iter()
            .map(|record| convert(record, stream_arn))
            .partition(crate::stream_filter::passes);
        Counters::add(&self.counters.records_filtered_out, filtered.len());
        for batch in passing.chunks(self.options.batch_size) {
            self.deliver(batch.to_vec()).await;
        }
        if last_sequence.is_some() {
            shard.checkpoint = last_sequence;
        }
        Ok(count)
    }

    /// Invokes the handler until every record of `batch` succeeded or was dead-lettered.
    async fn deliver(&self, mut batch: Vec<EventRecord>) {
        // Failures of the batch's first record so far, and the pause before the next retry.
        let mut failures: u32 = 0;
        let mut backoff = self.options.initial_backoff;
        while !batch.is_empty() {
            Counters::add(&self.counters.invocations, 1);
            tracing::info!(
                table = %self.table,
                count = batch.len(),
                first_sequence = sequence_of(&batch[0]),
                retry = failures,
                "delivering stream records to the handler"
            );
            let mut event = Event::default();
            event.records = batch.clone();
            let outcome = match (self.handler)(event).await {
                Ok(response) => outcome_of(&response, &batch),
                Err(error) => {
                    tracing::warn!(table = %self.table, error = %error, "handler failed; the whole batch will be retried");
                    Outcome::FailedAt(0)
                }
            };
            let position = match outcome {
                Outcome::Done => {
                    Counters::add(&self.counters.records_delivered, batch.len());
                    return;
                }
                Outcome::FailedAt(position) => position,
            };
            if position > 0 {
                Counters::add(&self.counters.records_delivered, position);
                batch.drain(..position);
                failures = 0;
                backoff = self.options.initial_backoff;
            }
            failures += 1;
            if failures > self.options.max_retry_attempts {
                let record = batch.remove(0);
                Counters::add(&self.counters.dead_lettered, 1);
                tracing::error!(
                    table = %self.table,
                    sequence_number = sequence_of(&record),
                    keys = %serde_json::to_string(&record.change.keys).unwrap_or_default(),
                    attempts = failures,
                    "stream record dead-lettered after the last retry"
                );
                failures = 0;
                backoff = self.options.initial_backoff;
                continue;
            }
            tracing::warn!(
                table = %self.table,
                sequence_number = sequence_of(&batch[0]),
                retry = failures,
                max_retries = self.options.max_retry_attempts,
                backoff_ms = backoff.as_millis() as u64,
                "stream record failed; retrying it and the records after it"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }
}

/// Reads a `ReportBatchItemFailures` response the way Lambda does: no failures
/// means success; otherwise the batch resumes at the earliest failed record,
/// and an identifier that names no record of the batch fails all of it.
fn outcome_of(response: &DynamoDbEventResponse, batch: &[EventRecord]) -> Outcome {
    let mut earliest: Option<usize> = None;
    for failure in &response.batch_item_failures {
        let position = failure
            .item_identifier
            .as_deref()
            .filter(|id| !id.is_empty())
            .and_then(|id| batch.iter().position(|r| sequence_of(r) == id))
            .unwrap_or(0);
        earliest = Some(earliest.map_or(position, |e| e.min(position)));
    }
    match earliest {
        Some(position) => Outcome::FailedAt(position),
        None => Outcome::Done,
    }
}

/// Whether the shard at `index` may be read: its parent (if still listed) is fully read.
fn parent_done(shards: &[Shard], index: usize) -> bool {
    match &shards[index].parent {
        None => true,
        Some(parent) => shards
            .iter()
            .find(|s| &s.id == parent)
            .is_none_or(|s| s.closed),
    }
}
