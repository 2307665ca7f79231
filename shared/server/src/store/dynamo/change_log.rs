//! [`ChangeLogStore`] on DynamoDB: reading the change log (by sequence, and by
//! commit time through `lsi1`), entity states by kind, activities by start
//! time, stored plan versions, and trimming the log below its retention
//! floor. Commits and the reads they are planned from live in `commit.rs`.

use super::records::ItemKind;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use chrono::{DateTime, Utc};

use super::errors::store_error;
use super::keys::*;
use super::records::*;
use super::{DynamoStore, schema};
use crate::store::{
    ChangeLogStore, ChangePage, Commit, CommitOutcome, EntityKey, Head, KindQuery, Loaded,
    SnapshotPage, StoreError, StoredEntity,
};
use trainsync_protocol::domain::UserId;

#[async_trait]
impl ChangeLogStore for DynamoStore {
    async fn head(&self, user: &UserId) -> Result<Head, StoreError> {
        self.read_head(user).await
    }

    async fn load(&self, user: &UserId, keys: &[EntityKey]) -> Result<Loaded, StoreError> {
        self.load_states(user, keys).await
    }

    async fn commit(&self, user: &UserId, commit: &Commit) -> Result<CommitOutcome, StoreError> {
        self.write_commit(user, commit).await
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
            .expression_attribute_values(":entity", s(ItemKind::LogFloor.as_str()))
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
}

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
}
