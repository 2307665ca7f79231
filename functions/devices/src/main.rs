//! `PUT /devices/{device_id}`, `GET /devices` and `DELETE /devices/{device_id}`
//! as one Lambda (one resource, one set of permissions); all logic lives in
//! `sync_core::handlers`.
use sync_core::handlers::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sync_core::lambda::serve_all(&Endpoint::DEVICES).await
}
