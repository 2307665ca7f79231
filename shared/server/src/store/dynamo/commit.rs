//! The commit transaction, the one way a user's data changes: entity states,
//! one change-log entry each, plan versions and the head in one
//! `TransactWriteItems` conditional on the head not having moved, with the
//! idempotency record, the session's counters and the device's visit riding
//! along. Also the head and entity reads a commit is planned from.

use super::records::{ItemEntity, ItemKind};
use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{KeysAndAttributes, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::DynamoStore;
use super::errors::store_error;
use super::keys::*;
use super::records::*;
use crate::store::{
    Commit, CommitOutcome, DeviceVisit, EntityKey, EntityWrite, Head, KindHead, Loaded,
    RequestCompletion, SessionState, StoreError,
};
use trainsync_protocol::domain::UserId;

/// How long stored plan versions stay available as diff bases.
pub const PLAN_VERSION_RETENTION_DAYS: i64 = 90;

/// Keys DynamoDB accepts in one `BatchGetItem`.
const BATCH_GET_MAX_KEYS: usize = 100;

/// The device-visit update expression, usable alone or in a transaction.
pub(super) struct VisitUpdate {
    pub(super) key: Item,
    pub(super) expression: String,
    pub(super) values: Item,
}

impl VisitUpdate {
    pub(super) fn new(pk: &str, visit: &DeviceVisit) -> Self {
        let mut set = vec![
            "first_seen_at = if_not_exists(first_seen_at, :at)",
            "last_seen_at = :at",
            "device_id = :device",
        ];
        let mut values = HashMap::from([
            (":at".to_owned(), s(visit.at.to_rfc3339())),
            (":device".to_owned(), s(visit.device_id.as_str())),
        ]);
        if let Some((cursor, seq)) = &visit.delivered {
            set.push("last_cursor = :cursor");
            set.push("last_cursor_seq = :cursor_seq");
            values.insert(":cursor".into(), s(cursor));
            values.insert(":cursor_seq".into(), n(seq));
        }
        if let Some(acknowledged) = &visit.synced {
            set.push("last_sync_at = :at");
            if let Some(cursor) = acknowledged {
                set.push("acknowledged_cursor = :ack");
                values.insert(":ack".into(), s(cursor));
            }
        }
        Self {
            key: key_of(pk, device_sk(&visit.device_id)),
            expression: format!("SET {}", set.join(", ")),
            values,
        }
    }

    pub(super) fn into_update(self, table: &str) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(table)
            .set_key(Some(self.key))
            .update_expression(self.expression)
            .set_expression_attribute_values(Some(self.values))
            .build()
            .map_err(|e| StoreError::Other(e.to_string()))
    }
}

/// What each action of a commit transaction is, to read cancellation reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Head,
    Data,
    Request,
    Session,
    Device,
}

impl DynamoStore {
    /// The user's head (an empty head for a new user); a strongly consistent single read.
    pub(super) async fn read_head(&self, user: &UserId) -> Result<Head, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), HEAD_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        match out.item {
            Some(item) => head_from(from_item(item)?),
            None => Ok(Head::default()),
        }
    }

    /// The head and the current state of the named entities, read together.
    pub(super) async fn load_states(
        &self,
        user: &UserId,
        keys: &[EntityKey],
    ) -> Result<Loaded, StoreError> {
        let pk = user_pk(user);
        let all: Vec<Item> = std::iter::once(key_of(&pk, HEAD_SK))
            .chain(keys.iter().map(|key| key_of(&pk, entity_sk(key))))
            .collect();
        let mut loaded = Loaded::default();
        // BatchGetItem takes at most 100 keys; the head comes with the first batch.
        for batch in all.chunks(BATCH_GET_MAX_KEYS) {
            self.batch_get_into(batch, &mut loaded).await?;
        }
        Ok(loaded)
    }

    /// Writes a commit atomically, or reports why it could not.
    pub(super) async fn write_commit(
        &self,
        user: &UserId,
        commit: &Commit,
    ) -> Result<CommitOutcome, StoreError> {
        let pk = user_pk(user);
        let mut actions: Vec<(Role, TransactWriteItem)> = Vec::new();
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Other(e.to_string());
        let first = commit.base.seq + 1;
        let last = commit.base.seq + commit.writes.len() as u64;
        if !commit.writes.is_empty() {
            let mut head = commit.base.clone();
            head.seq = last;
            head.last_at = Some(commit.at);
            if commit.plan_version.is_some() {
                head.plan_version = commit.plan_version;
            }
            for (i, write) in commit.writes.iter().enumerate() {
                let seq = first + i as u64;
                head.kinds.insert(
                    write.key.kind.as_str().to_owned(),
                    KindHead { seq, at: commit.at },
                );
                let entity = EntityRecord {
                    pk: pk.clone(),
                    sk: entity_sk(&write.key),
                    lsi1sk: activity_index(write),
                    entity: ItemEntity::State(write.key.kind),
                    kind: write.key.kind,
                    id: write.key.id.clone(),
                    seq,
                    updated_at: commit.at,
                    data: write.data.clone(),
                };
                let change = ChangeRecord {
                    pk: pk.clone(),
                    sk: change_sk(seq),
                    lsi1sk: change_at_sk(commit.at, seq),
                    entity: ItemKind::Change.into(),
                    seq,
                    at: commit.at,
                    kind: write.key.kind,
                    id: write.key.id.clone(),
                    data: write.data.clone(),
                    device_id: commit.device_id.as_ref().map(|d| d.to_string()),
                };
                let put = |item| Put::builder().table_name(&self.table).set_item(Some(item));
                actions.push((
                    Role::Data,
                    TransactWriteItem::builder()
                        .put(put(to_item(&entity)?).build().map_err(build)?)
                        .build(),
                ));
                actions.push((
                    Role::Data,
                    TransactWriteItem::builder()
                        .put(
                            put(to_item(&change)?)
                                .condition_expression("attribute_not_exists(pk)")
                                .build()
                                .map_err(build)?,
                        )
                        .build(),
                ));
            }
            for write in &commit.writes {
                let Some(version) = plan_version_of(write) else {
                    continue;
                };
                let record = PlanVersionRecord {
                    pk: pk.clone(),
                    sk: plan_version_sk(version),
                    entity: ItemKind::PlanVersion.into(),
                    version,
                    plan: write.data.clone(),
                    ttl: (commit.at + chrono::Duration::days(PLAN_VERSION_RETENTION_DAYS))
                        .timestamp(),
                };
                actions.push((
                    Role::Data,
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.table)
                                .set_item(Some(to_item(&record)?))
                                .build()
                                .map_err(build)?,
                        )
                        .build(),
                ));
            }
            let record = HeadRecord {
                pk: pk.clone(),
                sk: HEAD_SK.into(),
                entity: ItemKind::Head.into(),
                seq: head.seq,
                last_at: head.last_at,
                kinds: head.kinds,
                plan_version: head.plan_version,
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(&record)?))
                .condition_expression("attribute_not_exists(pk) OR seq = :base")
                .expression_attribute_values(":base", n(commit.base.seq))
                .build()
                .map_err(build)?;
            actions.insert(
                0,
                (Role::Head, TransactWriteItem::builder().put(put).build()),
            );
        }
        if let Some(request) = &commit.request {
            let record = RequestRecord {
                pk: pk.clone(),
                sk: request_sk(request.key),
                entity: ItemKind::Request.into(),
                status: RequestStatus::Completed,
                body_hash: request.body_hash.clone(),
                claim: request.claim.clone(),
                in_progress_until: 0,
                ttl: request.expires_at.timestamp(),
                response: Some(request.response.clone()),
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(&record)?))
                // Only an open claim completes: a completed record is never
                // written twice, whatever a retried or re-planned commit does.
                .condition_expression("claim = :claim AND #status = :in_progress")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":claim", s(&request.claim))
                .expression_attribute_values(":in_progress", s(RequestStatus::InProgress.as_str()))
                .build()
                .map_err(build)?;
            actions.push((Role::Request, TransactWriteItem::builder().put(put).build()));
        }
        if let Some(sync_id) = commit.session {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(&pk, session_sk(sync_id))))
                .update_expression("ADD uploads :one, conflicts :conflicts")
                .condition_expression("attribute_exists(pk) AND #state = :open AND #ttl > :now")
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":conflicts", n(commit.conflicts))
                .expression_attribute_values(":open", s(SessionState::Open.as_str()))
                .expression_attribute_values(":now", n(commit.at.timestamp()))
                .build()
                .map_err(build)?;
            actions.push((
                Role::Session,
                TransactWriteItem::builder().update(update).build(),
            ));
        }
        if let Some(visit) = &commit.visit {
            let update = VisitUpdate::new(&pk, visit).into_update(&self.table)?;
            actions.push((
                Role::Device,
                TransactWriteItem::builder().update(update).build(),
            ));
        }
        if actions.is_empty() {
            return Ok(CommitOutcome::Committed { first, last });
        }
        let roles: Vec<Role> = actions.iter().map(|(r, _)| *r).collect();
        // An idempotent request's transaction carries a token derived from
        // its claim: when an answer is lost, the SDK's retry of the same
        // transaction is answered without applying it again.
        let token = commit
            .request
            .as_ref()
            .map(RequestCompletion::transaction_token);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions.into_iter().map(|(_, a)| a).collect()))
            .set_client_request_token(token)
            .send()
            .await;
        match result {
            Ok(_) => Ok(CommitOutcome::Committed { first, last }),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                    let reasons = e.cancellation_reasons.clone().unwrap_or_default();
                    let failed = |role: Role| {
                        reasons.iter().zip(&roles).any(|(reason, r)| {
                            *r == role && reason.code.as_deref() == Some("ConditionalCheckFailed")
                        })
                    };
                    if failed(Role::Request) {
                        Ok(CommitOutcome::ClaimLost)
                    } else if failed(Role::Session) {
                        Ok(CommitOutcome::SessionGone)
                    } else if failed(Role::Head) || failed(Role::Data) {
                        Ok(CommitOutcome::HeadMoved)
                    } else if reasons
                        .iter()
                        .any(|r| r.code.as_deref() == Some("TransactionConflict"))
                    {
                        // Another transaction touched the same items: plan again.
                        Ok(CommitOutcome::HeadMoved)
                    } else {
                        let codes: Vec<_> = reasons.iter().filter_map(|r| r.code.clone()).collect();
                        Err(StoreError::Unavailable(format!(
                            "transaction cancelled: {codes:?}"
                        )))
                    }
                }
                // The same token's transaction is still running, or was sent
                // with other parameters: whether it applied is unknown here.
                Some(
                    TransactWriteItemsError::TransactionInProgressException(_)
                    | TransactWriteItemsError::IdempotentParameterMismatchException(_),
                ) => Ok(CommitOutcome::InDoubt),
                _ => Err(store_error(err)),
            },
        }
    }

    /// Reads `keys` (head and entity items) with strongly consistent batch reads into `loaded`.
    async fn batch_get_into(&self, keys: &[Item], loaded: &mut Loaded) -> Result<(), StoreError> {
        let wanted = KeysAndAttributes::builder()
            .consistent_read(true)
            .set_keys(Some(keys.to_vec()))
            .build()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let mut request_items = HashMap::from([(self.table.clone(), wanted)]);
        // BatchGetItem may return part of the keys as unprocessed; ask again for those.
        for attempt in 0..8 {
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(request_items))
                .send()
                .await
                .map_err(store_error)?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                let sk = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                if sk == HEAD_SK {
                    loaded.head = head_from(from_item(item)?)?;
                } else {
                    let entity = entity_from(from_item(item)?);
                    loaded.entities.insert(entity.key.clone(), entity);
                }
            }
            match out.unprocessed_keys.filter(|u| !u.is_empty()) {
                Some(rest) => {
                    request_items = rest;
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
                }
                None => return Ok(()),
            }
        }
        Err(StoreError::Unavailable(
            "batch read kept returning unprocessed keys".into(),
        ))
    }
}

/// An activity state's index key (none for tombstones and other kinds).
fn activity_index(write: &EntityWrite) -> Option<String> {
    if write.key.kind != trainsync_protocol::domain::EntityKind::Activity
        || trainsync_protocol::domain::Tombstone::of(&write.data).is_some()
    {
        return None;
    }
    let started_at = write
        .data
        .get("started_at")
        .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())?;
    Some(activity_at_sk(started_at, &write.key.id))
}

/// The version of a training-plan write.
fn plan_version_of(write: &EntityWrite) -> Option<u64> {
    (write.key.kind == trainsync_protocol::domain::EntityKind::TrainingPlan)
        .then(|| {
            write
                .data
                .get("version")
                .and_then(serde_json::Value::as_u64)
        })
        .flatten()
}

fn head_from(record: HeadRecord) -> Result<Head, StoreError> {
    Ok(Head {
        seq: record.seq,
        last_at: record.last_at,
        kinds: record.kinds,
        plan_version: record.plan_version,
    })
}
