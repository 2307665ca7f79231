//! The conflict log (PRD 5.3): every automatic resolution, what won, and how to undo it.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{EntityKind, WorkoutId};

/// How long the user may undo an automatic resolution.
pub const UNDO_WINDOW_HOURS: i64 = 24;

/// The rule that resolved a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictRule {
    /// Scenario 1: an amendment's objective fields lost to the stored (wearable) ones.
    ObjectiveFieldsKept,
    /// Scenario 3: a manual log and a wearable recording became one activity.
    DuplicateActivityMerged,
    /// Scenario 2: a reschedule made against an older plan version.
    SupersededByAdaptivePlan,
    /// Scenario 4: a setting lost to a later (or tie-winning) write.
    SupersededByNewerWrite,
    /// A check-in's values lost to a later check-in for the same day.
    SupersededByNewerCheckIn,
}

impl ConflictRule {
    /// The rule's wire name (also the upload response's `resolution`).
    pub fn as_str(self) -> &'static str {
        // serde\'s name: one source for it. Every variant of a fieldless enum has one.
        crate::names::wire_name(&self).expect("a unit variant has a wire name")
    }
}

/// Whether a resolution still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStatus {
    /// Resolved automatically; undoable until `undo_until`.
    Resolved,
    /// The user undid it.
    Undone,
}

/// One entity an undo puts back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreTarget {
    /// The entity's kind.
    pub kind: EntityKind,
    /// The entity's id.
    pub id: String,
    /// Its state right after the resolution: what changed since is kept, and an
    /// undo refuses only where it would overwrite a later value.
    pub expected: Option<Value>,
    /// The state the undo writes (the user's version).
    pub restore: Value,
}

/// What undoing a resolution does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum UndoAction {
    /// Put these entity states back.
    Restore {
        /// The entities.
        targets: Vec<RestoreTarget>,
    },
    /// Apply the superseded reschedule to the plan current at undo time.
    Reschedule {
        /// The plan adjustment's id.
        adjustment_id: Uuid,
        /// The workout to move.
        workout_id: WorkoutId,
        /// Its new date.
        new_date: NaiveDate,
    },
}

/// A conflict-log entry: synced to every device (kind `conflict`) and listed by `/sync/conflicts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictRecord {
    /// Its id (UUID v7: sorts by time).
    pub id: Uuid,
    /// The rule that decided.
    pub rule: ConflictRule,
    /// The kind of the entity that collided.
    pub entity_type: EntityKind,
    /// Its id (after a merge: the surviving record's id).
    pub entity_id: String,
    /// The other id involved, e.g. the merged duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_id: Option<String>,
    /// A sentence for the user.
    pub message: String,
    /// The state that won.
    pub winner: Value,
    /// What the user (or the losing side) sent.
    pub user_version: Value,
    /// When it was resolved.
    pub resolved_at: DateTime<Utc>,
    /// Until when it can be undone.
    pub undo_until: DateTime<Utc>,
    /// Resolved or undone.
    pub status: ConflictStatus,
    /// When it was undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone_at: Option<DateTime<Utc>>,
    /// How to undo it.
    pub undo: UndoAction,
}
