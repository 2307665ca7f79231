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
use crate::services::undo::{record_of, undo_conflict};
use crate::state::AppState;
use crate::store::KindQuery;
use trainsync_protocol::domain::{ConflictRecord, ConflictStatus, EntityKind};
use trainsync_protocol::validate::FieldErrorCode;
use trainsync_protocol::wire::{ConflictEntry, ConflictsResponse, UndoResponse};

fn entry(record: ConflictRecord, now: DateTime<Utc>) -> ConflictEntry {
    let undoable = record.status == ConflictStatus::Resolved && now <= record.undo_until;
    ConflictEntry { record, undoable }
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
    let now = state.clock.now();
    let record = undo_conflict(
        state.store.as_ref(),
        &caller.user_id,
        &caller.device_id,
        id,
        now,
    )
    .await?;
    Ok(Reply::json(&UndoResponse {
        conflict: entry(record, now),
        server_timestamp: now,
    }))
}
