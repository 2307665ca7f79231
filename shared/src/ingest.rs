//! The backend's way into a user's data: the Adaptive Training Engine and the
//! wearable pipeline publish plans, metrics, alerts, coach's notes and
//! wearable activities here. Same validation, conflict rules, change log and
//! gap-free cursor as client uploads; idempotent by `ingest_id` (7 days).
//! Served by the `sync-ingest` Lambda and the `trainsync ingest` command.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::apply::load_for;
use crate::brain;
use crate::domain::{
    Activity, ActivitySource, ActivityType, Alert, CalculatedMetrics, SyncRequestId, TrackRef,
    UserId,
};
use crate::error::ApiError;
use crate::idempotency::{Once, body_hash, once};
use crate::limits::{IDEMPOTENCY_TTL_SECS, MAX_INGEST_ITEMS};
use crate::merge::Origin;
use crate::plan::TrainingPlan;
use crate::protocol::{AcceptedItem, ConflictItem, ItemType, ProcessingError};
use crate::publish::MAX_COMMIT_ATTEMPTS;
use crate::reference::PublishOutcome;
use crate::resolve::{Batch, Change, CoachNote, Context, TrackReady};
use crate::state::AppState;
use crate::store::{Commit, CommitOutcome, RequestCompletion, StoreError, contention_backoff};
use crate::track::{Track, encode};
use crate::validation::{FieldError, FieldErrorCode, Validate, parse_json, validate_item};

/// One ingest call: the backend's writes for one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// The user the data belongs to.
    pub user_id: String,
    /// Idempotency key: a retried call with the same id and body applies once.
    pub ingest_id: Uuid,
    /// A new full training plan (the server assigns its version).
    #[serde(default)]
    pub training_plan: Option<Value>,
    /// Newly computed metrics.
    #[serde(default)]
    pub calculated_metrics: Option<Value>,
    /// Alerts and notifications.
    #[serde(default)]
    pub alerts: Vec<Value>,
    /// Ids of alerts to withdraw (they reach devices as tombstones).
    #[serde(default)]
    pub withdrawn_alerts: Vec<Value>,
    /// Coach's notes for upcoming workouts.
    #[serde(default)]
    pub coach_notes: Vec<Value>,
    /// Wearable activities.
    #[serde(default)]
    pub activities: Vec<Value>,
}

impl IngestRequest {
    /// Items in all lists together.
    pub fn item_count(&self) -> usize {
        usize::from(self.training_plan.is_some())
            + usize::from(self.calculated_metrics.is_some())
            + self.alerts.len()
            + self.withdrawn_alerts.len()
            + self.coach_notes.len()
            + self.activities.len()
    }
}

/// A wearable activity as the wearable pipeline sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WearableActivity {
    /// Our id for it; derived from `source_device` and `external_id` when absent,
    /// so a re-import of the same recording updates rather than duplicates.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// What kind of workout.
    pub activity_type: ActivityType,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Duration in seconds.
    pub duration_s: u32,
    /// Distance in metres.
    #[serde(default)]
    pub distance_m: Option<f64>,
    /// Average heart rate.
    #[serde(default)]
    pub avg_hr: Option<u16>,
    /// The recording device, e.g. `"Garmin Forerunner 265"`.
    pub source_device: String,
    /// The platform's id of the recording.
    pub external_id: String,
    /// The full GPS track; stored apart, fetched on demand.
    #[serde(default)]
    pub track: Option<Track>,
}

impl WearableActivity {
    /// The activity id: the given one, or one derived from device and external id.
    pub fn activity_id(&self) -> Uuid {
        self.id.unwrap_or_else(|| {
            let digest = Sha256::digest(format!("{}\n{}", self.source_device, self.external_id));
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&digest[..16]);
            uuid::Builder::from_custom_bytes(bytes).into_uuid()
        })
    }

    fn activity(&self) -> Activity {
        Activity {
            id: self.activity_id(),
            activity_type: self.activity_type,
            started_at: self.started_at,
            duration_s: self.duration_s,
            distance_m: self.distance_m,
            avg_hr: self.avg_hr,
            rpe: None,
            notes: None,
            feeling: None,
            source: ActivitySource::Wearable,
            source_device: Some(self.source_device.clone()),
            external_id: Some(self.external_id.clone()),
            track: None,
            merged_from: Vec::new(),
            distinct_from: Vec::new(),
        }
    }
}

impl Validate for WearableActivity {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        self.activity().validate(now)?;
        if let Some(track) = &self.track {
            track.validate(now).map_err(|e| FieldError {
                field: format!("track.{}", e.field),
                ..e
            })?;
        }
        Ok(())
    }
}

impl Validate for CalculatedMetrics {
    fn validate(&self, _now: DateTime<Utc>) -> Result<(), FieldError> {
        let finite = [
            ("atl", Some(self.atl)),
            ("ctl", Some(self.ctl)),
            ("tsb", Some(self.tsb)),
            ("acwr", self.acwr),
        ];
        for (field, value) in finite {
            if value.is_some_and(|v| !v.is_finite() || v.abs() > 100_000.0) {
                return Err(FieldError::new(
                    field,
                    FieldErrorCode::OutOfRange,
                    format!("{field} must be a finite number of reasonable size"),
                ));
            }
        }
        if self.readiness.is_some_and(|r| r > 100) {
            return Err(FieldError::new(
                "readiness",
                FieldErrorCode::OutOfRange,
                "readiness must be between 0 and 100",
            ));
        }
        Ok(())
    }
}

impl Validate for Alert {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        crate::validation::check_timestamp("created_at", self.created_at, now)?;
        for (field, key) in [("title_key", &self.title_key), ("body_key", &self.body_key)] {
            if key.is_empty() || key.len() > 128 {
                return Err(FieldError::new(
                    field,
                    FieldErrorCode::OutOfRange,
                    format!("{field} must have 1 to 128 characters"),
                ));
            }
        }
        if serde_json::to_vec(&self.params).map_or(0, |v| v.len()) > 1024 {
            return Err(FieldError::new(
                "params",
                FieldErrorCode::TooLong,
                "params must stay under 1 KiB (notifications carry no health data)",
            ));
        }
        Ok(())
    }
}

impl Validate for CoachNote {
    fn validate(&self, _now: DateTime<Utc>) -> Result<(), FieldError> {
        let chars = self.note.as_deref().map_or(0, |n| n.chars().count());
        if chars > crate::limits::MAX_NOTES_CHARS {
            return Err(FieldError::new(
                "note",
                FieldErrorCode::TooLong,
                format!(
                    "note must be at most {} characters",
                    crate::limits::MAX_NOTES_CHARS
                ),
            ));
        }
        Ok(())
    }
}

/// The outcome of an ingest call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestResponse {
    /// The user.
    pub user_id: String,
    /// Items stored.
    pub accepted: Vec<AcceptedItem>,
    /// Items a conflict rule decided (e.g. a wearable run merged with a manual log).
    pub conflicts: Vec<ConflictItem>,
    /// Items refused, each naming its field.
    pub processing_errors: Vec<ProcessingError>,
    /// The user's plan version after this call.
    pub plan_version: Option<u64>,
    /// The change-log sequence numbers written, first and last.
    pub seqs: Option<(u64, u64)>,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}

/// A validated ingest request.
struct IngestPlan {
    batch: Batch,
    sources: Vec<(ItemType, usize, Option<String>)>,
    tracks: Vec<(Uuid, Track)>,
    errors: Vec<ProcessingError>,
}

fn plan_ingest(request: &IngestRequest, now: DateTime<Utc>) -> IngestPlan {
    let mut plan = IngestPlan {
        batch: Batch::default(),
        sources: Vec::new(),
        tracks: Vec::new(),
        errors: Vec::new(),
    };
    let push = |plan: &mut IngestPlan, source, parsed: Result<Change, FieldError>| match parsed {
        Ok(change) => {
            plan.batch.changes.push(change);
            plan.sources.push(source);
        }
        Err(e) => plan.errors.push(ProcessingError::new(source, e)),
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
            Err(e) => plan.errors.push(ProcessingError::new(source, e)),
        }
    }
    plan
}

/// Validates, applies and commits an ingest request; replays the stored
/// response for a repeated `ingest_id`. Recomputes the training load when
/// activities changed (the reference brain).
pub async fn ingest(state: &AppState, request: &IngestRequest) -> Result<String, ApiError> {
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
    let now = state.clock.now();
    let hash = body_hash(&serde_json::to_value(request).unwrap_or(Value::Null));
    let key = SyncRequestId(request.ingest_id);
    let store = state.store.as_ref();
    let (user, hash) = (&user, hash.as_str());
    let outcome = once(store, user, key, hash, now, |token| async move {
        process(state, user, request, key, &token, hash, now).await
    })
    .await?;
    match outcome {
        Once::Replay(body) => Ok(body),
        Once::Done((body, activities_written)) => {
            brain::after_commit(state, user, activities_written).await;
            Ok(body)
        }
    }
}

async fn process(
    state: &AppState,
    user: &UserId,
    request: &IngestRequest,
    key: SyncRequestId,
    token: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<(String, usize), ApiError> {
    let mut plan = plan_ingest(request, now);
    let store = state.store.as_ref();
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
        for change in &mut plan.batch.changes {
            if let Change::Activity(a) = change
                && a.id == activity_id
            {
                a.track = Some(reference.clone());
            }
        }
        plan.batch.changes.push(Change::Track(TrackReady {
            activity_id,
            track: reference,
        }));
    }
    for attempt in 0..MAX_COMMIT_ATTEMPTS {
        let loaded = load_for(store, user, &plan.batch).await?;
        let at = loaded.head.last_at.map_or(now, |last| last.max(now));
        let ctx = Context {
            at,
            origin: Origin::Backend,
            device: None,
        };
        let resolution = plan.batch.resolve(&loaded, ctx);
        let mut processing_errors = plan.errors.clone();
        for refusal in &resolution.refused {
            if let Some(source) = plan.sources.get(refusal.index) {
                processing_errors.push(ProcessingError::new(source.clone(), refusal.error.clone()));
            }
        }
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
        let body = serde_json::to_string(&response).unwrap_or_default();
        let commit = Commit {
            base: loaded.head,
            at,
            writes: resolution.writes,
            device_id: None,
            plan_version: resolution.plan_version,
            request: Some(RequestCompletion {
                key,
                claim: token.to_owned(),
                body_hash: hash.to_owned(),
                response: body.clone(),
                expires_at: now + Duration::seconds(IDEMPOTENCY_TTL_SECS),
            }),
            session: None,
            conflicts: response.conflicts.len() as u32,
            visit: None,
        };
        match store.commit(user, &commit).await? {
            CommitOutcome::Committed { .. } => {
                tracing::info!(
                    user_id = %user,
                    accepted = response.accepted.len(),
                    conflicts = response.conflicts.len(),
                    refused = response.processing_errors.len(),
                    "ingest committed"
                );
                return Ok((body, resolution.activities_written));
            }
            CommitOutcome::HeadMoved => contention_backoff(attempt).await,
            CommitOutcome::ClaimLost => {
                return Err(ApiError::Conflict {
                    code: "request_in_progress",
                    message: "another call with this ingest_id took over; retry to get its result"
                        .into(),
                });
            }
            CommitOutcome::SessionGone => {
                return Err(StoreError::Other("ingest commits have no session".into()).into());
            }
        }
    }
    Err(StoreError::Contention.into())
}

/// What the `sync-ingest` Lambda is invoked with (directly, or as the detail of
/// an EventBridge event): one user's data, or a shared reference-data snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IngestEvent {
    /// Plans, metrics, alerts, coach's notes, wearable activities for one user.
    UserData(IngestRequest),
    /// A new version of the reference data common to all users.
    ReferenceData(crate::reference::ReferenceSnapshot),
}

/// Handles one ingest event: the JSON answer, or an error worth retrying
/// (storage unavailable). Errors a retry cannot fix are answered as
/// `{"error": {...}}` so the invoker does not retry them forever.
pub async fn handle_event(state: &AppState, event: Value) -> Result<Value, ApiError> {
    let now = state.clock.now();
    let answer = |result: Result<Value, ApiError>| match result {
        Ok(value) => Ok(value),
        // Retrying helps these: storage trouble, or the same ingest_id still in flight.
        Err(e @ ApiError::Unavailable(_)) => Err(e),
        Err(
            e @ ApiError::Conflict {
                code: "request_in_progress",
                ..
            },
        ) => Err(e),
        Err(e) => {
            let reply = crate::http::error_reply(&e, now);
            Ok(reply
                .json_text()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or(Value::Null))
        }
    };
    // An EventBridge rule delivers the event as `detail` of its envelope.
    let event = match event {
        Value::Object(mut envelope)
            if envelope.contains_key("detail-type") && envelope.contains_key("detail") =>
        {
            envelope.remove("detail").unwrap_or(Value::Null)
        }
        other => other,
    };
    let event: IngestEvent = match parse_json(event) {
        Ok(event) => event,
        Err(e) => return answer(Err(ApiError::BadRequest(e))),
    };
    answer(match event {
        IngestEvent::UserData(request) => ingest(state, &request)
            .await
            .map(|body| serde_json::from_str(&body).unwrap_or(Value::Null)),
        IngestEvent::ReferenceData(snapshot) => {
            match state.store.publish_reference(&snapshot, now).await {
                Ok(outcome) => reference_answer(outcome),
                Err(e) => Err(e.into()),
            }
        }
    })
}

fn reference_answer(outcome: PublishOutcome) -> Result<Value, ApiError> {
    let published = |status: &str, version: u64| {
        Ok(serde_json::json!({ "reference": { "status": status, "version": version } }))
    };
    match outcome {
        PublishOutcome::Published { version } => published("published", version),
        PublishOutcome::AlreadyPublished { version } => published("already_published", version),
        PublishOutcome::VersionConflict { version } => Err(ApiError::Conflict {
            code: "reference_version_conflict",
            message: format!(
                "reference version {version} was already published with other entries"
            ),
        }),
        PublishOutcome::Stale { version, latest } => Err(ApiError::Conflict {
            code: "reference_version_stale",
            message: format!("reference version {version} is not newer than version {latest}"),
        }),
        PublishOutcome::Invalid(e) => Err(ApiError::BadRequest(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

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
        assert_eq!(plan.batch.changes, [Change::WithdrawAlert(Uuid::nil())]);
    }
}
