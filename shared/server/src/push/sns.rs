//! [`PushProvider`] on Amazon SNS mobile push: one platform endpoint per
//! device token (APNs for iOS, FCM for Android), created at registration and
//! deleted at logout. A push is one `Publish` to the endpoint, collapsed by
//! alert id so a rare repeat (a crash between send and ledger) shows once.

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::operation::create_platform_endpoint::CreatePlatformEndpointError;
use aws_sdk_sns::operation::delete_endpoint::DeleteEndpointError;
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::operation::set_endpoint_attributes::SetEndpointAttributesError;
use aws_sdk_sns::types::MessageAttributeValue;
use serde_json::json;

use super::{PushError, PushMessage, PushProvider, PushTarget};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_protocol::wire::Platform;

/// SNS mobile push with one platform application per platform.
#[derive(Debug, Clone)]
pub struct SnsPushProvider {
    client: Client,
    apns_application_arn: Option<String>,
    fcm_application_arn: Option<String>,
}

impl SnsPushProvider {
    /// A provider on `client` for the given platform applications.
    pub fn new(
        client: Client,
        apns_application_arn: Option<String>,
        fcm_application_arn: Option<String>,
    ) -> Self {
        Self {
            client,
            apns_application_arn,
            fcm_application_arn,
        }
    }

    fn application(&self, platform: Platform) -> Option<&str> {
        match platform {
            Platform::Ios => self.apns_application_arn.as_deref(),
            Platform::Android => self.fcm_application_arn.as_deref(),
        }
    }

    async fn create_endpoint(
        &self,
        application: &str,
        token: &str,
        owner: &str,
    ) -> Result<String, SdkError<CreatePlatformEndpointError>> {
        let out = self
            .client
            .create_platform_endpoint()
            .platform_application_arn(application)
            .token(token)
            .custom_user_data(owner)
            .send()
            .await?;
        Ok(out.endpoint_arn.unwrap_or_default())
    }
}

/// The `user/device` an endpoint belongs to (SNS `CustomUserData`).
fn owner(user: &UserId, device: &DeviceId) -> String {
    format!("{user}/{device}")
}

/// The endpoint SNS names when a token already has an endpoint with other
/// attributes (another owner of the phone): "Endpoint <arn> already exists ...".
fn existing_endpoint_in(message: &str) -> Option<&str> {
    let rest = message.split("Endpoint ").nth(1)?;
    rest.split_whitespace()
        .next()
        .filter(|arn| arn.starts_with("arn:"))
}

/// The `Publish` message (`MessageStructure = json`): an APNs and an FCM
/// payload with localisation keys only, plus the alert id, kind, seq and cursor.
pub fn sns_message(message: &PushMessage) -> String {
    let data = json!({
        "alert_id": message.alert_id,
        "kind": message.kind,
        "seq": message.seq.to_string(),
        "cursor": message.cursor,
    });
    let apns = json!({
        "aps": {
            "alert": {"title-loc-key": message.title_key, "loc-key": message.body_key},
            "sound": "default",
            "interruption-level": "time-sensitive",
        },
        "trainsync": data,
    })
    .to_string();
    let fcm = json!({
        "fcm": {"message": {
            "data": data,
            "android": {
                "priority": "high",
                "collapse_key": message.alert_id,
                "notification": {"title_loc_key": message.title_key, "body_loc_key": message.body_key},
            },
        }},
    })
    .to_string();
    json!({
        "default": message.title_key,
        "APNS": apns,
        "APNS_SANDBOX": apns,
        "GCM": fcm,
    })
    .to_string()
}

/// Maps an SNS error: a disabled or unknown endpoint is gone, throttling and
/// server faults are retryable, the rest is refused.
fn push_error<E>(err: SdkError<E>) -> PushError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = match err.as_service_error() {
        Some(e) => format!(
            "{}: {}",
            e.code().unwrap_or("error"),
            e.message().unwrap_or("")
        ),
        None => format!("{err}"),
    };
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            PushError::Retryable(text)
        }
        SdkError::ServiceError(e) => match e.err().code() {
            Some("EndpointDisabled" | "NotFound") => PushError::Gone(text),
            Some(
                "InternalError"
                | "Throttling"
                | "Throttled"
                | "ThrottlingException"
                | "KMSThrottling"
                | "ServiceUnavailable",
            ) => PushError::Retryable(text),
            _ if e.raw().status().is_server_error() => PushError::Retryable(text),
            _ => PushError::Rejected(text),
        },
        _ => PushError::Rejected(text),
    }
}

#[async_trait::async_trait]
impl PushProvider for SnsPushProvider {
    async fn register(
        &self,
        user: &UserId,
        device: &DeviceId,
        platform: Platform,
        token: &str,
        existing: Option<&str>,
    ) -> Result<Option<String>, PushError> {
        let owner = owner(user, device);
        // A platform this deployment has no application for gets no pushes.
        let Some(application) = self.application(platform) else {
            return Ok(None);
        };
        // AWS's recommended flow: update the device's endpoint in place when it has one.
        if let Some(endpoint) = existing {
            let updated = self
                .client
                .set_endpoint_attributes()
                .endpoint_arn(endpoint)
                .attributes("Token", token)
                .attributes("Enabled", "true")
                .attributes("CustomUserData", &owner)
                .send()
                .await;
            match updated {
                Ok(_) => return Ok(Some(endpoint.to_owned())),
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), SetEndpointAttributesError::NotFoundException(_)) => {}
                Err(err) => return Err(push_error(err)),
            }
        }
        match self.create_endpoint(application, token, &owner).await {
            Ok(arn) => Ok(Some(arn)),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    CreatePlatformEndpointError::InvalidParameterException(_)
                ) =>
            {
                // The token has an endpoint of another owner (the phone changed
                // hands without a logout): delete it, so the old owner's
                // pushes stop, and create ours.
                let Some(other) = e.err().message().and_then(existing_endpoint_in) else {
                    return Err(push_error(SdkError::ServiceError(e)));
                };
                self.unregister(other).await?;
                self.create_endpoint(application, token, &owner)
                    .await
                    .map(Some)
                    .map_err(push_error)
            }
            Err(err) => Err(push_error(err)),
        }
    }

    async fn unregister(&self, endpoint: &str) -> Result<(), PushError> {
        match self
            .client
            .delete_endpoint()
            .endpoint_arn(endpoint)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), DeleteEndpointError::InvalidParameterException(_)) =>
            {
                // Not an endpoint (any more): nothing to delete.
                Ok(())
            }
            Err(err) => Err(push_error(err)),
        }
    }

    async fn send(&self, target: &PushTarget, message: &PushMessage) -> Result<(), PushError> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| PushError::Rejected(e.to_string()))
        };
        let collapse = message.alert_id.to_string();
        let sent: Result<_, SdkError<PublishError>> = self
            .client
            .publish()
            .target_arn(&target.endpoint)
            .message_structure("json")
            .message(sns_message(message))
            .message_attributes("AWS.SNS.MOBILE.APNS.COLLAPSE_ID", attribute(&collapse)?)
            .message_attributes("AWS.SNS.MOBILE.APNS.PUSH_TYPE", attribute("alert")?)
            .message_attributes("AWS.SNS.MOBILE.APNS.PRIORITY", attribute("10")?)
            .send()
            .await;
        sent.map(|_| ()).map_err(push_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use trainsync_protocol::domain::AlertKind;
    use uuid::Uuid;

    #[test]
    fn the_message_carries_keys_and_position_only() {
        let message = PushMessage {
            alert_id: Uuid::nil(),
            kind: AlertKind::InjuryRisk,
            title_key: "alert.injury_risk.critical.title".into(),
            body_key: "alert.injury_risk.critical.body".into(),
            seq: 41,
            cursor: "c41".into(),
        };
        let outer: Value = serde_json::from_str(&sns_message(&message)).unwrap();
        let apns: Value = serde_json::from_str(outer["APNS"].as_str().unwrap()).unwrap();
        assert_eq!(
            apns["aps"]["alert"]["loc-key"],
            "alert.injury_risk.critical.body"
        );
        assert_eq!(apns["trainsync"]["cursor"], "c41");
        let fcm: Value = serde_json::from_str(outer["GCM"].as_str().unwrap()).unwrap();
        let fcm = &fcm["fcm"]["message"];
        assert_eq!(fcm["android"]["collapse_key"], Uuid::nil().to_string());
        // FCM data values must be strings.
        assert!(
            fcm["data"]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_string)
        );
        assert_eq!(fcm["data"]["seq"], "41");
    }

    #[test]
    fn the_existing_endpoint_is_read_from_snss_message() {
        let message = "Invalid parameter: Token Reason: Endpoint arn:aws:sns:eu-west-1:123:endpoint/APNS/app/0b7e already exists with the same Token, but different attributes.";
        assert_eq!(
            existing_endpoint_in(message),
            Some("arn:aws:sns:eu-west-1:123:endpoint/APNS/app/0b7e")
        );
        assert_eq!(existing_endpoint_in("Invalid parameter: Token"), None);
    }
}
