//! Undoing an automatic conflict resolution (PRD 5.3): restores the user's
//! version through the one commit loop, within 24 hours, never over a later change.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::ApiError;
use crate::services::commit::{Attempt, commit_time, commit_with_retry};
use crate::store::{Commit, DeviceVisit, EntityKey, StoreError, StoredEntity, SyncStore};
use trainsync_protocol::domain::{ConflictRecord, DeviceId, EntityKind, UserId};
use trainsync_protocol::rules::undo::{UndoError, keys, plan_undo};
use trainsync_protocol::wire::ErrorCode;

/// A stored conflict-log entry; one that does not parse is corrupt state.
pub fn record_of(entity: &StoredEntity) -> Result<ConflictRecord, ApiError> {
    serde_json::from_value(entity.data.clone())
        .map_err(|e| StoreError::Corrupt(format!("conflict {}: {e}", entity.key)).into())
}

/// The API's answer to an undo the rules refuse.
fn refusal(e: UndoError) -> ApiError {
    match e {
        UndoError::Expired(_) => ApiError::Gone {
            code: ErrorCode::UndoExpired,
            message: e.to_string(),
            field: Some("conflict_id"),
        },
        UndoError::Outdated(_) => ApiError::Conflict {
            code: ErrorCode::ResolutionOutdated,
            message: e.to_string(),
        },
        UndoError::NotApplicable(_) => ApiError::Conflict {
            code: ErrorCode::UndoNotApplicable,
            message: e.to_string(),
        },
    }
}

/// Undoes conflict `id` of `user` on behalf of `device`; answers the entry as
/// it now stands. Undoing an undone entry answers it again (idempotent).
pub async fn undo_conflict(
    store: &dyn SyncStore,
    user: &UserId,
    device: &DeviceId,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<ConflictRecord, ApiError> {
    let key = EntityKey::new(EntityKind::Conflict, id.to_string());
    let key = &key;
    let not_found = || ApiError::NotFound {
        code: ErrorCode::ConflictNotFound,
        message: "no conflict-log entry with this id for this user".into(),
        field: Some("conflict_id"),
    };
    let committed = commit_with_retry(store, user, |_| async move {
        let first = store.load(user, std::slice::from_ref(key)).await?;
        let record = record_of(first.entities.get(key).ok_or_else(not_found)?)?;
        let mut wanted = keys(&record);
        wanted.push(key.clone());
        let loaded = store.load(user, &wanted).await?;
        let record = record_of(loaded.entities.get(key).ok_or_else(not_found)?)?;
        let at = commit_time(&loaded.head, now);
        let plan = plan_undo(&record, &loaded, at).map_err(refusal)?;
        let undone = plan.record.clone().unwrap_or(record);
        if plan.writes.is_empty() {
            return Ok::<_, ApiError>(Attempt::Nothing(undone));
        }
        let commit = Commit {
            base: loaded.head,
            at,
            writes: plan.writes,
            device_id: Some(device.clone()),
            plan_version: plan.plan_version,
            request: None,
            session: None,
            conflicts: 0,
            visit: Some(DeviceVisit::at(device.clone(), now)),
        };
        tracing::info!(conflict_id = %id, "undoing a conflict resolution");
        Ok(Attempt::Commit(Box::new(commit), undone))
    })
    .await?;
    Ok(committed.into_done()?)
}
