//! Critical-alert pushes (PRD 6.3): which change-log entries the stream
//! fan-out pushes, and what a push carries. A push names the alert and the
//! change-log position it entered at, so the app knows which download holds
//! it and never shows it twice; it carries no health data beyond the
//! notification's localisation keys (PRD 8.2).

mod http;
mod sns;

use aws_lambda_events::event::dynamodb::Event;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::dynamo::stream::change_from_image;
use crate::store::{StoreError, StoredEntity};
pub use http::{HttpPushProvider, PushDelivery};
pub use sns::SnsPushProvider;
use trainsync_protocol::cursor::Cursor;
use trainsync_protocol::domain::{
    Alert, AlertKind, DeviceId, EntityKind, Severity, Tombstone, UserId,
};
use trainsync_protocol::wire::Platform;

/// What one push to one device says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushMessage {
    /// The alert.
    pub alert_id: Uuid,
    /// What it is about.
    pub kind: AlertKind,
    /// Localisation key of the title.
    pub title_key: String,
    /// Localisation key of the body.
    pub body_key: String,
    /// The change-log sequence the alert entered at.
    pub seq: u64,
    /// A download cursor at that position: a device whose cursor has reached
    /// it already holds the alert.
    pub cursor: String,
}

/// The push for a change-log entry, if it is a critical alert. An alert
/// entry that does not parse is corrupt: an error (the record goes to the
/// failure queue), never a silently skipped push.
pub fn push_for(user: &UserId, change: &StoredEntity) -> Result<Option<PushMessage>, StoreError> {
    if change.key.kind != EntityKind::Alert {
        return Ok(None);
    }
    if Tombstone::of(&change.data).is_some() {
        return Ok(None);
    }
    let alert: Alert = serde_json::from_value(change.data.clone())
        .map_err(|e| StoreError::Corrupt(format!("alert {}: {e}", change.key)))?;
    Ok((alert.severity == Severity::Critical).then(|| PushMessage {
        alert_id: alert.id,
        kind: alert.kind,
        title_key: alert.title_key,
        body_key: alert.body_key,
        seq: change.seq,
        cursor: Cursor::Log { seq: change.seq }.encode(user.as_str()),
    }))
}

/// A critical alert to push to a user's devices.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPush {
    /// Whose alert it is.
    pub user: UserId,
    /// When it entered the change log: devices registered later do not get it.
    pub committed_at: DateTime<Utc>,
    /// What each device is sent.
    pub message: PushMessage,
}

/// One stream record as the fan-out sees it.
#[derive(Debug)]
pub struct StreamAlert {
    /// The record's sequence number (what a partial batch failure reports).
    pub sequence_number: Option<String>,
    /// The push, `None` for records that are not newly inserted critical
    /// alerts, or why the record could not be read.
    pub push: Result<Option<AlertPush>, StoreError>,
}

/// The pushes a stream batch asks for, in stream order. The event source
/// mapping's filter already passes only critical-alert inserts; this checks
/// again, so a record let through by a looser filter is never pushed.
pub fn pushes_in(event: Event) -> Vec<StreamAlert> {
    event
        .records
        .into_iter()
        .map(|record| {
            let sequence_number = record.change.sequence_number.clone();
            let push = if record.event_name == "INSERT" {
                change_from_image(record.change.new_image).and_then(|change| {
                    let Some((user, change)) = change else {
                        return Ok(None);
                    };
                    Ok(push_for(&user, &change)?.map(|message| AlertPush {
                        committed_at: change.updated_at,
                        user,
                        message,
                    }))
                })
            } else {
                Ok(None)
            };
            StreamAlert {
                sequence_number,
                push,
            }
        })
        .collect()
}

/// Where one device's pushes go: an SNS platform endpoint in production, a
/// push receiver's address locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTarget {
    /// The device.
    pub device_id: String,
    /// Its push endpoint.
    pub endpoint: String,
}

/// Why a push (or an endpoint change) did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Worth retrying later (throttled, provider down, timeout).
    #[error("push failed, retry later: {0}")]
    Retryable(String),
    /// The endpoint is gone or disabled: drop it until the device registers again.
    #[error("push endpoint is gone: {0}")]
    Gone(String),
    /// Refused for good (a bad payload, token or endpoint); retrying cannot help.
    #[error("push refused: {0}")]
    Rejected(String),
}

/// A mobile push service: creates a device's endpoint from its token, removes
/// it, and sends to it. SNS mobile push in production; an HTTP push receiver
/// locally and in tests.
#[async_trait::async_trait]
pub trait PushProvider: Send + Sync + std::fmt::Debug {
    /// The endpoint for a device's push `token`, reusing `existing` (its
    /// current endpoint) where the provider allows; `None` when this
    /// deployment pushes nothing to the device's platform.
    async fn register(
        &self,
        user: &UserId,
        device: &DeviceId,
        platform: Platform,
        token: &str,
        existing: Option<&str>,
    ) -> Result<Option<String>, PushError>;

    /// Removes an endpoint (a logged-out device, or a token withdrawn); gone already is fine.
    async fn unregister(&self, endpoint: &str) -> Result<(), PushError>;

    /// Delivers `message` to `target`.
    async fn send(&self, target: &PushTarget, message: &PushMessage) -> Result<(), PushError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream batch as Lambda delivers it: a critical alert insert, a
    /// warning alert, an entity-state item, and a MODIFY of an alert.
    const EVENT: &str = include_str!("../../tests/fixtures/stream-alerts.json");

    #[test]
    fn only_inserted_critical_alerts_are_pushed() {
        let event: Event = serde_json::from_str(EVENT).expect("a DynamoDB stream event");
        let alerts = pushes_in(event);
        assert_eq!(alerts.len(), 4);
        let pushed: Vec<(&str, u64)> = alerts
            .iter()
            .filter_map(|a| a.push.as_ref().ok()?.as_ref())
            .map(|p| (p.user.as_str(), p.message.seq))
            .collect();
        assert_eq!(pushed, [("runner-1", 41)]);
        let alert = alerts[0].push.as_ref().unwrap().as_ref().unwrap();
        let (user, push) = (&alert.user, &alert.message);
        assert_eq!(
            alerts[0].sequence_number.as_deref(),
            Some("4100000000000000000001")
        );
        assert_eq!(push.kind, AlertKind::InjuryRisk);
        assert_eq!(push.title_key, "alert.injury_risk.critical.title");
        assert_eq!(
            Cursor::decode(&push.cursor, user.as_str()),
            Ok(Cursor::Log { seq: 41 })
        );
        // No health data: the push has no `params` (the alert's ACWR value).
        let json = serde_json::to_value(push).unwrap();
        assert!(json.get("params").is_none());
    }

    #[test]
    fn a_corrupt_alert_entry_is_an_error_not_a_skipped_push() {
        let user = UserId::parse("someone").unwrap();
        let change = StoredEntity {
            key: crate::store::EntityKey::new(EntityKind::Alert, "a1"),
            seq: 3,
            updated_at: chrono::Utc::now(),
            data: serde_json::json!({"id": "not a uuid", "severity": "critical"}),
        };
        assert!(matches!(
            push_for(&user, &change),
            Err(StoreError::Corrupt(_))
        ));
    }
}
