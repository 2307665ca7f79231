//! The ingest Lambda's handler: the event (direct, or the `detail` of an
//! EventBridge envelope) in, the JSON answer out. Only errors a retry can fix
//! are returned as errors, so the invoker retries exactly those.

use serde_json::Value;

use crate::error::ApiError;
use crate::http::error_reply;
use crate::services::ingest::ingest;
use crate::state::AppState;
use trainsync_protocol::reference::PublishOutcome;
use trainsync_protocol::validate::parse_json;
use trainsync_protocol::wire::{ErrorCode, IngestEvent};

/// Handles one ingest event: the JSON answer, or an error worth retrying
/// (storage unavailable). Errors a retry cannot fix are answered as
/// `{"error": {...}}` so the invoker does not retry them forever.
pub async fn handle_event(state: &AppState, event: Value) -> Result<Value, ApiError> {
    let now = state.clock.now();
    let answer = |result: Result<Value, ApiError>| match result {
        Ok(value) => Ok(value),
        // Retrying helps these: storage trouble, or the same ingest_id still in flight.
        Err(e) if e.is_retryable() => Err(e),
        Err(e) => {
            let reply = error_reply(&e, now);
            json_value(reply.json_text().unwrap_or_default())
        }
    };
    // An EventBridge rule delivers the event as `detail` of its envelope.
    let event = match event {
        Value::Object(mut envelope)
            if envelope.contains_key("detail-type") && envelope.contains_key("detail") =>
        {
            envelope.remove("detail").unwrap_or(Value::Null)
        }
        other => other,
    };
    let event: IngestEvent = match parse_json(event) {
        Ok(event) => event,
        Err(e) => return answer(Err(ApiError::BadRequest(e))),
    };
    answer(match event {
        IngestEvent::UserData(request) => ingest(state.store.as_ref(), state.brain, &request, now)
            .await
            .and_then(|body| json_value(&body)),
        IngestEvent::ReferenceData(snapshot) => {
            match state.store.publish_reference(&snapshot, now).await {
                Ok(outcome) => reference_answer(outcome),
                Err(e) => Err(e.into()),
            }
        }
    })
}

fn reference_answer(outcome: PublishOutcome) -> Result<Value, ApiError> {
    let published = |status: &str, version: u64| {
        Ok(serde_json::json!({ "reference": { "status": status, "version": version } }))
    };
    match outcome {
        PublishOutcome::Published { version } => published("published", version),
        PublishOutcome::AlreadyPublished { version } => published("already_published", version),
        PublishOutcome::VersionConflict { version } => Err(ApiError::Conflict {
            code: ErrorCode::ReferenceVersionConflict,
            message: format!(
                "reference version {version} was already published with other entries"
            ),
        }),
        PublishOutcome::Stale { version, latest } => Err(ApiError::Conflict {
            code: ErrorCode::ReferenceVersionStale,
            message: format!("reference version {version} is not newer than version {latest}"),
        }),
        PublishOutcome::Invalid(e) => Err(ApiError::BadRequest(e)),
    }
}

/// A JSON text this service wrote, as a value; one that does not parse is a bug.
fn json_value(text: &str) -> Result<Value, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::Internal(Box::new(e)))
}
