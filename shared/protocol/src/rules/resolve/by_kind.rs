//! The PRD 5 rule for each kind of change: activities, check-ins, settings, plan adjustments.

use crate::domain::{
    Activity, ActivitySource, ConflictRule, DailyMetric, EntityKind, PlanAdjustment, RestoreTarget,
    SettingValue, SettingsChange, Tombstone, TombstoneReason, UndoAction,
};
use crate::domain::{EntityKey, Loaded};
use crate::plan::{reschedule, set_coach_note};
use crate::rules::merge::{
    MergeEffect, find_duplicate, merge_activity, merge_daily_metric, merge_duplicate, setting_wins,
};
use crate::rules::resolve::Change;
use crate::rules::resolve::Outcome;
use crate::rules::resolve::SUPERSEDED_PLAN_MESSAGE;
use crate::rules::resolve::Working;
use crate::rules::resolve::activity_key;
use crate::rules::resolve::parse;
use crate::rules::resolve::plan_key;
use crate::rules::resolve::to_value;
use crate::validate::{FieldError, FieldErrorCode};
use serde_json::{Value, json};
use uuid::Uuid;

pub(super) fn resolve_change(work: &mut Working<'_>, change: &Change, loaded: &Loaded) -> Outcome {
    match change {
        Change::Activity(a) => resolve_activity(work, a),
        Change::DailyMetric(m) => resolve_daily_metric(work, m),
        Change::Setting(s) => resolve_setting(work, s),
        Change::PlanAdjustment(p) => resolve_adjustment(work, p, loaded),
        Change::TrainingPlan(plan) => {
            let current = work.plan().map_or(0, |p| p.version);
            let mut next = plan.clone();
            // The server numbers versions, so they only ever go up.
            next.version = current.max(loaded.head.plan_version.unwrap_or(0)) + 1;
            next.normalize();
            work.set(plan_key(), to_value(&next));
            Outcome::Accepted
        }
        Change::CoachNote(note) => match work.plan() {
            None => Outcome::Refused(FieldError::new(
                "workout_id",
                FieldErrorCode::InvalidValue,
                "the user has no training plan yet",
            )),
            Some(plan) => {
                match set_coach_note(&plan, &note.workout_id, note.note.clone(), work.ctx.at) {
                    Ok(next) => {
                        work.set(plan_key(), to_value(&next));
                        Outcome::Accepted
                    }
                    Err(e) => Outcome::Refused(FieldError::new(
                        "workout_id",
                        FieldErrorCode::InvalidValue,
                        e.to_string(),
                    )),
                }
            }
        },
        Change::Metrics(m) => {
            work.set(change.key(), to_value(m));
            Outcome::Accepted
        }
        Change::Alert(a) => {
            work.set(change.key(), to_value(a));
            Outcome::Accepted
        }
        Change::Track(t) => {
            work.set(change.key(), to_value(t));
            Outcome::Accepted
        }
        Change::WithdrawAlert(_) => {
            let key = change.key();
            match work.get(&key) {
                None => Outcome::Refused(FieldError::new(
                    "id",
                    FieldErrorCode::InvalidValue,
                    "no alert with this id",
                )),
                Some(v) if Tombstone::of(v).is_some() => Outcome::Accepted,
                Some(_) => {
                    work.set(
                        key,
                        to_value(&Tombstone::new(TombstoneReason::Withdrawn, None)),
                    );
                    Outcome::Accepted
                }
            }
        }
    }
}

pub(super) fn resolve_activity(work: &mut Working<'_>, sent: &Activity) -> Outcome {
    let mut incoming = sent.clone();
    let mut key = activity_key(incoming.id);
    // A later edit sent under a merged duplicate's id goes to the survivor;
    // the duplicate's tombstone keeps it, so an undone merge gives it back.
    let mut redirected = None;
    if let Some(tombstone) = work.get(&key).and_then(Tombstone::of)
        && let Some(survivor) = tombstone.replaced_by.as_deref()
        && let Ok(survivor) = Uuid::parse_str(survivor)
    {
        redirected = Some((key.clone(), tombstone));
        incoming.id = survivor;
        key = activity_key(survivor);
    }
    if let Some(stored) = parse::<Activity>(work.get(&key)) {
        let merge = merge_activity(&stored, &incoming, work.ctx.origin);
        if merge.effect == MergeEffect::Updated {
            work.set(key.clone(), to_value(&merge.merged));
        }
        if let Some((loser, mut tombstone)) = redirected {
            let before = to_value(&stored);
            let after = to_value(&merge.merged);
            for field in changed_fields(&before, &after) {
                if !tombstone.later_edit_fields.contains(&field) {
                    tombstone.later_edit_fields.push(field);
                }
            }
            tombstone.later_edit = Some(to_value(sent));
            let kept = to_value(&tombstone);
            if work.get(&loser) != Some(&kept) {
                work.set(loser, kept);
            }
            return Outcome::Accepted;
        }
        if !merge.objective_kept {
            return Outcome::Accepted;
        }
        // The user's version: their objective values with the merged subjective ones.
        let mut users = merge.merged.clone();
        users.activity_type = incoming.activity_type;
        users.started_at = incoming.started_at;
        users.duration_s = incoming.duration_s;
        users.distance_m = incoming.distance_m;
        users.avg_hr = incoming.avg_hr;
        let record = work.record(
            ConflictRule::ObjectiveFieldsKept,
            &key,
            "This activity was already recorded with other time, duration, distance or heart rate: those values were kept; your notes, RPE and feeling were applied.".into(),
            to_value(&merge.merged),
            to_value(sent),
            UndoAction::Restore {
                targets: vec![RestoreTarget {
                    kind: key.kind,
                    id: key.id.clone(),
                    expected: Some(to_value(&merge.merged)),
                    restore: to_value(&users),
                }],
            },
        );
        return Outcome::Conflict(Box::new(record));
    }
    let candidates: Vec<Activity> = work
        .current
        .iter()
        .filter(|(k, _)| k.kind == EntityKind::Activity && **k != key)
        .filter_map(|(_, v)| parse::<Activity>(Some(v)))
        .collect();
    let Some(other) = find_duplicate(&incoming, &candidates).cloned() else {
        work.set(key, to_value(&incoming));
        return Outcome::Accepted;
    };
    let Some(merged) = merge_duplicate(&incoming, &other) else {
        work.set(key, to_value(&incoming));
        return Outcome::Accepted;
    };
    let (manual, wearable) = if incoming.source == ActivitySource::Manual {
        (&incoming, &other)
    } else {
        (&other, &incoming)
    };
    let survivor = activity_key(merged.id);
    let loser = activity_key(manual.id);
    let tombstone = to_value(&Tombstone::new(
        TombstoneReason::MergedDuplicate,
        Some(merged.id.to_string()),
    ));
    work.set(survivor.clone(), to_value(&merged));
    work.set(loser.clone(), tombstone.clone());
    // Undo keeps both, each told the other is not its duplicate.
    let mut manual_alone = manual.clone();
    manual_alone.distinct_from.push(wearable.id);
    let mut wearable_alone = wearable.clone();
    wearable_alone.distinct_from.push(manual.id);
    let provider = wearable.source_device.as_deref().unwrap_or("wearable");
    let mut record = work.record(
        ConflictRule::DuplicateActivityMerged,
        &survivor,
        format!("Your manual activity log was merged with {provider} data."),
        to_value(&merged),
        to_value(manual),
        UndoAction::Restore {
            targets: vec![
                RestoreTarget {
                    kind: EntityKind::Activity,
                    id: survivor.id.clone(),
                    expected: Some(to_value(&merged)),
                    restore: to_value(&wearable_alone),
                },
                RestoreTarget {
                    kind: EntityKind::Activity,
                    id: loser.id.clone(),
                    expected: Some(tombstone),
                    restore: to_value(&manual_alone),
                },
            ],
        },
    );
    record.other_id = Some(loser.id);
    Outcome::Conflict(Box::new(record))
}

pub(super) fn resolve_daily_metric(work: &mut Working<'_>, incoming: &DailyMetric) -> Outcome {
    let key = EntityKey::new(EntityKind::DailyMetric, incoming.date.to_string());
    let Some(stored) = parse::<DailyMetric>(work.get(&key)) else {
        work.set(key, to_value(incoming));
        return Outcome::Accepted;
    };
    let (merged, effect) = merge_daily_metric(&stored, incoming);
    if effect == MergeEffect::Updated {
        work.set(key.clone(), to_value(&merged));
    }
    let lost = [
        incoming.recovery_rating.is_some() && incoming.recovery_rating != merged.recovery_rating,
        incoming.sleep_hours.is_some() && incoming.sleep_hours != merged.sleep_hours,
        incoming.soreness.is_some() && incoming.soreness != merged.soreness,
    ]
    .contains(&true);
    if !lost {
        return Outcome::Accepted;
    }
    let users = DailyMetric {
        recovery_rating: incoming.recovery_rating.or(merged.recovery_rating),
        sleep_hours: incoming.sleep_hours.or(merged.sleep_hours),
        soreness: incoming.soreness.or(merged.soreness),
        ..merged.clone()
    };
    let record = work.record(
        ConflictRule::SupersededByNewerCheckIn,
        &key,
        "A later check-in for this day was already recorded; its values were kept.".into(),
        to_value(&merged),
        to_value(incoming),
        UndoAction::Restore {
            targets: vec![RestoreTarget {
                kind: key.kind,
                id: key.id.clone(),
                expected: Some(to_value(&merged)),
                restore: to_value(&users),
            }],
        },
    );
    Outcome::Conflict(Box::new(record))
}

pub(super) fn resolve_setting(work: &mut Working<'_>, change: &SettingsChange) -> Outcome {
    let key = EntityKey::new(EntityKind::Setting, change.key.as_str());
    let incoming = SettingValue {
        key: change.key,
        value: change.value.clone(),
        changed_at: change.changed_at,
        received_at: work.ctx.at,
        device_id: work
            .ctx
            .device
            .map_or_else(|| "backend".to_owned(), ToString::to_string),
    };
    match parse::<SettingValue>(work.get(&key)) {
        Some(stored) if stored.value == incoming.value => Outcome::Accepted,
        Some(stored) if !setting_wins(&stored, &incoming) => {
            let record = work.record(
                ConflictRule::SupersededByNewerWrite,
                &key,
                "This setting was changed on another device at the same time; that value was kept."
                    .into(),
                to_value(&stored),
                to_value(&incoming),
                UndoAction::Restore {
                    targets: vec![RestoreTarget {
                        kind: key.kind,
                        id: key.id.clone(),
                        expected: Some(to_value(&stored)),
                        restore: to_value(&incoming),
                    }],
                },
            );
            Outcome::Conflict(Box::new(record))
        }
        _ => {
            work.set(key, to_value(&incoming));
            Outcome::Accepted
        }
    }
}

fn strip_status(stored: &Value) -> Value {
    let mut value = stored.clone();
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
        map.remove("applied_in_version");
    }
    value
}

pub(super) fn resolve_adjustment(
    work: &mut Working<'_>,
    adjustment: &PlanAdjustment,
    loaded: &Loaded,
) -> Outcome {
    let key = EntityKey::new(EntityKind::PlanAdjustment, adjustment.id.to_string());
    if let Some(stored) = work.get(&key) {
        let same = serde_json::from_value::<PlanAdjustment>(strip_status(stored))
            .ok()
            .as_ref()
            == Some(adjustment);
        return if same {
            Outcome::Accepted
        } else {
            Outcome::Refused(FieldError::new(
                "id",
                FieldErrorCode::InvalidValue,
                "a different reschedule with this id was already recorded",
            ))
        };
    }
    let Some(plan) = work.plan() else {
        // No plan yet: kept as a request for the engine to consider.
        let mut state = to_value(adjustment);
        state["status"] = json!("pending");
        work.set(key, state);
        return Outcome::Accepted;
    };
    let current = plan.version.max(loaded.head.plan_version.unwrap_or(0));
    let mut state = to_value(adjustment);
    if adjustment.plan_version.is_some_and(|asked| asked < current) {
        state["status"] = json!("superseded_by_adaptive_plan");
        work.set(key.clone(), state.clone());
        let record = work.record(
            ConflictRule::SupersededByAdaptivePlan,
            &key,
            SUPERSEDED_PLAN_MESSAGE.into(),
            to_value(&plan),
            to_value(adjustment),
            UndoAction::Reschedule {
                adjustment_id: adjustment.id,
                workout_id: adjustment.workout_id.clone(),
                new_date: adjustment.new_date,
            },
        );
        return Outcome::Conflict(Box::new(record));
    }
    match reschedule(
        &plan,
        &adjustment.workout_id,
        adjustment.new_date,
        work.ctx.at,
    ) {
        Ok(next) => {
            state["status"] = json!("applied");
            state["applied_in_version"] = json!(next.version);
            work.set(plan_key(), to_value(&next));
            work.set(key, state);
            Outcome::Accepted
        }
        Err(e) => Outcome::Refused(FieldError::new(
            "workout_id",
            FieldErrorCode::InvalidValue,
            e.to_string(),
        )),
    }
}

/// The top-level fields whose values differ between two JSON objects.
fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return Vec::new();
    };
    let mut fields: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|f| before.get(*f) != after.get(*f))
        .cloned()
        .collect();
    fields.sort();
    fields.dedup();
    fields
}
