//! The download step: pages after the held cursor, each applied in ONE SQLite
//! transaction together with advancing the cursor (all or nothing, PRD 6.1).

use reqwest::Method;
use rusqlite::Connection;
use serde_json::Value;
use trainsync_protocol::plan::{TrainingPlan, apply as apply_diff};
use trainsync_protocol::wire::{DownloadResponse, Network};

use super::Tally;
use crate::db::{self, SyncStatus, Table};
use crate::local::without_seq;
use crate::{Client, ClientError};

/// What one page changed locally.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageCounts {
    /// Entities written.
    pub written: u32,
    /// Entities removed.
    pub deleted: u32,
    /// Entities left alone because a local write of them is still unsent.
    pub kept_local: u32,
}

/// Why a page could not be applied.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    /// The plan diff does not fit the plan held (or none is held).
    #[error("plan diff: {0}")]
    PlanDiff(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Client(e.into())
    }
}

impl Client {
    /// Downloads and applies pages until the server has no more; returns the cursor reached.
    pub(super) async fn download_pages(&self, tally: &mut Tally) -> Result<String, ClientError> {
        let mut diff_failed = false;
        loop {
            let state = db::sync_state(&self.db())?;
            let mut query = Vec::new();
            if let Some(cursor) = &state.cursor {
                query.push(("since", cursor.clone()));
            }
            if let Some(version) = state.plan_version {
                query.push(("plan_version", version.to_string()));
            }
            let network = self.network();
            if network != Network::Unknown {
                let name = trainsync_protocol::names::wire_name(&network).unwrap_or("unknown");
                query.push(("network", name.to_owned()));
            }
            let page: DownloadResponse = self
                .call(Method::GET, "/sync/download", &query, None)
                .await?;
            let applied = {
                let mut conn = self.db();
                let tx = conn.transaction()?;
                match apply_page(&tx, &page, state.snapshot_in_progress, self.now()) {
                    Ok(counts) => {
                        tx.commit()?;
                        Ok(counts)
                    }
                    Err(e) => Err(e),
                }
            };
            match applied {
                Ok(counts) => {
                    tally.pages += 1;
                    tracing::debug!(?counts, has_more = page.has_more, "page applied");
                    if !page.has_more {
                        return Ok(page.next_cursor);
                    }
                }
                Err(ApplyError::PlanDiff(reason)) if !diff_failed => {
                    // Ask for the same page again without a plan version: the
                    // server then sends the plan in full.
                    tracing::warn!(%reason, "plan diff did not apply; fetching the full plan");
                    diff_failed = true;
                    db::forget_plan_version(&self.db())?;
                }
                Err(ApplyError::PlanDiff(reason)) => return Err(ClientError::Corrupt(reason)),
                Err(ApplyError::Client(e)) => return Err(e),
            }
        }
    }
}

/// Applies one page inside the caller's transaction.
fn apply_page(
    conn: &Connection,
    page: &DownloadResponse,
    snapshot_in_progress: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<PageCounts, ApplyError> {
    let mut counts = PageCounts::default();
    if page.resync_required && !snapshot_in_progress {
        // The first page of a full snapshot: server-owned rows go, rows behind
        // an unsent local write stay (the snapshot then fills in the rest).
        for table in Table::ALL {
            db::clear_server_owned(conn, table)?;
        }
    }
    if let Some(plan) = &page.training_plan {
        let plan: TrainingPlan = serde_json::from_value(without_seq(plan.clone()))
            .map_err(|e| ApplyError::PlanDiff(format!("full plan: {e}")))?;
        db::put_plan(conn, &plan, now)?;
        counts.written += 1;
    }
    if let Some(diff) = &page.training_plan_diff {
        let held = db::plan(conn)?.ok_or_else(|| ApplyError::PlanDiff("no plan held".into()))?;
        let next = apply_diff(&held, diff).map_err(|e| ApplyError::PlanDiff(e.to_string()))?;
        db::put_plan(conn, &next, now)?;
        counts.written += 1;
    }
    let lists: [(Table, &[Value], &str); 5] = [
        (Table::Activities, &page.activities, "id"),
        (Table::DailyMetrics, &page.daily_metrics, "date"),
        (Table::PlanAdjustments, &page.plan_adjustments, "id"),
        (Table::Alerts, &page.alerts, "id"),
        (Table::ConflictLog, &page.conflicts, "id"),
    ];
    for (table, values, id_field) in lists {
        for value in values {
            let Some(id) = value.get(id_field).and_then(Value::as_str) else {
                return Err(ClientError::Corrupt(format!(
                    "a downloaded entity without {id_field}"
                ))
                .into());
            };
            put_server_entity(conn, table, id, value, now, &mut counts)?;
        }
    }
    for (key, value) in &page.settings {
        // Downloads carry a setting's bare value; the row keeps the shape of a local write.
        let row = serde_json::json!({"key": key, "value": value});
        put_server_entity(conn, Table::Settings, key, &row, now, &mut counts)?;
    }
    if let Some(metrics) = &page.calculated_metrics {
        put_server_entity(
            conn,
            Table::CalculatedMetrics,
            "current",
            metrics,
            now,
            &mut counts,
        )?;
    }
    for deleted in &page.deleted {
        // A merged duplicate's survivor (`replaced_by`) arrives as an entity of
        // this or an earlier page; the duplicate's local copy just goes.
        if let Some(table) = Table::for_kind(deleted.kind) {
            db::delete_entity(conn, table, &deleted.id)?;
            counts.deleted += 1;
        }
    }
    let snapshot_continues = page.resync_required && page.has_more;
    db::set_cursor(conn, &page.next_cursor, snapshot_continues)?;
    Ok(counts)
}

/// Stores the server's copy unless a local write of the entity is still
/// unsent (the upload will bring it to the server, and the next download back).
fn put_server_entity(
    conn: &Connection,
    table: Table,
    id: &str,
    value: &Value,
    now: chrono::DateTime<chrono::Utc>,
    counts: &mut PageCounts,
) -> Result<(), ClientError> {
    if let Some(item_type) = table.item_type()
        && db::has_unsent(conn, item_type, id)?
    {
        counts.kept_local += 1;
        return Ok(());
    }
    db::put_entity(
        conn,
        table,
        id,
        &without_seq(value.clone()),
        now,
        SyncStatus::Synced,
    )?;
    counts.written += 1;
    Ok(())
}
