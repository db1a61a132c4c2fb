//! livehub's durable history: [`SqliteStore`], an embedded SQLite database behind
//! livehub-core's [`HistoryStore`] seam, and [`Durability`], which decides per channel prefix
//! whether a publish waits for the disk or writes behind.
//!
//! The broker ([`livehub_core::MemoryBroker`]) keeps sequencing, the hot window and fan-out; a
//! store only persists. Another database (PostgreSQL) plugs in by implementing
//! [`HistoryStore`] and [`WriteBehind`]. `docs/storage.md` describes the model.

mod dir;
mod durability;
mod ops;
mod retention;
mod schema;
mod sqlite;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use livehub_core::{ChannelName, Error, HistoryStore, StoredEntry};

pub use durability::{Durability, DurabilitySettings, QueueStatus, FLUSH_INTERVAL};
pub use ops::{backup, stats, StoreStats};
pub use retention::{Retention, RETENTION_INTERVAL};
pub use schema::SCHEMA_VERSION;
pub use sqlite::{SqliteStore, DB_FILE};

/// The store `livehub serve` runs by default: SQLite, durable or write-behind per prefix.
pub type Store = Durability<SqliteStore>;

/// A store that can take several channels' batches without waiting for the disk: the write
/// half of write-behind.
#[async_trait]
pub trait WriteBehind: HistoryStore {
    /// Stores `batches` (each as [`HistoryStore::append`] would) and returns once they are
    /// written, not necessarily synced to disk.
    async fn append_behind(&self, batches: Vec<(ChannelName, Vec<StoredEntry>)>) -> Result<(), Error>;
}

/// A store that cannot be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file of the data directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process has the data directory open.
    #[error(
        "the data directory {0} is in use by another livehub process (stop it, or give this one \
         another --data-dir)"
    )]
    Locked(PathBuf),
    /// The store was written by a newer livehub.
    #[error(
        "the store has schema version {found}, newer than this livehub supports ({supported}): \
         run a livehub at least as new as the one that wrote it"
    )]
    SchemaTooNew {
        /// The store's version.
        found: i64,
        /// This build's.
        supported: i64,
    },
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store was closed, or its writer stopped.
    #[error("the store is closed: {0}")]
    Closed(String),
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }
}
