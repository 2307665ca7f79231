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
}

impl EntityKind {
    /// Every kind, in a stable order.
    pub const ALL: [EntityKind; 7] = [
        EntityKind::Activity,
        EntityKind::DailyMetric,
        EntityKind::Setting,
        EntityKind::PlanAdjustment,
        EntityKind::TrainingPlan,
        EntityKind::CalculatedMetrics,
        EntityKind::Alert,
    ];

    /// The kind's wire and key name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Activity => "activity",
            EntityKind::DailyMetric => "daily_metric",
            EntityKind::Setting => "setting",
            EntityKind::PlanAdjustment => "plan_adjustment",
            EntityKind::TrainingPlan => "training_plan",
            EntityKind::CalculatedMetrics => "calculated_metrics",
            EntityKind::Alert => "alert",
        }
    }

    /// Parses [`EntityKind::as_str`] back.
    pub fn parse(s: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|k| k.as_str() == s)
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
        match self {
            SettingKey::GoalRaceDate => "goal_race_date",
            SettingKey::AvailableTrainingDays => "available_training_days",
            SettingKey::Units => "units",
            SettingKey::Timezone => "timezone",
            SettingKey::NotificationsEnabled => "notifications_enabled",
        }
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
