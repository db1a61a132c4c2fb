//! The broker conformance suite against the in-memory broker over the SQLite store: every
//! channel durable, and every channel written behind. Each run shares one store between every
//! broker the suite makes, as processes share a data directory one after another.

use std::sync::Arc;

use livehub_core::conformance::{run_all, BrokerParts};
use livehub_core::MemoryBroker;
use livehub_store::{Durability, DurabilitySettings, SqliteStore};

async fn conforms(durable: Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(dir.path(), |_| false).expect("open");
    let settings = DurabilitySettings { durable, ..DurabilitySettings::default() };
    let store = Arc::new(Durability::new(sqlite.clone(), settings));
    run_all(async |parts: BrokerParts| {
        Arc::new(MemoryBroker::with_store(parts.history, parts.clock, store.clone(), parts.sink))
    })
    .await;
    store.close().await.expect("flush");
    sqlite.close().await.expect("close");
    assert_eq!(sqlite.failed_writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_durable_conforms() {
    conforms(vec![String::new()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_behind_conforms() {
    conforms(Vec::new()).await;
}
