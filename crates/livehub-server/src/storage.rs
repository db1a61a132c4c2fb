//! Opening and closing the store `[storage]` names, and what `/health` says of it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use livehub_core::{
    ChannelName, Error, HistoryQuery, HistoryStore, Node, StoredEntry, StoredHistory, StoredStream,
};
use livehub_postgres::{PgSettings, PgStore, PgStoreError};
use livehub_store::{
    Durability, DurabilitySettings, Retention, SqliteStore, Store, StoreError, RETENTION_INTERVAL,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::config::{StorageSettings, StoreKind};

/// The store history goes to, behind the same durability layer whichever database it is.
/// Cheap to clone.
#[derive(Clone)]
pub enum ServerStore {
    /// The embedded SQLite database.
    Sqlite(Arc<Store>),
    /// A PostgreSQL database.
    Postgres(Arc<Durability<PgStore>>),
}

impl ServerStore {
    /// The store's name in `[storage] store`: `sqlite` or `postgres`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A store that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The SQLite store.
    #[error(transparent)]
    Sqlite(#[from] StoreError),
    /// The PostgreSQL store.
    #[error(transparent)]
    Postgres(#[from] PgStoreError),
    /// `store = "postgres"` without a URL.
    #[error(
        "storage.store is \"postgres\" but no database URL is set: set [storage] url, \
         --database-url, LIVEHUB_DATABASE_URL or DATABASE_URL"
    )]
    NoUrl,
}

/// How often an idle PostgreSQL store is asked whether it answers, so that `/health` tells of an
/// outage before a publish runs into it.
const POSTGRES_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Opens the store `settings` names: `None` for the in-memory server. Fails when the data
/// directory is in use by another process, the database cannot be reached, or either was
/// written by a newer livehub.
pub async fn open_store(settings: &StorageSettings) -> Result<Option<ServerStore>, OpenStoreError> {
    let durability =
        DurabilitySettings { durable: settings.durable.clone(), max_queued: settings.max_queued.max(1) };
    match settings.store {
        StoreKind::Memory => {
            tracing::info!("history is in memory only (storage.store = \"memory\"): a restart loses it");
            Ok(None)
        }
        StoreKind::Sqlite => {
            let durable = durability.clone();
            let sqlite = SqliteStore::open(&settings.data_dir, move |name| durable.is_durable(name))?;
            tracing::info!(path = %sqlite.path().display(), durable = ?settings.durable, "history store opened");
            Ok(Some(ServerStore::Sqlite(Arc::new(Durability::new(sqlite, durability)))))
        }
        StoreKind::Postgres => {
            let url = settings.url.clone().filter(|url| !url.is_empty()).ok_or(OpenStoreError::NoUrl)?;
            let postgres = PgStore::open(PgSettings::new(url)).await?;
            tracing::info!(durable = ?settings.durable, "history store opened in PostgreSQL");
            Ok(Some(ServerStore::Postgres(Arc::new(Durability::new(postgres, durability)))))
        }
    }
}

#[async_trait]
impl HistoryStore for ServerStore {
    fn admit(&self, channel: &ChannelName) -> Result<(), Error> {
        match self {
            Self::Sqlite(store) => store.admit(channel),
            Self::Postgres(store) => store.admit(channel),
        }
    }

    async fn load(&self, channel: &ChannelName) -> Result<Option<StoredStream>, Error> {
        match self {
            Self::Sqlite(store) => store.load(channel).await,
            Self::Postgres(store) => store.load(channel).await,
        }
    }

    async fn append(&self, channel: &ChannelName, entries: &[StoredEntry]) -> Result<(), Error> {
        match self {
            Self::Sqlite(store) => store.append(channel, entries).await,
            Self::Postgres(store) => store.append(channel, entries).await,
        }
    }

    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<StoredHistory, Error> {
        match self {
            Self::Sqlite(store) => store.read(channel, query).await,
            Self::Postgres(store) => store.read(channel, query).await,
        }
    }

    async fn evict(&self, channel: &ChannelName, size: usize, min_ts: u64) -> Result<u64, Error> {
        match self {
            Self::Sqlite(store) => store.evict(channel, size, min_ts).await,
            Self::Postgres(store) => store.evict(channel, size, min_ts).await,
        }
    }
}

/// Writes what is queued and closes the store, marking a clean stop.
pub(crate) async fn close(store: &ServerStore) {
    let flushed = match store {
        ServerStore::Sqlite(store) => store.close().await,
        ServerStore::Postgres(store) => store.close().await,
    };
    if let Err(e) = flushed {
        tracing::error!(error = %e, "writing the last write-behind publications failed");
    }
    match store {
        ServerStore::Sqlite(store) => match store.store().close().await {
            Ok(()) => tracing::info!("history store closed"),
            Err(e) => tracing::error!(error = %e, "closing the history store failed"),
        },
        ServerStore::Postgres(store) => {
            store.store().close();
            tracing::info!("history store closed");
        }
    }
}

/// The store's part of `/health`, and whether it is degraded (writes failed, or the write-behind
/// queue is full so publishes are refused).
pub(crate) fn health(store: Option<&ServerStore>) -> (Value, bool) {
    // `state`, not `status`: the body's one `status` is the server's.
    let store = match store {
        None => return (json!({ "kind": "memory", "state": "ok" }), false),
        Some(ServerStore::Postgres(store)) => return postgres_health(store),
        Some(ServerStore::Sqlite(store)) => store,
    };
    let queue = store.queue_status();
    let failed_writes = store.store().failed_writes();
    let degraded = failed_writes > 0 || queue.failed_flushes > 0 || queue.queued >= queue.max_queued;
    let state = if degraded { "degraded" } else { "ok" };
    let value = json!({
        "kind": "sqlite",
        "state": state,
        "path": store.store().path(),
        "queued": queue.queued,
        "max_queued": queue.max_queued,
        "failed_writes": failed_writes + queue.failed_flushes as u64,
    });
    (value, degraded)
}

/// The PostgreSQL store's part of `/health`: degraded while the database does not answer (as
/// the last operation or probe found it) or the write-behind queue is full; it recovers with
/// the database.
fn postgres_health(store: &Durability<PgStore>) -> (Value, bool) {
    let queue = store.queue_status();
    let status = store.store().status();
    let degraded = status.degraded || queue.queued >= queue.max_queued;
    let value = json!({
        "kind": "postgres",
        "state": if degraded { "degraded" } else { "ok" },
        "error": status.error,
        "connections": status.connections,
        "max_connections": status.max_connections,
        "queued": queue.queued,
        "max_queued": queue.max_queued,
        "failed_writes": queue.failed_flushes,
    });
    (value, degraded)
}

/// Starts the store's background work until `shutdown`: retention on disk, and for PostgreSQL
/// a probe that keeps `/health` current while nothing is published.
pub(crate) fn spawn_maintenance(store: &ServerStore, node: &Node, shutdown: CancellationToken) {
    match store {
        ServerStore::Sqlite(store) => spawn_retention(store.clone(), node, shutdown),
        ServerStore::Postgres(store) => {
            spawn_postgres_retention(store.clone(), node, shutdown.clone());
            let postgres = store.store().clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(POSTGRES_PROBE_INTERVAL);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = every.tick() => {}
                    }
                    postgres.check().await;
                }
            });
        }
    }
}

/// Retention for the PostgreSQL store: as [`Retention`] does for SQLite, a page of channel
/// names at a time, each evicted by its own statement.
fn spawn_postgres_retention(store: Arc<Durability<PgStore>>, node: &Node, shutdown: CancellationToken) {
    const PAGE: usize = 1000;
    let history = node.config().history.clone();
    let clock = node.config().clock.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(RETENTION_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let now = clock.now_millis();
            let mut after = None;
            let swept: Result<usize, Error> = async {
                let mut swept = 0;
                loop {
                    let names = store.store().channel_names(after.clone(), PAGE).await?;
                    for name in &names {
                        let Ok(channel) = ChannelName::new(name) else { continue };
                        let policy = history.policy_for(name);
                        let min_ts = now.saturating_sub(policy.max_age.as_millis() as u64);
                        store.evict(&channel, policy.size, min_ts).await?;
                        swept += 1;
                    }
                    if names.len() < PAGE {
                        return Ok(swept);
                    }
                    after = names.last().cloned();
                }
            }
            .await;
            match swept {
                Ok(channels) => tracing::debug!(channels, "retention swept the store"),
                Err(e) => tracing::warn!(error = %e, "retention sweep of the store failed"),
            }
        }
    });
}

/// Enforces the history bounds on every stored channel every [`RETENTION_INTERVAL`] (the node's
/// sweep covers only the channels in memory) until `shutdown`.
fn spawn_retention(store: Arc<Store>, node: &Node, shutdown: CancellationToken) {
    let history = node.config().history.clone();
    let clock = node.config().clock.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(RETENTION_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let retention = Retention { store: &store, history: &history };
            match retention.sweep(clock.now_millis()).await {
                Ok(channels) => tracing::debug!(channels, "retention swept the store"),
                Err(e) => tracing::warn!(error = %e, "retention sweep of the store failed"),
            }
        }
    });
}
