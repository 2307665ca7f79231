//! The alert fan-out Lambda's handler: a batch of the table's stream records
//! in, a partial batch response out (the first record still to retry).

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;

use crate::services::fanout::{LeaseWait, UNTIMED_WAIT, WaitUntil};
use crate::state::AppState;

/// Pushes the batch's critical alerts with the state's store, push provider
/// and clock, waiting for deliveries other invocations hold as `waits`
/// allows (the Lambda: until shortly before its deadline).
pub async fn fan_out_within(
    state: &AppState,
    event: Event,
    waits: &dyn LeaseWait,
) -> DynamoDbEventResponse {
    crate::services::fanout::fan_out(
        state.store.as_ref(),
        state.push.as_deref(),
        state.clock.as_ref(),
        waits,
        event,
    )
    .await
}

/// [`fan_out_within`] for an invocation without a deadline (the local stream
/// poller, tests): it waits as long as a deployed invocation could.
pub async fn fan_out(state: &AppState, event: Event) -> DynamoDbEventResponse {
    fan_out_within(state, event, &WaitUntil::within(UNTIMED_WAIT)).await
}
