//! `POST /sync/conflicts/{conflict_id}/undo` as its own Lambda: all logic lives in `sync_core::handlers`.
use sync_core::handlers::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sync_core::lambda::serve(Endpoint::ConflictUndo).await
}
