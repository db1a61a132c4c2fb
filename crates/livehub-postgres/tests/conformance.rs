//! The broker conformance suite against `MemoryBroker` over the PostgreSQL store: every contract
//! of the in-memory broker holds when history lives in a real database.

mod common;

use std::sync::Arc;

use livehub_core::conformance::{run_all, BrokerParts};
use livehub_core::MemoryBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_broker_over_postgres_conforms() {
    let db = common::TestDb::new().await;
    let store = Arc::new(db.open().await);
    run_all(async |parts: BrokerParts| {
        Arc::new(MemoryBroker::with_store(parts.history, parts.clock, store.clone(), parts.sink))
    })
    .await;
    let stats = store.stats().await.expect("stats");
    assert!(
        stats.channels > 0 && stats.entries > 0,
        "the suite's publications are in the database: {stats:?}"
    );
    drop(store);
    db.drop_db().await;
}
