//! Measurements for docs/storage.md, ignored by default (they take seconds and only mean
//! something in release mode):
//!
//! ```sh
//! cargo test --release -p livehub-store --test measure -- --ignored --nocapture
//! ```
//!
//! Durable publishes through the broker over the SQLite store, with N concurrent publishers on
//! separate channels: acknowledgements per second and the latency of each (p50, p99), which is
//! what group commit is for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use livehub_core::conformance::Recorder;
use livehub_core::{Broker, ChannelName, Clock, Error, HistoryConfig, MemoryBroker, Payload};
use livehub_store::{Durability, DurabilitySettings, SqliteStore};

async fn run(publishers: usize, durable: bool, secs: u64) -> (f64, Duration, Duration, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(dir.path(), |_| false).expect("open");
    let prefixes = if durable { vec![String::new()] } else { Vec::new() };
    let settings = DurabilitySettings { durable: prefixes, ..DurabilitySettings::default() };
    let store = Arc::new(Durability::new(sqlite.clone(), settings));
    let broker = Arc::new(MemoryBroker::with_store(
        HistoryConfig::default(),
        Clock::system(),
        store.clone(),
        Arc::new(Recorder::default()),
    ));
    let end = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..publishers)
        .map(|i| {
            let broker = broker.clone();
            tokio::spawn(async move {
                let channel = ChannelName::new(&format!("measure/{i}")).expect("valid");
                let data = Payload::json(
                    r#"{"cpu":{"total":12.5},"pad":"0123456789012345678901234567890123456789"}"#,
                )
                .expect("valid");
                let (mut latencies, mut refused) = (Vec::new(), 0u64);
                while Instant::now() < end {
                    let start = Instant::now();
                    match broker.publish(&channel, data.clone(), None).await {
                        Ok(_) => latencies.push(start.elapsed()),
                        // The write-behind queue is full: back off as a client told 503 would.
                        Err(Error::StoreFull(_)) => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(e) => panic!("publish: {e}"),
                    }
                }
                (latencies, refused)
            })
        })
        .collect();
    let started = Instant::now();
    let (mut all, mut refused) = (Vec::new(), 0);
    for task in tasks {
        let (latencies, refusals) = task.await.expect("publisher");
        all.extend(latencies);
        refused += refusals;
    }
    let elapsed = started.elapsed().as_secs_f64();
    store.close().await.expect("flush");
    sqlite.close().await.expect("close");
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (all.len() as f64 / elapsed, pct(0.5), pct(0.99), refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture in release mode"]
async fn durable_acknowledgements_per_second() {
    println!("| publishers | mode | acknowledged/s | p50 | p99 | refused (store_full) |");
    println!("|---|---|---|---|---|---|");
    for publishers in [1, 16, 256] {
        for durable in [true, false] {
            let (rate, p50, p99, refused) = run(publishers, durable, 3).await;
            let mode = if durable { "durable" } else { "write-behind" };
            println!("| {publishers} | {mode} | {rate:.0} | {p50:.2?} | {p99:.2?} | {refused} |");
        }
    }
}
