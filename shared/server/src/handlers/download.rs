//! `GET /sync/download`: a page of changes after the client's cursor, or a
//! page of the full current state when the client has none.

use lambda_http::Request;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Reply, limit_param, query_param};
use crate::services;
use crate::services::download::DownloadQuery;
use crate::state::AppState;
use trainsync_protocol::cursor::Since;
use trainsync_protocol::validate::FieldErrorCode;
use trainsync_protocol::wire::Network;

fn parse_network(raw: Option<String>) -> Result<Network, ApiError> {
    match raw.as_deref() {
        None => Ok(Network::Unknown),
        Some(text) => serde_json::from_value(Value::String(text.to_owned())).map_err(|_| {
            ApiError::bad_request(
                "network",
                FieldErrorCode::InvalidValue,
                "network must be wifi, cellular or unknown",
            )
        }),
    }
}

fn parse_plan_version(raw: Option<String>) -> Result<Option<u64>, ApiError> {
    let Some(text) = raw.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let version = text.parse::<u64>().map_err(|_| {
        ApiError::bad_request(
            "plan_version",
            FieldErrorCode::InvalidType,
            "plan_version must be the whole version number of the plan the device holds",
        )
    })?;
    // The contract's integers are int64: no plan version lies beyond.
    if i64::try_from(version).is_err() {
        return Err(ApiError::bad_request(
            "plan_version",
            FieldErrorCode::OutOfRange,
            "plan_version must be at most 2^63 - 1",
        ));
    }
    Ok(Some(version))
}

pub(super) async fn download(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let query = DownloadQuery {
        limit: limit_param(req)?,
        network: parse_network(query_param(req, "network"))?,
        held_plan: parse_plan_version(query_param(req, "plan_version"))?,
        since: match query_param(req, "since").filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => Some(
                Since::parse(&raw, caller.user_id.as_str())
                    .map_err(|e| ApiError::BadRequest(e.field_error("since")))?,
            ),
        },
    };
    let response = services::download::download(
        state.store.as_ref(),
        &caller.user_id,
        &caller.device_id,
        query,
        state.clock.now(),
    )
    .await?;
    Ok(Reply::json(&response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        assert!(parse_network(Some("cellular".into())).is_ok());
        assert!(parse_network(Some("5g".into())).is_err());
    }

    #[test]
    fn plan_versions_are_int64_whole_numbers() {
        assert_eq!(parse_plan_version(None).ok(), Some(None));
        assert_eq!(parse_plan_version(Some(String::new())).ok(), Some(None));
        assert_eq!(
            parse_plan_version(Some(i64::MAX.to_string())).ok(),
            Some(Some(i64::MAX as u64))
        );
        let code = |text: &str| match parse_plan_version(Some(text.into())) {
            Err(ApiError::BadRequest(error)) => Some(error.code),
            _ => None,
        };
        assert_eq!(
            code("9223372036854775808"),
            Some(FieldErrorCode::OutOfRange)
        );
        assert_eq!(code("1.5"), Some(FieldErrorCode::InvalidType));
    }
}
