//! [`LoginStore`] on DynamoDB.
//!
//! `LOGIN#<family>` / `LOGIN`: a login's refresh-token family (hash of the
//! current token only). Its own partition because a refresh request names
//! only the family. Expires by TTL once idle past the refresh limit. A
//! rotation is a transaction with a condition on the device item, which
//! decides revocation.

use super::records::{ItemEntity, ItemKind};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DynamoStore;
use super::errors::{build, store_error};
use super::keys::{LOGIN_SK, device_sk, key_of, login_pk, user_pk};
use super::records::{from_item, n, s, to_item};
use crate::refresh::{PreviousToken, REFRESH_IDLE_DAYS, RefreshFamily};
use crate::store::{LoginStore, Rotation, StoreError, StoredLogin};
use trainsync_protocol::domain::{DeviceId, UserId};

/// A login item.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoginRecord {
    pk: String,
    sk: String,
    entity: ItemEntity,
    user_id: String,
    device_id: String,
    current_hash: String,
    last_issued_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
    /// The token the last rotation retired (hash), when, and the new one sealed under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_rotated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_sealed_next: Option<String>,
    /// Hashes of earlier retired tokens, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    retired: Vec<String>,
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
            previous: match (
                record.previous_hash,
                record.previous_rotated_at,
                record.previous_sealed_next,
            ) {
                (Some(hash), Some(rotated_at), Some(sealed_next)) => Some(PreviousToken {
                    hash,
                    rotated_at,
                    sealed_next,
                }),
                (None, None, None) => None,
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "login {family}: a partial previous token"
                    )));
                }
            },
            retired: record.retired,
        },
    })
}

#[async_trait]
impl LoginStore for DynamoStore {
    async fn start_login(&self, login: &StoredLogin, now: DateTime<Utc>) -> Result<(), StoreError> {
        let family = login.family.as_hyphenated().to_string();
        let record = LoginRecord {
            pk: login_pk(login.family),
            sk: LOGIN_SK.to_owned(),
            entity: ItemKind::Login.into(),
            user_id: login.user.to_string(),
            device_id: login.device.to_string(),
            current_hash: login.state.current_hash.clone(),
            last_issued_at: login.state.last_issued_at,
            revoked_at: None,
            previous_hash: None,
            previous_rotated_at: None,
            previous_sealed_next: None,
            retired: Vec::new(),
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
        rotated: &RefreshFamily,
    ) -> Result<Rotation, StoreError> {
        let now = rotated.last_issued_at;
        let previous = rotated.previous.as_ref().ok_or_else(|| {
            StoreError::Other("a rotation always retires the presented token".into())
        })?;
        let rotate = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(&login_pk(login.family), LOGIN_SK)))
                .update_expression(
                    "SET current_hash = :new, last_issued_at = :now, #ttl = :ttl, \
                     previous_hash = :previous, previous_rotated_at = :now, \
                     previous_sealed_next = :sealed, retired = :retired",
                )
                .condition_expression(
                    "current_hash = :presented AND attribute_not_exists(revoked_at)",
                )
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":new", s(&rotated.current_hash))
                .expression_attribute_values(":previous", s(&previous.hash))
                .expression_attribute_values(":sealed", s(&previous.sealed_next))
                .expression_attribute_values(
                    ":retired",
                    AttributeValue::L(rotated.retired.iter().map(|h| s(h.as_str())).collect()),
                )
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
}
