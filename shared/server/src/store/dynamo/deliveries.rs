//! [`DeliveryStore`] on DynamoDB: the critical-alert delivery ledger,
//! `USER#<user>` / `PUSH#<alert>#<device>`, TTL 7 days. A claim is a
//! conditional put with a lease and an owner id, so a push is sent once
//! however often the stream delivers the alert, and a crashed sender's claim
//! can be taken over; finishing and releasing are conditional on the owner,
//! so a sender that lost its claim leaves the new holder's record alone.

use super::records::ItemKind;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::errors::{condition_held, store_error};
use super::keys::{delivery_sk, key_of, user_pk};
use super::records::{n, s};
use crate::store::{
    ClaimHold, ClaimOwner, DeliveryClaim, DeliveryOutcome, DeliveryStore, StoreError,
};
use trainsync_protocol::domain::UserId;
use trainsync_protocol::limits::IDEMPOTENCY_TTL_SECS;

/// The stored status of a claimed delivery not yet finished.
const SENDING: &str = "sending";

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
        let owner = ClaimOwner::fresh();
        let item = HashMap::from([
            ("pk".to_owned(), s(user_pk(user))),
            ("sk".to_owned(), s(delivery_sk(alert, device))),
            ("entity".to_owned(), s(ItemKind::Push.as_str())),
            ("status".to_owned(), s(SENDING)),
            ("owner".to_owned(), s(owner.id().to_string())),
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
            .expression_attribute_values(":sending", s(SENDING))
            .expression_attribute_values(":now", n(now.timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(DeliveryClaim::Claimed(owner)),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    let held = e.item.as_ref();
                    let field = |name: &str| held.and_then(|i| i.get(name));
                    let sending = field("status")
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|status| status == SENDING);
                    if !sending {
                        return Ok(DeliveryClaim::Done);
                    }
                    let lease_until =
                        field("lease_until").and_then(lease_end).ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "delivery claim {} without a lease",
                                delivery_sk(alert, device)
                            ))
                        })?;
                    Ok(DeliveryClaim::InFlight { lease_until })
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
        owner: ClaimOwner,
        outcome: DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<ClaimHold, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), delivery_sk(alert, device))))
            .update_expression("SET #status = :outcome, finished_at = :now REMOVE lease_until")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":outcome", s(outcome.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":owner", s(owner.id().to_string()))
            .send()
            .await;
        Ok(
            if condition_held(
                result,
                UpdateItemError::is_conditional_check_failed_exception,
            )? {
                ClaimHold::Held
            } else {
                ClaimHold::Lost
            },
        )
    }

    async fn release_delivery(
        &self,
        user: &UserId,
        alert: Uuid,
        device: &str,
        owner: ClaimOwner,
    ) -> Result<ClaimHold, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), delivery_sk(alert, device))))
            .condition_expression("#owner = :owner AND #status = :sending")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(owner.id().to_string()))
            .expression_attribute_values(":sending", s(SENDING))
            .send()
            .await;
        Ok(
            if condition_held(
                result,
                DeleteItemError::is_conditional_check_failed_exception,
            )? {
                ClaimHold::Held
            } else {
                ClaimHold::Lost
            },
        )
    }
}

/// A stored lease end (epoch seconds).
fn lease_end(value: &AttributeValue) -> Option<DateTime<Utc>> {
    let secs = value.as_n().ok()?.parse().ok()?;
    DateTime::from_timestamp(secs, 0)
}
