//! Idempotency keys (PRD 6.2): a request's key is claimed before it runs and
//! completed in its commit (see [`super::RequestCompletion`]), or released
//! when it fails first, so a retry replays the first response.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use trainsync_protocol::domain::{SyncRequestId, UserId};

/// What idempotent requests ask of storage.
#[async_trait]
pub trait RequestStore: Send + Sync {
    /// Claims an idempotency key (PRD 6.2) for a request with body hash `body_hash`.
    async fn begin_request(
        &self,
        user: &UserId,
        key: SyncRequestId,
        body_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<BeginOutcome, StoreError>;

    /// The idempotency record of `key` as it stands (a consistent read), to
    /// settle a commit whose outcome is in doubt.
    async fn request_state(
        &self,
        user: &UserId,
        key: SyncRequestId,
    ) -> Result<Option<RequestState>, StoreError>;

    /// Gives up a claim made by `begin_request` (the request failed before committing).
    async fn release_request(
        &self,
        user: &UserId,
        key: SyncRequestId,
        claim: &str,
    ) -> Result<(), StoreError>;
}

/// Outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginOutcome {
    /// Ours to process; complete or release it with this claim token.
    Claimed(String),
    /// Already processed: replay this body byte for byte.
    Replay(String),
    /// The same key was used with a different body.
    Mismatch,
    /// Another request with this key is being processed now.
    InProgress,
}

/// An idempotency record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestState {
    /// The claim that holds (or completed) the key.
    pub claim: String,
    /// The stored response, once the request completed.
    pub response: Option<String>,
}
