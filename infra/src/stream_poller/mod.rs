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
//!
//! Inside: `shards` (the SDK reads), `records` (SDK records to Lambda's
//! types), `polling` (the loop over shards, checkpoints and the filter) and
//! `delivery` (batches, partial failures, retries, dead letters).

mod delivery;
mod polling;
mod records;
mod shards;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use sync_core::config::Config;
use tokio::task::JoinHandle;

use polling::Poller;
use shards::Clients;
pub use shards::{PollerError, read_all};

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
