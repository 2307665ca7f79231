//! Handing records to the handler with the event-source mapping's semantics:
//! batches of at most `batch_size`, a `ReportBatchItemFailures` response read
//! the way Lambda reads it (resume at the earliest failed record), retries
//! with doubling backoff, and a dead letter (an `error!` line) once a record
//! has used up its retries.

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;

use super::Counters;
use super::polling::Poller;
use super::records::sequence_of;

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
    /// Invokes the handler until every record of `batch` succeeded or was dead-lettered.
    pub(super) async fn deliver(&self, mut batch: Vec<EventRecord>) {
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
