//! [`PushProvider`] over HTTP: the local stand-in for SNS. Deliveries are
//! posted as JSON to a push receiver (`trainsync_infra::push_receiver`); an
//! endpoint is just `local:<platform>:<device>:<token>`, so nothing is
//! registered remotely.

use serde::{Deserialize, Serialize};

use super::{PushError, PushMessage, PushProvider, PushTarget};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::Platform;

/// What [`HttpPushProvider`] posts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushDelivery {
    /// The device and its endpoint.
    pub target: PushTarget,
    /// The push.
    pub message: PushMessage,
}

/// Posts each push to one receiver URL.
#[derive(Debug, Clone)]
pub struct HttpPushProvider {
    client: reqwest::Client,
    url: String,
}

impl HttpPushProvider {
    /// A provider posting to `url` (e.g. `http://127.0.0.1:9000/push`).
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
impl PushProvider for HttpPushProvider {
    async fn register(
        &self,
        _user: &UserId,
        device: &DeviceId,
        platform: Platform,
        token: &str,
        _existing: Option<&str>,
    ) -> Result<Option<String>, PushError> {
        let platform = match platform {
            Platform::Ios => "ios",
            Platform::Android => "android",
        };
        Ok(Some(format!("local:{platform}:{device}:{token}")))
    }

    async fn unregister(&self, _endpoint: &str) -> Result<(), PushError> {
        Ok(())
    }

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
