//! Critical-alert pushes (PRD 6.3): which change-log entries the stream
//! fan-out pushes, and what a push carries. A push names the alert and the
//! change-log position it entered at, so the app knows which download holds
//! it and never shows it twice; it carries no health data beyond the
//! notification's localisation keys (PRD 8.2).

use aws_lambda_events::event::dynamodb::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cursor::Cursor;
use crate::domain::{Alert, AlertKind, EntityKind, Severity, UserId};
use crate::store::dynamo::stream::change_from_image;
use crate::store::{StoreError, StoredEntity};

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

/// The push for a change-log entry, if it is a critical alert.
pub fn push_for(user: &UserId, change: &StoredEntity) -> Option<PushMessage> {
    if change.key.kind != EntityKind::Alert {
        return None;
    }
    let alert: Alert = serde_json::from_value(change.data.clone()).ok()?;
    (alert.severity == Severity::Critical).then(|| PushMessage {
        alert_id: alert.id,
        kind: alert.kind,
        title_key: alert.title_key,
        body_key: alert.body_key,
        seq: change.seq,
        cursor: Cursor::Log { seq: change.seq }.encode(user.as_str()),
    })
}

/// One stream record as the fan-out sees it.
#[derive(Debug)]
pub struct StreamAlert {
    /// The record's sequence number (what a partial batch failure reports).
    pub sequence_number: Option<String>,
    /// The user and push, `None` for records that are not newly inserted
    /// critical alerts, or why the record could not be read.
    pub push: Result<Option<(UserId, PushMessage)>, StoreError>,
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
                change_from_image(record.change.new_image).map(|change| {
                    change.and_then(|(user, change)| {
                        push_for(&user, &change).map(|push| (user, push))
                    })
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
/// push receiver's URL locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTarget {
    /// The device.
    pub device_id: String,
    /// Its push endpoint.
    pub endpoint: String,
}

/// Why a push was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Worth retrying later (throttled, provider down, timeout).
    #[error("push failed, retry later: {0}")]
    Retryable(String),
    /// The endpoint is gone or disabled: drop it until the device registers again.
    #[error("push endpoint is gone: {0}")]
    Gone(String),
    /// Refused for good (a bad payload or endpoint); retrying cannot help.
    #[error("push refused: {0}")]
    Rejected(String),
}

/// Sends one push to one device (SNS mobile push in production; an HTTP
/// push receiver locally and in tests).
#[async_trait::async_trait]
pub trait PushSender: Send + Sync {
    /// Delivers `message` to `target`.
    async fn send(&self, target: &PushTarget, message: &PushMessage) -> Result<(), PushError>;
}

/// What [`HttpPushSender`] posts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushDelivery {
    /// The device and its endpoint.
    pub target: PushTarget,
    /// The push.
    pub message: PushMessage,
}

/// [`PushSender`] over HTTP: posts a [`PushDelivery`] as JSON to a push
/// receiver (the local stand-in for SNS).
#[derive(Debug, Clone)]
pub struct HttpPushSender {
    client: reqwest::Client,
    url: String,
}

impl HttpPushSender {
    /// A sender posting to `url` (e.g. `http://127.0.0.1:9000/push`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            url: url.into(),
        }
    }
}

#[async_trait::async_trait]
impl PushSender for HttpPushSender {
    async fn send(&self, target: &PushTarget, message: &PushMessage) -> Result<(), PushError> {
        let delivery = PushDelivery {
            target: target.clone(),
            message: message.clone(),
        };
        let response = self
            .client
            .post(&self.url)
            .json(&delivery)
            .send()
            .await
            .map_err(|e| PushError::Retryable(e.to_string()))?;
        let status = response.status();
        match status.as_u16() {
            200..=299 => Ok(()),
            404 | 410 => Err(PushError::Gone(format!("receiver answered {status}"))),
            408 | 429 | 500..=599 => {
                Err(PushError::Retryable(format!("receiver answered {status}")))
            }
            _ => Err(PushError::Rejected(format!("receiver answered {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream batch as Lambda delivers it: a critical alert insert, a
    /// warning alert, an entity-state item, and a MODIFY of an alert.
    const EVENT: &str = include_str!("../tests/fixtures/stream-alerts.json");

    #[test]
    fn only_inserted_critical_alerts_are_pushed() {
        let event: Event = serde_json::from_str(EVENT).expect("a DynamoDB stream event");
        let alerts = pushes_in(event);
        assert_eq!(alerts.len(), 4);
        let pushed: Vec<(&str, u64)> = alerts
            .iter()
            .filter_map(|a| a.push.as_ref().ok()?.as_ref())
            .map(|(user, push)| (user.as_str(), push.seq))
            .collect();
        assert_eq!(pushed, [("runner-1", 41)]);
        let (user, push) = alerts[0].push.as_ref().unwrap().as_ref().unwrap();
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
}
