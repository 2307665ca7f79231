//! The ingest Lambda: backend services invoke it (IAM `lambda:InvokeFunction`)
//! with an `IngestEvent`; all logic lives in `sync_core::services::ingest`. An `Err` is
//! only a retryable storage failure, so the invoker retries it.
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let state = sync_core::lambda::cold_start(env!("CARGO_PKG_NAME")).await?;
    let state = &state;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        sync_core::handlers::ingest::handle_event(state, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
