//! The polling loop: follows every shard of the table's current stream (parents
//! before children, a new stream from its start), keeps a checkpoint per
//! shard, survives read errors (the table not created yet, DynamoDB Local
//! restarting) and passes what survives the fan-out filter on to delivery.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::error::SdkError;
use tokio::time::Instant;

use super::records::convert;
use super::shards::{Clients, PollerError};
use super::{Counters, PollerOptions};

/// How often the table's stream and shards are looked up again while polling.
const REDISCOVER_EVERY: Duration = Duration::from_secs(5);
/// Pause after a failed stream request (e.g. DynamoDB Local restarting).
const ERROR_DELAY: Duration = Duration::from_secs(1);

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

/// Reading progress in one shard.
struct Shard {
    id: String,
    parent: Option<String>,
    iterator: Option<String>,
    /// Sequence number of the last record fully handled (delivered, filtered or dead-lettered).
    checkpoint: Option<String>,
    closed: bool,
}

/// The running poller's state: the clients, what it reads and whom it calls.
pub(super) struct Poller<H> {
    pub(super) clients: Clients,
    pub(super) table: String,
    pub(super) options: PollerOptions,
    pub(super) counters: Arc<Counters>,
    pub(super) handler: H,
}

impl<H, Fut, E> Poller<H>
where
    H: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<DynamoDbEventResponse, E>> + Send + 'static,
    E: Display + 'static,
{
    /// Reads and delivers until the task is aborted.
    pub(super) async fn run(self) {
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
