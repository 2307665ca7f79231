//! The alert fan-out Lambda's handler: a batch of the table's stream records
//! in, a partial batch response out (the first record still to retry).

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;

use crate::state::AppState;

/// Pushes the batch's critical alerts with the state's store, push provider and clock.
pub async fn fan_out(state: &AppState, event: Event) -> DynamoDbEventResponse {
    crate::services::fanout::fan_out(
        state.store.as_ref(),
        state.push.as_deref(),
        state.clock.as_ref(),
        event,
    )
    .await
}
