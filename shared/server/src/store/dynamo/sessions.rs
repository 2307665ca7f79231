//! [`SessionStore`] on DynamoDB: `USER#<user>` / `SES#<sync_id>` items
//! (UUID v7 ids, so they sort by opening time) that expire by TTL; an expired
//! session still present is treated as absent.

use super::records::ItemKind;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::commit::VisitUpdate;
use super::errors::store_error;
use super::keys::*;
use super::records::*;
use crate::store::{
    CompleteOutcome, Completion, DeviceVisit, Session, SessionState, SessionStore, StoreError,
};
use trainsync_protocol::domain::{SyncId, UserId};

#[async_trait]
impl SessionStore for DynamoStore {
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

fn session_record(pk: &str, session: &Session) -> SessionRecord {
    SessionRecord {
        pk: pk.to_owned(),
        sk: session_sk(session.sync_id),
        entity: ItemKind::Session.into(),
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
