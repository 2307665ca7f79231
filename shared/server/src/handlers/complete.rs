//! `POST /sync/complete`: close a session once; repeats report the first outcome.

use lambda_http::Request;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Reply, json_request};
use crate::services::sessions;
use crate::state::AppState;
use trainsync_protocol::cursor::Cursor;
use trainsync_protocol::limits::MAX_NOTES_CHARS;
use trainsync_protocol::validate::FieldErrorCode;
use trainsync_protocol::wire::CompleteRequest;

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
    let response = sessions::complete(
        state.store.as_ref(),
        &caller.user_id,
        &caller.device_id,
        &request,
        &hash,
        state.clock.now(),
    )
    .await?;
    Ok(Reply::json(&response))
}
