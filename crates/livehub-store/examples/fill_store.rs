//! Fills a new SQLite data directory with `publications` publications spread evenly over
//! `channels` channels (`store/fill/0`, `store/fill/1`, …), written through the store's own
//! write-behind path in large transactions, then closes it cleanly. `bench/store_startup.sh` uses
//! it to measure how long `livehub serve` takes to start on a large store.
//!
//! ```text
//! cargo run --release -p livehub-store --example fill_store -- DIR [publications] [channels] [payload_bytes]
//! ```
//!
//! Defaults: 1,000,000 publications over 1,000 channels, about 150 bytes of JSON each, with
//! server times spread over the hour before now (so a retention of an hour or more keeps them).

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use livehub_core::{ChannelName, Epoch, Payload, Publication, StoredEntry, StreamPosition};
use livehub_store::{SqliteStore, WriteBehind, DB_FILE};

/// Publications of one channel per transaction: with 1,000 channels, 100,000 rows a commit.
const PER_CHANNEL_BATCH: usize = 100;

/// The span the publications' server times cover, ending now.
const SPAN_MS: u64 = 3_600_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: fill_store DIR [publications] [channels] [payload_bytes]");
        std::process::exit(2);
    };
    let number = |i: usize, default: usize| args.get(i).map_or(default, |a| a.parse().expect("a number"));
    let (publications, channels, payload_bytes) =
        (number(1, 1_000_000), number(2, 1_000).max(1), number(3, 150));
    let dir = std::path::Path::new(dir);
    assert!(!dir.join(DB_FILE).exists(), "{} already holds a store: give an empty directory", dir.display());
    let per_channel = publications / channels;
    let store = SqliteStore::open(dir, |_| false).expect("open the store");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
    let names: Vec<_> = (0..channels)
        .map(|c| ChannelName::new(&format!("store/fill/{c}")).expect("a channel name"))
        .collect();
    let epochs: Vec<_> = (0..channels).map(|_| Epoch::random()).collect();
    let started = Instant::now();
    let mut written = 0;
    for from in (1..=per_channel).step_by(PER_CHANNEL_BATCH) {
        let to = (from + PER_CHANNEL_BATCH - 1).min(per_channel);
        let batches = names
            .iter()
            .zip(&epochs)
            .map(|(channel, epoch)| {
                let entries = (from..=to)
                    .map(|offset| {
                        let ts = now - SPAN_MS + (offset as u64 * SPAN_MS) / per_channel as u64;
                        let position = StreamPosition { offset: offset as u64, epoch: epoch.clone() };
                        let data = Payload::json(reading(offset, payload_bytes)).expect("valid JSON");
                        let publication = Publication::with_ts(channel.clone(), data, position, ts);
                        StoredEntry { publication: Arc::new(publication), key: None }
                    })
                    .collect();
                (channel.clone(), entries)
            })
            .collect();
        store.append_behind(batches).await.expect("write a batch");
        written += (to + 1 - from) * channels;
    }
    store.barrier(true).await.expect("sync");
    let took = started.elapsed().as_secs_f64();
    store.close().await.expect("close");
    let bytes = std::fs::metadata(dir.join(DB_FILE)).expect("the database file").len();
    println!(
        "{written} publications in {channels} channels written in {took:.1} s ({:.0}/s); {DB_FILE}: {:.0} MB",
        written as f64 / took,
        bytes as f64 / 1e6
    );
}

/// A sensor reading of about `bytes` bytes of JSON.
fn reading(n: usize, bytes: usize) -> String {
    let head = format!(
        r#"{{"seq":{n},"t":{:.2},"h":{:.1},"p":{:.1},"pad":""#,
        20.0 + (n % 100) as f64 / 10.0,
        40.0 + (n % 37) as f64,
        1013.0 + (n % 11) as f64 / 10.0
    );
    let pad = bytes.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}
