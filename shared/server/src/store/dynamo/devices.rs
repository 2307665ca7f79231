//! [`DeviceStore`] on DynamoDB.
//!
//! `USER#<user>` / `DEV#<device>`: the device item (visits, registration,
//! push endpoint, current login, revocation). It is the one place
//! revocation is decided: token checks and refresh rotations both read it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::DynamoStore;
use super::commit::VisitUpdate;
use super::errors::{done_unless_failed, store_error};
use super::keys::{DEVICE_PREFIX, LOGIN_SK, device_sk, key_of, login_pk, user_pk};
use super::records::{DeviceItem, Item, from_item, s};
use crate::store::{
    DeviceRecord, DeviceRefusal, DeviceRegistration, DeviceStore, DeviceVisit, StoreError,
};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::RevokeReason;

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

    async fn record_visit(&self, user: &UserId, seen: &DeviceVisit) -> Result<(), StoreError> {
        let update = VisitUpdate::new(&user_pk(user), seen);
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key))
            .update_expression(update.expression)
            .set_expression_attribute_values(Some(update.values))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn devices(&self, user: &UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        let items = self
            .query_prefix(&user_pk(user), DEVICE_PREFIX, true, None)
            .await?;
        let mut devices = items
            .into_iter()
            .map(|item| from_item::<DeviceItem>(item).map(|d| d.device))
            .collect::<Result<Vec<_>, _>>()?;
        devices.sort_by_key(|d| std::cmp::Reverse(d.last_seen_at));
        Ok(devices)
    }
}
