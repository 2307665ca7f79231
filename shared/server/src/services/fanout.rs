//! The critical-alert fan-out (PRD 6.3): for each newly inserted critical
//! alert in a DynamoDB stream batch, one push to every live device of the
//! user, exactly once per device.
//!
//! Exactly once: each (alert, device) delivery is claimed with a conditional
//! write before sending and marked after, so stream retries, duplicates and
//! re-invocations skip what was sent; a failed send releases its claim and
//! the record is reported as a batch item failure, so Lambda retries it (and,
//! the stream being ordered, everything after it). The one gap is a crash
//! between a provider's acceptance and the mark: the claim's lease expires
//! and the push is sent again, collapsed on the phone by the alert id.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

use crate::clock::Clock;
use crate::push::{AlertPush, PushError, PushProvider, PushTarget, pushes_in};
use crate::store::{DeliveryClaim, DeliveryOutcome, StoreError, SyncStore};
use trainsync_protocol::domain::DeviceId;

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

/// Handles one stream batch, in order. On the first record that cannot be
/// finished it reports that record and stops: the stream checkpoints before
/// it and redelivers it and everything after it.
pub async fn fan_out(
    store: &dyn SyncStore,
    push: Option<&dyn PushProvider>,
    clock: &dyn Clock,
    event: Event,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in pushes_in(event) {
        let outcome = match record.push {
            Ok(None) => continue,
            Ok(Some(alert)) => deliver(store, push, clock, &alert).await,
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
/// registered before the alert was committed.
pub async fn deliver(
    store: &dyn SyncStore,
    provider: Option<&dyn PushProvider>,
    clock: &dyn Clock,
    push: &AlertPush,
) -> Result<(), FanoutError> {
    let user = &push.user;
    let alert = push.message.alert_id;
    let Some(provider) = provider else {
        tracing::warn!(user_id = %user, %alert, "no push provider configured: critical alert not pushed");
        return Ok(());
    };
    let mut failed = 0;
    for device in store.devices(user).await? {
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
        let now = clock.now();
        match store
            .claim_delivery(user, alert, &target.device_id, now)
            .await?
        {
            DeliveryClaim::Done => continue,
            DeliveryClaim::InFlight => {
                failed += 1;
                continue;
            }
            DeliveryClaim::Claimed => {}
        }
        let outcome = match provider.send(&target, &push.message).await {
            Ok(()) => DeliveryOutcome::Sent,
            Err(PushError::Retryable(reason)) => {
                tracing::warn!(user_id = %user, %alert, device_id = %target.device_id, %reason, "push failed; will retry");
                store
                    .release_delivery(user, alert, &target.device_id)
                    .await?;
                failed += 1;
                continue;
            }
            Err(PushError::Gone(reason)) => {
                tracing::info!(user_id = %user, device_id = %target.device_id, %reason, "push endpoint gone; dropping it");
                if let Ok(device_id) = DeviceId::parse(target.device_id.clone()) {
                    store
                        .drop_push_endpoint(user, &device_id, &target.endpoint)
                        .await?;
                }
                DeliveryOutcome::EndpointGone
            }
            Err(PushError::Rejected(reason)) => {
                tracing::error!(user_id = %user, %alert, device_id = %target.device_id, %reason, "push refused for good");
                DeliveryOutcome::Rejected
            }
        };
        store
            .finish_delivery(user, alert, &target.device_id, outcome, clock.now())
            .await?;
        tracing::info!(user_id = %user, %alert, device_id = %target.device_id, outcome = outcome.as_str(), "critical alert pushed");
    }
    if failed > 0 {
        Err(FanoutError::Retry { failed })
    } else {
        Ok(())
    }
}
