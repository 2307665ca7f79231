//! The ingest Lambda's contract: what the training engine, the wearable pipeline and the
//! reference-data publisher send (`IngestEvent`) and what they get back.

use crate::domain::{Activity, ActivitySource, ActivityType};
use crate::track::Track;
use crate::validate::{FieldError, Validate};
use crate::wire::{AcceptedItem, ConflictItem, ProcessingError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

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

    /// The activity record this recording becomes.
    pub fn activity(&self) -> Activity {
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
