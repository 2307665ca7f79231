//! `POST /sync/upload`: validate each item on its own, merge with stored state,
//! and commit the batch atomically together with its idempotency record.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use lambda_http::Request;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::{
    Activity, DailyMetric, DeviceId, EntityKind, PlanAdjustment, SettingValue, SettingsChange,
    SyncId, SyncRequestId,
};
use crate::error::ApiError;
use crate::http::{Reply, json_request};
use crate::idempotency::{Claim, claim};
use crate::limits::{IDEMPOTENCY_TTL_SECS, MAX_BATCH_ITEMS};
use crate::merge::{MergeEffect, merge_activity, merge_daily_metric, setting_wins};
use crate::protocol::{
    AcceptedItem, ConflictItem, ItemType, ProcessingError, UploadRequest, UploadResponse,
};
use crate::publish::MAX_COMMIT_ATTEMPTS;
use crate::state::AppState;
use crate::store::{
    Commit, CommitOutcome, DeviceVisit, EntityKey, EntityWrite, Loaded, RequestCompletion,
    SessionState, StoreError, contention_backoff,
};
use crate::validation::{FieldError, validate_item};

/// The PRD's message for a reschedule made against a superseded plan.
pub const SUPERSEDED_PLAN_MESSAGE: &str = "Your training plan was updated based on your recent workouts. The manual reschedule has been replaced.";

/// A validated item, in upload order.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Activity(Activity),
    DailyMetric(DailyMetric),
    Setting(SettingsChange),
    PlanAdjustment(PlanAdjustment),
}

impl Item {
    fn key(&self) -> EntityKey {
        match self {
            Item::Activity(a) => EntityKey::new(EntityKind::Activity, a.id.to_string()),
            Item::DailyMetric(m) => EntityKey::new(EntityKind::DailyMetric, m.date.to_string()),
            Item::Setting(s) => EntityKey::new(EntityKind::Setting, s.key.as_str()),
            Item::PlanAdjustment(p) => EntityKey::new(EntityKind::PlanAdjustment, p.id.to_string()),
        }
    }

    fn item_type(&self) -> ItemType {
        match self {
            Item::Activity(_) => ItemType::Activity,
            Item::DailyMetric(_) => ItemType::DailyMetric,
            Item::Setting(_) => ItemType::SettingsChange,
            Item::PlanAdjustment(_) => ItemType::PlanAdjustment,
        }
    }
}

/// An upload after validation: the good items and the per-item errors.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadPlan {
    items: Vec<Item>,
    /// Items refused by validation.
    pub errors: Vec<ProcessingError>,
}

/// Validates every item of `request` on its own; bad items never block good ones.
pub fn plan_upload(request: &UploadRequest, now: DateTime<Utc>) -> UploadPlan {
    let mut plan = UploadPlan {
        items: Vec::new(),
        errors: Vec::new(),
    };
    let lists: [(ItemType, &Vec<Value>, &str); 4] = [
        (ItemType::Activity, &request.activities, "id"),
        (ItemType::DailyMetric, &request.daily_metrics, "date"),
        (ItemType::SettingsChange, &request.settings_changes, "key"),
        (ItemType::PlanAdjustment, &request.plan_adjustments, "id"),
    ];
    for (item_type, values, id_field) in lists {
        for (index, value) in values.iter().enumerate() {
            let parsed = match item_type {
                ItemType::Activity => validate_item(value.clone(), now).map(Item::Activity),
                ItemType::DailyMetric => validate_item(value.clone(), now).map(Item::DailyMetric),
                ItemType::SettingsChange => validate_item(value.clone(), now).map(Item::Setting),
                ItemType::PlanAdjustment => {
                    validate_item(value.clone(), now).map(Item::PlanAdjustment)
                }
            };
            match parsed {
                Ok(item) => plan.items.push(item),
                Err(FieldError {
                    field,
                    code,
                    message,
                }) => plan.errors.push(ProcessingError {
                    item_type,
                    id: value
                        .get(id_field)
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    index,
                    field,
                    code,
                    message,
                    retryable: false,
                }),
            }
        }
    }
    plan
}

/// What resolving a plan against stored state produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolution {
    /// New entity states, one per entity, in first-touched order.
    pub writes: Vec<EntityWrite>,
    /// Items taken as sent (or already stored identically).
    pub accepted: Vec<AcceptedItem>,
    /// Items a conflict rule decided.
    pub conflicts: Vec<ConflictItem>,
}

impl UploadPlan {
    /// The entities the plan touches (to load before resolving).
    pub fn keys(&self) -> Vec<EntityKey> {
        let mut keys: Vec<EntityKey> = self.items.iter().map(Item::key).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Applies the merge rules against `loaded`; `at` is the commit time and
    /// `device` the uploader (settings' last-write-wins inputs).
    pub fn resolve(&self, loaded: &Loaded, at: DateTime<Utc>, device: &DeviceId) -> Resolution {
        let mut resolution = Resolution::default();
        // Current state per entity, as this batch has left it so far.
        let mut current: BTreeMap<EntityKey, Value> = loaded
            .entities
            .iter()
            .map(|(k, e)| (k.clone(), e.data.clone()))
            .collect();
        let mut order: Vec<EntityKey> = Vec::new();
        for item in &self.items {
            let key = item.key();
            let stored = current.get(&key);
            let (new_state, conflict) =
                resolve_item(item, stored, loaded.head.plan_version, at, device);
            let id = key.id.clone();
            match conflict {
                Some((resolution_code, message)) => resolution.conflicts.push(ConflictItem {
                    item_type: item.item_type(),
                    id,
                    resolution: resolution_code.into(),
                    message: message.into(),
                }),
                None => resolution.accepted.push(AcceptedItem {
                    item_type: item.item_type(),
                    id,
                }),
            }
            if let Some(state) = new_state {
                if !order.contains(&key) {
                    order.push(key.clone());
                }
                current.insert(key, state);
            }
        }
        resolution.writes = order
            .into_iter()
            .filter_map(|key| current.remove(&key).map(|data| EntityWrite { key, data }))
            .collect();
        resolution
    }
}

type Outcome = (Option<Value>, Option<(&'static str, &'static str)>);

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// One item against the entity's current state: the new state (if it changes)
/// and the conflict rule that decided, if any.
fn resolve_item(
    item: &Item,
    stored: Option<&Value>,
    plan_version: Option<u64>,
    at: DateTime<Utc>,
    device: &DeviceId,
) -> Outcome {
    match item {
        Item::Activity(incoming) => match stored
            .and_then(|v| serde_json::from_value::<Activity>(v.clone()).ok())
        {
            None => (Some(to_value(incoming)), None),
            Some(stored) => {
                let merge = merge_activity(&stored, incoming);
                let state = (merge.effect == MergeEffect::Updated).then(|| to_value(&merge.merged));
                let conflict = merge.objective_kept.then_some((
                    "objective_fields_kept",
                    "This activity was already recorded: its time, duration, distance and heart rate stay as first recorded; your notes, RPE and feeling were applied.",
                ));
                (state, conflict)
            }
        },
        Item::DailyMetric(incoming) => match stored
            .and_then(|v| serde_json::from_value::<DailyMetric>(v.clone()).ok())
        {
            None => (Some(to_value(incoming)), None),
            Some(stored) => {
                let (merged, effect) = merge_daily_metric(&stored, incoming);
                let lost = [
                    incoming.recovery_rating.is_some()
                        && incoming.recovery_rating != merged.recovery_rating,
                    incoming.sleep_hours.is_some() && incoming.sleep_hours != merged.sleep_hours,
                    incoming.soreness.is_some() && incoming.soreness != merged.soreness,
                ]
                .contains(&true);
                let state = (effect == MergeEffect::Updated).then(|| to_value(&merged));
                let conflict = lost.then_some((
                    "superseded_by_newer_check_in",
                    "A later check-in for this day was already recorded; its values were kept.",
                ));
                (state, conflict)
            }
        },
        Item::Setting(change) => {
            let incoming = SettingValue {
                key: change.key,
                value: change.value.clone(),
                changed_at: change.changed_at,
                received_at: at,
                device_id: device.to_string(),
            };
            match stored.and_then(|v| serde_json::from_value::<SettingValue>(v.clone()).ok()) {
                Some(stored) if stored.value == incoming.value => (None, None),
                Some(stored) if !setting_wins(&stored, &incoming) => (
                    None,
                    Some((
                        "superseded_by_newer_write",
                        "This setting was changed on another device at the same time; that value was kept.",
                    )),
                ),
                _ => (Some(to_value(&incoming)), None),
            }
        }
        Item::PlanAdjustment(adjustment) => {
            if let Some(stored) = stored {
                let same = serde_json::from_value::<PlanAdjustment>(strip_status(stored))
                    .ok()
                    .as_ref()
                    == Some(adjustment);
                return if same {
                    (None, None)
                } else {
                    (
                        None,
                        Some((
                            "id_already_used",
                            "A different reschedule with this id was already recorded; it was kept.",
                        )),
                    )
                };
            }
            let superseded = matches!((adjustment.plan_version, plan_version), (Some(asked), Some(current)) if asked < current);
            let mut state = to_value(adjustment);
            let status = if superseded {
                "superseded_by_adaptive_plan"
            } else {
                "pending"
            };
            state["status"] = json!(status);
            let conflict =
                superseded.then_some(("superseded_by_adaptive_plan", SUPERSEDED_PLAN_MESSAGE));
            (Some(state), conflict)
        }
    }
}

fn strip_status(stored: &Value) -> Value {
    let mut value = stored.clone();
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    value
}

pub(super) async fn upload(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let (request, hash): (UploadRequest, _) = json_request(req)?;
    let count = request.item_count();
    if count > MAX_BATCH_ITEMS {
        return Err(ApiError::PayloadTooLarge {
            code: "batch_too_large",
            message: format!(
                "an upload carries at most {MAX_BATCH_ITEMS} items in all four lists together, got {count}; split it into several uploads"
            ),
            field: None,
        });
    }
    let now = state.clock.now();
    let key = SyncRequestId(request.sync_request_id);
    let token = match claim(state.store.as_ref(), &caller.user_id, key, &hash, now).await? {
        Claim::Replay(body) => return Ok(Reply::raw(body)),
        Claim::Process(token) => token,
    };
    let result = process(state, caller, &request, key, &token, &hash, now).await;
    if result.is_err() {
        // Free the key so the client's retry is processed rather than told "in progress".
        if let Err(e) = state
            .store
            .release_request(&caller.user_id, key, &token)
            .await
        {
            tracing::warn!(error = %e, "could not release idempotency claim; it lapses by itself");
        }
    }
    result
}

async fn process(
    state: &AppState,
    caller: &Caller,
    request: &UploadRequest,
    key: SyncRequestId,
    token: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Reply, ApiError> {
    // The session is checked inside the commit transaction (open and not
    // expired), so a valid upload costs no separate read of it.
    let sync_id = SyncId(request.sync_id);
    let plan = plan_upload(request, now);
    let keys = plan.keys();
    for attempt in 0..MAX_COMMIT_ATTEMPTS {
        let loaded = state.store.load(&caller.user_id, &keys).await?;
        // Commit times never go backwards, whatever this Lambda's clock says.
        let at = loaded.head.last_at.map_or(now, |last| last.max(now));
        let resolution = plan.resolve(&loaded, at, &caller.device_id);
        let response = UploadResponse {
            accepted: resolution.accepted,
            conflicts: resolution.conflicts,
            processing_errors: plan.errors.clone(),
            server_timestamp: now,
        };
        let body = serde_json::to_string(&response).unwrap_or_default();
        let commit = Commit {
            base: loaded.head,
            at,
            writes: resolution.writes,
            device_id: Some(caller.device_id.clone()),
            plan_version: None,
            request: Some(RequestCompletion {
                key,
                claim: token.to_owned(),
                body_hash: hash.to_owned(),
                response: body.clone(),
                expires_at: now + Duration::seconds(IDEMPOTENCY_TTL_SECS),
            }),
            session: Some(sync_id),
            visit: Some(DeviceVisit::at(caller.device_id.clone(), now)),
        };
        match state.store.commit(&caller.user_id, &commit).await? {
            CommitOutcome::Committed { .. } => return Ok(Reply::raw(body)),
            CommitOutcome::HeadMoved => contention_backoff(attempt).await,
            CommitOutcome::ClaimLost => {
                return Err(ApiError::Conflict {
                    code: "request_in_progress",
                    message: "another request with this sync_request_id took over; retry to get its result".into(),
                });
            }
            CommitOutcome::SessionGone => {
                // Only now tell "closed" from "unknown or expired".
                let session = state.store.session(&caller.user_id, sync_id, now).await?;
                return Err(match session {
                    Some(session) if session.state != SessionState::Open => ApiError::Conflict {
                        code: "sync_session_closed",
                        message: "this sync session is already completed: call /sync/check for a new sync_id"
                            .into(),
                    },
                    _ => ApiError::unknown_session(),
                });
            }
        }
    }
    Err(StoreError::Contention.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredEntity;
    use chrono::TimeZone;

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
        assert_eq!(plan.items.len(), 1);
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
        let resolution = plan.resolve(&Loaded::default(), now(), &device);
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
        let resolution = plan.resolve(&loaded, now(), &DeviceId::parse("phone").unwrap());
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
            key: crate::domain::SettingKey::Units,
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
        let lower = plan.resolve(&loaded, now(), &DeviceId::parse("phone").unwrap());
        assert_eq!(lower.conflicts.len(), 1);
        assert!(lower.writes.is_empty());
        let higher = plan.resolve(&loaded, now(), &DeviceId::parse("watch").unwrap());
        assert_eq!(higher.writes.len(), 1);
        let later = plan.resolve(
            &loaded,
            now() + Duration::seconds(1),
            &DeviceId::parse("phone").unwrap(),
        );
        assert_eq!(later.writes.len(), 1);
    }
}
