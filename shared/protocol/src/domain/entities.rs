//! The entities that travel through sync, as the client uploads them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::WorkoutId;

/// What kind of thing a change-log entry or stored entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A logged or imported workout.
    Activity,
    /// A daily check-in (recovery, sleep, soreness).
    DailyMetric,
    /// One user setting.
    Setting,
    /// A user-requested reschedule of a plan workout.
    PlanAdjustment,
    /// The backend's training plan (one per user).
    TrainingPlan,
    /// The backend's computed metrics (ACWR, ATL/CTL/TSB, readiness).
    CalculatedMetrics,
    /// An alert or notification raised by the backend.
    Alert,
    /// An automatic conflict resolution the user can review and undo (PRD 5.3).
    Conflict,
    /// A GPS track ready to fetch from `/sync/tracks/{activity_id}`.
    Track,
}

/// How urgently a change must reach a device (PRD 7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Static content and media: deferred on cellular.
    Low,
    /// Backend recommendations: plan, metrics, alerts, coach's notes.
    Medium,
    /// The user's own data.
    High,
}

impl EntityKind {
    /// Every kind, in a stable order.
    pub const ALL: [EntityKind; 9] = [
        EntityKind::Activity,
        EntityKind::DailyMetric,
        EntityKind::Setting,
        EntityKind::PlanAdjustment,
        EntityKind::TrainingPlan,
        EntityKind::CalculatedMetrics,
        EntityKind::Alert,
        EntityKind::Conflict,
        EntityKind::Track,
    ];

    /// How urgently changes of this kind travel (PRD 7.3).
    pub fn priority(self) -> Priority {
        match self {
            EntityKind::Activity
            | EntityKind::DailyMetric
            | EntityKind::Setting
            | EntityKind::PlanAdjustment
            | EntityKind::Conflict => Priority::High,
            EntityKind::TrainingPlan | EntityKind::CalculatedMetrics | EntityKind::Alert => {
                Priority::Medium
            }
            EntityKind::Track => Priority::Low,
        }
    }

    /// The kind's wire and key name.
    pub fn as_str(self) -> &'static str {
        // serde\'s name: one source for it. Every variant of a fieldless enum has one.
        crate::names::wire_name(&self).expect("a unit variant has a wire name")
    }

    /// Parses [`EntityKind::as_str`] back.
    pub fn parse(s: &str) -> Option<EntityKind> {
        crate::names::from_wire_name(s)
    }

    /// The label `/sync/check` uses to announce changes of this kind
    /// (the plan's label carries its version: `plan_v23`).
    pub fn update_label(self, plan_version: Option<u64>) -> String {
        match self {
            EntityKind::TrainingPlan => format!("plan_v{}", plan_version.unwrap_or(0)),
            EntityKind::CalculatedMetrics => "metrics_updated".into(),
            EntityKind::Alert => "alerts_new".into(),
            EntityKind::Activity => "activities_updated".into(),
            EntityKind::DailyMetric => "daily_metrics_updated".into(),
            EntityKind::Setting => "settings_updated".into(),
            EntityKind::PlanAdjustment => "plan_adjustments_updated".into(),
            EntityKind::Conflict => "conflicts_new".into(),
            EntityKind::Track => "tracks_available".into(),
        }
    }
}

/// Kinds of activity a user can log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityType {
    /// Running.
    Run,
    /// Cycling.
    Ride,
    /// Swimming.
    Swim,
    /// Walking.
    Walk,
    /// Strength training.
    Strength,
    /// Anything else.
    Other,
}

/// Where an activity's objective data came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivitySource {
    /// Typed in by the user.
    Manual,
    /// Recorded by a wearable; its objective metrics win over manual ones.
    Wearable,
}

/// A workout as the client uploads it (append-only, PRD 5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    /// Client-generated UUID.
    pub id: Uuid,
    /// What kind of workout.
    pub activity_type: ActivityType,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Duration in seconds, 1..=86400.
    pub duration_s: u32,
    /// Distance in metres, 0..=1 000 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
    /// Average heart rate, 25..=250 bpm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_hr: Option<u16>,
    /// Rating of perceived exertion, 1..=10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpe: Option<u8>,
    /// Free-text notes, at most 2000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// How it felt, 1..=5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feeling: Option<u8>,
    /// Manual log or wearable recording.
    pub source: ActivitySource,
    /// The recording device, e.g. `"Garmin Forerunner 265"` (wearable data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_device: Option<String>,
    /// The wearable platform's id of the recording (re-imports match on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Set by the server: the GPS track's summary, fetched in full from `/sync/tracks/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<TrackRef>,
    /// Set by the server: ids of duplicate logs merged into this record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<Uuid>,
    /// Set by the server: activities the user said are not duplicates of this one (an undone merge).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distinct_from: Vec<Uuid>,
}

impl Activity {
    /// The fields the server sets; a client's version never overrides them.
    pub const SERVER_FIELDS: [&'static str; 4] = ["id", "track", "merged_from", "distinct_from"];
}

/// A stored GPS track, as an activity refers to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackRef {
    /// Number of points.
    pub points: u32,
    /// Size of the binary track in bytes.
    pub bytes: u64,
    /// SHA-256 of the binary track (hex); also its `ETag`.
    pub sha256: String,
    /// Path to fetch it from.
    pub url: String,
}

/// What an entity's state becomes when it is removed: the change log carries
/// it to every device, which then drops its copy (or re-points it to `replaced_by`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Always `true`.
    pub deleted: bool,
    /// Why it was removed.
    pub reason: TombstoneReason,
    /// The id that now stands for it (a merged duplicate's survivor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// A merged duplicate's latest version as the user sent it under its own
    /// id after the merge (the edits went to the survivor); an undone merge
    /// gives it back to this record. Server-side only: downloads never show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub later_edit: Option<serde_json::Value>,
    /// The survivor's fields those later edits set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later_edit_fields: Vec<String>,
}

impl Tombstone {
    /// A tombstone for `reason`.
    pub fn new(reason: TombstoneReason, replaced_by: Option<String>) -> Self {
        Self {
            deleted: true,
            reason,
            replaced_by,
            later_edit: None,
            later_edit_fields: Vec::new(),
        }
    }

    /// Whether `other` removes the same record the same way (later edits aside).
    pub fn same_removal(&self, other: &Tombstone) -> bool {
        (self.deleted, self.reason, &self.replaced_by)
            == (other.deleted, other.reason, &other.replaced_by)
    }

    /// Reads a stored state as a tombstone, if it is one.
    pub fn of(data: &serde_json::Value) -> Option<Tombstone> {
        if data.get("deleted") != Some(&serde_json::Value::Bool(true)) {
            return None;
        }
        serde_json::from_value(data.clone()).ok()
    }
}

/// Why an entity was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TombstoneReason {
    /// A duplicate merged into another record (`replaced_by`).
    MergedDuplicate,
    /// An alert the backend withdrew.
    Withdrawn,
}

/// A daily check-in; one per user and date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyMetric {
    /// The day it describes.
    pub date: NaiveDate,
    /// Recovery rating, 1..=10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_rating: Option<u8>,
    /// Hours slept, 0..=24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_hours: Option<f64>,
    /// Soreness, 1..=10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soreness: Option<u8>,
    /// When the user submitted it on the device.
    pub submitted_at: DateTime<Utc>,
}

/// Settings a client may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingKey {
    /// `"YYYY-MM-DD"` or null.
    GoalRaceDate,
    /// A list of distinct weekdays, `"mon"` .. `"sun"`.
    AvailableTrainingDays,
    /// `"metric"` or `"imperial"`.
    Units,
    /// An IANA time-zone name such as `"Europe/Berlin"`.
    Timezone,
    /// `true` or `false`.
    NotificationsEnabled,
}

impl SettingKey {
    /// The key's wire name.
    pub fn as_str(self) -> &'static str {
        // serde\'s name: one source for it. Every variant of a fieldless enum has one.
        crate::names::wire_name(&self).expect("a unit variant has a wire name")
    }
}

/// One settings change from a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// Which setting.
    pub key: SettingKey,
    /// The new value; its shape depends on `key`.
    pub value: serde_json::Value,
    /// When the user changed it on the device.
    pub changed_at: DateTime<Utc>,
}

/// A setting's current value as stored and downloaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingValue {
    /// Which setting.
    pub key: SettingKey,
    /// Its value.
    pub value: serde_json::Value,
    /// When the user changed it on the device.
    pub changed_at: DateTime<Utc>,
    /// When the server received the winning write (last-write-wins clock).
    pub received_at: DateTime<Utc>,
    /// The device that wrote it (tie-breaker for equal `received_at`).
    pub device_id: String,
}

/// A user-initiated reschedule of a plan workout (the client never edits plan structure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanAdjustment {
    /// Client-generated UUID.
    pub id: Uuid,
    /// The workout to move.
    pub workout_id: WorkoutId,
    /// The date to move it to.
    pub new_date: NaiveDate,
    /// When the user asked on the device.
    pub requested_at: DateTime<Utc>,
    /// The plan version the device showed when the user asked (optional;
    /// used to detect requests made against a superseded plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_version: Option<u64>,
}
