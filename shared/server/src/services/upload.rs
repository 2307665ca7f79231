//! `POST /sync/upload`: validate each item on its own, merge with stored state,
//! and commit the batch atomically together with its idempotency record.

use chrono::{DateTime, Utc};
use serde_json::Value;
use trainsync_protocol::wire::ErrorCode;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::services::batch::{ValidatedBatch, apply_once};
use crate::services::commit::load_for;
use crate::services::commit::{Attempt, Committed, commit_time, commit_with_retry};
use crate::services::idempotency::response_json;
use crate::store::SyncStore;
use crate::store::{Commit, DeviceVisit, RequestCompletion, SessionState};
use trainsync_protocol::domain::{Activity, DeviceId, SyncId, SyncRequestId};
use trainsync_protocol::limits::MAX_BATCH_ITEMS;
use trainsync_protocol::rules::merge::Origin;
use trainsync_protocol::rules::resolve::{Change, Context};
use trainsync_protocol::validate::validate_item;
use trainsync_protocol::wire::{ItemType, UploadRequest, UploadResponse};

/// Validates every item of `request` on its own; bad items never block good ones.
pub fn plan_upload(request: &UploadRequest, now: DateTime<Utc>) -> ValidatedBatch {
    let mut plan = ValidatedBatch::default();
    let lists: [(ItemType, &Vec<Value>, &str); 4] = [
        (ItemType::Activity, &request.activities, "id"),
        (ItemType::DailyMetric, &request.daily_metrics, "date"),
        (ItemType::SettingsChange, &request.settings_changes, "key"),
        (ItemType::PlanAdjustment, &request.plan_adjustments, "id"),
    ];
    for (item_type, values, id_field) in lists {
        for (index, value) in values.iter().enumerate() {
            let parsed = match item_type {
                ItemType::Activity => validate_item(value.clone(), now)
                    .map(client_activity)
                    .map(Change::Activity),
                ItemType::DailyMetric => validate_item(value.clone(), now).map(Change::DailyMetric),
                ItemType::SettingsChange => validate_item(value.clone(), now).map(Change::Setting),
                _ => validate_item(value.clone(), now).map(Change::PlanAdjustment),
            };
            let source = (
                item_type,
                index,
                value
                    .get(id_field)
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            );
            plan.add(source, parsed);
        }
    }
    plan
}

/// Drops the fields only the server sets on an activity (a client re-sending
/// a downloaded record gets them back from the stored one, never from itself).
fn client_activity(mut activity: Activity) -> Activity {
    activity.track = None;
    activity.merged_from.clear();
    activity.distinct_from.clear();
    activity
}

/// The rules' context for an upload by `device` at `at`.
pub fn upload_context(at: DateTime<Utc>, device: &DeviceId) -> Context<'_> {
    Context {
        at,
        origin: Origin::Device,
        device: Some(device),
    }
}

/// Applies an upload of `device` of `user` at most once per
/// `sync_request_id` (`hash` is its body's hash); answers the response body,
/// the stored one for a replay. Recomputes the training load when activities
/// changed and the reference brain is on (`brain`).
pub async fn upload(
    store: &dyn SyncStore,
    brain: bool,
    caller: &Caller,
    request: &UploadRequest,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let count = request.item_count();
    if count > MAX_BATCH_ITEMS {
        return Err(ApiError::batch_too_large(
            "an upload",
            count,
            MAX_BATCH_ITEMS,
        ));
    }
    let key = SyncRequestId(request.sync_request_id);
    apply_once(
        store,
        brain,
        &caller.user_id,
        key,
        hash,
        now,
        |token| async move { process(store, caller, request, key, &token, hash, now).await },
    )
    .await
}

/// Commits the upload; answers the response body and how many activities it wrote.
async fn process(
    store: &dyn SyncStore,
    caller: &Caller,
    request: &UploadRequest,
    key: SyncRequestId,
    token: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<(String, usize), ApiError> {
    // The session is checked inside the commit transaction (open and not
    // expired), so a valid upload costs no separate read of it.
    let sync_id = SyncId(request.sync_id);
    let plan = &plan_upload(request, now);
    let committed = commit_with_retry(store, &caller.user_id, |_| async move {
        let loaded = load_for(store, &caller.user_id, &plan.batch).await?;
        let at = commit_time(&loaded.head, now);
        let (resolution, processing_errors) =
            plan.resolve(&loaded, upload_context(at, &caller.device_id));
        let conflicts = resolution.conflicts.len() as u32;
        let response = UploadResponse {
            accepted: resolution.accepted,
            conflicts: resolution.conflicts,
            processing_errors,
            server_timestamp: now,
        };
        let body = response_json(&response)?;
        let commit = Commit {
            base: loaded.head,
            at,
            writes: resolution.writes,
            device_id: Some(caller.device_id.clone()),
            plan_version: resolution.plan_version,
            request: Some(RequestCompletion::new(key, token, hash, body.clone(), now)),
            session: Some(sync_id),
            conflicts,
            visit: Some(DeviceVisit::at(caller.device_id.clone(), now)),
        };
        tracing::info!(
            accepted = response.accepted.len(),
            conflicts,
            refused = response.processing_errors.len(),
            "upload decided"
        );
        Ok::<_, ApiError>(Attempt::Commit(
            Box::new(commit),
            (body, resolution.activities_written),
        ))
    })
    .await?;
    match committed {
        Committed::Done(done) => Ok(done),
        // Its activities may have changed: the training load is recomputed.
        Committed::Replayed(body) => Ok((body, plan.batch.activities().count())),
        Committed::ClaimLost => Err(ApiError::claim_lost("sync_request_id")),
        Committed::SessionGone => {
            // Only now tell "closed" from "unknown or expired".
            let session = store.session(&caller.user_id, sync_id, now).await?;
            Err(match session {
                Some(session) if session.state != SessionState::Open => ApiError::Conflict {
                    code: ErrorCode::SyncSessionClosed,
                    message:
                        "this sync session is already completed: call /sync/check for a new sync_id"
                            .into(),
                },
                _ => ApiError::unknown_session(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EntityKey, Loaded, StoredEntity};
    use chrono::{Duration, TimeZone};
    use serde_json::json;
    use trainsync_protocol::domain::{EntityKind, SettingValue};

    fn to_value<T: serde::Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
    }

    fn request(activities: Vec<Value>, settings: Vec<Value>) -> UploadRequest {
        UploadRequest {
            sync_id: uuid::Uuid::nil(),
            sync_request_id: uuid::Uuid::nil(),
            activities,
            daily_metrics: vec![],
            settings_changes: settings,
            plan_adjustments: vec![],
        }
    }

    fn activity(id: &str, notes: &str) -> Value {
        json!({"id": id, "activity_type": "run", "started_at": "2025-05-31T07:00:00Z",
               "duration_s": 1800, "notes": notes, "source": "manual"})
    }

    const A: &str = "0b5f3c52-54c4-4f7a-9d8e-6f0f1c9e2a11";
    const B: &str = "1b5f3c52-54c4-4f7a-9d8e-6f0f1c9e2a11";

    #[test]
    fn a_bad_item_is_reported_and_the_good_ones_kept() {
        let mut bad = activity(B, "x");
        bad["duration_s"] = json!(0);
        let plan = plan_upload(&request(vec![activity(A, "a"), bad], vec![]), now());
        assert_eq!(plan.batch.changes.len(), 1);
        assert_eq!(plan.errors.len(), 1);
        let error = &plan.errors[0];
        assert_eq!(
            (error.index, error.field.as_str(), error.id.as_deref()),
            (1, "duration_s", Some(B))
        );
        assert!(!error.retryable);
    }

    #[test]
    fn the_same_entity_twice_in_a_batch_is_written_once_merged() {
        let plan = plan_upload(
            &request(vec![activity(A, "first"), activity(A, "second")], vec![]),
            now(),
        );
        let device = DeviceId::parse("phone").unwrap();
        let (resolution, _) = plan.resolve(&Loaded::default(), upload_context(now(), &device));
        assert_eq!(resolution.writes.len(), 1);
        assert_eq!(resolution.writes[0].data["notes"], "second");
        assert_eq!(resolution.accepted.len(), 2);
    }

    #[test]
    fn a_resent_identical_item_writes_nothing() {
        let plan = plan_upload(&request(vec![activity(A, "same")], vec![]), now());
        let key = EntityKey::new(EntityKind::Activity, A);
        let mut loaded = Loaded::default();
        let stored = to_value(&serde_json::from_value::<Activity>(activity(A, "same")).unwrap());
        loaded.entities.insert(
            key.clone(),
            StoredEntity {
                key,
                seq: 1,
                updated_at: now(),
                data: stored,
            },
        );
        let (resolution, _) = plan.resolve(
            &loaded,
            upload_context(now(), &DeviceId::parse("phone").unwrap()),
        );
        assert!(resolution.writes.is_empty());
        assert_eq!(resolution.accepted.len(), 1);
    }

    #[test]
    fn settings_ties_go_to_the_higher_device_id() {
        let change =
            json!({"key": "units", "value": "imperial", "changed_at": "2025-05-31T07:00:00Z"});
        let plan = plan_upload(&request(vec![], vec![change]), now());
        let key = EntityKey::new(EntityKind::Setting, "units");
        let mut loaded = Loaded::default();
        let stored = SettingValue {
            key: trainsync_protocol::domain::SettingKey::Units,
            value: json!("metric"),
            changed_at: now(),
            received_at: now(),
            device_id: "tablet".into(),
        };
        loaded.entities.insert(
            key.clone(),
            StoredEntity {
                key,
                seq: 1,
                updated_at: now(),
                data: to_value(&stored),
            },
        );
        let (lower, _) = plan.resolve(
            &loaded,
            upload_context(now(), &DeviceId::parse("phone").unwrap()),
        );
        assert_eq!(lower.conflicts.len(), 1);
        let kinds: Vec<EntityKind> = lower.writes.iter().map(|w| w.key.kind).collect();
        assert_eq!(kinds, [EntityKind::Conflict], "only the conflict-log entry");
        let (higher, _) = plan.resolve(
            &loaded,
            upload_context(now(), &DeviceId::parse("watch").unwrap()),
        );
        assert_eq!(higher.writes.len(), 1);
        let (later, _) = plan.resolve(
            &loaded,
            upload_context(
                now() + Duration::seconds(1),
                &DeviceId::parse("phone").unwrap(),
            ),
        );
        assert_eq!(later.writes.len(), 1);
    }
}
