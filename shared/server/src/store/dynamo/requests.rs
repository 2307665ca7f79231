//! [`RequestStore`] on DynamoDB: idempotency records `USER#<user>` /
//! `IDEM#<key>`, claimed with a conditional put (free, expired, or an
//! abandoned in-progress claim), completed inside the request's commit
//! (`commit.rs`) and kept for replays until their TTL.

use super::records::ItemKind;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::errors::{done_unless_failed, store_error};
use super::keys::*;
use super::records::*;
use crate::store::{BeginOutcome, RequestState, RequestStore, StoreError};
use trainsync_protocol::domain::{SyncRequestId, UserId};
use trainsync_protocol::limits::{IDEMPOTENCY_IN_PROGRESS_SECS, IDEMPOTENCY_TTL_SECS};

#[async_trait]
impl RequestStore for DynamoStore {
    async fn begin_request(
        &self,
        user: &UserId,
        key: SyncRequestId,
        body_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<BeginOutcome, StoreError> {
        let pk = user_pk(user);
        let claim = Uuid::new_v4().to_string();
        let record = RequestRecord {
            pk: pk.clone(),
            sk: request_sk(key),
            entity: ItemKind::Request.into(),
            status: RequestStatus::InProgress,
            body_hash: body_hash.to_owned(),
            claim: claim.clone(),
            in_progress_until: now.timestamp() + IDEMPOTENCY_IN_PROGRESS_SECS,
            ttl: now.timestamp() + IDEMPOTENCY_TTL_SECS,
            response: None,
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&record)?))
            // Free, expired (TTL lags), or an abandoned in-progress claim of
            // the same body (another body under the key is a mismatch, never
            // a takeover).
            .condition_expression(
                "attribute_not_exists(pk) OR #ttl < :now OR (#status = :in_progress AND in_progress_until < :now AND body_hash = :hash)",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":in_progress", s(RequestStatus::InProgress.as_str()))
            .expression_attribute_values(":hash", s(body_hash))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let existing = match result {
            Ok(_) => return Ok(BeginOutcome::Claimed(claim)),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => match e.item.clone() {
                    Some(item) => item,
                    None => self
                        .get_item(&pk, &request_sk(key))
                        .await?
                        .unwrap_or_default(),
                },
                _ => return Err(store_error(err)),
            },
        };
        let existing: RequestRecord = from_item(existing)?;
        Ok(if existing.body_hash != body_hash {
            BeginOutcome::Mismatch
        } else {
            match (existing.status, existing.response) {
                (RequestStatus::Completed, Some(response)) => BeginOutcome::Replay(response),
                _ => BeginOutcome::InProgress,
            }
        })
    }

    async fn request_state(
        &self,
        user: &UserId,
        key: SyncRequestId,
    ) -> Result<Option<RequestState>, StoreError> {
        let Some(item) = self.get_item(&user_pk(user), &request_sk(key)).await? else {
            return Ok(None);
        };
        let record: RequestRecord = from_item(item)?;
        Ok(Some(RequestState {
            claim: record.claim,
            response: match record.status {
                RequestStatus::Completed => record.response,
                RequestStatus::InProgress => None,
            },
        }))
    }

    async fn release_request(
        &self,
        user: &UserId,
        key: SyncRequestId,
        claim: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), request_sk(key))))
            .condition_expression("claim = :claim AND #status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":claim", s(claim))
            .expression_attribute_values(":in_progress", s(RequestStatus::InProgress.as_str()))
            .send()
            .await;
        done_unless_failed(result, |e| e.is_conditional_check_failed_exception())
    }
}
