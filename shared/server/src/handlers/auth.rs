//! `POST /auth/refresh`: a device exchanges its refresh token for a new
//! pair. No bearer token (the access token may have expired): the refresh
//! token is the credential. The logic is in [`crate::services::tokens`].

use lambda_http::Request;

use crate::error::ApiError;
use crate::http::{Reply, json_request};
use crate::state::AppState;
use trainsync_protocol::wire::RefreshRequest;

pub(super) async fn refresh(state: &AppState, req: &Request) -> Result<Reply, ApiError> {
    let (request, _): (RefreshRequest, _) = json_request(req)?;
    let pair = state.tokens().refresh(&request.refresh_token).await?;
    let mut reply = Reply::json(&pair);
    // RFC 6749 §5.1: token responses are never cached.
    reply.headers.push(("cache-control", "no-store".into()));
    Ok(reply)
}
