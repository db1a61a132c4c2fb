//! Opening and closing the store `[storage]` names, and what `/health` says of it.

use std::sync::Arc;

use livehub_core::Node;
use livehub_store::{
    Durability, DurabilitySettings, Retention, SqliteStore, Store, StoreError, RETENTION_INTERVAL,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::config::{StorageSettings, StoreKind};

/// Opens the store `settings` names: `None` for the in-memory server. Fails when the data
/// directory is in use by another process or was written by a newer livehub.
pub fn open_store(settings: &StorageSettings) -> Result<Option<Arc<Store>>, StoreError> {
    if settings.store == StoreKind::Memory {
        tracing::info!("history is in memory only (storage.store = \"memory\"): a restart loses it");
        return Ok(None);
    }
    let durability =
        DurabilitySettings { durable: settings.durable.clone(), max_queued: settings.max_queued.max(1) };
    let durable = durability.clone();
    let sqlite = SqliteStore::open(&settings.data_dir, move |name| durable.is_durable(name))?;
    tracing::info!(path = %sqlite.path().display(), durable = ?settings.durable, "history store opened");
    Ok(Some(Arc::new(Durability::new(sqlite, durability))))
}

/// Writes what is queued and closes the store, marking a clean stop.
pub(crate) async fn close(store: &Store) {
    if let Err(e) = store.close().await {
        tracing::error!(error = %e, "writing the last write-behind publications failed");
    }
    match store.store().close().await {
        Ok(()) => tracing::info!("history store closed"),
        Err(e) => tracing::error!(error = %e, "closing the history store failed"),
    }
}

/// The store's part of `/health`, and whether it is degraded (writes failed, or the write-behind
/// queue is full so publishes are refused).
pub(crate) fn health(store: Option<&Arc<Store>>) -> (Value, bool) {
    // `state`, not `status`: the body's one `status` is the server's.
    let Some(store) = store else { return (json!({ "kind": "memory", "state": "ok" }), false) };
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

/// Enforces the history bounds on every stored channel every [`RETENTION_INTERVAL`] (the node's
/// sweep covers only the channels in memory) until `shutdown`.
pub(crate) fn spawn_retention(store: Arc<Store>, node: &Node, shutdown: CancellationToken) {
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
