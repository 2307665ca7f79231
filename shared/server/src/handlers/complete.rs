//! `POST /sync/complete`: close a session once; repeats report the first outcome.

use lambda_http::Request;
use trainsync_protocol::wire::ErrorCode;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Reply, json_request};
use crate::services::retention;
use crate::state::AppState;
use crate::store::{CompleteOutcome, Completion, DeviceVisit, SessionState};
use trainsync_protocol::cursor::Cursor;
use trainsync_protocol::domain::SyncId;
use trainsync_protocol::limits::MAX_NOTES_CHARS;
use trainsync_protocol::validate::FieldErrorCode;
use trainsync_protocol::wire::{CompleteRequest, CompleteResponse, CompleteStatus};

pub(super) async fn complete(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let (request, hash): (CompleteRequest, _) = json_request(req)?;
    if request
        .error
        .as_ref()
        .is_some_and(|e| e.chars().count() > MAX_NOTES_CHARS)
    {
        return Err(ApiError::bad_request(
            "error",
            FieldErrorCode::TooLong,
            format!("error must be at most {MAX_NOTES_CHARS} characters"),
        ));
    }
    if let Some(cursor) = &request.cursor {
        Cursor::decode(cursor, caller.user_id.as_str())
            .map_err(|e| ApiError::BadRequest(e.field_error("cursor")))?;
    }
    let now = state.clock.now();
    let request_id = request
        .sync_request_id
        .map(|id| id.to_string())
        .unwrap_or_default();
    let completion = Completion {
        sync_id: SyncId(request.sync_id),
        state: request.status.into(),
        error: request.error.clone(),
        at: now,
        request: (request_id.clone(), hash.clone()),
    };
    let outcome = state
        .store
        .complete_session(&caller.user_id, &completion)
        .await?;
    // Only the request that closed the session successfully moves the device's sync state.
    let closed_now =
        matches!(&outcome, CompleteOutcome::Closed(s) if s.state == SessionState::Success);
    let visit = DeviceVisit {
        synced: closed_now.then(|| request.cursor.clone()),
        ..DeviceVisit::at(caller.device_id.clone(), now)
    };
    state.store.record_visit(&caller.user_id, &visit).await?;
    if closed_now && request.cursor.is_some() {
        // An acknowledgement may release history; trimming failures only delay it.
        if let Err(e) = retention::trim(state.store.as_ref(), &caller.user_id, now).await {
            tracing::warn!(error = %e, "change-log trim failed");
        }
    }
    let session = match outcome {
        CompleteOutcome::Closed(session) => session,
        CompleteOutcome::AlreadyClosed(session) => {
            let reused = !request_id.is_empty()
                && session
                    .completed_by
                    .as_ref()
                    .is_some_and(|(id, first_hash)| *id == request_id && *first_hash != hash);
            if reused {
                return Err(ApiError::Unprocessable {
                    code: ErrorCode::IdempotencyKeyReused,
                    message:
                        "this sync_request_id already completed the session with a different body"
                            .into(),
                    field: Some("sync_request_id"),
                });
            }
            session
        }
        CompleteOutcome::NotFound => return Err(ApiError::unknown_session()),
    };
    Ok(Reply::json(&CompleteResponse {
        sync_id: session.sync_id.0,
        status: match session.state {
            SessionState::Failed => CompleteStatus::Failed,
            _ => CompleteStatus::Success,
        },
        server_timestamp: now,
    }))
}
