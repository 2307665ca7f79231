//! The ingest Lambda: backend services invoke it (IAM `lambda:InvokeFunction`)
//! with an `IngestEvent`; all logic lives in `sync_core::services::ingest`. An `Err` is
//! only a retryable storage failure, so the invoker retries it.
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use sync_core::config::Config;
use sync_core::state::AppState;

#[tokio::main]
async fn main() -> Result<(), Error> {
    sync_core::telemetry::init();
    let state = AppState::from_config(Config::from_env()?).await?;
    let state = &state;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        sync_core::handlers::ingest::handle_event(state, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
