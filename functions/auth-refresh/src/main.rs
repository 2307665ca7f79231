//! `POST /auth/refresh` as its own Lambda (the only one holding the signing
//! key): all logic lives in `sync_core::services::tokens`.
use sync_core::handlers::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sync_core::lambda::serve(Endpoint::AuthRefresh).await
}
