//! What several test groups need: the DynamoDB Local to run against.

use trainsync_infra::dynamodb_local::{DynamoDbLocal, Options};

/// DYNAMODB_ENDPOINT when set (e.g. by scripts/test), else a DynamoDB Local
/// started here (stopped when the second value drops).
pub async fn dynamodb_endpoint() -> (String, Option<DynamoDbLocal>) {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => (endpoint, None),
        _ => {
            let local = DynamoDbLocal::start(Options::in_memory())
                .await
                .expect("DynamoDB Local starts");
            (local.endpoint(), Some(local))
        }
    }
}
