//! Row access for every table: entity rows, the pending queue, the plan and
//! the sync state. Functions take a `&Connection` so callers compose them
//! inside one transaction (`Transaction` derefs to `Connection`).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use trainsync_protocol::domain::EntityKind;
use trainsync_protocol::names::{from_wire_name, wire_name};
use trainsync_protocol::plan::TrainingPlan;
use trainsync_protocol::wire::ItemType;
use uuid::Uuid;

use crate::error::ClientError;

/// An entity's sync marker (PRD 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// Written locally, not yet acknowledged by the server.
    Pending,
    /// As the server holds it.
    Synced,
    /// The server resolved it against other data (see the conflict log).
    Conflict,
}

impl SyncStatus {
    fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Pending => "pending",
            SyncStatus::Synced => "synced",
            SyncStatus::Conflict => "conflict",
        }
    }

    fn parse(s: &str) -> Result<Self, ClientError> {
        match s {
            "pending" => Ok(SyncStatus::Pending),
            "synced" => Ok(SyncStatus::Synced),
            "conflict" => Ok(SyncStatus::Conflict),
            other => Err(ClientError::Corrupt(format!("sync_status {other}"))),
        }
    }
}

/// The tables of entities kept by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Logged and imported workouts.
    Activities,
    /// Daily check-ins, by date.
    DailyMetrics,
    /// Settings, by key.
    Settings,
    /// Reschedule requests.
    PlanAdjustments,
    /// The backend's alerts.
    Alerts,
    /// The backend's computed metrics (one row).
    CalculatedMetrics,
    /// Automatic resolutions the user may review and undo.
    ConflictLog,
}

impl Table {
    /// Every entity table.
    pub const ALL: [Table; 7] = [
        Table::Activities,
        Table::DailyMetrics,
        Table::Settings,
        Table::PlanAdjustments,
        Table::Alerts,
        Table::CalculatedMetrics,
        Table::ConflictLog,
    ];

    fn name(self) -> &'static str {
        match self {
            Table::Activities => "activities",
            Table::DailyMetrics => "daily_metrics",
            Table::Settings => "settings",
            Table::PlanAdjustments => "plan_adjustments",
            Table::Alerts => "alerts",
            Table::CalculatedMetrics => "calculated_metrics",
            Table::ConflictLog => "conflict_log",
        }
    }

    /// The table holding entities of `kind` (the plan and tracks have none).
    pub fn for_kind(kind: EntityKind) -> Option<Table> {
        Some(match kind {
            EntityKind::Activity => Table::Activities,
            EntityKind::DailyMetric => Table::DailyMetrics,
            EntityKind::Setting => Table::Settings,
            EntityKind::PlanAdjustment => Table::PlanAdjustments,
            EntityKind::Alert => Table::Alerts,
            EntityKind::CalculatedMetrics => Table::CalculatedMetrics,
            EntityKind::Conflict => Table::ConflictLog,
            EntityKind::TrainingPlan | EntityKind::Track => return None,
        })
    }

    /// The table an uploaded item of `item_type` lives in.
    pub fn for_item(item_type: ItemType) -> Option<Table> {
        Some(match item_type {
            ItemType::Activity => Table::Activities,
            ItemType::DailyMetric => Table::DailyMetrics,
            ItemType::SettingsChange => Table::Settings,
            ItemType::PlanAdjustment => Table::PlanAdjustments,
            _ => return None,
        })
    }

    /// The upload item type of this table's local writes, if it has any.
    pub fn item_type(self) -> Option<ItemType> {
        Some(match self {
            Table::Activities => ItemType::Activity,
            Table::DailyMetrics => ItemType::DailyMetric,
            Table::Settings => ItemType::SettingsChange,
            Table::PlanAdjustments => ItemType::PlanAdjustment,
            _ => return None,
        })
    }
}

/// One entity as stored locally.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRow {
    /// Its id (a date for check-ins, a key for settings).
    pub id: String,
    /// The entity's JSON, as uploaded or downloaded.
    pub data: Value,
    /// When this row last changed on this device.
    pub last_modified_at: DateTime<Utc>,
    /// Its sync marker.
    pub sync_status: SyncStatus,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Corrupt(format!("{what}: {e}"))
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, ClientError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt("timestamp", e))
}

/// Inserts or replaces entity `id` of `table`.
pub fn put_entity(
    conn: &Connection,
    table: Table,
    id: &str,
    data: &Value,
    at: DateTime<Utc>,
    status: SyncStatus,
) -> Result<(), ClientError> {
    conn.execute(
        &format!(
            "INSERT INTO {} (id, data, last_modified_at, sync_status) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET data = excluded.data,
               last_modified_at = excluded.last_modified_at, sync_status = excluded.sync_status",
            table.name()
        ),
        params![id, data.to_string(), at.to_rfc3339(), status.as_str()],
    )?;
    Ok(())
}

/// Sets the sync marker of entity `id` of `table` (if the row exists).
pub fn set_entity_status(
    conn: &Connection,
    table: Table,
    id: &str,
    status: SyncStatus,
) -> Result<(), ClientError> {
    conn.execute(
        &format!("UPDATE {} SET sync_status = ?2 WHERE id = ?1", table.name()),
        params![id, status.as_str()],
    )?;
    Ok(())
}

/// Removes entity `id` of `table`.
pub fn delete_entity(conn: &Connection, table: Table, id: &str) -> Result<(), ClientError> {
    conn.execute(
        &format!("DELETE FROM {} WHERE id = ?1", table.name()),
        params![id],
    )?;
    Ok(())
}

fn entity_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn entity_from_columns(
    (id, data, at, status): (String, String, String, String),
) -> Result<EntityRow, ClientError> {
    Ok(EntityRow {
        id,
        data: serde_json::from_str(&data).map_err(|e| corrupt("entity data", e))?,
        last_modified_at: parse_time(&at)?,
        sync_status: SyncStatus::parse(&status)?,
    })
}

/// Entity `id` of `table`, if stored.
pub fn entity(conn: &Connection, table: Table, id: &str) -> Result<Option<EntityRow>, ClientError> {
    conn.query_row(
        &format!(
            "SELECT id, data, last_modified_at, sync_status FROM {} WHERE id = ?1",
            table.name()
        ),
        params![id],
        entity_from_row,
    )
    .optional()?
    .map(entity_from_columns)
    .transpose()
}

/// Every entity of `table`, by id.
pub fn entities(conn: &Connection, table: Table) -> Result<Vec<EntityRow>, ClientError> {
    let mut statement = conn.prepare(&format!(
        "SELECT id, data, last_modified_at, sync_status FROM {} ORDER BY id",
        table.name()
    ))?;
    let rows = statement
        .query_map([], entity_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(entity_from_columns).collect()
}

/// Deletes the rows of `table` that no unsent local write stands behind: a
/// full snapshot then brings the server's copy of everything else.
pub fn clear_server_owned(conn: &Connection, table: Table) -> Result<(), ClientError> {
    match table.item_type() {
        Some(item_type) => conn.execute(
            &format!(
                "DELETE FROM {} WHERE id NOT IN (SELECT entity_id FROM pending_queue
                   WHERE item_type = ?1 AND state IN ('queued', 'in_flight'))",
                table.name()
            ),
            params![item_name(item_type)],
        )?,
        None => conn.execute(&format!("DELETE FROM {}", table.name()), [])?,
    };
    Ok(())
}

/// The server's training plan as held, if any.
pub fn plan(conn: &Connection) -> Result<Option<TrainingPlan>, ClientError> {
    let data: Option<String> = conn
        .query_row("SELECT data FROM plan WHERE id = 1", [], |row| row.get(0))
        .optional()?;
    data.map(|d| serde_json::from_str(&d).map_err(|e| corrupt("plan", e)))
        .transpose()
}

/// Replaces the held plan (and the plan version the sync state quotes).
pub fn put_plan(
    conn: &Connection,
    plan: &TrainingPlan,
    at: DateTime<Utc>,
) -> Result<(), ClientError> {
    let data = serde_json::to_string(plan)?;
    conn.execute(
        "INSERT INTO plan (id, version, data, last_modified_at, sync_status)
         VALUES (1, ?1, ?2, ?3, 'synced')
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data,
           last_modified_at = excluded.last_modified_at, sync_status = 'synced'",
        params![plan.version as i64, data, at.to_rfc3339()],
    )?;
    conn.execute(
        "UPDATE sync_state SET plan_version = ?1 WHERE id = 1",
        params![plan.version as i64],
    )?;
    Ok(())
}

/// Drops the held plan (a snapshot without one: the user has no plan).
pub fn clear_plan(conn: &Connection) -> Result<(), ClientError> {
    conn.execute("DELETE FROM plan", [])?;
    conn.execute("UPDATE sync_state SET plan_version = NULL WHERE id = 1", [])?;
    Ok(())
}

/// Where a queued item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueState {
    /// Waiting for the next upload.
    Queued,
    /// Sent in the batch named by its `sync_request_id`, not yet answered.
    InFlight,
    /// Refused permanently by the server; kept for the user to see.
    Rejected,
}

impl QueueState {
    fn parse(s: &str) -> Result<Self, ClientError> {
        match s {
            "queued" => Ok(QueueState::Queued),
            "in_flight" => Ok(QueueState::InFlight),
            "rejected" => Ok(QueueState::Rejected),
            other => Err(corrupt("queue state", other)),
        }
    }
}

/// One entry of the pending queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedItem {
    /// Its position (FIFO order).
    pub queue_id: i64,
    /// Which upload list it goes in.
    pub item_type: ItemType,
    /// The entity it writes.
    pub entity_id: String,
    /// The upload item, exactly as sent.
    pub payload: Value,
    /// Where it is.
    pub state: QueueState,
    /// The server's reason, for a rejected item.
    pub rejection: Option<String>,
    /// The batch it was (or is being) sent in.
    pub sync_request_id: Option<Uuid>,
}

pub(crate) fn item_name(item_type: ItemType) -> &'static str {
    wire_name(&item_type).unwrap_or("unknown")
}

const QUEUE_COLUMNS: &str =
    "id, item_type, entity_id, payload, state, rejection, sync_request_id FROM pending_queue";

type QueueColumns = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn queue_columns(row: &rusqlite::Row<'_>) -> rusqlite::Result<QueueColumns> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn queued_item(
    (queue_id, item_type, entity_id, payload, state, rejection, request): QueueColumns,
) -> Result<QueuedItem, ClientError> {
    Ok(QueuedItem {
        queue_id,
        item_type: from_wire_name(&item_type).ok_or_else(|| corrupt("item type", &item_type))?,
        entity_id,
        payload: serde_json::from_str(&payload).map_err(|e| corrupt("queue payload", e))?,
        state: QueueState::parse(&state)?,
        rejection,
        sync_request_id: request
            .map(|r| Uuid::parse_str(&r).map_err(|e| corrupt("sync_request_id", e)))
            .transpose()?,
    })
}

fn query_queue(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<QueuedItem>, ClientError> {
    let mut statement = conn.prepare(&format!("SELECT {QUEUE_COLUMNS} {filter}"))?;
    let rows = statement
        .query_map(params, queue_columns)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(queued_item).collect()
}

/// Appends an upload item to the queue.
pub fn enqueue(
    conn: &Connection,
    item_type: ItemType,
    entity_id: &str,
    payload: &Value,
    at: DateTime<Utc>,
) -> Result<i64, ClientError> {
    conn.execute(
        "INSERT INTO pending_queue (item_type, entity_id, payload, state, enqueued_at)
         VALUES (?1, ?2, ?3, 'queued', ?4)",
        params![
            item_name(item_type),
            entity_id,
            payload.to_string(),
            at.to_rfc3339()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The batch sent but not answered, in queue order (empty when none is).
pub fn in_flight_batch(conn: &Connection) -> Result<Vec<QueuedItem>, ClientError> {
    query_queue(conn, "WHERE state = 'in_flight' ORDER BY id", [])
}

/// The first `max` queued items, oldest first.
pub fn queued(conn: &Connection, max: usize) -> Result<Vec<QueuedItem>, ClientError> {
    query_queue(
        conn,
        "WHERE state = 'queued' ORDER BY id LIMIT ?1",
        params![max as i64],
    )
}

/// Items the server refused permanently, oldest first.
pub fn rejected(conn: &Connection) -> Result<Vec<QueuedItem>, ClientError> {
    query_queue(conn, "WHERE state = 'rejected' ORDER BY id", [])
}

/// Marks `items` as sent in batch `request` (before the request leaves).
pub fn mark_in_flight(
    conn: &Connection,
    items: &[QueuedItem],
    request: Uuid,
) -> Result<(), ClientError> {
    for item in items {
        conn.execute(
            "UPDATE pending_queue SET state = 'in_flight', sync_request_id = ?2 WHERE id = ?1",
            params![item.queue_id, request.to_string()],
        )?;
    }
    Ok(())
}

/// Removes an answered item.
pub fn dequeue(conn: &Connection, queue_id: i64) -> Result<(), ClientError> {
    conn.execute("DELETE FROM pending_queue WHERE id = ?1", params![queue_id])?;
    Ok(())
}

/// Moves an item to the rejected list with the server's reason.
pub fn reject(conn: &Connection, queue_id: i64, reason: &str) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE pending_queue SET state = 'rejected', rejection = ?2, sync_request_id = NULL
         WHERE id = ?1",
        params![queue_id, reason],
    )?;
    Ok(())
}

/// Puts an item back in the queue, keeping its place, for a later batch.
pub fn requeue(conn: &Connection, queue_id: i64) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE pending_queue SET state = 'queued', sync_request_id = NULL WHERE id = ?1",
        params![queue_id],
    )?;
    Ok(())
}

/// Whether an unsent write of entity `entity_id` is queued or in flight.
pub fn has_unsent(
    conn: &Connection,
    item_type: ItemType,
    entity_id: &str,
) -> Result<bool, ClientError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pending_queue WHERE item_type = ?1 AND entity_id = ?2
           AND state IN ('queued', 'in_flight'))",
        params![item_name(item_type), entity_id],
        |row| row.get(0),
    )?)
}

/// Unsent items (queued or in flight) per item type.
pub fn unsent_counts(conn: &Connection) -> Result<Vec<(ItemType, u32)>, ClientError> {
    let mut statement = conn.prepare(
        "SELECT item_type, COUNT(*) FROM pending_queue WHERE state IN ('queued', 'in_flight')
         GROUP BY item_type ORDER BY item_type",
    )?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, u32>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(name, n)| {
            from_wire_name(&name)
                .map(|t| (t, n))
                .ok_or_else(|| corrupt("item type", name))
        })
        .collect()
}

/// The sync state row.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncStateRow {
    /// The signed-in user (the token's `sub`).
    pub user_id: Option<String>,
    /// This device (the token's `device_id`).
    pub device_id: Option<String>,
    /// The last download cursor applied.
    pub cursor: Option<String>,
    /// The plan version held.
    pub plan_version: Option<u64>,
    /// When the last session completed.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The session step, as the sync manager persisted it (JSON).
    pub session: String,
    /// A full snapshot's pages are being applied.
    pub snapshot_in_progress: bool,
    /// Sessions that failed in a row.
    pub consecutive_failures: u32,
    /// When the next attempt is due after a failure.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last session failed.
    pub last_error: Option<String>,
    /// Why the device is signed out, if it is.
    pub signed_out: Option<String>,
}

/// Reads the sync state.
pub fn sync_state(conn: &Connection) -> Result<SyncStateRow, ClientError> {
    type Columns = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
        String,
        bool,
        u32,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let c: Columns = conn.query_row(
        "SELECT user_id, device_id, cursor, plan_version, last_sync_at, session,
           snapshot_in_progress, consecutive_failures, next_attempt_at, last_error, signed_out
         FROM sync_state WHERE id = 1",
        [],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
            ))
        },
    )?;
    Ok(SyncStateRow {
        user_id: c.0,
        device_id: c.1,
        cursor: c.2,
        plan_version: c.3.map(|v| v as u64),
        last_sync_at: c.4.as_deref().map(parse_time).transpose()?,
        session: c.5,
        snapshot_in_progress: c.6,
        consecutive_failures: c.7,
        next_attempt_at: c.8.as_deref().map(parse_time).transpose()?,
        last_error: c.9,
        signed_out: c.10,
    })
}

/// Records the signed-in account and clears a sign-out.
pub fn set_account(
    conn: &Connection,
    user_id: &str,
    device_id: Option<&str>,
) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE sync_state SET user_id = ?1, device_id = ?2, signed_out = NULL WHERE id = 1",
        params![user_id, device_id],
    )?;
    Ok(())
}

/// Persists the session step.
pub fn set_session(conn: &Connection, session: &str) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE sync_state SET session = ?1 WHERE id = 1",
        params![session],
    )?;
    Ok(())
}

/// Advances the download cursor and the snapshot flag.
pub fn set_cursor(
    conn: &Connection,
    cursor: &str,
    snapshot_in_progress: bool,
) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE sync_state SET cursor = ?1, snapshot_in_progress = ?2 WHERE id = 1",
        params![cursor, snapshot_in_progress],
    )?;
    Ok(())
}

/// Forgets the held plan version (the next download sends the plan in full).
pub fn forget_plan_version(conn: &Connection) -> Result<(), ClientError> {
    conn.execute("UPDATE sync_state SET plan_version = NULL WHERE id = 1", [])?;
    Ok(())
}

/// Records a completed session.
pub fn record_success(conn: &Connection, at: DateTime<Utc>) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE sync_state SET last_sync_at = ?1, consecutive_failures = 0,
           next_attempt_at = NULL, last_error = NULL WHERE id = 1",
        params![at.to_rfc3339()],
    )?;
    Ok(())
}

/// Records a failed session and when to try again.
pub fn record_failure(
    conn: &Connection,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<u32, ClientError> {
    conn.execute(
        "UPDATE sync_state SET consecutive_failures = consecutive_failures + 1,
           next_attempt_at = ?1, last_error = ?2 WHERE id = 1",
        params![next_attempt_at.to_rfc3339(), error],
    )?;
    Ok(conn.query_row(
        "SELECT consecutive_failures FROM sync_state WHERE id = 1",
        [],
        |r| r.get(0),
    )?)
}

/// Signs the device out for `reason`, keeping every local row and queued write.
pub fn set_signed_out(conn: &Connection, reason: &str) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE sync_state SET signed_out = ?1 WHERE id = 1",
        params![reason],
    )?;
    Ok(())
}

/// A workout started on this device and not finished (never uploaded).
pub fn put_draft(
    conn: &Connection,
    id: Uuid,
    data: &Value,
    at: DateTime<Utc>,
) -> Result<(), ClientError> {
    conn.execute(
        "INSERT INTO workout_drafts (id, data, last_modified_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, last_modified_at = excluded.last_modified_at",
        params![id.to_string(), data.to_string(), at.to_rfc3339()],
    )?;
    Ok(())
}

/// A workout draft, if it exists.
pub fn draft(conn: &Connection, id: Uuid) -> Result<Option<Value>, ClientError> {
    let data: Option<String> = conn
        .query_row(
            "SELECT data FROM workout_drafts WHERE id = ?1",
            params![id.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    data.map(|d| serde_json::from_str(&d).map_err(|e| corrupt("draft", e)))
        .transpose()
}

/// Every workout draft.
pub fn drafts(conn: &Connection) -> Result<Vec<Value>, ClientError> {
    let mut statement = conn.prepare("SELECT data FROM workout_drafts ORDER BY id")?;
    let rows = statement
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.iter()
        .map(|d| serde_json::from_str(d).map_err(|e| corrupt("draft", e)))
        .collect()
}

/// Removes a workout draft.
pub fn delete_draft(conn: &Connection, id: Uuid) -> Result<(), ClientError> {
    conn.execute(
        "DELETE FROM workout_drafts WHERE id = ?1",
        params![id.to_string()],
    )?;
    Ok(())
}
