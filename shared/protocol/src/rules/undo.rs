//! Undoing an automatic conflict resolution (PRD 5.3): pure planning of the
//! writes that put the user's version back, checked against the state the
//! resolution left.

use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::domain::{
    Activity, ConflictRecord, ConflictStatus, EntityKind, RestoreTarget, Tombstone, UndoAction,
};
use crate::domain::{EntityKey, EntityWrite, Loaded};
use crate::plan::{TrainingPlan, reschedule};
use crate::rules::resolve::{CURRENT, to_value};

/// Why an undo cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    /// The 24 hours are over.
    #[error("this resolution can no longer be undone: the 24-hour window ended at {0}")]
    Expired(DateTime<Utc>),
    /// A field the undo must set changed after the resolution (or the entity
    /// was removed since); undoing would lose that change.
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

/// What undoing `target` writes today: its user's version when nothing changed
/// since the resolution; otherwise that version rebased onto today's state,
/// field by field, keeping each later edit on the record it was made under
/// (`edits`: the tombstone holding edits sent under a merged-away id, which
/// go back to that record). Refused only where a field the undo must set was
/// changed since to another value, since one of the two would be lost.
fn rebase(
    key: &EntityKey,
    target: &RestoreTarget,
    current: Option<&Value>,
    edits: Option<&Tombstone>,
) -> Result<Value, UndoError> {
    let expected = target.expected.as_ref();
    if current == expected {
        if let Some(tombstone) = current.and_then(Tombstone::of) {
            return Ok(with_later_edit(&target.restore, &tombstone));
        }
        return Ok(target.restore.clone());
    }
    let outdated = |what: &str| Err(UndoError::Outdated(format!("{key}{what}")));
    let (Some(expected), Some(current)) = (expected, current) else {
        return outdated("");
    };
    match (Tombstone::of(expected), Tombstone::of(current)) {
        // The merged-away record: still merged away, perhaps edited since.
        (Some(was), Some(now)) if was.same_removal(&now) => {
            return Ok(with_later_edit(&target.restore, &now));
        }
        (None, None) => {}
        // Deleted, merged again or brought back since.
        _ => return outdated(""),
    }
    let (Some(e), Some(c), Some(r)) = (
        expected.as_object(),
        current.as_object(),
        target.restore.as_object(),
    ) else {
        return outdated("");
    };
    let mut rebased = Map::new();
    let fields: BTreeSet<&String> = e.keys().chain(c.keys()).chain(r.keys()).collect();
    for field in fields {
        let (was, now, wanted) = (e.get(field), c.get(field), r.get(field));
        let from_other_record = edits.is_some_and(|t| {
            t.later_edit_fields.contains(field)
                && t.later_edit.as_ref().and_then(|v| v.get(field)) == now
        });
        let value = if now == was || from_other_record {
            wanted
        } else if wanted == was || wanted == now || wanted.is_none_or(Value::is_null) {
            now
        } else {
            return outdated(&format!(" ({field})"));
        };
        if let Some(value) = value {
            rebased.insert(field.clone(), value.clone());
        }
    }
    Ok(Value::Object(rebased))
}

/// `restore` (a merged-away activity's own version) with the edits the user
/// sent under its id since the merge; the server's fields stay as restored.
fn with_later_edit(restore: &Value, tombstone: &Tombstone) -> Value {
    let (Some(edit), Some(base)) = (
        tombstone.later_edit.as_ref().and_then(Value::as_object),
        restore.as_object(),
    ) else {
        return restore.clone();
    };
    let mut merged: Map<String, Value> = edit
        .iter()
        .filter(|(field, _)| !Activity::SERVER_FIELDS.contains(&field.as_str()))
        .map(|(field, value)| (field.clone(), value.clone()))
        .collect();
    for field in Activity::SERVER_FIELDS {
        if let Some(value) = base.get(field) {
            merged.insert(field.to_owned(), value.clone());
        }
    }
    Value::Object(merged)
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
            // Edits sent under a merged-away id after the merge, kept on its
            // tombstone, by the id of the record they went to.
            let redirected: Vec<(&str, Tombstone)> = targets
                .iter()
                .filter_map(|t| current(&EntityKey::new(t.kind, t.id.clone())))
                .filter_map(Tombstone::of)
                .filter_map(|t| Some((t.replaced_by.clone()?, t)))
                .filter_map(|(survivor, t)| {
                    let target = targets.iter().find(|x| x.id == survivor)?;
                    Some((target.id.as_str(), t))
                })
                .collect();
            for target in targets {
                let key = EntityKey::new(target.kind, target.id.clone());
                let edits = redirected
                    .iter()
                    .find(|(survivor, _)| *survivor == target.id)
                    .map(|(_, t)| t);
                let data = rebase(&key, target, current(&key), edits)?;
                plan.writes.push(EntityWrite { key, data });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TombstoneReason;
    use proptest::prelude::*;

    fn target(expected: Value, restore: Value) -> RestoreTarget {
        RestoreTarget {
            kind: EntityKind::DailyMetric,
            id: "2025-06-01".into(),
            expected: Some(expected),
            restore,
        }
    }

    fn key() -> EntityKey {
        EntityKey::new(EntityKind::DailyMetric, "2025-06-01")
    }

    #[test]
    fn an_unchanged_entity_gets_the_users_version() {
        let t = target(json!({"sleep_hours": 7}), json!({"sleep_hours": 8}));
        let now = json!({"sleep_hours": 7});
        assert_eq!(
            rebase(&key(), &t, Some(&now), None),
            Ok(json!({"sleep_hours": 8}))
        );
    }

    #[test]
    fn a_later_edit_of_another_field_stays_and_one_of_the_same_field_refuses() {
        let t = target(
            json!({"sleep_hours": 7, "soreness": 2}),
            json!({"sleep_hours": 8, "soreness": 2}),
        );
        let other = json!({"sleep_hours": 7, "soreness": 4});
        assert_eq!(
            rebase(&key(), &t, Some(&other), None),
            Ok(json!({"sleep_hours": 8, "soreness": 4}))
        );
        let same = json!({"sleep_hours": 6, "soreness": 2});
        let refused = rebase(&key(), &t, Some(&same), None).unwrap_err();
        assert!(refused.to_string().contains("(sleep_hours)"), "{refused}");
        // The same value as the user's version loses nothing.
        let agreed = json!({"sleep_hours": 8, "soreness": 2});
        assert_eq!(rebase(&key(), &t, Some(&agreed), None), Ok(agreed));
    }

    #[test]
    fn an_entity_removed_since_cannot_come_back() {
        let t = target(json!({"sleep_hours": 7}), json!({"sleep_hours": 8}));
        let gone = to_value(&Tombstone::new(TombstoneReason::Withdrawn, None));
        assert!(matches!(
            rebase(&key(), &t, Some(&gone), None),
            Err(UndoError::Outdated(_))
        ));
        assert!(matches!(
            rebase(&key(), &t, None, None),
            Err(UndoError::Outdated(_))
        ));
    }

    #[test]
    fn edits_sent_under_a_merged_away_id_go_back_to_that_record() {
        let mut tombstone = Tombstone::new(TombstoneReason::MergedDuplicate, Some("w".into()));
        let merged_away = target(
            to_value(&tombstone),
            json!({"id": "m", "notes": "old", "distinct_from": ["w"]}),
        );
        tombstone.later_edit = Some(json!({"id": "m", "notes": "new", "rpe": 8}));
        tombstone.later_edit_fields = vec!["notes".into(), "rpe".into()];
        let now = to_value(&tombstone);
        assert_eq!(
            rebase(&key(), &merged_away, Some(&now), None),
            Ok(json!({"id": "m", "notes": "new", "rpe": 8, "distinct_from": ["w"]}))
        );
        // The survivor gives those fields up; its own later edit stays.
        let survivor = target(
            json!({"id": "w", "notes": "old", "feeling": 4, "merged_from": ["m"]}),
            json!({"id": "w", "distinct_from": ["m"]}),
        );
        let current =
            json!({"id": "w", "notes": "new", "rpe": 8, "feeling": 2, "merged_from": ["m"]});
        assert_eq!(
            rebase(&key(), &survivor, Some(&current), Some(&tombstone)),
            Ok(json!({"id": "w", "feeling": 2, "distinct_from": ["m"]}))
        );
    }

    proptest! {
        /// Whatever was edited since, an undo either keeps every later edit
        /// and applies every field of the user's version, or refuses because
        /// both touched a field with different values.
        #[test]
        fn an_undo_never_loses_a_later_edit(
            base in proptest::collection::vec(0u8..4, 5),
            users in proptest::collection::vec(proptest::option::of(0u8..4), 5),
            later in proptest::collection::vec(proptest::option::of(0u8..4), 5),
        ) {
            let field = |i: usize| format!("f{i}");
            let object = |values: Vec<Option<u8>>| {
                Value::Object(values.into_iter().enumerate()
                    .filter_map(|(i, v)| Some((field(i), json!(v?)))).collect())
            };
            let expected = object(base.iter().copied().map(Some).collect());
            let restore = object(users.iter().zip(&base).map(|(u, b)| u.or(Some(*b))).collect());
            let current = object(later.iter().zip(&base).map(|(l, b)| l.or(Some(*b))).collect());
            let t = target(expected.clone(), restore.clone());
            match rebase(&key(), &t, Some(&current), None) {
                Ok(result) => for i in 0..5 {
                    let f = field(i);
                    let (e, c, r) = (&expected[&f], &current[&f], &restore[&f]);
                    if c != e {
                        prop_assert_eq!(&result[&f], c, "a later edit of {} was lost", f);
                    } else {
                        prop_assert_eq!(&result[&f], r, "the user's {} was not restored", f);
                    }
                },
                Err(UndoError::Outdated(what)) => {
                    let clash = (0..5).any(|i| {
                        let f = field(i);
                        current[&f] != expected[&f] && restore[&f] != expected[&f]
                            && restore[&f] != current[&f]
                    });
                    prop_assert!(clash, "refused without a clash: {}", what);
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
