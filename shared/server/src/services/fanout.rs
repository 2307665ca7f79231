//! The critical-alert fan-out (PRD 6.3): for each newly inserted critical
//! alert in a DynamoDB stream batch, one push to every live device of the
//! user, exactly once per device.
//!
//! Exactly once: each (alert, device) delivery is claimed with a conditional
//! write before sending and marked after, so stream retries, duplicates and
//! re-invocations skip what was sent; a failed send releases its claim and
//! the record is reported as a batch item failure, so Lambda retries it (and,
//! the stream being ordered, everything after it). A claim carries a fresh
//! owner id, and marking or releasing it is conditional on that owner, so an
//! invocation whose claim was taken over never touches the new holder's
//! record (and never sends again itself). The one gap is a crash between a
//! provider's acceptance and the mark: the claim's lease expires and the push
//! is sent again, collapsed on the phone by the alert id.
//!
//! A delivery another invocation holds (a duplicate invocation still running,
//! or one that crashed or timed out mid-send, whose claim holds until its
//! lease ends) is not a failure of the record: reporting it at once would
//! spend the mapping's few retries (`MaximumRetryAttempts`) in seconds and
//! send the alert to the failure queue while the lease still holds, the
//! device never pushed. The invocation first pushes every other device, then
//! waits for the claim to end (checking every second; a [`LeaseWait`] bounds
//! the wait by the time the invocation has left) and claims it again. Only
//! when its time runs out is the record reported, after having waited: every
//! retry spent on a live claim brings its lease end closer by a whole
//! invocation's waiting time, so the retries outlast the lease.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};

use crate::clock::{Clock, ManualClock};
use crate::push::{AlertPush, PushError, PushProvider, PushTarget, pushes_in};
use crate::store::{ClaimHold, DeliveryClaim, DeliveryOutcome, StoreError, SyncStore};
use trainsync_protocol::domain::DeviceId;

/// Of an invocation's time, what waiting for other invocations' claims
/// leaves for the claims and sends after the wait.
pub const SEND_RESERVE: Duration = Duration::from_secs(10);

/// The waiting time of an invocation without a deadline (the local stream
/// poller, tests): what the deployed function's 30 s timeout leaves after
/// [`SEND_RESERVE`].
pub const UNTIMED_WAIT: Duration = Duration::from_secs(20);

/// How often a waiting invocation claims again: a live holder finishing or
/// releasing is noticed within this, an expired lease taken over.
const CLAIM_RECHECK: Duration = Duration::from_secs(1);

/// What a waiter adds to a lease's end: leases are stored in whole seconds
/// and the hosts' clocks differ a little.
const LEASE_SLACK: chrono::Duration = chrono::Duration::seconds(1);

/// Why an alert's fan-out must be retried.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Some device's push must be retried.
    #[error("{failed} of the alert's pushes must be retried")]
    Retry {
        /// How many.
        failed: usize,
    },
}

/// How an invocation waits for another invocation's delivery claim to end,
/// within the time it has.
#[async_trait]
pub trait LeaseWait: Send + Sync {
    /// Waits `step` and returns true; or, when less waiting time than that
    /// is left, waits out what is left and returns false.
    async fn wait(&self, step: Duration) -> bool;
}

/// Waiting in real time, up to a fixed instant.
#[derive(Debug, Clone, Copy)]
pub struct WaitUntil(tokio::time::Instant);

impl WaitUntil {
    /// Waiting for at most `budget` from now.
    pub fn within(budget: Duration) -> Self {
        Self(tokio::time::Instant::now() + budget)
    }

    /// Waiting that leaves [`SEND_RESERVE`] before an invocation's `deadline`.
    pub fn before(deadline: SystemTime) -> Self {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        Self::within(left.saturating_sub(SEND_RESERVE))
    }
}

#[async_trait]
impl LeaseWait for WaitUntil {
    async fn wait(&self, step: Duration) -> bool {
        let wake = tokio::time::Instant::now() + step;
        tokio::time::sleep_until(wake.min(self.0)).await;
        wake <= self.0
    }
}

/// Waiting that moves a [`ManualClock`] instead of sleeping, for at most a
/// budget (tests: an invocation's wait for a lease takes no real time).
#[derive(Debug)]
pub struct ManualWait<'a> {
    clock: &'a ManualClock,
    left: Mutex<Duration>,
}

impl<'a> ManualWait<'a> {
    /// Waiting that moves `clock`, for at most `budget` in all.
    pub fn within(clock: &'a ManualClock, budget: Duration) -> Self {
        Self {
            clock,
            left: Mutex::new(budget),
        }
    }
}

#[async_trait]
impl LeaseWait for ManualWait<'_> {
    async fn wait(&self, step: Duration) -> bool {
        let waited = {
            let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
            let waited = step.min(*left);
            *left -= waited;
            waited
        };
        self.clock
            .advance(chrono::Duration::from_std(waited).unwrap_or(chrono::Duration::MAX));
        // Let concurrent invocations run, as a real wait would.
        tokio::task::yield_now().await;
        waited == step
    }
}

/// Handles one stream batch, in order, waiting for other invocations'
/// claims as `waits` allows. On the first record that cannot be finished it
/// reports that record and stops: the stream checkpoints before it and
/// redelivers it and everything after it.
pub async fn fan_out(
    store: &dyn SyncStore,
    push: Option<&dyn PushProvider>,
    clock: &dyn Clock,
    waits: &dyn LeaseWait,
    event: Event,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in pushes_in(event) {
        let outcome = match record.push {
            Ok(None) => continue,
            Ok(Some(alert)) => deliver(store, push, clock, waits, &alert).await,
            // Retrying cannot mend it; reporting it lets the mapping's retry
            // limit move it to the failure queue instead of losing it.
            Err(error) => Err(FanoutError::Store(error)),
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, sequence_number = ?record.sequence_number, "alert not fully pushed; reporting it for retry");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.sequence_number;
            response.batch_item_failures.push(failure);
            break;
        }
    }
    response
}

/// Pushes one alert to every device of its user that is live and was
/// registered before the alert was committed; deliveries another invocation
/// holds are waited for after all the others were pushed.
pub async fn deliver(
    store: &dyn SyncStore,
    provider: Option<&dyn PushProvider>,
    clock: &dyn Clock,
    waits: &dyn LeaseWait,
    push: &AlertPush,
) -> Result<(), FanoutError> {
    let Some(provider) = provider else {
        tracing::warn!(user_id = %push.user, alert = %push.message.alert_id, "no push provider configured: critical alert not pushed");
        return Ok(());
    };
    let sender = Sender {
        store,
        provider,
        clock,
        push,
    };
    let mut failed = 0;
    let mut held_elsewhere = Vec::new();
    for device in store.devices(&push.user).await? {
        let Some(endpoint) = device.push_target() else {
            continue;
        };
        if device.registered_at.is_none_or(|at| at > push.committed_at) {
            continue;
        }
        let target = PushTarget {
            device_id: device.device_id.clone(),
            endpoint: endpoint.to_owned(),
        };
        match sender.attempt(&target).await? {
            Attempt::Settled => {}
            Attempt::Retry => failed += 1,
            Attempt::InFlight { lease_until } => held_elsewhere.push((target, lease_until)),
        }
    }
    for (target, lease_until) in held_elsewhere {
        if !sender.wait_out(&target, lease_until, waits).await? {
            failed += 1;
        }
    }
    if failed > 0 {
        Err(FanoutError::Retry { failed })
    } else {
        Ok(())
    }
}

/// One alert's deliveries: what claiming and sending one of them needs.
struct Sender<'a> {
    store: &'a dyn SyncStore,
    provider: &'a dyn PushProvider,
    clock: &'a dyn Clock,
    push: &'a AlertPush,
}

/// How one try at a delivery ended.
enum Attempt {
    /// Sent, or settled for good (by us or before).
    Settled,
    /// The send failed and must be retried.
    Retry,
    /// Another invocation holds the delivery until `lease_until`.
    InFlight { lease_until: DateTime<Utc> },
}

impl Sender<'_> {
    /// Claims the delivery to `target` and, if ours, sends it and records how
    /// it ended (or releases the claim of a send to retry).
    async fn attempt(&self, target: &PushTarget) -> Result<Attempt, StoreError> {
        let (store, user, alert) = (self.store, &self.push.user, self.push.message.alert_id);
        let device = &target.device_id;
        let owner = match store
            .claim_delivery(user, alert, device, self.clock.now())
            .await?
        {
            DeliveryClaim::Claimed(owner) => owner,
            DeliveryClaim::Done => return Ok(Attempt::Settled),
            DeliveryClaim::InFlight { lease_until } => {
                return Ok(Attempt::InFlight { lease_until });
            }
        };
        let outcome = match self.provider.send(target, &self.push.message).await {
            Ok(()) => DeliveryOutcome::Sent,
            Err(PushError::Retryable(reason)) => {
                tracing::warn!(user_id = %user, %alert, device_id = %device, %reason, "push failed; will retry");
                if store.release_delivery(user, alert, device, owner).await? == ClaimHold::Lost {
                    // Whoever holds it now decides; a retry goes through the
                    // ledger again, so it cannot push twice.
                    tracing::warn!(user_id = %user, %alert, device_id = %device, %owner, "claim was taken over before its release");
                }
                return Ok(Attempt::Retry);
            }
            Err(PushError::Gone(reason)) => {
                tracing::info!(user_id = %user, device_id = %device, %reason, "push endpoint gone; dropping it");
                if let Ok(device_id) = DeviceId::parse(device.clone()) {
                    store
                        .drop_push_endpoint(user, &device_id, &target.endpoint)
                        .await?;
                }
                DeliveryOutcome::EndpointGone
            }
            Err(PushError::Rejected(reason)) => {
                tracing::error!(user_id = %user, %alert, device_id = %device, %reason, "push refused for good");
                DeliveryOutcome::Rejected
            }
        };
        let hold = store
            .finish_delivery(user, alert, device, owner, outcome, self.clock.now())
            .await?;
        match hold {
            ClaimHold::Held => {
                tracing::info!(user_id = %user, %alert, device_id = %device, outcome = outcome.as_str(), "critical alert pushed");
            }
            // Our lease ran out before the mark: the invocation that took the
            // claim over may push again (collapsed on the phone by the alert
            // id); we never do, and leave its record alone.
            ClaimHold::Lost => {
                tracing::warn!(user_id = %user, %alert, device_id = %device, %owner, outcome = outcome.as_str(), "claim was taken over before its outcome was recorded");
            }
        }
        Ok(Attempt::Settled)
    }

    /// Waits for another invocation's claim on `target` (its lease ending at
    /// `lease_until`) to end, then claims and sends it; false if the delivery
    /// must be retried (the send failed, or `waits` ran out first).
    async fn wait_out(
        &self,
        target: &PushTarget,
        mut lease_until: DateTime<Utc>,
        waits: &dyn LeaseWait,
    ) -> Result<bool, StoreError> {
        loop {
            let until_free = (lease_until + LEASE_SLACK - self.clock.now())
                .to_std()
                .unwrap_or_default();
            if !waits.wait(until_free.min(CLAIM_RECHECK)).await {
                tracing::warn!(user_id = %self.push.user, alert = %self.push.message.alert_id, device_id = %target.device_id, %lease_until, "push held by another invocation past our time; will retry");
                return Ok(false);
            }
            match self.attempt(target).await? {
                Attempt::Settled => return Ok(true),
                Attempt::Retry => return Ok(false),
                Attempt::InFlight { lease_until: next } => lease_until = next,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[tokio::test]
    async fn a_manual_wait_moves_the_clock_until_its_budget_is_spent() {
        let start = Utc::now();
        let clock = ManualClock::new(start);
        let waits = ManualWait::within(&clock, Duration::from_secs(3));
        assert!(waits.wait(Duration::from_secs(1)).await);
        assert_eq!(clock.now() - start, chrono::Duration::seconds(1));
        assert!(!waits.wait(Duration::from_secs(5)).await, "only 2 s left");
        assert_eq!(clock.now() - start, chrono::Duration::seconds(3));
        assert!(!waits.wait(Duration::from_secs(1)).await);
        assert_eq!(clock.now() - start, chrono::Duration::seconds(3));
    }

    #[tokio::test]
    async fn a_real_wait_stops_at_its_instant() {
        let waits = WaitUntil::within(Duration::from_millis(50));
        assert!(waits.wait(Duration::ZERO).await);
        let started = std::time::Instant::now();
        assert!(!waits.wait(Duration::from_secs(10)).await);
        assert!(started.elapsed() < Duration::from_secs(5));
        let at_the_reserve = WaitUntil::before(SystemTime::now() + SEND_RESERVE);
        assert!(
            !at_the_reserve.wait(Duration::from_millis(1)).await,
            "no waiting into the send reserve"
        );
    }
}
