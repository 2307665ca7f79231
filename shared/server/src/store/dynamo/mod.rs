//! The DynamoDB implementation of [`SyncStore`]. The only module that speaks
//! `aws_sdk_dynamodb`.

mod devices;
mod keys;
pub mod metrics;
mod records;
mod reference;
pub mod schema;
pub mod stream;
mod tracks;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update, WriteRequest,
};
use aws_smithy_types::retry::{ErrorKind, ProvideErrorKind};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::config::Config;
use crate::store::*;
use keys::*;
use metrics::{CountingInterceptor, RequestCounter};
use records::*;
use trainsync_protocol::domain::{SyncId, SyncRequestId, UserId};
use trainsync_protocol::limits::{IDEMPOTENCY_IN_PROGRESS_SECS, IDEMPOTENCY_TTL_SECS};

type Item = HashMap<String, AttributeValue>;

/// The AWS SDK configuration for `config`, loaded once per cold start and
/// shared by every client: the default credential chain and region, or with
/// `DYNAMODB_ENDPOINT` (DynamoDB Local) static local credentials and
/// `us-east-1` unless `AWS_REGION` says otherwise.
pub async fn sdk_config(config: &Config) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    } else if config.dynamodb_endpoint.is_some() {
        loader = loader.region(aws_config::Region::new("us-east-1"));
    }
    if config.dynamodb_endpoint.is_some() {
        // DynamoDB Local accepts any credentials; never reach for real ones.
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "trainsync-local",
        ));
    }
    loader.load().await
}

/// The DynamoDB client on `sdk` (honouring `DYNAMODB_ENDPOINT`), counting
/// its requests into `counter`.
pub fn client_from(
    sdk: &aws_config::SdkConfig,
    config: &Config,
    counter: Arc<RequestCounter>,
) -> Client {
    let mut builder =
        aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(CountingInterceptor(counter));
    if let Some(endpoint) = &config.dynamodb_endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

/// Builds the DynamoDB client for `config` (honouring `DYNAMODB_ENDPOINT`),
/// counting its requests into `counter`.
pub async fn client_with_counter(config: &Config, counter: Arc<RequestCounter>) -> Client {
    client_from(&sdk_config(config).await, config, counter)
}

/// Builds the DynamoDB client for `config` (honouring `DYNAMODB_ENDPOINT`).
pub async fn client_for(config: &Config) -> Client {
    client_with_counter(config, Arc::default()).await
}

/// [`SyncStore`] on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    counter: Arc<RequestCounter>,
}

impl DynamoStore {
    /// A store on `table` using `client`; `counter` is the one the client reports to.
    pub fn new(client: Client, table: impl Into<String>, counter: Arc<RequestCounter>) -> Self {
        Self {
            client,
            table: table.into(),
            counter,
        }
    }

    /// Connects as `config` says.
    pub async fn from_config(config: &Config) -> Self {
        Self::from_sdk_config(config, &sdk_config(config).await)
    }

    /// Connects as `config` says, on an already loaded SDK configuration.
    pub fn from_sdk_config(config: &Config, sdk: &aws_config::SdkConfig) -> Self {
        let counter = Arc::new(RequestCounter::default());
        let client = client_from(sdk, config, counter.clone());
        Self::new(client, config.table_name.clone(), counter)
    }

    /// DynamoDB requests made through this store's client.
    pub fn requests(&self) -> &RequestCounter {
        &self.counter
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode item: {e}")))
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key_of(pk: &str, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// Maps an SDK error: throttling, timeouts and server faults are retryable.
fn store_error<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorKind + ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            matches!(
                e.err().retryable_error_kind(),
                Some(
                    ErrorKind::ThrottlingError | ErrorKind::TransientError | ErrorKind::ServerError
                )
            ) || matches!(
                ProvideErrorMetadata::code(e.err()),
                Some(
                    "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "ThrottlingException"
                )
            )
        }
        _ => false,
    };
    let text = match err.as_service_error() {
        Some(e) => format!(
            "{}: {}",
            ProvideErrorMetadata::code(e).unwrap_or("error"),
            e.message().unwrap_or("")
        ),
        None => format!("{err:?}"),
    };
    if retryable {
        StoreError::Unavailable(text)
    } else {
        StoreError::Other(text)
    }
}

fn session_from(record: SessionRecord) -> Result<Session, StoreError> {
    let sync_id =
        Uuid::parse_str(&record.sync_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let device_id = trainsync_protocol::domain::DeviceId::parse(record.device_id)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Session {
        sync_id: SyncId(sync_id),
        device_id,
        opened_at: record.opened_at,
        expires_at: DateTime::from_timestamp(record.ttl, 0).unwrap_or(record.opened_at),
        state: record.state,
        completed_at: record.completed_at,
        error: record.error,
        uploads: record.uploads,
        conflicts: record.conflicts,
        completed_by: record.completed_by_request.zip(record.completed_by_hash),
    })
}

fn entity_from(record: EntityRecord) -> StoredEntity {
    StoredEntity {
        key: EntityKey::new(record.kind, record.id),
        seq: record.seq,
        updated_at: record.updated_at,
        data: record.data,
    }
}

/// The device-visit update expression, usable alone or in a transaction.
struct VisitUpdate {
    key: Item,
    expression: String,
    values: Item,
}

impl VisitUpdate {
    fn new(pk: &str, visit: &DeviceVisit) -> Self {
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

    fn into_update(self, table: &str) -> Result<Update, StoreError> {
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

#[async_trait]
impl SyncStore for DynamoStore {
    async fn head(&self, user: &UserId) -> Result<Head, StoreError> {
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

    async fn open_session(
        &self,
        user: &UserId,
        session: &Session,
        seen: &DeviceVisit,
    ) -> Result<(), StoreError> {
        let pk = user_pk(user);
        let record = session_record(&pk, session);
        self.client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(to_item(&record)?))
                            .condition_expression("attribute_not_exists(pk)")
                            .build()
                            .map_err(|e| StoreError::Other(e.to_string()))?,
                    )
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(VisitUpdate::new(&pk, seen).into_update(&self.table)?)
                    .build(),
            )
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn session(
        &self,
        user: &UserId,
        sync_id: SyncId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&user_pk(user), session_sk(sync_id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let session = session_from(from_item(item)?)?;
        // TTL deletion lags by up to days: an expired record is treated as absent.
        Ok((session.expires_at > now).then_some(session))
    }

    async fn complete_session(
        &self,
        user: &UserId,
        completion: &Completion,
    ) -> Result<CompleteOutcome, StoreError> {
        let pk = user_pk(user);
        let mut set = vec![
            "#state = :state",
            "completed_at = :at",
            "completed_by_request = :req",
            "completed_by_hash = :hash",
        ];
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&pk, session_sk(completion.sync_id))))
            .condition_expression("attribute_exists(pk) AND #state = :open AND #ttl > :now")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":state", s(completion.state.as_str()))
            .expression_attribute_values(":open", s(SessionState::Open.as_str()))
            .expression_attribute_values(":now", n(completion.at.timestamp()))
            .expression_attribute_values(":at", s(completion.at.to_rfc3339()))
            .expression_attribute_values(":req", s(&completion.request.0))
            .expression_attribute_values(":hash", s(&completion.request.1))
            .return_values(ReturnValue::AllNew);
        if let Some(error) = &completion.error {
            set.push("#error = :error");
            update = update
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":error", s(error));
        }
        let result = update
            .update_expression(format!("SET {}", set.join(", ")))
            .send()
            .await;
        let outcome = match result {
            Ok(out) => CompleteOutcome::Closed(session_from(from_item(
                out.attributes.unwrap_or_default(),
            )?)?),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                match self
                    .session(user, completion.sync_id, completion.at)
                    .await?
                {
                    Some(session) if session.state != SessionState::Open => {
                        CompleteOutcome::AlreadyClosed(session)
                    }
                    _ => return Ok(CompleteOutcome::NotFound),
                }
            }
            Err(err) => return Err(store_error(err)),
        };
        Ok(outcome)
    }

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
            entity: "request".into(),
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
            // Free, expired (TTL lags), or an abandoned in-progress claim.
            .condition_expression(
                "attribute_not_exists(pk) OR #ttl < :now OR (#status = :in_progress AND in_progress_until < :now)",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":in_progress", s("IN_PROGRESS"))
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
            .expression_attribute_values(":in_progress", s("IN_PROGRESS"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(store_error(err)),
        }
    }

    async fn load(&self, user: &UserId, keys: &[EntityKey]) -> Result<Loaded, StoreError> {
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

    async fn commit(&self, user: &UserId, commit: &Commit) -> Result<CommitOutcome, StoreError> {
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
                    entity: write.key.kind.as_str().to_owned(),
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
                    entity: CHANGE_ENTITY.to_owned(),
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
                    entity: "plan_version".into(),
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
                entity: "head".into(),
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
                entity: "request".into(),
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
                .condition_expression("claim = :claim")
                .expression_attribute_values(":claim", s(&request.claim))
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
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions.into_iter().map(|(_, a)| a).collect()))
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
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    Ok(CommitOutcome::HeadMoved)
                }
                _ => Err(store_error(err)),
            },
        }
    }

    async fn changes_after(
        &self,
        user: &UserId,
        after: u64,
        limit: u32,
    ) -> Result<ChangePage, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(user_pk(user)))
            .expression_attribute_values(":from", s(change_sk(after.saturating_add(1))))
            .expression_attribute_values(":to", s(change_sk(u64::MAX)))
            .consistent_read(true)
            .limit(limit.saturating_add(1) as i32)
            .send()
            .await
            .map_err(store_error)?;
        let mut entries = Vec::new();
        for item in out.items.unwrap_or_default() {
            let record: ChangeRecord = from_item(item)?;
            entries.push(StoredEntity {
                key: EntityKey::new(record.kind, record.id),
                seq: record.seq,
                updated_at: record.at,
                data: record.data,
            });
        }
        let mut more = out.last_evaluated_key.is_some();
        if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            more = true;
        }
        Ok(ChangePage { entries, more })
    }

    async fn first_seq_at_or_after(
        &self,
        user: &UserId,
        t: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let out = self
            .lsi1_between(
                user,
                format!("{CHANGE_AT_PREFIX}{}", sortable_time(t)),
                format!("{CHANGE_AT_PREFIX}~"),
            )
            .limit(1)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out
            .items
            .unwrap_or_default()
            .first()
            .and_then(|item| item.get("sk"))
            .and_then(|v| v.as_s().ok())
            .and_then(|sk| parse_change_sk(sk)))
    }

    async fn entities_of_kind(
        &self,
        user: &UserId,
        query: KindQuery<'_>,
    ) -> Result<SnapshotPage, StoreError> {
        let pk = user_pk(user);
        let key = |id: &str| entity_sk(&EntityKey::new(query.kind, id));
        // Every id sorts below `~` (UUIDs, dates, setting keys, `current`).
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":lo", s(key(query.from_id.unwrap_or(""))))
            .expression_attribute_values(":hi", s(key("~")))
            .scan_index_forward(!query.descending)
            .consistent_read(true)
            .limit(query.limit as i32);
        if let Some(after) = query.after_id {
            request = request.set_exclusive_start_key(Some(key_of(&pk, key(after))));
        }
        let out = request.send().await.map_err(store_error)?;
        let mut entities = Vec::new();
        for item in out.items.unwrap_or_default() {
            entities.push(entity_from(from_item(item)?));
        }
        let next = out.last_evaluated_key.and_then(|k| {
            k.get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| parse_entity_sk(sk))
        });
        Ok(SnapshotPage { entities, next })
    }

    async fn activities_started_between(
        &self,
        user: &UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, EntityKey)>, StoreError> {
        let query = self.lsi1_between(user, activity_at_sk(from, ""), activity_at_sk(to, "~"));
        let found = self
            .query_all(query)
            .await?
            .iter()
            .filter_map(|item| {
                let at = item
                    .get(schema::LSI1_SK)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|k| parse_activity_at_sk(k))?;
                let key = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|sk| parse_entity_sk(sk))?;
                Some((at, key))
            })
            .collect();
        Ok(found)
    }

    async fn plan_version(
        &self,
        user: &UserId,
        version: u64,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let item = self
            .get_item(&user_pk(user), &plan_version_sk(version))
            .await?;
        Ok(match item {
            Some(item) => Some(from_item::<PlanVersionRecord>(item)?.plan),
            None => None,
        })
    }

    async fn log_floor(&self, user: &UserId) -> Result<u64, StoreError> {
        Ok(match self.get_item(&user_pk(user), LOG_FLOOR_SK).await? {
            Some(item) => from_item::<LogFloorRecord>(item)?.floor,
            None => 0,
        })
    }

    async fn trim_log(&self, user: &UserId, target: u64, max: u64) -> Result<u64, StoreError> {
        let pk = user_pk(user);
        let floor = self.log_floor(user).await?;
        let new_floor = target.min(floor.saturating_add(max));
        if new_floor <= floor {
            return Ok(floor);
        }
        // Delete first, then raise the floor: an interrupted trim is redone, never leaks.
        let deletes = (floor.max(1)..new_floor)
            .map(|seq| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key_of(&pk, change_sk(seq))))
                    .build()
                    .map_err(|e| StoreError::Other(e.to_string()))?;
                Ok((0, WriteRequest::builder().delete_request(delete).build()))
            })
            .collect::<Result<_, StoreError>>()?;
        self.write_all(deletes).await?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&pk, LOG_FLOOR_SK)))
            .update_expression("SET floor = :floor, entity = :entity")
            .condition_expression("attribute_not_exists(floor) OR floor < :floor")
            .expression_attribute_values(":floor", n(new_floor))
            .expression_attribute_values(":entity", s("log_floor"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(new_floor),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                self.log_floor(user).await
            }
            Err(err) => Err(store_error(err)),
        }
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

    async fn recent_sessions(
        &self,
        user: &UserId,
        limit: i32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError> {
        // Expired sessions linger until TTL deletion; read a few extra and drop them.
        let items = self
            .query_prefix(
                &user_pk(user),
                SESSION_PREFIX,
                false,
                Some(limit.saturating_mul(3)),
            )
            .await?;
        let mut sessions = Vec::new();
        for item in items {
            let session = session_from(from_item(item)?)?;
            if session.expires_at > now && sessions.len() < limit as usize {
                sessions.push(session);
            }
        }
        Ok(sessions)
    }
}

/// Keys DynamoDB accepts in one `BatchGetItem`.
const BATCH_GET_MAX_KEYS: usize = 100;

/// Requests DynamoDB accepts in one `BatchWriteItem`.
const BATCH_WRITE_MAX_ITEMS: usize = 25;
/// Payload bytes per `BatchWriteItem` (its limit is 16 MB after base64 of binary values).
const BATCH_WRITE_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Attempts at a batch whose items DynamoDB keeps leaving unprocessed.
const BATCH_WRITE_ATTEMPTS: u32 = 8;

impl DynamoStore {
    /// A strongly consistent query of `user`'s `lsi1` entries from `from` to `to`.
    fn lsi1_between(&self, user: &UserId, from: String, to: String) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(schema::LSI1)
            .key_condition_expression("pk = :pk AND lsi1sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(user_pk(user)))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(to))
            .consistent_read(true)
    }

    /// A query of the items of partition `pk` whose sort key starts with `prefix`.
    pub(super) fn prefix_query(&self, pk: &str, prefix: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
    }

    /// Runs `query` to its end, page after page, and returns every item.
    pub(super) async fn query_all(
        &self,
        query: QueryFluentBuilder,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Writes (puts or deletes) `requests`, each with its payload size, in
    /// `BatchWriteItem` calls of at most 25 items and 8 MiB, retrying what
    /// DynamoDB leaves unprocessed.
    pub(super) async fn write_all(
        &self,
        requests: Vec<(usize, WriteRequest)>,
    ) -> Result<(), StoreError> {
        let mut requests = requests.into_iter().peekable();
        while requests.peek().is_some() {
            let mut batch = Vec::new();
            let mut batch_bytes = 0;
            while let Some((size, _)) = requests.peek() {
                if batch.len() == BATCH_WRITE_MAX_ITEMS
                    || (!batch.is_empty() && batch_bytes + size > BATCH_WRITE_MAX_BYTES)
                {
                    break;
                }
                batch_bytes += size;
                batch.extend(requests.next().map(|(_, r)| r));
            }
            let mut attempt = 0;
            while !batch.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, batch)
                    .send()
                    .await
                    .map_err(store_error)?;
                batch = out
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&self.table))
                    .unwrap_or_default();
                if !batch.is_empty() {
                    attempt += 1;
                    if attempt >= BATCH_WRITE_ATTEMPTS {
                        return Err(StoreError::Unavailable(format!(
                            "{} items left unprocessed by BatchWriteItem",
                            batch.len()
                        )));
                    }
                    contention_backoff(attempt).await;
                }
            }
        }
        Ok(())
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

    async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item)
    }

    async fn query_prefix(
        &self,
        pk: &str,
        prefix: &str,
        forward: bool,
        limit: Option<i32>,
    ) -> Result<Vec<Item>, StoreError> {
        let query = self.prefix_query(pk, prefix).scan_index_forward(forward);
        match limit {
            // One page of at most `limit` items.
            Some(limit) => Ok(query
                .limit(limit)
                .send()
                .await
                .map_err(store_error)?
                .items
                .unwrap_or_default()),
            None => self.query_all(query).await,
        }
    }
}

/// How long stored plan versions stay available as diff bases.
pub const PLAN_VERSION_RETENTION_DAYS: i64 = 90;

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

fn session_record(pk: &str, session: &Session) -> SessionRecord {
    SessionRecord {
        pk: pk.to_owned(),
        sk: session_sk(session.sync_id),
        entity: "session".into(),
        sync_id: session.sync_id.to_string(),
        device_id: session.device_id.to_string(),
        opened_at: session.opened_at,
        ttl: session.expires_at.timestamp(),
        state: session.state.clone(),
        completed_at: session.completed_at,
        error: session.error.clone(),
        uploads: session.uploads,
        conflicts: session.conflicts,
        completed_by_request: session.completed_by.as_ref().map(|c| c.0.clone()),
        completed_by_hash: session.completed_by.as_ref().map(|c| c.1.clone()),
    }
}
