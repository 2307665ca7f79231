//! What the UI shows about sync (PRD 11.3): a colour, "synced 2 minutes ago",
//! "3 activities waiting to sync", "Syncing paused — will retry automatically",
//! and the conflict log with its undo.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use trainsync_protocol::domain::ConflictRecord;
use trainsync_protocol::wire::{ItemType, UndoResponse};
use uuid::Uuid;

use crate::db::{self, SyncStatus, Table};
use crate::sync::backoff::next_sync_due;
use crate::{Client, ClientError};

/// The sync indicator's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Everything is on the server and the last session succeeded.
    Green,
    /// Writes are waiting, the server is unreachable for now, or the device never synced.
    Yellow,
    /// The user must act: signed out, or items the server refused.
    Red,
}

/// Everything the sync indicator and its detail screen show.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncStatusView {
    /// The colour.
    pub health: Health,
    /// When the last session completed.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Unsent items per kind.
    pub pending: Vec<(ItemType, u32)>,
    /// Items the server refused permanently.
    pub rejected: u32,
    /// The last session failed and another is due at this time.
    pub retry_at: Option<DateTime<Utc>>,
    /// Why the last session failed.
    pub last_error: Option<String>,
    /// Why the device is signed out.
    pub signed_out: Option<String>,
    /// When the next sync is due (retry, or the periodic interval).
    pub next_sync_due: DateTime<Utc>,
    /// The sentences for the UI, in order of importance.
    pub messages: Vec<String>,
}

fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn kind_words(item_type: ItemType) -> (&'static str, &'static str) {
    match item_type {
        ItemType::Activity => ("activity", "activities"),
        ItemType::DailyMetric => ("check-in", "check-ins"),
        ItemType::SettingsChange => ("setting", "settings"),
        ItemType::PlanAdjustment => ("reschedule", "reschedules"),
        _ => ("change", "changes"),
    }
}

/// "synced 2 minutes ago".
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let elapsed = now - then;
    if elapsed < Duration::minutes(1) {
        "synced just now".into()
    } else if elapsed < Duration::hours(1) {
        format!(
            "synced {} ago",
            plural(elapsed.num_minutes() as u32, "minute", "minutes")
        )
    } else if elapsed < Duration::days(1) {
        format!(
            "synced {} ago",
            plural(elapsed.num_hours() as u32, "hour", "hours")
        )
    } else {
        format!(
            "synced {} ago",
            plural(elapsed.num_days() as u32, "day", "days")
        )
    }
}

impl Client {
    /// The sync status for the UI.
    pub fn status(&self) -> Result<SyncStatusView, ClientError> {
        let now = self.now();
        let signed_out = self.signed_out()?;
        let conn = self.db();
        let state = db::sync_state(&conn)?;
        let pending = db::unsent_counts(&conn)?;
        let rejected = db::rejected(&conn)?.len() as u32;
        let unsent: u32 = pending.iter().map(|(_, n)| n).sum();
        let retry_at = state
            .next_attempt_at
            .filter(|_| state.consecutive_failures > 0);
        let mut messages = Vec::new();
        if let Some(reason) = &signed_out {
            messages.push(format!(
                "Signed out ({reason}) — sign in again to sync; nothing on this device is lost"
            ));
        }
        if rejected > 0 {
            messages.push(format!(
                "{} could not be saved on the server",
                plural(rejected, "change", "changes")
            ));
        }
        if retry_at.is_some() && signed_out.is_none() {
            messages.push("Syncing paused — will retry automatically".into());
        }
        for (item_type, n) in &pending {
            let (one, many) = kind_words(*item_type);
            messages.push(format!("{} waiting to sync", plural(*n, one, many)));
        }
        match state.last_sync_at {
            Some(at) => messages.push(ago(at, now)),
            None => messages.push("not synced yet".into()),
        }
        let health = if signed_out.is_some() || rejected > 0 {
            Health::Red
        } else if unsent > 0 || retry_at.is_some() || state.last_sync_at.is_none() {
            Health::Yellow
        } else {
            Health::Green
        };
        let last_write = db::entities(&conn, Table::Activities)?
            .into_iter()
            .chain(db::entities(&conn, Table::DailyMetrics)?)
            .filter(|row| row.sync_status == SyncStatus::Pending)
            .map(|row| row.last_modified_at)
            .max();
        Ok(SyncStatusView {
            health,
            last_synced_at: state.last_sync_at,
            pending,
            rejected,
            retry_at,
            last_error: state.last_error,
            signed_out,
            next_sync_due: next_sync_due(state.last_sync_at, retry_at, unsent, last_write, now),
            messages,
        })
    }

    /// Undoes an automatic resolution (`POST /sync/conflicts/{id}/undo`);
    /// the local entry is updated at once, the restored data arrives with the next sync.
    pub async fn undo_conflict(&self, conflict_id: Uuid) -> Result<ConflictRecord, ClientError> {
        let answer: UndoResponse = self
            .call(
                Method::POST,
                &format!("/sync/conflicts/{conflict_id}/undo"),
                &[],
                None,
            )
            .await?;
        let record = answer.conflict.record;
        db::put_entity(
            &self.db(),
            Table::ConflictLog,
            &record.id.to_string(),
            &serde_json::to_value(&record)?,
            self.now(),
            SyncStatus::Synced,
        )?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_reads_like_a_sentence() {
        let now = Utc::now();
        assert_eq!(ago(now, now), "synced just now");
        assert_eq!(ago(now - Duration::minutes(2), now), "synced 2 minutes ago");
        assert_eq!(ago(now - Duration::hours(1), now), "synced 1 hour ago");
        assert_eq!(ago(now - Duration::days(3), now), "synced 3 days ago");
    }
}
