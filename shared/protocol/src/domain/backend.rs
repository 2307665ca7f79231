//! What the backend publishes into a user's change log: alerts and computed metrics.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How serious an alert is; `critical` alerts are also pushed (PRD 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For information.
    Info,
    /// Worth attention.
    Warning,
    /// Act now (injury risk, illness protocol): pushed to every device.
    Critical,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Training load rose too fast (ACWR).
    InjuryRisk,
    /// A recovery week starts.
    RecoveryWeek,
    /// Illness reported or suspected: follow the illness protocol.
    IllnessProtocol,
    /// Anything else the backend notifies.
    Notification,
}

/// An alert or notification (PRD 4.1 downstream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Its id (the backend's, or assigned on ingest).
    pub id: Uuid,
    /// What it is about.
    pub kind: AlertKind,
    /// How serious.
    pub severity: Severity,
    /// Localisation key of the title, e.g. `alert.injury_risk.title`.
    pub title_key: String,
    /// Localisation key of the body.
    pub body_key: String,
    /// Values the localised text interpolates (small; no health data beyond what the text shows).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// When the backend raised it.
    pub created_at: DateTime<Utc>,
    /// When it stops being relevant, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The backend's computed training metrics (PRD 4.1: ACWR, ATL/CTL/TSB, readiness).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalculatedMetrics {
    /// The day they describe.
    pub as_of: NaiveDate,
    /// Acute:chronic workload ratio (7-day over 28-day mean load); none without chronic load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acwr: Option<f64>,
    /// Acute training load (7-day exponentially weighted).
    pub atl: f64,
    /// Chronic training load (42-day exponentially weighted).
    pub ctl: f64,
    /// Training stress balance, CTL − ATL.
    pub tsb: f64,
    /// Readiness 0..=100, when the engine computes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<u8>,
    /// The injury-risk level the ACWR implies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<RiskLevel>,
    /// Where the numbers come from.
    pub provenance: MetricsProvenance,
}

/// What a set of metrics was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsProvenance {
    /// The algorithm and its version, e.g. `session-rpe-ewma-v1`.
    pub algorithm: String,
    /// When they were computed.
    pub computed_at: DateTime<Utc>,
    /// The most recent activity (by start time) they include.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_id: Option<Uuid>,
    /// The change-log position (sequence) whose activities they include.
    pub through_seq: u64,
    /// Activities counted.
    pub activities: u32,
}

/// Injury-risk band of an ACWR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// ACWR at most 1.3, or unknown.
    Normal,
    /// ACWR above 1.3, up to 1.5.
    Warning,
    /// ACWR above 1.5.
    Critical,
}
