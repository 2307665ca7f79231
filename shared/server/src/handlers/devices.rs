//! `PUT /devices/{device_id}`, `GET /devices`, `DELETE /devices/{device_id}`:
//! the caller's devices. The logic is in [`crate::services::devices`].

use lambda_http::Request;
use trainsync_protocol::wire::ErrorCode;

use super::{Endpoint, path_param};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Reply, json_body};
use crate::services::devices::view;
use crate::state::AppState;
use crate::store::DeviceVisit;
use trainsync_protocol::domain::DeviceId;
use trainsync_protocol::validate::{FieldErrorCode, validate_item};
use trainsync_protocol::wire::{DevicesResponse, RegisterDeviceRequest, RevokeReason};

/// The `device_id` path parameter, validated.
fn device_param(req: &Request, endpoint: Endpoint) -> Result<DeviceId, ApiError> {
    let raw = path_param(req, endpoint, "device_id").unwrap_or_default();
    DeviceId::parse(raw).map_err(|e| {
        ApiError::bad_request(
            "device_id",
            FieldErrorCode::InvalidFormat,
            format!("device_id {e}"),
        )
    })
}

pub(super) async fn register(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let device = device_param(req, Endpoint::DeviceRegister)?;
    if device != caller.device_id {
        return Err(ApiError::Forbidden {
            field: "device_id",
            message: "a device may only register itself: the path must name the token's device"
                .into(),
        });
    }
    let request: RegisterDeviceRequest =
        validate_item(json_body(req)?, state.clock.now()).map_err(ApiError::BadRequest)?;
    let record = state
        .devices()
        .register(&caller.user_id, &device, request)
        .await?;
    Ok(Reply::json(&view(record, &caller.device_id)))
}

pub(super) async fn list(state: &AppState, caller: &Caller) -> Result<Reply, ApiError> {
    // Record the visit first so the calling device is listed even on its first call.
    state
        .store
        .record_visit(
            &caller.user_id,
            &DeviceVisit::at(caller.device_id.clone(), state.clock.now()),
        )
        .await?;
    let devices = state.store.devices(&caller.user_id).await?;
    Ok(Reply::json(&DevicesResponse {
        devices: devices
            .into_iter()
            .map(|d| view(d, &caller.device_id))
            .collect(),
        server_timestamp: state.clock.now(),
    }))
}

pub(super) async fn revoke(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let device = device_param(req, Endpoint::DeviceRevoke)?;
    let now = state.clock.now();
    let revoked = state
        .devices()
        .revoke(&caller.user_id, &device, RevokeReason::Logout, None, now)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            code: ErrorCode::DeviceNotFound,
            message: "this user has no device with this id".into(),
            field: Some("device_id"),
        })?;
    Ok(Reply::json(&view(revoked, &caller.device_id)))
}
