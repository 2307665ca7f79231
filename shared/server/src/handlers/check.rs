//! `POST /sync/check`: "anything new?" in one read of the user's head, and a new session.

use lambda_http::Request;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Reply, json_request};
use crate::services::sessions::{self, Position};
use crate::state::AppState;
use trainsync_protocol::cursor::Cursor;
use trainsync_protocol::wire::CheckRequest;

pub(super) async fn check(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let (request, _): (CheckRequest, _) = json_request(req)?;
    if request.user_id != caller.user_id.as_str() {
        return Err(ApiError::Forbidden {
            field: "user_id",
            message: "user_id does not match the authenticated user".into(),
        });
    }
    if request
        .device_id
        .as_deref()
        .is_some_and(|d| d != caller.device_id.as_str())
    {
        return Err(ApiError::Forbidden {
            field: "device_id",
            message: "device_id does not match the token's device".into(),
        });
    }
    let position = match (&request.cursor, request.last_sync_timestamp) {
        (Some(cursor), _) => match Cursor::decode(cursor, caller.user_id.as_str()) {
            Ok(Cursor::Log { seq }) => Position::Seq(seq),
            Ok(Cursor::Deferred { seq, from }) => Position::Deferred { seq, from },
            Ok(Cursor::Snapshot { .. }) => Position::Nothing,
            Err(e) => return Err(ApiError::BadRequest(e.field_error("cursor"))),
        },
        (None, Some(t)) => Position::Time(t),
        (None, None) => Position::Nothing,
    };
    let response = sessions::open(
        state.store.as_ref(),
        &caller.user_id,
        &caller.device_id,
        position,
        state.clock.now(),
    )
    .await?;
    Ok(Reply::json(&response))
}
