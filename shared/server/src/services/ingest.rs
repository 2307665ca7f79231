//! The backend's way into a user's data: the Adaptive Training Engine and the
//! wearable pipeline publish plans, metrics, alerts, coach's notes and
//! wearable activities here. Same validation, conflict rules, change log and
//! gap-free cursor as client uploads; idempotent by `ingest_id` (7 days).
//! Served by the `sync-ingest` Lambda and the `trainsync ingest` command.

use crate::error::ApiError;
use crate::services::batch::{ValidatedBatch, apply_once};
use crate::services::commit::load_for;
use crate::services::commit::{Attempt, Committed, commit_time, commit_with_retry};
use crate::services::idempotency::body_hash;
use crate::services::idempotency::response_json;
use crate::store::{Commit, RequestCompletion, SyncStore};
use chrono::{DateTime, Utc};
use serde_json::Value;
use trainsync_protocol::domain::{Alert, CalculatedMetrics, SyncRequestId, TrackRef, UserId};
use trainsync_protocol::limits::MAX_INGEST_ITEMS;
use trainsync_protocol::plan::TrainingPlan;
use trainsync_protocol::rules::merge::Origin;
use trainsync_protocol::rules::resolve::{Change, CoachNote, Context, TrackReady};
use trainsync_protocol::track::{Track, encode};
use trainsync_protocol::validate::{FieldError, FieldErrorCode, parse_json, validate_item};
use trainsync_protocol::wire::ItemType;
use trainsync_protocol::wire::{IngestRequest, IngestResponse, WearableActivity};
use uuid::Uuid;

/// A validated ingest request: its items, and the GPS tracks to store first.
#[derive(Default)]
struct IngestPlan {
    items: ValidatedBatch,
    tracks: Vec<(Uuid, Track)>,
}

fn plan_ingest(request: &IngestRequest, now: DateTime<Utc>) -> IngestPlan {
    let mut plan = IngestPlan::default();
    let push = |plan: &mut IngestPlan, source, parsed: Result<Change, FieldError>| {
        plan.items.add(source, parsed)
    };
    let id_of = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_owned);
    if let Some(value) = &request.training_plan {
        let parsed = validate_item::<TrainingPlan>(value.clone(), now).map(Change::TrainingPlan);
        push(&mut plan, (ItemType::TrainingPlan, 0, None), parsed);
    }
    if let Some(value) = &request.calculated_metrics {
        let parsed = validate_item::<CalculatedMetrics>(value.clone(), now).map(Change::Metrics);
        push(&mut plan, (ItemType::CalculatedMetrics, 0, None), parsed);
    }
    for (i, value) in request.alerts.iter().enumerate() {
        let parsed = validate_item::<Alert>(value.clone(), now).map(Change::Alert);
        push(&mut plan, (ItemType::Alert, i, id_of(value, "id")), parsed);
    }
    for (i, value) in request.withdrawn_alerts.iter().enumerate() {
        let parsed = parse_json::<Uuid>(value.clone())
            .map_err(|e| FieldError {
                field: String::new(),
                message: format!("an alert id (UUID): {}", e.message),
                ..e
            })
            .map(Change::WithdrawAlert);
        let id = value.as_str().map(str::to_owned);
        push(&mut plan, (ItemType::AlertWithdrawal, i, id), parsed);
    }
    for (i, value) in request.coach_notes.iter().enumerate() {
        let parsed = validate_item::<CoachNote>(value.clone(), now).map(Change::CoachNote);
        push(
            &mut plan,
            (ItemType::CoachNote, i, id_of(value, "workout_id")),
            parsed,
        );
    }
    for (i, value) in request.activities.iter().enumerate() {
        let source = (ItemType::Activity, i, id_of(value, "external_id"));
        match validate_item::<WearableActivity>(value.clone(), now) {
            Ok(wearable) => {
                let activity = wearable.activity();
                let source = (source.0, source.1, Some(activity.id.to_string()));
                if let Some(track) = wearable.track {
                    plan.tracks.push((activity.id, track));
                }
                push(&mut plan, source, Ok(Change::Activity(activity)));
            }
            Err(e) => push(&mut plan, source, Err(e)),
        }
    }
    plan
}

/// Validates, applies and commits an ingest request; replays the stored
/// response for a repeated `ingest_id`. Recomputes the training load when
/// activities changed and the reference brain is on (`brain`).
pub async fn ingest(
    store: &dyn SyncStore,
    brain: bool,
    request: &IngestRequest,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let user = UserId::parse(&request.user_id).map_err(|e| {
        ApiError::bad_request("user_id", FieldErrorCode::InvalidValue, e.to_string())
    })?;
    let count = request.item_count();
    if count > MAX_INGEST_ITEMS {
        return Err(ApiError::batch_too_large(
            "an ingest call",
            count,
            MAX_INGEST_ITEMS,
        ));
    }
    let hash = body_hash(request)?;
    let key = SyncRequestId(request.ingest_id);
    let (user, hash) = (&user, hash.as_str());
    apply_once(store, brain, user, key, hash, now, |token| async move {
        process(store, user, request, key, &token, hash, now).await
    })
    .await
}

async fn process(
    store: &dyn SyncStore,
    user: &UserId,
    request: &IngestRequest,
    key: SyncRequestId,
    token: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<(String, usize), ApiError> {
    let mut plan = plan_ingest(request, now);
    // Tracks first: an activity never refers to a track that is not stored yet.
    for (activity_id, track) in std::mem::take(&mut plan.tracks) {
        let encoded = encode(&track);
        let info = store
            .put_track(user, &activity_id.to_string(), &encoded, now)
            .await?;
        let reference = TrackRef {
            points: track.points.len() as u32,
            bytes: info.bytes,
            sha256: info.sha256.clone(),
            url: format!("/sync/tracks/{activity_id}"),
        };
        for change in &mut plan.items.batch.changes {
            if let Change::Activity(a) = change
                && a.id == activity_id
            {
                a.track = Some(reference.clone());
            }
        }
        plan.items.batch.changes.push(Change::Track(TrackReady {
            activity_id,
            track: reference,
        }));
    }
    let plan = &plan;
    let committed = commit_with_retry(store, user, |_| async move {
        let loaded = load_for(store, user, &plan.items.batch).await?;
        let at = commit_time(&loaded.head, now);
        let ctx = Context {
            at,
            origin: Origin::Backend,
            device: None,
        };
        let (resolution, processing_errors) = plan.items.resolve(&loaded, ctx);
        let written = resolution.writes.len() as u64;
        let seqs = (written > 0).then(|| (loaded.head.seq + 1, loaded.head.seq + written));
        let response = IngestResponse {
            user_id: user.to_string(),
            accepted: resolution.accepted,
            conflicts: resolution.conflicts,
            processing_errors,
            plan_version: resolution.plan_version.or(loaded.head.plan_version),
            seqs,
            server_timestamp: now,
        };
        let body = response_json(&response)?;
        let commit = Commit {
            base: loaded.head,
            at,
            writes: resolution.writes,
            device_id: None,
            plan_version: resolution.plan_version,
            request: Some(RequestCompletion::new(key, token, hash, body.clone(), now)),
            session: None,
            conflicts: response.conflicts.len() as u32,
            visit: None,
        };
        tracing::info!(
            user_id = %user,
            accepted = response.accepted.len(),
            conflicts = response.conflicts.len(),
            refused = response.processing_errors.len(),
            "ingest decided"
        );
        Ok::<_, ApiError>(Attempt::Commit(
            Box::new(commit),
            (body, resolution.activities_written),
        ))
    })
    .await?;
    match committed {
        Committed::ClaimLost => Err(ApiError::claim_lost("ingest_id")),
        // Its activities may have changed: the training load is recomputed.
        Committed::Replayed(body) => Ok((body, plan.items.batch.activities().count())),
        other => Ok(other.into_done()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;
    use trainsync_protocol::domain::ActivityType;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
    }

    fn request(items: Value) -> IngestRequest {
        let mut body = json!({"user_id": "u", "ingest_id": Uuid::nil()});
        body.as_object_mut()
            .unwrap()
            .extend(items.as_object().unwrap().clone());
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn a_re_import_of_the_same_recording_gets_the_same_id() {
        let wearable = |device: &str| WearableActivity {
            id: None,
            activity_type: ActivityType::Run,
            started_at: now(),
            duration_s: 1800,
            distance_m: Some(5000.0),
            avg_hr: None,
            source_device: device.into(),
            external_id: "123".into(),
            track: None,
        };
        assert_eq!(
            wearable("garmin").activity_id(),
            wearable("garmin").activity_id()
        );
        assert_ne!(
            wearable("garmin").activity_id(),
            wearable("polar").activity_id()
        );
    }

    #[test]
    fn bad_items_are_refused_one_by_one_naming_the_field() {
        let plan = plan_ingest(
            &request(json!({
                "alerts": [{"id": Uuid::nil(), "kind": "injury_risk", "severity": "loud",
                            "title_key": "t", "body_key": "b", "created_at": now()}],
                "withdrawn_alerts": ["not-a-uuid", Uuid::nil()],
                "activities": [{"activity_type": "run", "started_at": now(), "duration_s": 0,
                                "source_device": "garmin", "external_id": "1"}],
                "calculated_metrics": {"as_of": "2025-06-01", "atl": 1, "ctl": 1, "tsb": 0,
                                       "readiness": 101,
                                       "provenance": {"algorithm": "x", "computed_at": now(),
                                                      "through_seq": 1, "activities": 1}}
            })),
            now(),
        );
        let fields: Vec<(ItemType, &str)> = plan
            .items
            .errors
            .iter()
            .map(|e| (e.item_type, e.field.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (ItemType::CalculatedMetrics, "readiness"),
                (ItemType::Alert, "severity"),
                (ItemType::AlertWithdrawal, ""),
                (ItemType::Activity, "duration_s"),
            ]
        );
        assert_eq!(
            plan.items.batch.changes,
            [Change::WithdrawAlert(Uuid::nil())]
        );
    }
}
