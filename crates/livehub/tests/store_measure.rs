//! What a SIGKILL loses of write-behind channels, measured with the real binary (ignored by
//! default; the figures in docs/storage.md come from a release run):
//!
//! ```sh
//! cargo test --release -p livehub --test store_measure -- --ignored --nocapture
//! ```
//!
//! Four HTTP publishers publish as fast as they can on one write-behind channel; the server is
//! killed mid-stream; after a restart the stored position is compared with the highest offset
//! that was acknowledged.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Served;
use serde_json::{json, Value};

fn start(dir: &std::path::Path) -> Served {
    Served::with_args(&["--store", "sqlite", "--data-dir", dir.to_str().expect("utf-8 path")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture in release mode"]
async fn write_behind_loss_on_sigkill() {
    println!(
        "| round | published/s | acknowledged | stored after restart | lost | lost in ms of publishing |"
    );
    println!("|---|---|---|---|---|---|");
    for round in 1..=5 {
        let dir = tempfile::tempdir().expect("data dir");
        let mut served = start(dir.path());
        let (acked, count, stop) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (acked, count, stop, url) =
                    (acked.clone(), count.clone(), stop.clone(), served.url.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        let body = json!({ "channel": "metrics/load", "data": { "v": 1 } });
                        let Ok(response) = http.post(format!("{url}/api/publish")).json(&body).send().await
                        else {
                            break;
                        };
                        let Ok(answer) = response.json::<Value>().await else { break };
                        if let Some(offset) = answer["offset"].as_u64() {
                            acked.fetch_max(offset, Ordering::SeqCst);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        served.child.kill().expect("SIGKILL");
        let elapsed = started.elapsed().as_secs_f64();
        served.child.wait().expect("wait");
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = task.await;
        }
        drop(served);
        let served = start(dir.path());
        let latest: Value = reqwest::get(format!("{}/api/channels/metrics/load", served.url))
            .await
            .expect("read")
            .json()
            .await
            .expect("JSON");
        let stored = latest["position"]["offset"].as_u64().expect("offset");
        let acked = acked.load(Ordering::SeqCst);
        let rate = count.load(Ordering::Relaxed) as f64 / elapsed;
        let lost = acked.saturating_sub(stored);
        println!(
            "| {round} | {rate:.0} | {acked} | {stored} | {lost} | {:.0} |",
            lost as f64 / rate * 1000.0
        );
    }
}
