//! Measurements for docs/storage.md, ignored by default (they take seconds and only mean
//! something in release mode):
//!
//! ```sh
//! cargo test --release -p livehub-store --test measure -- --ignored --nocapture
//! ```
//!
//! Durable publishes through the broker over the SQLite store, with N concurrent publishers on
//! separate channels: acknowledgements per second and the latency of each (p50, p99), which is
//! what group commit is for. `durable_shapes` runs the shapes the issue asks about (256 and 1,024
//! publishers each on a channel of its own, 256 sharing 16 channels) three times each and prints
//! every run and the medians; pin it to the cores it may use:
//!
//! ```sh
//! taskset -c 0,1 cargo test --release -p livehub-store --test measure durable_shapes -- --ignored --nocapture
//! ```
//!
//! `MEASURE_SHAPES=256x256,1024x1024` (publishers x channels) and `MEASURE_ROUNDS=1` pick other
//! shapes and round counts, for quick before/after runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use livehub_core::conformance::Recorder;
use livehub_core::{Broker, ChannelName, Clock, Error, HistoryConfig, MemoryBroker, Payload};
use livehub_store::{Durability, DurabilitySettings, SqliteStore};

/// What one run measured.
struct Measured {
    /// Acknowledged publications per second.
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// Publishes refused with `store_full`.
    refused: u64,
}

/// `publishers` tasks publishing in a loop for `secs` seconds, publisher `i` on channel
/// `i % channels`.
async fn run(publishers: usize, channels: usize, durable: bool, secs: u64) -> Measured {
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
                let channel = ChannelName::new(&format!("measure/{}", i % channels)).expect("valid");
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
    Measured { rate: all.len() as f64 / elapsed, p50: pct(0.5), p99: pct(0.99), refused }
}

/// The 1-minute load average, to print beside each figure (the machine is shared).
fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg.split_whitespace().next().unwrap_or("?").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture in release mode"]
async fn durable_acknowledgements_per_second() {
    println!("| publishers | mode | acknowledged/s | p50 | p99 | refused (store_full) |");
    println!("|---|---|---|---|---|---|");
    for publishers in [1, 16, 256] {
        for durable in [true, false] {
            let m = run(publishers, publishers, durable, 3).await;
            let mode = if durable { "durable" } else { "write-behind" };
            println!(
                "| {publishers} | {mode} | {:.0} | {:.2?} | {:.2?} | {} |",
                m.rate, m.p50, m.p99, m.refused
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture in release mode"]
async fn durable_shapes() {
    let rounds: usize =
        std::env::var("MEASURE_ROUNDS").map_or(3, |r| r.parse().expect("MEASURE_ROUNDS: a number"));
    let shapes: Vec<(usize, usize)> = match std::env::var("MEASURE_SHAPES") {
        Ok(shapes) => shapes
            .split(',')
            .map(|shape| {
                let (publishers, channels) =
                    shape.split_once('x').expect("MEASURE_SHAPES: PUBLISHERSxCHANNELS,…");
                (publishers.parse().expect("a number"), channels.parse().expect("a number"))
            })
            .collect(),
        Err(_) => vec![(256, 256), (1024, 1024), (256, 16)],
    };
    println!("| publishers | channels | run | acknowledged/s | p50 | p99 | load average |");
    println!("|---|---|---|---|---|---|---|");
    for (publishers, channels) in shapes {
        let mut runs = Vec::new();
        for round in 1..=rounds {
            let m = run(publishers, channels, true, 3).await;
            println!(
                "| {publishers} | {channels} | {round} | {:.0} | {:.2?} | {:.2?} | {} |",
                m.rate,
                m.p50,
                m.p99,
                load_average()
            );
            runs.push(m);
        }
        runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let median = &runs[rounds / 2];
        println!(
            "| {publishers} | {channels} | median | **{:.0}** ({:.0} to {:.0}) | {:.2?} | {:.2?} | |",
            median.rate,
            runs[0].rate,
            runs[rounds - 1].rate,
            median.p50,
            median.p99
        );
    }
}
