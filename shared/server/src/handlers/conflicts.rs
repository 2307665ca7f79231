//! `GET /sync/conflicts` and `POST /sync/conflicts/{conflict_id}/undo`: the
//! conflict log (PRD 5.3) and its 24-hour undo. Undo is naturally idempotent:
//! undoing an undone entry answers the same entry again.

use chrono::{DateTime, Utc};
use lambda_http::Request;
use uuid::Uuid;

use super::{Endpoint, path_param};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Reply, limit_param, query_param};
use crate::publish::MAX_COMMIT_ATTEMPTS;
use crate::state::AppState;
use crate::store::{
    Commit, CommitOutcome, DeviceVisit, EntityKey, KindQuery, StoreError, StoredEntity,
    contention_backoff,
};
use trainsync_protocol::domain::{ConflictRecord, ConflictStatus, EntityKind};
use trainsync_protocol::rules::undo::{UndoError, keys, plan_undo};
use trainsync_protocol::validate::FieldErrorCode;
use trainsync_protocol::wire::{ConflictEntry, ConflictsResponse, UndoResponse};

fn entry(record: ConflictRecord, now: DateTime<Utc>) -> ConflictEntry {
    let undoable = record.status == ConflictStatus::Resolved && now <= record.undo_until;
    ConflictEntry { record, undoable }
}

fn record_of(entity: &StoredEntity) -> Result<ConflictRecord, ApiError> {
    serde_json::from_value(entity.data.clone())
        .map_err(|e| StoreError::Corrupt(format!("conflict {}: {e}", entity.key)).into())
}

fn uuid_param(raw: Option<String>, field: &'static str) -> Result<Uuid, ApiError> {
    raw.as_deref()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                field,
                FieldErrorCode::InvalidFormat,
                format!("{field} must be a UUID"),
            )
        })
}

pub(super) async fn list(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let limit = limit_param(req)?;
    let after = match query_param(req, "after").filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(uuid_param(Some(raw), "after")?.to_string()),
    };
    // One entry more than the page, so a full last page is known to be the last.
    let mut page = state
        .store
        .entities_of_kind(
            &caller.user_id,
            KindQuery {
                kind: EntityKind::Conflict,
                from_id: None,
                after_id: after.as_deref(),
                descending: true,
                limit: limit + 1,
            },
        )
        .await?;
    let more = page.entities.len() > limit as usize;
    page.entities.truncate(limit as usize);
    let now = state.clock.now();
    let conflicts = page
        .entities
        .iter()
        .map(|e| record_of(e).map(|r| entry(r, now)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::json(&ConflictsResponse {
        next_after: more
            .then(|| page.entities.last().map(|e| e.key.id.clone()))
            .flatten(),
        conflicts,
        server_timestamp: now,
    }))
}

pub(super) async fn undo(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let id = uuid_param(
        path_param(req, Endpoint::ConflictUndo, "conflict_id"),
        "conflict_id",
    )?;
    let user = &caller.user_id;
    let key = EntityKey::new(EntityKind::Conflict, id.to_string());
    let now = state.clock.now();
    let not_found = || ApiError::NotFound {
        code: "conflict_not_found",
        message: "no conflict-log entry with this id for this user".into(),
        field: Some("conflict_id"),
    };
    for attempt in 0..MAX_COMMIT_ATTEMPTS {
        let first = state.store.load(user, std::slice::from_ref(&key)).await?;
        let record = record_of(first.entities.get(&key).ok_or_else(not_found)?)?;
        let mut wanted = keys(&record);
        wanted.push(key.clone());
        let loaded = state.store.load(user, &wanted).await?;
        let record = record_of(loaded.entities.get(&key).ok_or_else(not_found)?)?;
        let at = loaded.head.last_at.map_or(now, |last| last.max(now));
        let plan = plan_undo(&record, &loaded, at).map_err(|e| match e {
            UndoError::Expired(_) => ApiError::Gone {
                code: "undo_expired",
                message: e.to_string(),
                field: Some("conflict_id"),
            },
            UndoError::Outdated(_) => ApiError::Conflict {
                code: "resolution_outdated",
                message: e.to_string(),
            },
            UndoError::NotApplicable(_) => ApiError::Conflict {
                code: "undo_not_applicable",
                message: e.to_string(),
            },
        })?;
        let undone = plan.record.clone().unwrap_or(record);
        let reply = Reply::json(&UndoResponse {
            conflict: entry(undone, now),
            server_timestamp: now,
        });
        if plan.writes.is_empty() {
            return Ok(reply);
        }
        let commit = Commit {
            base: loaded.head,
            at,
            writes: plan.writes,
            device_id: Some(caller.device_id.clone()),
            plan_version: plan.plan_version,
            request: None,
            session: None,
            conflicts: 0,
            visit: Some(DeviceVisit::at(caller.device_id.clone(), now)),
        };
        match state.store.commit(user, &commit).await? {
            CommitOutcome::Committed { .. } => {
                tracing::info!(conflict_id = %id, "conflict resolution undone");
                return Ok(reply);
            }
            CommitOutcome::HeadMoved => contention_backoff(attempt).await,
            other => {
                return Err(
                    StoreError::Other(format!("unexpected commit outcome {other:?}")).into(),
                );
            }
        }
    }
    Err(StoreError::Contention.into())
}
