//! Undoing an automatic conflict resolution (PRD 5.3): pure planning of the
//! writes that put the user's version back, checked against the state the
//! resolution left.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::domain::{ConflictRecord, ConflictStatus, EntityKind, UndoAction};
use crate::domain::{EntityKey, EntityWrite, Loaded};
use crate::plan::{TrainingPlan, reschedule};
use crate::rules::resolve::{CURRENT, to_value};

/// Why an undo cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    /// The 24 hours are over.
    #[error("this resolution can no longer be undone: the 24-hour window ended at {0}")]
    Expired(DateTime<Utc>),
    /// The entity changed after the resolution; undoing would lose that change.
    #[error("{0} changed after this resolution; undoing it now would lose that change")]
    Outdated(String),
    /// The user's version no longer applies (e.g. the workout left the plan).
    #[error("the user's version no longer applies: {0}")]
    NotApplicable(String),
}

/// The entities an undo of `record` reads, besides the record itself.
pub fn keys(record: &ConflictRecord) -> Vec<EntityKey> {
    match &record.undo {
        UndoAction::Restore { targets } => targets
            .iter()
            .map(|t| EntityKey::new(t.kind, t.id.clone()))
            .collect(),
        UndoAction::Reschedule { adjustment_id, .. } => vec![
            EntityKey::new(EntityKind::TrainingPlan, CURRENT),
            EntityKey::new(EntityKind::PlanAdjustment, adjustment_id.to_string()),
        ],
    }
}

/// What an undo writes: the restored entities (and plan version) plus the
/// record marked undone. An already undone record needs no writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UndoPlan {
    /// The writes, the record last.
    pub writes: Vec<EntityWrite>,
    /// The new plan version, when the undo applies a reschedule.
    pub plan_version: Option<u64>,
    /// The record as it stands after the undo.
    pub record: Option<ConflictRecord>,
}

/// Plans the undo of `record` at `at` against `loaded` (its targets' current state).
pub fn plan_undo(
    record: &ConflictRecord,
    loaded: &Loaded,
    at: DateTime<Utc>,
) -> Result<UndoPlan, UndoError> {
    if record.status == ConflictStatus::Undone {
        return Ok(UndoPlan {
            record: Some(record.clone()),
            ..UndoPlan::default()
        });
    }
    if at > record.undo_until {
        return Err(UndoError::Expired(record.undo_until));
    }
    let current = |key: &EntityKey| loaded.entities.get(key).map(|e| &e.data);
    let mut plan = UndoPlan::default();
    match &record.undo {
        UndoAction::Restore { targets } => {
            for target in targets {
                let key = EntityKey::new(target.kind, target.id.clone());
                if current(&key) != target.expected.as_ref() {
                    return Err(UndoError::Outdated(key.to_string()));
                }
                plan.writes.push(EntityWrite {
                    key,
                    data: target.restore.clone(),
                });
            }
        }
        UndoAction::Reschedule {
            adjustment_id,
            workout_id,
            new_date,
        } => {
            let plan_key = EntityKey::new(EntityKind::TrainingPlan, CURRENT);
            let training_plan: TrainingPlan = current(&plan_key)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .ok_or_else(|| UndoError::NotApplicable("there is no training plan".into()))?;
            let next = reschedule(&training_plan, workout_id, *new_date, at)
                .map_err(|e| UndoError::NotApplicable(e.to_string()))?;
            let adjustment_key =
                EntityKey::new(EntityKind::PlanAdjustment, adjustment_id.to_string());
            let mut adjustment = current(&adjustment_key).cloned().unwrap_or(Value::Null);
            if let Some(map) = adjustment.as_object_mut() {
                map.insert("status".into(), json!("applied"));
                map.insert("applied_in_version".into(), json!(next.version));
            }
            plan.plan_version = Some(next.version);
            plan.writes.push(EntityWrite {
                key: plan_key,
                data: to_value(&next),
            });
            if !adjustment.is_null() {
                plan.writes.push(EntityWrite {
                    key: adjustment_key,
                    data: adjustment,
                });
            }
        }
    }
    let mut undone = record.clone();
    undone.status = ConflictStatus::Undone;
    undone.undone_at = Some(at);
    plan.writes.push(EntityWrite {
        key: EntityKey::new(EntityKind::Conflict, record.id.to_string()),
        data: to_value(&undone),
    });
    plan.record = Some(undone);
    Ok(plan)
}
