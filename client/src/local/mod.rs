//! The UI's calls: instant local writes and the reads the screens show.
//!
//! Every write is checked with the protocol crate's upload rules
//! (`validate_item`, the very function the server runs on each uploaded item)
//! and refused with a [`ClientError::Invalid`] naming the field; nothing
//! invalid is ever queued. A valid write stores the entity row and appends its
//! upload item to the pending queue in one SQLite transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use trainsync_protocol::domain::{
    Activity, ActivitySource, ActivityType, ConflictRecord, ConflictRule, DailyMetric,
    PlanAdjustment, SettingKey, SettingsChange, WorkoutId,
};
use trainsync_protocol::plan::{PlanError, TrainingPlan, reschedule};
use trainsync_protocol::validate::{FieldError, FieldErrorCode, validate_item};
use trainsync_protocol::wire::ItemType;
use uuid::Uuid;

use crate::db::{self, EntityRow, QueuedItem, SyncStatus, Table};
use crate::{Client, ClientError};

#[cfg(test)]
mod tests;

/// A completed workout as the user logs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkoutLog {
    /// What kind of workout.
    pub activity_type: ActivityType,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Duration in seconds.
    pub duration_s: u32,
    /// Distance in metres.
    pub distance_m: Option<f64>,
    /// Average heart rate.
    pub avg_hr: Option<u16>,
    /// Rating of perceived exertion, 1..=10.
    pub rpe: Option<u8>,
    /// Free-text notes.
    pub notes: Option<String>,
    /// How it felt, 1..=5.
    pub feeling: Option<u8>,
}

/// A daily check-in as the user enters it (absent values leave earlier ones of the day).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckIn {
    /// The day it describes.
    pub date: Option<NaiveDate>,
    /// Recovery rating, 1..=10.
    pub recovery_rating: Option<u8>,
    /// Hours slept.
    pub sleep_hours: Option<f64>,
    /// Soreness, 1..=10.
    pub soreness: Option<u8>,
}

/// Values recorded while a workout is running.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DraftUpdate {
    /// Distance so far, in metres.
    pub distance_m: Option<f64>,
    /// Average heart rate so far.
    pub avg_hr: Option<u16>,
    /// Notes.
    pub notes: Option<String>,
}

/// How the user finishes a workout.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WorkoutFinish {
    /// When it ended (the duration is measured from the start).
    pub ended_at: Option<DateTime<Utc>>,
    /// Rating of perceived exertion.
    pub rpe: Option<u8>,
    /// How it felt.
    pub feeling: Option<u8>,
    /// Final notes (replace the draft's).
    pub notes: Option<String>,
}

/// An entity as the UI shows it, with its sync marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Local<T> {
    /// The entity.
    pub value: T,
    /// Pending, synced or conflict.
    pub sync_status: SyncStatus,
    /// When it last changed on this device.
    pub last_modified_at: DateTime<Utc>,
}

/// A reschedule request and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reschedule {
    /// The request.
    pub adjustment: PlanAdjustment,
    /// The server's status (`applied`, `pending`, `superseded_by_adaptive_plan`), once known.
    pub status: Option<String>,
    /// The server's sentence for a superseded request (PRD 5.2 scenario 2).
    pub message: Option<String>,
}

fn invalid(field: &str, code: FieldErrorCode, message: impl Into<String>) -> ClientError {
    ClientError::Invalid(FieldError::new(field, code, message))
}

/// The entity's fields without the change-log `seq` a download adds.
pub(crate) fn without_seq(mut data: Value) -> Value {
    if let Some(map) = data.as_object_mut() {
        map.remove("seq");
    }
    data
}

fn typed<T: serde::de::DeserializeOwned>(row: EntityRow) -> Result<Local<T>, ClientError> {
    Ok(Local {
        value: serde_json::from_value(without_seq(row.data))?,
        sync_status: row.sync_status,
        last_modified_at: row.last_modified_at,
    })
}

impl Client {
    /// Logs a completed workout; returns its id.
    pub fn log_workout(&self, workout: WorkoutLog) -> Result<Uuid, ClientError> {
        let id = Uuid::new_v4();
        let item = json!({
            "id": id,
            "activity_type": workout.activity_type,
            "started_at": workout.started_at,
            "duration_s": workout.duration_s,
            "distance_m": workout.distance_m,
            "avg_hr": workout.avg_hr,
            "rpe": workout.rpe,
            "notes": workout.notes,
            "feeling": workout.feeling,
            "source": ActivitySource::Manual,
        });
        self.write_activity(id, None, item)?;
        Ok(id)
    }

    fn write_activity(
        &self,
        id: Uuid,
        draft: Option<Uuid>,
        item: Value,
    ) -> Result<(), ClientError> {
        let now = self.now();
        let activity: Activity = validate_item(drop_nulls(item), now)?;
        let payload = serde_json::to_value(&activity)?;
        let mut conn = self.db();
        let tx = conn.transaction()?;
        if let Some(draft) = draft {
            db::delete_draft(&tx, draft)?;
        }
        db::put_entity(
            &tx,
            Table::Activities,
            &id.to_string(),
            &payload,
            now,
            SyncStatus::Pending,
        )?;
        db::enqueue(&tx, ItemType::Activity, &id.to_string(), &payload, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Starts a workout: a local draft, never uploaded until finished; returns its id.
    pub fn start_workout(
        &self,
        activity_type: ActivityType,
        started_at: DateTime<Utc>,
    ) -> Result<Uuid, ClientError> {
        let id = Uuid::new_v4();
        let draft = json!({"id": id, "activity_type": activity_type, "started_at": started_at});
        self.check_draft(&draft)?;
        db::put_draft(&self.db(), id, &draft, self.now())?;
        Ok(id)
    }

    /// Records values of a running workout.
    pub fn update_workout(&self, id: Uuid, update: DraftUpdate) -> Result<(), ClientError> {
        let conn = self.db();
        let mut draft = db::draft(&conn, id)?.ok_or(ClientError::UnknownDraft(id))?;
        for (field, value) in [
            ("distance_m", json!(update.distance_m)),
            ("avg_hr", json!(update.avg_hr)),
            ("notes", json!(update.notes)),
        ] {
            if !value.is_null() {
                draft[field] = value;
            }
        }
        self.check_draft(&draft)?;
        db::put_draft(&conn, id, &draft, self.now())
    }

    /// Checks a draft's values with the activity rules, as the workout it would be now.
    fn check_draft(&self, draft: &Value) -> Result<(), ClientError> {
        let mut provisional = draft.clone();
        provisional["duration_s"] = json!(1);
        provisional["source"] = json!(ActivitySource::Manual);
        validate_item::<Activity>(provisional, self.now())?;
        Ok(())
    }

    /// Finishes a workout: the draft becomes a logged activity (queued); returns its id.
    pub fn finish_workout(&self, id: Uuid, finish: WorkoutFinish) -> Result<Uuid, ClientError> {
        let mut item = db::draft(&self.db(), id)?.ok_or(ClientError::UnknownDraft(id))?;
        let started_at: DateTime<Utc> = serde_json::from_value(item["started_at"].clone())?;
        let ended_at = finish.ended_at.unwrap_or_else(|| self.now());
        let seconds = (ended_at - started_at).num_seconds();
        if seconds < 1 {
            return Err(invalid(
                "ended_at",
                FieldErrorCode::OutOfRange,
                "a workout must end after it started",
            ));
        }
        item["duration_s"] = json!(seconds);
        item["source"] = json!(ActivitySource::Manual);
        item["rpe"] = json!(finish.rpe);
        item["feeling"] = json!(finish.feeling);
        if finish.notes.is_some() {
            item["notes"] = json!(finish.notes);
        }
        self.write_activity(id, Some(id), item)?;
        Ok(id)
    }

    /// Drops a workout draft.
    pub fn discard_workout(&self, id: Uuid) -> Result<(), ClientError> {
        db::delete_draft(&self.db(), id)
    }

    /// Workouts started and not finished.
    pub fn workout_drafts(&self) -> Result<Vec<Value>, ClientError> {
        db::drafts(&self.db())
    }

    /// Records a daily check-in (today's date unless given); returns the date.
    pub fn check_in(&self, check_in: CheckIn) -> Result<NaiveDate, ClientError> {
        let now = self.now();
        let date = check_in.date.unwrap_or_else(|| now.date_naive());
        let item = json!({
            "date": date,
            "recovery_rating": check_in.recovery_rating,
            "sleep_hours": check_in.sleep_hours,
            "soreness": check_in.soreness,
            "submitted_at": now,
        });
        let metric: DailyMetric = validate_item(drop_nulls(item), now)?;
        let payload = serde_json::to_value(&metric)?;
        let id = date.to_string();
        let mut conn = self.db();
        let tx = conn.transaction()?;
        // The server merges check-ins of a day field by field, the later first;
        // the local row shows the same merge.
        let shown = match db::entity(&tx, Table::DailyMetrics, &id)? {
            Some(earlier) => merge_fields(without_seq(earlier.data), &payload),
            None => payload.clone(),
        };
        db::put_entity(
            &tx,
            Table::DailyMetrics,
            &id,
            &shown,
            now,
            SyncStatus::Pending,
        )?;
        db::enqueue(&tx, ItemType::DailyMetric, &id, &payload, now)?;
        tx.commit()?;
        Ok(date)
    }

    /// Changes a setting.
    pub fn set_setting(&self, key: SettingKey, value: Value) -> Result<(), ClientError> {
        let now = self.now();
        let item = json!({"key": key, "value": value, "changed_at": now});
        let change: SettingsChange = validate_item(item, now)?;
        let payload = serde_json::to_value(&change)?;
        let mut conn = self.db();
        let tx = conn.transaction()?;
        db::put_entity(
            &tx,
            Table::Settings,
            key.as_str(),
            &payload,
            now,
            SyncStatus::Pending,
        )?;
        db::enqueue(&tx, ItemType::SettingsChange, key.as_str(), &payload, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Asks to move a plan workout to another day; returns the request's id.
    pub fn reschedule(&self, workout_id: &str, new_date: NaiveDate) -> Result<Uuid, ClientError> {
        let now = self.now();
        let id = Uuid::new_v4();
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let plan = db::plan(&tx)?;
        let item = json!({
            "id": id,
            "workout_id": workout_id,
            "new_date": new_date,
            "requested_at": now,
            "plan_version": plan.as_ref().map(|p| p.version),
        });
        let adjustment: PlanAdjustment = validate_item(drop_nulls(item), now)?;
        if let Some(plan) = &plan {
            // The server applies it with this very function; refuse here what it would refuse.
            reschedule(plan, &adjustment.workout_id, new_date, now).map_err(|e| match e {
                PlanError::OutsidePlan { .. } => {
                    invalid("new_date", FieldErrorCode::OutOfRange, e.to_string())
                }
                other => invalid(
                    "workout_id",
                    FieldErrorCode::InvalidValue,
                    other.to_string(),
                ),
            })?;
        }
        let payload = serde_json::to_value(&adjustment)?;
        db::put_entity(
            &tx,
            Table::PlanAdjustments,
            &id.to_string(),
            &payload,
            now,
            SyncStatus::Pending,
        )?;
        db::enqueue(
            &tx,
            ItemType::PlanAdjustment,
            &id.to_string(),
            &payload,
            now,
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// The training plan as the user sees it: the server's version with the
    /// reschedules not yet sent applied on top (optimistic UI).
    pub fn plan(&self) -> Result<Option<TrainingPlan>, ClientError> {
        let conn = self.db();
        let Some(mut plan) = db::plan(&conn)? else {
            return Ok(None);
        };
        let held = plan.version;
        for row in db::entities(&conn, Table::PlanAdjustments)? {
            if row.sync_status != SyncStatus::Pending {
                continue;
            }
            let adjustment: PlanAdjustment = serde_json::from_value(without_seq(row.data))?;
            if let Ok(moved) = reschedule(
                &plan,
                &adjustment.workout_id,
                adjustment.new_date,
                self.now(),
            ) {
                plan = moved;
            }
        }
        plan.version = held;
        Ok(Some(plan))
    }

    /// The coach's note of a plan workout (notes live in the plan).
    pub fn coach_note(&self, workout_id: &str) -> Result<Option<String>, ClientError> {
        let Ok(id) = WorkoutId::parse(workout_id) else {
            return Ok(None);
        };
        Ok(self
            .plan()?
            .and_then(|p| p.workout(&id).and_then(|w| w.coach_note.clone())))
    }

    /// Activities, by id.
    pub fn activities(&self) -> Result<Vec<Local<Activity>>, ClientError> {
        db::entities(&self.db(), Table::Activities)?
            .into_iter()
            .map(typed)
            .collect()
    }

    /// Daily check-ins, by date.
    pub fn check_ins(&self) -> Result<Vec<Local<DailyMetric>>, ClientError> {
        db::entities(&self.db(), Table::DailyMetrics)?
            .into_iter()
            .map(typed)
            .collect()
    }

    /// Settings, key to value.
    pub fn settings(&self) -> Result<BTreeMap<String, Local<Value>>, ClientError> {
        db::entities(&self.db(), Table::Settings)?
            .into_iter()
            .map(|row| {
                let value = row.data.get("value").cloned().unwrap_or(Value::Null);
                let local = Local {
                    value,
                    sync_status: row.sync_status,
                    last_modified_at: row.last_modified_at,
                };
                Ok((row.id, local))
            })
            .collect()
    }

    /// The backend's alerts (as downloaded).
    pub fn alerts(&self) -> Result<Vec<Value>, ClientError> {
        Ok(db::entities(&self.db(), Table::Alerts)?
            .into_iter()
            .map(|row| without_seq(row.data))
            .collect())
    }

    /// The backend's computed metrics (ACWR, ATL/CTL/TSB), if any.
    pub fn calculated_metrics(&self) -> Result<Option<Value>, ClientError> {
        Ok(db::entities(&self.db(), Table::CalculatedMetrics)?
            .into_iter()
            .next()
            .map(|row| without_seq(row.data)))
    }

    /// The conflict log, newest first.
    pub fn conflicts(&self) -> Result<Vec<ConflictRecord>, ClientError> {
        let mut records = db::entities(&self.db(), Table::ConflictLog)?
            .into_iter()
            .map(|row| Ok(serde_json::from_value(without_seq(row.data))?))
            .collect::<Result<Vec<ConflictRecord>, ClientError>>()?;
        records.sort_by_key(|r| std::cmp::Reverse(r.id));
        Ok(records)
    }

    /// Reschedule requests with their outcome.
    pub fn reschedules(&self) -> Result<Vec<Reschedule>, ClientError> {
        let conflicts = self.conflicts()?;
        let conn = self.db();
        db::entities(&conn, Table::PlanAdjustments)?
            .into_iter()
            .map(|row| {
                let status = row
                    .data
                    .get("status")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let stored_message = row
                    .data
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let mut data = without_seq(row.data);
                if let Some(map) = data.as_object_mut() {
                    for server_field in ["status", "applied_in_version", "message"] {
                        map.remove(server_field);
                    }
                }
                let adjustment: PlanAdjustment = serde_json::from_value(data)?;
                let message = conflicts
                    .iter()
                    .find(|c| {
                        c.rule == ConflictRule::SupersededByAdaptivePlan
                            && c.entity_id == adjustment.id.to_string()
                    })
                    .map(|c| c.message.clone())
                    .or(stored_message);
                Ok(Reschedule {
                    adjustment,
                    status,
                    message,
                })
            })
            .collect()
    }

    /// Items waiting to be uploaded (queued or in flight).
    pub fn pending_count(&self) -> Result<u32, ClientError> {
        Ok(db::unsent_counts(&self.db())?.iter().map(|(_, n)| n).sum())
    }

    /// Items the server refused permanently, with its reasons.
    pub fn rejected_items(&self) -> Result<Vec<QueuedItem>, ClientError> {
        db::rejected(&self.db())
    }
}

/// The item without its `null` fields (optional fields are absent, not null, on the wire).
fn drop_nulls(mut item: Value) -> Value {
    if let Some(map) = item.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    item
}

/// `earlier` with every field `later` sets taken from `later`.
fn merge_fields(mut earlier: Value, later: &Value) -> Value {
    if let (Some(into), Some(from)) = (earlier.as_object_mut(), later.as_object()) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
        return earlier;
    }
    later.clone()
}
