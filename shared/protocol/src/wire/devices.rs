//! `PUT|GET|DELETE /devices`: a user's devices.

use crate::limits::MAX_LOCALE_CHARS;
use crate::limits::MAX_PUSH_TOKEN_CHARS;
use crate::limits::MAX_VERSION_CHARS;
use crate::validate::FieldError;
use crate::validate::Validate;
use crate::validate::check_token_text;
use crate::wire::check::Network;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
impl Validate for RegisterDeviceRequest {
    fn validate(&self, _now: DateTime<Utc>) -> Result<(), FieldError> {
        if let Some(token) = &self.push_token {
            check_token_text("push_token", token, MAX_PUSH_TOKEN_CHARS)?;
        }
        check_token_text("app_version", &self.app_version, MAX_VERSION_CHARS)?;
        if let Some(os) = &self.os_version {
            check_token_text("os_version", os, MAX_VERSION_CHARS)?;
        }
        if let Some(locale) = &self.locale {
            check_token_text("locale", locale, MAX_LOCALE_CHARS)?;
        }
        Ok(())
    }
}
