//! The database schema and its versions. A store records the version it was written with; a
//! newer livehub migrates an older store forward at open, and an older livehub refuses a newer
//! store rather than misread it.

use rusqlite::{Connection, OptionalExtension};

use crate::StoreError;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Migrations: entry `n` takes a store from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: channels (position, epoch, latest value), history entries, idempotency keys.
    "
    CREATE TABLE channels (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        epoch TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        latest_ts INTEGER,
        latest_binary INTEGER,
        latest_data BLOB
    );
    CREATE TABLE entries (
        channel INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        binary INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (channel, seq)
    ) WITHOUT ROWID;
    CREATE INDEX entries_by_time ON entries (channel, ts);
    CREATE TABLE idempotency_keys (
        channel INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (channel, seq)
    ) WITHOUT ROWID;
    ",
];

/// The version `conn`'s database was written with (0 for an empty database).
pub(crate) fn version(conn: &Connection) -> Result<i64, StoreError> {
    let has_meta: bool = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'", [], |_| {
            Ok(true)
        })
        .optional()?
        .unwrap_or(false);
    if !has_meta {
        return Ok(0);
    }
    Ok(conn.query_row("SELECT version FROM schema_version", [], |row| row.get(0)).optional()?.unwrap_or(0))
}

/// Brings `conn`'s database to [`SCHEMA_VERSION`], or refuses one written by a newer livehub.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        tx.execute_batch(migration)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [from as i64 + 1])?;
        tx.commit()?;
        tracing::info!(version = from + 1, "store schema migrated");
    }
    Ok(())
}
