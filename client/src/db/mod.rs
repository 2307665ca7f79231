//! The local SQLite database: opening it, migrating it, and the tables' rows.
//!
//! The UI reads and writes only this file (PRD 3.2); the sync manager moves
//! rows between it and the server. Tokens never go in here (see [`crate::secrets`]).

mod migrations;
mod rows;
#[cfg(test)]
mod tests;

use std::path::Path;

use rusqlite::Connection;

pub use migrations::MIGRATIONS;
pub use rows::*;

/// Opens (creating if needed) the database at `path` and brings it to the newest schema.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    migrate(&mut conn, MIGRATIONS)?;
    Ok(conn)
}

/// Runs the scripts of `migrations` the file has not run yet, each in one
/// transaction with its `user_version` bump.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    let current: usize = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, script) in migrations.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(script)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema version of an open database.
pub fn schema_version(conn: &Connection) -> rusqlite::Result<usize> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}
