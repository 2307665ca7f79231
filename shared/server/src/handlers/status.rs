//! `GET /sync/status`: the caller's sync state, for debugging.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::Reply;
use crate::services::sessions;
use crate::state::AppState;

pub(super) async fn status(state: &AppState, caller: &Caller) -> Result<Reply, ApiError> {
    let response = sessions::status(
        state.store.as_ref(),
        &caller.user_id,
        &caller.device_id,
        state.clock.now(),
    )
    .await?;
    Ok(Reply::json(&response))
}
