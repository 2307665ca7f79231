//! The local schema as an ordered list of migrations. `PRAGMA user_version`
//! holds how many have run; each runs in its own transaction together with
//! bumping that number, so a crash leaves the file at one version or the next.
//! Append new scripts; never edit a shipped one.

/// The scripts, in order: index `i` takes the file from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the user's data, the pending queue and the sync position.
    r#"
    CREATE TABLE plan (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        data TEXT NOT NULL,
        last_modified_at TEXT NOT NULL,
        sync_status TEXT NOT NULL CHECK (sync_status IN ('pending', 'synced', 'conflict'))
    );
    CREATE TABLE activities (
        id TEXT PRIMARY KEY, data TEXT NOT NULL, last_modified_at TEXT NOT NULL,
        sync_status TEXT NOT NULL CHECK (sync_status IN ('pending', 'synced', 'conflict'))
    );
    CREATE TABLE daily_metrics (
        id TEXT PRIMARY KEY, data TEXT NOT NULL, last_modified_at TEXT NOT NULL,
        sync_status TEXT NOT NULL CHECK (sync_status IN ('pending', 'synced', 'conflict'))
    );
    CREATE TABLE settings (
        id TEXT PRIMARY KEY, data TEXT NOT NULL, last_modified_at TEXT NOT NULL,
        sync_status TEXT NOT NULL CHECK (sync_status IN ('pending', 'synced', 'conflict'))
    );
    CREATE TABLE plan_adjustments (
        id TEXT PRIMARY KEY, data TEXT NOT NULL, last_modified_at TEXT NOT NULL,
        sync_status TEXT NOT NULL CHECK (sync_status IN ('pending', 'synced', 'conflict'))
    );
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY, data TEXT NOT NULL, last_modified_at TEXT NOT NULL,
        sync_status TEXT NOT NULL CHECK (sync_status IN ('pending', 'synced', 'conflict'))
    );
    CREATE TABLE calculated_metrics (
        id TEXT PRIMARY KEY, data TEXT NOT NULL, last_modified_at TEXT NOT NULL,
        sync_status TEXT NOT NULL CHECK (sync_status IN ('pending', 'synced', 'conflict'))
    );
    CREATE TABLE conflict_log (
        id TEXT PRIMARY KEY, data TEXT NOT NULL, last_modified_at TEXT NOT NULL,
        sync_status TEXT NOT NULL CHECK (sync_status IN ('pending', 'synced', 'conflict'))
    );
    CREATE TABLE reference_data (
        version INTEGER PRIMARY KEY, data TEXT NOT NULL, fetched_at TEXT NOT NULL
    );
    CREATE TABLE pending_queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_type TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'in_flight', 'rejected')),
        rejection TEXT,
        sync_request_id TEXT,
        enqueued_at TEXT NOT NULL
    );
    CREATE INDEX pending_queue_state ON pending_queue (state, id);
    CREATE TABLE sync_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        user_id TEXT,
        device_id TEXT,
        cursor TEXT,
        plan_version INTEGER,
        last_sync_at TEXT,
        session TEXT NOT NULL,
        snapshot_in_progress INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO sync_state (id, session) VALUES (1, '{"step":"idle"}');
    "#,
    // 2: retry bookkeeping for the status the UI shows, sign-out, and workout drafts.
    r#"
    ALTER TABLE sync_state ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sync_state ADD COLUMN next_attempt_at TEXT;
    ALTER TABLE sync_state ADD COLUMN last_error TEXT;
    ALTER TABLE sync_state ADD COLUMN signed_out TEXT;
    CREATE TABLE workout_drafts (
        id TEXT PRIMARY KEY, data TEXT NOT NULL, last_modified_at TEXT NOT NULL
    );
    "#,
];
