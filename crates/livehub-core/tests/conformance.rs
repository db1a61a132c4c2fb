//! The broker conformance suite against the brokers of this crate: the in-memory one, and the
//! same broker over a durable store (the test store, shared by every broker the suite makes, as
//! a database outlives processes).

use std::sync::Arc;

use livehub_core::conformance::{run_all, BrokerParts, TestStore};
use livehub_core::MemoryBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_broker_conforms() {
    run_all(async |parts: BrokerParts| Arc::new(MemoryBroker::new(parts.history, parts.clock, parts.sink)))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_broker_over_a_store_conforms() {
    let store = Arc::new(TestStore::default());
    run_all(async |parts: BrokerParts| {
        Arc::new(MemoryBroker::with_store(parts.history, parts.clock, store.clone(), parts.sink))
    })
    .await;
}
