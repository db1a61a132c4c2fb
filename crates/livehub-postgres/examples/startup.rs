//! Measures what a start costs on a large PostgreSQL store: opening it (connect and migrations
//! check), then a channel's first load and a read of its newest 100 publications, which is all
//! a restarted broker does before it serves a channel (channels are loaded when first touched).
//!
//! ```text
//! DATABASE_URL=... cargo run --release -p livehub-postgres --example startup -- CHANNEL
//! ```

use std::time::Instant;

use livehub_core::{ChannelName, HistoryQuery, HistoryStore};
use livehub_postgres::{PgSettings, PgStore};

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let channel = std::env::args().nth(1).unwrap_or_else(|| "startup/0".into());
    let channel = ChannelName::new(&channel).expect("a channel name");
    let started = Instant::now();
    let store = PgStore::open(PgSettings::new(url)).await.expect("open");
    let opened = started.elapsed();
    let loaded = store.load(&channel).await.expect("load").map(|s| s.offset);
    let first_load = started.elapsed() - opened;
    let read = store.read(&channel, HistoryQuery::newest(100)).await.expect("read").publications.len();
    let first_read = started.elapsed() - opened - first_load;
    let stats = store.stats().await.expect("stats");
    println!(
        "{} publications in {} channels ({} MB): open {:.1} ms, first load {:.1} ms (offset {loaded:?}), \
         newest 100 {:.1} ms ({read} read)",
        stats.entries,
        stats.channels,
        stats.size_bytes / 1_000_000,
        opened.as_secs_f64() * 1e3,
        first_load.as_secs_f64() * 1e3,
        first_read.as_secs_f64() * 1e3,
    );
}
