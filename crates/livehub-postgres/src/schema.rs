//! The schema and its migrations, applied at start under an advisory lock.
//!
//! `livehub_schema` records every migration applied, so a newer livehub opens an older database
//! (it applies the migrations it lacks) and an older livehub refuses a newer one instead of
//! writing rows it does not understand. Every migration runs in the same transaction as the lock
//! and its version row: two livehub processes starting together apply it once, and a failed
//! migration leaves the schema as it was (PostgreSQL's DDL is transactional).

use tokio_postgres::Client;

use crate::PgStoreError;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = 1;

/// Key of the transaction-level advisory lock that serialises migrations (any constant that no
/// other application on the database uses; this one spells "livehub" in ASCII).
const MIGRATION_LOCK: i64 = 0x006c_6976_6568_7562;

/// The migrations, in order: `MIGRATIONS[i]` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // Version 1. One row per channel holds its epoch, position and latest value (kept when
    // history keeps nothing else). Publications and idempotency keys carry their epoch in the
    // key, so a new epoch's rows are inserted beside the old ones in the statement that deletes
    // those. `pos` is the publication's offset (`offset` is an SQL keyword). `dead_epochs` are
    // the channel's abandoned epochs, whose late writes are refused.
    "
    CREATE TABLE livehub_channels (
        channel       text PRIMARY KEY,
        epoch         text NOT NULL,
        last_pos      bigint NOT NULL,
        latest_ts     bigint NOT NULL,
        latest_binary boolean NOT NULL,
        latest_data   bytea NOT NULL,
        dead_epochs   text[] NOT NULL DEFAULT '{}'
    );
    CREATE TABLE livehub_publications (
        channel   text NOT NULL,
        epoch     text NOT NULL,
        pos       bigint NOT NULL,
        ts        bigint NOT NULL,
        is_binary boolean NOT NULL,
        data      bytea NOT NULL,
        PRIMARY KEY (channel, epoch, pos)
    );
    CREATE INDEX livehub_publications_by_time ON livehub_publications (channel, epoch, ts);
    CREATE TABLE livehub_keys (
        channel text NOT NULL,
        epoch   text NOT NULL,
        pos     bigint NOT NULL,
        key     text NOT NULL,
        PRIMARY KEY (channel, epoch, pos)
    );
    ",
];

/// Applies the migrations the database lacks; returns the version it then has.
pub(crate) async fn migrate(client: &mut Client) -> Result<i32, PgStoreError> {
    let tx = client.transaction().await.map_err(PgStoreError::migration)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(PgStoreError::migration)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS livehub_schema (
            version    integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now(),
            livehub    text NOT NULL
        )",
    )
    .await
    .map_err(PgStoreError::migration)?;
    let found = version(&tx).await.map_err(PgStoreError::migration)?;
    if found > SCHEMA_VERSION {
        return Err(PgStoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let version = index as i32 + 1;
        tx.batch_execute(sql).await.map_err(PgStoreError::migration)?;
        tx.execute(
            "INSERT INTO livehub_schema (version, livehub) VALUES ($1, $2)",
            &[&version, &env!("CARGO_PKG_VERSION")],
        )
        .await
        .map_err(PgStoreError::migration)?;
        tracing::info!(version, "applied PostgreSQL store migration");
    }
    tx.commit().await.map_err(PgStoreError::migration)?;
    Ok(SCHEMA_VERSION)
}

/// The newest migration applied (0 for an empty database).
pub(crate) async fn version(
    client: &impl tokio_postgres::GenericClient,
) -> Result<i32, tokio_postgres::Error> {
    let row = client.query_one("SELECT coalesce(max(version), 0) FROM livehub_schema", &[]).await?;
    row.try_get(0)
}
