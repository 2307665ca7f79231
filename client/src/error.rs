//! The client core's error type: what a UI call or a sync session can fail with.

use trainsync_protocol::validate::FieldError;
use uuid::Uuid;

use crate::transport::TransportError;

/// Why a call of the client core failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The write breaks the server's rules; nothing was stored or queued.
    #[error("invalid {}: {}", .0.field, .0.message)]
    Invalid(FieldError),
    /// The local database failed.
    #[error("local database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A stored row does not parse (a bug or a damaged file).
    #[error("local data is corrupt: {0}")]
    Corrupt(String),
    /// No workout draft with this id.
    #[error("no workout draft {0}")]
    UnknownDraft(Uuid),
    /// The secret store failed.
    #[error("secret store: {0}")]
    Secrets(String),
    /// The server could not be reached or refused the call.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl ClientError {
    /// The refused field of an [`ClientError::Invalid`] write.
    pub fn field(&self) -> Option<&str> {
        match self {
            ClientError::Invalid(e) => Some(&e.field),
            _ => None,
        }
    }
}

impl From<FieldError> for ClientError {
    fn from(error: FieldError) -> Self {
        ClientError::Invalid(error)
    }
}

impl From<serde_json::Error> for ClientError {
    fn from(error: serde_json::Error) -> Self {
        ClientError::Corrupt(error.to_string())
    }
}
