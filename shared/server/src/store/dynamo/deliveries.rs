//! [`DeliveryStore`] on DynamoDB: the critical-alert delivery ledger,
//! `USER#<user>` / `PUSH#<alert>#<device>`, TTL 7 days. A claim is a
//! conditional put with a lease, so a push is sent once however often the
//! stream delivers the alert, and a crashed sender's claim can be taken over.

use super::records::ItemKind;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::errors::{done_unless_failed, store_error};
use super::keys::{delivery_sk, key_of, user_pk};
use super::records::{n, s};
use crate::store::{DeliveryClaim, DeliveryOutcome, DeliveryStore, StoreError};
use trainsync_protocol::domain::UserId;
use trainsync_protocol::limits::IDEMPOTENCY_TTL_SECS;

/// How long a delivery claim holds before another invocation may take it
/// over (longer than the fan-out function's timeout).
pub const DELIVERY_LEASE_SECS: i64 = 60;

#[async_trait]
impl DeliveryStore for DynamoStore {
    async fn claim_delivery(
        &self,
        user: &UserId,
        alert: Uuid,
        device: &str,
        now: DateTime<Utc>,
    ) -> Result<DeliveryClaim, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(user_pk(user))),
            ("sk".to_owned(), s(delivery_sk(alert, device))),
            ("entity".to_owned(), s(ItemKind::Push.as_str())),
            ("status".to_owned(), s("sending")),
            ("claimed_at".to_owned(), s(now.to_rfc3339())),
            (
                "lease_until".to_owned(),
                n((now + Duration::seconds(DELIVERY_LEASE_SECS)).timestamp()),
            ),
            ("ttl".to_owned(), n(now.timestamp() + IDEMPOTENCY_TTL_SECS)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR (#status = :sending AND lease_until < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":now", n(now.timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(DeliveryClaim::Claimed),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    let sending = e
                        .item
                        .as_ref()
                        .and_then(|i| i.get("status"))
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|status| status == "sending");
                    Ok(if sending {
                        DeliveryClaim::InFlight
                    } else {
                        DeliveryClaim::Done
                    })
                }
                _ => Err(store_error(err)),
            },
        }
    }

    async fn finish_delivery(
        &self,
        user: &UserId,
        alert: Uuid,
        device: &str,
        outcome: DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), delivery_sk(alert, device))))
            .update_expression("SET #status = :outcome, finished_at = :now REMOVE lease_until")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":outcome", s(outcome.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn release_delivery(
        &self,
        user: &UserId,
        alert: Uuid,
        device: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), delivery_sk(alert, device))))
            .condition_expression("#status = :sending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", s("sending"))
            .send()
            .await;
        // A failed condition: finished meanwhile, nothing to release.
        done_unless_failed(
            result,
            DeleteItemError::is_conditional_check_failed_exception,
        )
    }
}
