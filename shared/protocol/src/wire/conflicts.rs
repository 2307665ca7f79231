//! `GET /sync/conflicts` and `POST /sync/conflicts/{id}/undo`: the conflict log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A conflict-log entry as `/sync/conflicts` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictEntry {
    /// The entry.
    #[serde(flatten)]
    pub record: crate::domain::ConflictRecord,
    /// Whether `POST /sync/conflicts/{id}/undo` would undo it now.
    pub undoable: bool,
}

/// `GET /sync/conflicts` response: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictsResponse {
    /// Entries of this page.
    pub conflicts: Vec<ConflictEntry>,
    /// Pass as `after` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}

/// `POST /sync/conflicts/{conflict_id}/undo` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndoResponse {
    /// The entry, now undone.
    pub conflict: ConflictEntry,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}
