//! Wire types of the sync API: the JSON contract mobile clients are written
//! against. Field names are fixed; see `docs/openapi.yaml`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::validation::FieldErrorCode;

/// The network the device is on (PRD 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Wi-Fi: everything.
    Wifi,
    /// Cellular: high-priority data only once priorities exist.
    Cellular,
    /// Not known.
    #[default]
    Unknown,
}

/// `POST /sync/check` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Must equal the token's `sub`.
    pub user_id: String,
    /// If given, must equal the token's `device_id` claim.
    #[serde(default)]
    pub device_id: Option<String>,
    /// When the device last synced (PRD 4.3); a `cursor` is preferred.
    #[serde(default)]
    pub last_sync_timestamp: Option<DateTime<Utc>>,
    /// The last cursor the device applied.
    #[serde(default)]
    pub cursor: Option<String>,
    /// How many changes the device has queued.
    pub pending_changes_count: u32,
    /// The device's network.
    #[serde(default)]
    pub network: Option<Network>,
}

/// `POST /sync/check` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResponse {
    /// The session the following calls quote.
    pub sync_id: Uuid,
    /// Whether the server has changes after the device's position.
    pub has_updates: bool,
    /// What changed, e.g. `plan_v23`, `metrics_updated`, `alerts_new`.
    pub server_changes_available: Vec<String>,
    /// Whether the device may upload now.
    pub accepts_client_changes: bool,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
    /// The head of the user's change log at check time.
    pub cursor: String,
}

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
        error: crate::validation::FieldError,
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

/// `GET /sync/download` response. Entities carry their change-log `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloadResponse {
    /// The current training plan in full, if it changed in this page and the
    /// device's `plan_version` was not given, unknown or too old for a diff.
    pub training_plan: Option<Value>,
    /// The plan's changes from the device's `plan_version` to the current one (PRD 7.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_plan_diff: Option<crate::plan::PlanDiff>,
    /// The latest computed metrics, if they changed in this page.
    pub calculated_metrics: Option<Value>,
    /// Alerts changed in this page.
    pub alerts: Vec<Value>,
    /// Activities changed in this page.
    pub activities: Vec<Value>,
    /// Daily check-ins changed in this page.
    pub daily_metrics: Vec<Value>,
    /// Reschedule requests changed in this page.
    pub plan_adjustments: Vec<Value>,
    /// Settings changed in this page, key to value.
    pub settings: BTreeMap<String, Value>,
    /// Conflict-log entries changed in this page (PRD 5.3).
    #[serde(default)]
    pub conflicts: Vec<Value>,
    /// GPS tracks that became available (low priority: deferred on cellular).
    #[serde(default)]
    pub tracks: Vec<Value>,
    /// Entities removed (tombstones): drop the local copy, or re-point it to `replaced_by`.
    #[serde(default)]
    pub deleted: Vec<DeletedEntity>,
    /// This page belongs to a full snapshot: the device had no cursor, or one
    /// older than the change log keeps; replace local server data with it.
    #[serde(default)]
    pub resync_required: bool,
    /// Why a full snapshot is sent (`no_cursor`, `cursor_too_old`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_reason: Option<String>,
    /// Low-priority changes held back on cellular (delivered on the next Wi-Fi download).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred: Option<DeferredChanges>,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
    /// Quote as `since` next time.
    pub next_cursor: String,
    /// More pages follow right now.
    pub has_more: bool,
}

/// An entity removed from the user's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedEntity {
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: crate::domain::EntityKind,
    /// Its id.
    pub id: String,
    /// The change that removed it.
    pub seq: u64,
    /// Why.
    pub reason: crate::domain::TombstoneReason,
    /// The id that now stands for it (a merged duplicate's survivor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// What a cellular download held back (PRD 7.3/7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredChanges {
    /// Low-priority changes skipped in this page.
    pub in_page: u32,
    /// The cursor still owes low-priority changes (this page's or earlier ones).
    pub pending: bool,
    /// A sentence for logs and UI.
    pub message: String,
}

/// How a sync session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompleteStatus {
    /// Every step succeeded.
    Success,
    /// The device gave up; `error` says why.
    Failed,
}

/// `POST /sync/complete` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The session to close.
    pub sync_id: Uuid,
    /// The outcome.
    pub status: CompleteStatus,
    /// Optional idempotency key.
    #[serde(default)]
    pub sync_request_id: Option<Uuid>,
    /// What went wrong, for `failed` (at most 2000 characters).
    #[serde(default)]
    pub error: Option<String>,
    /// The cursor the device has applied (its acknowledged position).
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `POST /sync/complete` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteResponse {
    /// The session.
    pub sync_id: Uuid,
    /// Its final status (the first completion wins; a repeat reports it).
    pub status: CompleteStatus,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}

/// A device in `/sync/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The device.
    pub device_id: String,
    /// First authenticated call.
    pub first_seen_at: DateTime<Utc>,
    /// Latest authenticated call.
    pub last_seen_at: DateTime<Utc>,
    /// Latest successful `/sync/complete`.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The last cursor handed to it by a download.
    pub last_cursor: Option<String>,
    /// The last cursor it acknowledged in `/sync/complete`.
    pub acknowledged_cursor: Option<String>,
    /// Changes in the log after its last download cursor.
    pub pending_downloads: u64,
}

/// A session in `/sync/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// The session.
    pub sync_id: Uuid,
    /// The device that opened it.
    pub device_id: String,
    /// When `/sync/check` opened it.
    pub opened_at: DateTime<Utc>,
    /// `open`, `success` or `failed`.
    pub status: String,
    /// When it was completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// The device's error text, for failed sessions.
    pub error: Option<String>,
    /// Uploads made in it.
    pub uploads: u32,
    /// Conflicts its uploads met (automatic resolutions).
    #[serde(default)]
    pub conflicts: u32,
}

/// `GET /sync/status` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The caller.
    pub user_id: String,
    /// Cursor at the head of the change log.
    pub head_cursor: String,
    /// Number of changes ever committed for the user.
    pub head_seq: u64,
    /// Devices seen, most recent first.
    pub devices: Vec<DeviceStatus>,
    /// Recent sessions, newest first.
    pub recent_sessions: Vec<SessionStatus>,
    /// How many of `recent_sessions` are still open.
    pub open_sessions: u32,
    /// Share of `recent_sessions` with at least one conflict (PRD 11.1 conflict rate).
    #[serde(default)]
    pub conflict_rate: f64,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: String,
    /// A sentence for a human.
    pub message: String,
    /// The offending field, when one is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A conflict-log entry as `/sync/conflicts` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictEntry {
    /// The entry.
    #[serde(flatten)]
    pub record: crate::domain::ConflictRecord,
    /// Whether `POST /sync/conflicts/{id}/undo` would undo it now.
    pub undoable: bool,
}

/// `GET /sync/conflicts` response: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictsResponse {
    /// Entries of this page.
    pub conflicts: Vec<ConflictEntry>,
    /// Pass as `after` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}

/// `POST /sync/conflicts/{conflict_id}/undo` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndoResponse {
    /// The entry, now undone.
    pub conflict: ConflictEntry,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}

/// A device's platform: which push service reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Apple Push Notification service.
    Ios,
    /// Firebase Cloud Messaging.
    Android,
}

/// `PUT /devices/{device_id}` body: the calling device registers itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterDeviceRequest {
    /// `ios` or `android`.
    pub platform: Platform,
    /// The APNs / FCM token; `null` (or absent) when the user declined notifications.
    #[serde(default)]
    pub push_token: Option<String>,
    /// The app's version, e.g. `4.2.0`.
    pub app_version: String,
    /// The OS version, e.g. `17.4`.
    #[serde(default)]
    pub os_version: Option<String>,
    /// The network the device is on now.
    #[serde(default)]
    pub network: Option<Network>,
    /// The device's locale, e.g. `de-CH` (for localising pushes).
    #[serde(default)]
    pub locale: Option<String>,
}

/// Why a device was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// `DELETE /devices/{device_id}`: logged out.
    Logout,
    /// An already used refresh token was presented again (possible theft).
    RefreshTokenReuse,
}

/// A device as `GET /devices` and `PUT /devices/{device_id}` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    /// The device.
    pub device_id: String,
    /// Whether it is the device making the request.
    pub current: bool,
    /// Its platform, once registered.
    pub platform: Option<Platform>,
    /// App version at its last registration.
    pub app_version: Option<String>,
    /// OS version at its last registration.
    pub os_version: Option<String>,
    /// Network at its last registration.
    pub network: Option<Network>,
    /// Locale at its last registration.
    pub locale: Option<String>,
    /// Whether critical alerts are pushed to it.
    pub push_enabled: bool,
    /// When it first registered.
    pub registered_at: Option<DateTime<Utc>>,
    /// First authenticated call.
    pub first_seen_at: DateTime<Utc>,
    /// Latest authenticated call.
    pub last_seen_at: DateTime<Utc>,
    /// Latest successful `/sync/complete`.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Whether it is logged out: its tokens are refused.
    pub revoked: bool,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked.
    pub revoked_reason: Option<RevokeReason>,
}

/// `GET /devices` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevicesResponse {
    /// The user's devices, most recently seen first.
    pub devices: Vec<DeviceView>,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}

/// `POST /auth/refresh` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token last issued to the device.
    pub refresh_token: String,
}

/// A device's token pair (login and `POST /auth/refresh`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// The JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives (24 hours).
    pub expires_in: i64,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// Exchange it once at `POST /auth/refresh`; it then stops working.
    pub refresh_token: String,
    /// When the refresh token expires if unused.
    pub refresh_expires_at: DateTime<Utc>,
}
