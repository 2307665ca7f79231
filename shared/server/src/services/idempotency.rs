//! Idempotency keys (PRD 6.2), after AWS Lambda Powertools' idempotency
//! utility: claim the key with an in-progress record, process, and complete
//! the record with the response — for uploads in the same transaction as the
//! data, so a request applies at most once even if its claim is taken over.

use serde::Serialize;
use trainsync_protocol::digest::sha256_hex;
use trainsync_protocol::wire::ErrorCode;

use crate::error::ApiError;
use crate::store::{BeginOutcome, SyncStore};
use trainsync_protocol::domain::{SyncRequestId, UserId};

/// Hash of a request body, independent of whitespace, key order and gzip.
pub fn body_hash<T: Serialize>(body: &T) -> Result<String, ApiError> {
    // Through `Value`: serde_json's Map is ordered by key (no `preserve_order`),
    // so the bytes are canonical.
    let canonical = serde_json::to_value(body)
        .and_then(|value| serde_json::to_vec(&value))
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(sha256_hex(&canonical))
}

/// The JSON of a response to store for replays. A response that does not
/// serialize is a bug, answered 500 before anything is committed, never
/// stored as an empty body.
pub fn response_json<T: Serialize>(response: &T) -> Result<String, ApiError> {
    serde_json::to_string(response).map_err(|e| ApiError::Internal(Box::new(e)))
}

/// What to do with a request after claiming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Process it; complete or release this claim token.
    Process(String),
    /// Answer with this stored response, byte for byte.
    Replay(String),
}

/// Claims `key` for a request whose body hashes to `hash`.
pub async fn claim(
    store: &dyn SyncStore,
    user: &UserId,
    key: SyncRequestId,
    hash: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Claim, ApiError> {
    match store.begin_request(user, key, hash, now).await? {
        BeginOutcome::Claimed(token) => Ok(Claim::Process(token)),
        BeginOutcome::Replay(body) => Ok(Claim::Replay(body)),
        BeginOutcome::Mismatch => Err(ApiError::Unprocessable {
            code: ErrorCode::IdempotencyKeyReused,
            message: "this sync_request_id was already used with a different body; use a new id for a new request"
                .into(),
            field: Some("sync_request_id"),
        }),
        BeginOutcome::InProgress => Err(ApiError::Conflict {
            code: ErrorCode::RequestInProgress,
            message: "a request with this sync_request_id is being processed; retry shortly to get its result".into(),
        }),
    }
}

/// What [`once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// The request was processed before: its stored response.
    Replay(String),
    /// Processed now.
    Done(T),
}

/// Runs a request at most once per `key`: claims the key, runs `process`
/// with the claim token (which must complete the claim in its commit), and
/// frees the claim when `process` fails so a retry is processed rather than
/// told "in progress".
pub async fn once<T, Fut>(
    store: &dyn SyncStore,
    user: &UserId,
    key: SyncRequestId,
    hash: &str,
    now: chrono::DateTime<chrono::Utc>,
    process: impl FnOnce(String) -> Fut,
) -> Result<Once<T>, ApiError>
where
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let token = match claim(store, user, key, hash, now).await? {
        Claim::Replay(body) => return Ok(Once::Replay(body)),
        Claim::Process(token) => token,
    };
    let result = process(token.clone()).await;
    if result.is_err()
        && let Err(e) = store.release_request(user, key, &token).await
    {
        tracing::warn!(error = %e, "could not release idempotency claim; it lapses by itself");
    }
    result.map(Once::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_hash_ignores_formatting_and_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":[1,2]}"#).unwrap();
        let b: Value = serde_json::from_str("{ \"b\" : [1, 2],\n \"a\": 1 }").unwrap();
        let c: Value = serde_json::from_str(r#"{"a":2,"b":[1,2]}"#).unwrap();
        assert_eq!(body_hash(&a).unwrap(), body_hash(&b).unwrap());
        assert_ne!(body_hash(&a).unwrap(), body_hash(&c).unwrap());
        assert_eq!(body_hash(&a).unwrap().len(), 64);
    }

    #[test]
    fn a_response_that_does_not_serialize_is_an_error_not_an_empty_body() {
        // JSON object keys must be strings: a map keyed by pairs cannot be written.
        let response: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert!(matches!(
            response_json(&response),
            Err(ApiError::Internal(_))
        ));
        assert!(matches!(body_hash(&response), Err(ApiError::Internal(_))));
    }
}
