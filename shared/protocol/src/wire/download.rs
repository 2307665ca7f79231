//! `GET /sync/download`: a page of server changes after the device's cursor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

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
    /// Why a full snapshot is sent (`no_cursor`, `cursor_too_old`, `cursor_ahead`).
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
