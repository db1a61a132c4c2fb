//! Operations on a store from outside the server: statistics and an online backup. Both open
//! the database read-only and take no lock, so they run beside a serving livehub (SQLite's WAL
//! gives them a consistent snapshot).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::{schema, StoreError, DB_FILE};

/// What `livehub store stats` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreStats {
    /// The database file.
    pub path: PathBuf,
    /// Bytes on disk: the database and its write-ahead log.
    pub size_bytes: u64,
    /// The schema version it was written with.
    pub schema_version: i64,
    /// Channels with a stored position.
    pub channels: u64,
    /// Stored history entries, all channels together.
    pub entries: u64,
    /// Server time of the oldest stored entry, in Unix milliseconds.
    pub oldest_ts: Option<u64>,
    /// Server time of the newest stored entry, in Unix milliseconds.
    pub newest_ts: Option<u64>,
}

fn open_read_only(dir: &Path) -> Result<(PathBuf, Connection), StoreError> {
    let path = dir.join(DB_FILE);
    if !path.exists() {
        return Err(StoreError::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no store here (wrong --data-dir?)"),
        ));
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok((path, conn))
}

/// Statistics of the store in the data directory `dir`.
pub fn stats(dir: &Path) -> Result<StoreStats, StoreError> {
    let (path, conn) = open_read_only(dir)?;
    let schema_version = schema::version(&conn)?;
    if schema_version > schema::SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: schema_version, supported: schema::SCHEMA_VERSION });
    }
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = dir.join(format!("{DB_FILE}-wal"));
    let channels: i64 = conn.query_row("SELECT COUNT(*) FROM channels", [], |row| row.get(0))?;
    let (entries, oldest, newest): (i64, Option<i64>, Option<i64>) =
        conn.query_row("SELECT COUNT(*), MIN(ts), MAX(ts) FROM entries", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    Ok(StoreStats {
        size_bytes: size(&path) + size(&wal),
        path,
        schema_version,
        channels: channels as u64,
        entries: entries as u64,
        oldest_ts: oldest.map(|t| t as u64),
        newest_ts: newest.map(|t| t as u64),
    })
}

/// Copies the store in `dir` to the file `to` with SQLite's online backup API: a consistent
/// snapshot, taken while livehub keeps serving. The copy is a complete store: put it in an empty
/// data directory as `livehub.sqlite3` to restore.
pub fn backup(dir: &Path, to: &Path) -> Result<(), StoreError> {
    let (_, conn) = open_read_only(dir)?;
    if to.exists() {
        return Err(StoreError::io(
            to,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "will not overwrite an existing file"),
        ));
    }
    conn.backup(rusqlite::MAIN_DB, to, None)?;
    Ok(())
}
