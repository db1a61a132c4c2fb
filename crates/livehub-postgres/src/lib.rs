//! livehub's PostgreSQL history store: [`PgStore`] implements livehub-core's
//! [`HistoryStore`](livehub_core::HistoryStore) on a pool of `tokio-postgres` connections, so a
//! [`MemoryBroker`](livehub_core::MemoryBroker) over it keeps positions, epochs, latest values,
//! history and idempotency keys in a database that outlives the process and the machine.
//!
//! The broker keeps sequencing, the hot window and fan-out (see the seam's documentation); the
//! store only persists, one statement per batch. `docs/storage-postgres.md` describes the schema,
//! the pool, migrations, timeouts and what happens while the database is unreachable.

mod schema;
mod settings;
mod store;

pub use schema::SCHEMA_VERSION;
pub use settings::{
    PgSettings, DEFAULT_COMMITTERS, DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_STATEMENT_TIMEOUT,
};
pub use store::{PgStats, PgStatus, PgStore};

/// A PostgreSQL store that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum PgStoreError {
    /// The URL is not a PostgreSQL connection string.
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidUrl(String),
    /// The database could not be reached, or refused the connection.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    /// The database's schema was written by a newer livehub.
    #[error(
        "the PostgreSQL store has schema version {found}, newer than this livehub supports \
         ({supported}): run a livehub at least as new as the one that wrote it"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i32,
        /// This build's.
        supported: i32,
    },
    /// Applying the migrations failed; the schema is as it was.
    #[error("migrating the PostgreSQL store failed: {0}")]
    Migration(String),
}

impl PgStoreError {
    fn migration(e: tokio_postgres::Error) -> Self {
        Self::Migration(store::describe(&e))
    }
}
