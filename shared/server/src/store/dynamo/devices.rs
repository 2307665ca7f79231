//! [`DeviceStore`] on DynamoDB.
//!
//! - `USER#<user>` / `DEV#<device>`: the device item (visits, registration,
//!   push endpoint, current login, revocation). It is the one place
//!   revocation is decided: token checks and refresh rotations both read it.
//! - `LOGIN#<family>` / `LOGIN`: a login's refresh-token family (hash of the
//!   current token only). Its own partition because a refresh request names
//!   only the family. Expires by TTL once idle past the refresh limit.
//! - `USER#<user>` / `PUSH#<alert>#<device>`: the delivery ledger, TTL 7 days.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::retry::ProvideErrorKind;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{LOGIN_SK, delivery_sk, device_sk, login_pk, user_pk};
use super::records::DeviceItem;
use super::{DynamoStore, Item, from_item, key_of, n, s, store_error, to_item};
use crate::refresh::{REFRESH_IDLE_DAYS, RefreshFamily};
use crate::store::{
    DeliveryClaim, DeliveryOutcome, DeviceRecord, DeviceRefusal, DeviceRegistration, DeviceStore,
    Rotation, StoreError, StoredLogin,
};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::limits::IDEMPOTENCY_TTL_SECS;
use trainsync_protocol::wire::RevokeReason;

/// How long a delivery claim holds before another invocation may take it
/// over (longer than the fan-out function's timeout).
pub const DELIVERY_LEASE_SECS: i64 = 60;

/// A login item.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoginRecord {
    pk: String,
    sk: String,
    entity: String,
    user_id: String,
    device_id: String,
    current_hash: String,
    last_issued_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
    ttl: i64,
}

/// TTL of a login issued at `at`: a week past its idle expiry.
fn login_ttl(at: DateTime<Utc>) -> i64 {
    (at + Duration::days(REFRESH_IDLE_DAYS + 7)).timestamp()
}

fn login_from(record: LoginRecord) -> Result<StoredLogin, StoreError> {
    let family = record
        .pk
        .strip_prefix("LOGIN#")
        .and_then(|f| Uuid::parse_str(f).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("bad login key {}", record.pk)))?;
    let corrupt = |e: trainsync_protocol::domain::IdError| {
        StoreError::Corrupt(format!("login {family}: {e}"))
    };
    Ok(StoredLogin {
        family,
        user: UserId::parse(record.user_id).map_err(corrupt)?,
        device: DeviceId::parse(record.device_id).map_err(corrupt)?,
        state: RefreshFamily {
            current_hash: record.current_hash,
            last_issued_at: record.last_issued_at,
            revoked_at: record.revoked_at,
        },
    })
}

/// The wire text of a snake_case enum (platform, network, reason).
fn wire_text(value: &impl Serialize) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(text),
        other => Err(StoreError::Other(format!("not a text value: {other:?}"))),
    }
}

fn device_from(item: Item) -> Result<DeviceRecord, StoreError> {
    from_item::<DeviceItem>(item).map(|d| d.device)
}

/// A non-empty returned item, read as a device.
fn returned_device(item: Option<Item>) -> Result<Option<DeviceRecord>, StoreError> {
    item.filter(|i| !i.is_empty()).map(device_from).transpose()
}

/// The outcome of a conditional write whose failed condition means there is
/// nothing (left) to do.
fn done_unless_failed<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    failed_condition: impl Fn(&E) -> bool,
) -> Result<(), StoreError>
where
    E: ProvideErrorKind + ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.as_service_error().is_some_and(failed_condition) => Ok(()),
        Err(err) => Err(store_error(err)),
    }
}

fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, StoreError> {
    built.map_err(|e| StoreError::Other(e.to_string()))
}

#[async_trait]
impl DeviceStore for DynamoStore {
    async fn device(
        &self,
        user: &UserId,
        device: &DeviceId,
        consistent: bool,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), device_sk(device))))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(store_error)?;
        out.item.map(device_from).transpose()
    }

    async fn register_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        registration: &DeviceRegistration,
        push_endpoint: Option<&str>,
        expected_endpoint: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Result<DeviceRecord, DeviceRefusal>, StoreError> {
        let mut set = vec![
            "device_id = :device",
            "first_seen_at = if_not_exists(first_seen_at, :now)",
            "last_seen_at = :now",
            "registered_at = if_not_exists(registered_at, :now)",
            "platform = :platform",
            "app_version = :app_version",
        ];
        let mut remove = Vec::new();
        let mut values = HashMap::from([
            (":device".to_owned(), s(device.as_str())),
            (":now".to_owned(), s(now.to_rfc3339())),
            (
                ":platform".to_owned(),
                s(wire_text(&registration.platform)?),
            ),
            (
                ":app_version".to_owned(),
                s(registration.app_version.clone()),
            ),
        ]);
        let network = registration.network.as_ref().map(wire_text).transpose()?;
        for (attr, set_expr, placeholder, value) in [
            (
                "push_token",
                "push_token = :push_token",
                ":push_token",
                registration.push_token.clone(),
            ),
            (
                "os_version",
                "os_version = :os_version",
                ":os_version",
                registration.os_version.clone(),
            ),
            ("network", "network = :network", ":network", network),
            (
                "locale",
                "locale = :locale",
                ":locale",
                registration.locale.clone(),
            ),
            (
                "push_endpoint",
                "push_endpoint = :push_endpoint",
                ":push_endpoint",
                push_endpoint.map(str::to_owned),
            ),
        ] {
            match value {
                Some(value) => {
                    set.push(set_expr);
                    values.insert(placeholder.to_owned(), s(value));
                }
                None => remove.push(attr),
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut condition = "attribute_not_exists(revoked_at) AND ".to_owned();
        match expected_endpoint {
            Some(expected) => {
                condition.push_str("push_endpoint = :expected");
                values.insert(":expected".into(), s(expected));
            }
            None => condition.push_str("attribute_not_exists(push_endpoint)"),
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), device_sk(device))))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Ok(returned_device(out.attributes)?.ok_or_else(|| {
                StoreError::Other("UpdateItem returned no attributes".into())
            })?)),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                    let old = returned_device(e.item.clone())?;
                    if old.is_some_and(|d| d.revoked_at.is_some()) {
                        Ok(Err(DeviceRefusal::Revoked))
                    } else {
                        Ok(Err(DeviceRefusal::Changed))
                    }
                }
                _ => Err(store_error(err)),
            },
        }
    }

    async fn revoke_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        reason: RevokeReason,
        only_login: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let mut condition = "attribute_exists(pk) AND attribute_not_exists(revoked_at)".to_owned();
        let mut values = HashMap::from([
            (":now".to_owned(), s(now.to_rfc3339())),
            (":reason".to_owned(), s(wire_text(&reason)?)),
        ]);
        if let Some(login) = only_login {
            condition.push_str(" AND login = :login");
            values.insert(":login".into(), s(login.as_hyphenated().to_string()));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), device_sk(device))))
            .update_expression(
                "SET revoked_at = :now, revoked_reason = :reason REMOVE push_endpoint",
            )
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let before = match result {
            Ok(out) => returned_device(out.attributes)?,
            Err(err) => {
                return match err.as_service_error() {
                    // Unknown, already revoked (keep the first revocation), or another login.
                    Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                        let old = returned_device(e.item.clone())?;
                        Ok(old.filter(|d| {
                            d.revoked_at.is_some() && only_login.is_none_or(|l| d.login == Some(l))
                        }))
                    }
                    _ => Err(store_error(err)),
                };
            }
        };
        // The device item already refuses the login's tokens; marking the login
        // too makes a refresh answer `device_revoked` without a second read.
        if let Some(login) = before.as_ref().and_then(|d| d.login) {
            let marked = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_of(&login_pk(login), LOGIN_SK)))
                .update_expression("SET revoked_at = if_not_exists(revoked_at, :now)")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":now", s(now.to_rfc3339()))
                .send()
                .await;
            // A failed condition: the login item is gone (expired); nothing to mark.
            if let Err(error) = done_unless_failed(
                marked,
                UpdateItemError::is_conditional_check_failed_exception,
            ) {
                tracing::warn!(%error, %login, "login not marked revoked (the device is)");
            }
        }
        Ok(before)
    }

    async fn drop_push_endpoint(
        &self,
        user: &UserId,
        device: &DeviceId,
        endpoint: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), device_sk(device))))
            .update_expression("REMOVE push_endpoint")
            .condition_expression("push_endpoint = :endpoint")
            .expression_attribute_values(":endpoint", s(endpoint))
            .send()
            .await;
        // A failed condition: already replaced by a new registration; keep that one.
        done_unless_failed(
            result,
            UpdateItemError::is_conditional_check_failed_exception,
        )
    }

    async fn start_login(&self, login: &StoredLogin, now: DateTime<Utc>) -> Result<(), StoreError> {
        let family = login.family.as_hyphenated().to_string();
        let record = LoginRecord {
            pk: login_pk(login.family),
            sk: LOGIN_SK.to_owned(),
            entity: "login".to_owned(),
            user_id: login.user.to_string(),
            device_id: login.device.to_string(),
            current_hash: login.state.current_hash.clone(),
            last_issued_at: login.state.last_issued_at,
            revoked_at: None,
            ttl: login_ttl(login.state.last_issued_at),
        };
        let put = build(
            aws_sdk_dynamodb::types::Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(&record)?))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        let device = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(
                    &user_pk(&login.user),
                    device_sk(&login.device),
                )))
                .update_expression(
                    "SET login = :login, device_id = :device, \
                     first_seen_at = if_not_exists(first_seen_at, :now), last_seen_at = :now \
                     REMOVE revoked_at, revoked_reason",
                )
                .expression_attribute_values(":login", s(family))
                .expression_attribute_values(":device", s(login.device.as_str()))
                .expression_attribute_values(":now", s(now.to_rfc3339()))
                .build(),
        )?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(device).build())
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn login(&self, family: Uuid) -> Result<Option<StoredLogin>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&login_pk(family), LOGIN_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        out.item
            .map(|item| from_item::<LoginRecord>(item).and_then(login_from))
            .transpose()
    }

    async fn rotate_login(
        &self,
        login: &StoredLogin,
        presented_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        let rotate = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(&login_pk(login.family), LOGIN_SK)))
                .update_expression("SET current_hash = :new, last_issued_at = :now, #ttl = :ttl")
                .condition_expression(
                    "current_hash = :presented AND attribute_not_exists(revoked_at)",
                )
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":new", s(new_hash))
                .expression_attribute_values(":presented", s(presented_hash))
                .expression_attribute_values(":now", s(now.to_rfc3339()))
                .expression_attribute_values(":ttl", n(login_ttl(now)))
                .build(),
        )?;
        // The device item decides revocation: a logout or a newer login wins.
        let device_check = build(
            ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(
                    &user_pk(&login.user),
                    device_sk(&login.device),
                )))
                .condition_expression("login = :login AND attribute_not_exists(revoked_at)")
                .expression_attribute_values(":login", s(login.family.as_hyphenated().to_string()))
                .build(),
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(rotate).build())
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(device_check)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(Rotation::Rotated),
            Err(err) => {
                let reasons: Vec<Option<String>> = err
                    .as_service_error()
                    .and_then(|e| match e {
                        TransactWriteItemsError::TransactionCanceledException(e) => Some(e),
                        _ => None,
                    })
                    .map(|e| {
                        e.cancellation_reasons()
                            .iter()
                            .map(|r| r.code.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let failed = |i: usize| {
                    reasons.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
                };
                if failed(1) {
                    Ok(Rotation::DeviceRevoked)
                } else if failed(0) {
                    Ok(Rotation::Superseded)
                } else if reasons
                    .iter()
                    .any(|r| r.as_deref() == Some("TransactionConflict"))
                {
                    // Another write to the login or device at the same moment:
                    // nothing is decided; the device retries with the same token.
                    Err(StoreError::Contention)
                } else {
                    Err(store_error(err))
                }
            }
        }
    }

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
            ("entity".to_owned(), s("push")),
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
