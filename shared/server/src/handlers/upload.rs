//! `POST /sync/upload`: parse the batch, apply it once (`services::upload`),
//! answer the response (the stored one for a replay).

use lambda_http::Request;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Reply, json_request};
use crate::services;
use crate::state::AppState;
use trainsync_protocol::wire::UploadRequest;

pub(super) async fn upload(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let (request, hash): (UploadRequest, _) = json_request(req)?;
    let body = services::upload::upload(
        state.store.as_ref(),
        state.brain,
        caller,
        &request,
        &hash,
        state.clock.now(),
    )
    .await?;
    Ok(Reply::raw(body))
}
