//! The critical-alert fan-out, triggered by the table's DynamoDB stream
//! (the event-source mapping's filter passes only inserted critical alerts);
//! all logic lives in `sync_core::services::fanout`. The answer is a partial batch
//! response: the first record still to retry, if any. Deliveries another
//! invocation holds are waited for until shortly before the invocation's deadline.
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use sync_core::services::fanout::WaitUntil;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let state = sync_core::lambda::cold_start(env!("CARGO_PKG_NAME")).await?;
    let state = &state;
    run(service_fn(move |event: LambdaEvent<Event>| async move {
        let waits = WaitUntil::before(event.context.deadline());
        Ok::<DynamoDbEventResponse, Error>(
            sync_core::handlers::fanout::fan_out_within(state, event.payload, &waits).await,
        )
    }))
    .await
}
