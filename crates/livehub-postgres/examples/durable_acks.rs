//! Measures acknowledged durable publications per second on PostgreSQL: `publishers` tasks each
//! publish and wait for the acknowledgement (committed to the database) in a loop, spread over
//! `channels` channels, for `secs` seconds.
//!
//! ```text
//! DATABASE_URL=$(tests/postgres/cluster.sh start) \
//!   cargo run --release -p livehub-postgres --example durable_acks -- 64 64 10 [pool] [committers]
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livehub_core::{Broker, Clock, HistoryConfig, MemoryBroker, Payload, Publication, PublicationSink};
use livehub_postgres::{PgSettings, PgStore};

struct Discard;

impl PublicationSink for Discard {
    fn deliver(&self, _publication: &Arc<Publication>) {}
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("a number")).collect();
    let publishers = args.first().copied().unwrap_or(64);
    let channels = args.get(1).copied().unwrap_or(publishers).max(1);
    let secs = args.get(2).copied().unwrap_or(10) as u64;
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let mut settings = PgSettings::new(url);
    if let Some(&pool) = args.get(3) {
        settings.pool_size = pool;
    }
    if let Some(&committers) = args.get(4) {
        settings.committers = committers;
    }
    let (pool, committers) = (settings.pool_size, settings.committers);
    let store = PgStore::open(settings).await.expect("open");
    let broker = Arc::new(MemoryBroker::with_store(
        HistoryConfig::default(),
        Clock::system(),
        store,
        Arc::new(Discard),
    ));
    let run = format!("{:08x}", rand::random::<u32>());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..publishers)
        .map(|i| {
            let (broker, stop) = (broker.clone(), stop.clone());
            let channel =
                livehub_core::ChannelName::new(&format!("bench/{run}/{}", i % channels)).expect("valid");
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let data = Payload::json(r#"{"cpu":{"total":12.5},"n":1}"#).expect("valid");
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    broker.publish(&channel, data.clone(), None).await.expect("publish");
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("publisher"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "publishers={publishers} channels={channels} pool={pool} committers={committers}: {:.0} acks/s, p50 {:.2} ms, p99 {:.2} ms ({} acks in {elapsed:.1} s)",
        latencies.len() as f64 / elapsed,
        at(0.5),
        at(0.99),
        latencies.len()
    );
}
