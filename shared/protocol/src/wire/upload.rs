//! `POST /sync/upload`: a batch of local changes, and where each item went.

use crate::validate::FieldErrorCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// `POST /sync/upload` body. Items stay raw JSON here so that one bad item is
/// reported on its own instead of failing the whole request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The session opened by `/sync/check`.
    pub sync_id: Uuid,
    /// Idempotency key (PRD 6.2).
    pub sync_request_id: Uuid,
    /// Activities.
    #[serde(default)]
    pub activities: Vec<Value>,
    /// Daily check-ins.
    #[serde(default)]
    pub daily_metrics: Vec<Value>,
    /// Settings changes.
    #[serde(default)]
    pub settings_changes: Vec<Value>,
    /// Reschedule requests.
    #[serde(default)]
    pub plan_adjustments: Vec<Value>,
}

impl UploadRequest {
    /// Items in all four lists.
    pub fn item_count(&self) -> usize {
        self.activities.len()
            + self.daily_metrics.len()
            + self.settings_changes.len()
            + self.plan_adjustments.len()
    }
}

/// The type of an uploaded item, as reported back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    /// From `activities`.
    Activity,
    /// From `daily_metrics`.
    DailyMetric,
    /// From `settings_changes`.
    SettingsChange,
    /// From `plan_adjustments`.
    PlanAdjustment,
    /// An ingested training plan.
    TrainingPlan,
    /// Ingested computed metrics.
    CalculatedMetrics,
    /// An ingested alert.
    Alert,
    /// An ingested alert withdrawal.
    AlertWithdrawal,
    /// An ingested coach's note.
    CoachNote,
}

/// An item the server took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedItem {
    /// Its type.
    #[serde(rename = "type")]
    pub item_type: ItemType,
    /// Its id (`date` for daily metrics, `key` for settings).
    pub id: String,
}

/// An item the server took but resolved against stored data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictItem {
    /// Its type.
    #[serde(rename = "type")]
    pub item_type: ItemType,
    /// Its id.
    pub id: String,
    /// What rule decided, e.g. `objective_fields_kept`, `superseded_by_newer_write`.
    pub resolution: String,
    /// A sentence for the user.
    pub message: String,
    /// The conflict-log entry, to review or undo (`/sync/conflicts/{conflict_id}/undo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_id: Option<Uuid>,
}

/// An item the server refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessingError {
    /// Its type.
    #[serde(rename = "type")]
    pub item_type: ItemType,
    /// Its id, when it had a readable one.
    pub id: Option<String>,
    /// Its position in its list.
    pub index: usize,
    /// The failing field (`""` for the whole item).
    pub field: String,
    /// Why, machine-readable.
    pub code: FieldErrorCode,
    /// Why, for a human.
    pub message: String,
    /// `false`: resending will fail again, drop it; `true`: a transient failure.
    pub retryable: bool,
}

impl ProcessingError {
    /// The entry for item `index` of a list of `item_type` (known by `id`) that failed with `error`.
    pub fn new(
        (item_type, index, id): (ItemType, usize, Option<String>),
        error: crate::validate::FieldError,
    ) -> Self {
        Self {
            item_type,
            id,
            index,
            field: error.field,
            code: error.code,
            message: error.message,
            retryable: false,
        }
    }
}

/// `POST /sync/upload` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResponse {
    /// Items stored (or already stored identically).
    pub accepted: Vec<AcceptedItem>,
    /// Items resolved by a conflict rule (also stored where the rule says so).
    pub conflicts: Vec<ConflictItem>,
    /// Items refused.
    pub processing_errors: Vec<ProcessingError>,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}
