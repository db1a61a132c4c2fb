//! The real binary over PostgreSQL: publish on a durable channel from racing publishers, SIGKILL,
//! start again and recover by offset: every acknowledged publication is there exactly once under
//! the same epoch. While the database is stopped, durable publishes fail with `unavailable`
//! within the timeouts and `/health` says the store is degraded; once it is back, publishing
//! recovers.
//!
//! The test starts its own throwaway cluster with `tests/postgres/cluster.sh` (installing
//! Debian's postgresql when missing), unless `LIVEHUB_SKIP_POSTGRES` is set.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::history::{offsets_and_values, publish, recover};
use common::Served;
use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn cluster(args: &[&str]) -> String {
    let output = Command::new(root().join("tests/postgres/cluster.sh"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run tests/postgres/cluster.sh");
    assert!(output.status.success(), "cluster.sh {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn skipped() -> bool {
    let skip = std::env::var("LIVEHUB_SKIP_POSTGRES").unwrap_or_default().to_ascii_lowercase();
    if matches!(skip.as_str(), "1" | "true" | "yes" | "on") {
        eprintln!("LIVEHUB_SKIP_POSTGRES is set: not testing the binary on PostgreSQL");
        return true;
    }
    false
}

/// A config file with `orders/` durable.
fn config() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(file.path(), "[storage]\ndurable = [\"orders/\"]\n").expect("write config");
    file
}

/// `serve` on the PostgreSQL database at `url` (the flag overrides the tests'
/// `LIVEHUB_STORE=memory`).
fn start(url: &str, config: &tempfile::NamedTempFile) -> Served {
    let config = config.path().to_str().expect("utf-8 path");
    Served::with_args(&["--store", "postgres", "--database-url", url, "--config", config])
}

async fn health(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/health")).send().await.expect("health").json().await.expect("health JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_durable_publications_survive_sigkill_and_an_outage_on_postgres() {
    if skipped() {
        return;
    }
    let pid = std::process::id().to_string();
    let dir = format!("target/postgres/binary-{pid}");
    let database = cluster(&["start", &dir, "--until-exit-of", &pid]);
    let http = reqwest::Client::new();
    let config = config();
    let mut served = start(&database, &config);

    let mut tasks = Vec::new();
    for publisher in 0..8u64 {
        let (http, url) = (http.clone(), served.url.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25 {
                let v = publisher * 100 + i;
                let answer = publish(&http, &url, "orders/a", v).await.expect("published");
                acked.push((answer["offset"].as_u64().expect("offset"), v, answer["epoch"].clone()));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("publisher"));
    }
    let epoch = acked[0].2.as_str().expect("epoch").to_owned();
    assert!(acked.iter().all(|(_, _, e)| e == &json!(epoch)));
    let status = health(&http, &served.url).await;
    assert_eq!(
        (status["store"]["kind"].clone(), status["store"]["state"].clone()),
        (json!("postgres"), json!("ok"))
    );

    served.child.kill().expect("SIGKILL");
    served.child.wait().expect("wait");
    drop(served);

    let served = start(&database, &config);
    let history = recover(&http, &served.url, "orders/a", 0, &epoch).await;
    assert_eq!(history["position"]["epoch"], json!(epoch), "same epoch after SIGKILL: {history}");
    let mut stored = offsets_and_values(&history);
    let offsets: Vec<u64> = stored.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (1..=200).collect::<Vec<_>>(), "consecutive, nothing lost or repeated");
    stored.sort_unstable();
    let mut expected: Vec<(u64, u64)> = acked.iter().map(|(o, v, _)| (*o, *v)).collect();
    expected.sort_unstable();
    assert_eq!(stored, expected, "every acknowledged publication at the offset it was acknowledged at");
    let tail = recover(&http, &served.url, "orders/a", 190, &epoch).await;
    assert_eq!(offsets_and_values(&tail).len(), 10, "recovery from the middle, by offset");
    let retry = publish(&http, &served.url, "orders/a", 0).await.expect("retry");
    assert_eq!(retry["duplicate"], json!(true), "a retry of an acknowledged publish is recognised: {retry}");

    // The database goes away: durable publishes fail fast and clearly, /health says degraded.
    cluster(&["down", &dir]);
    let started = Instant::now();
    let (status, error) =
        publish(&http, &served.url, "orders/a", 1000).await.expect_err("the database is down");
    assert!(started.elapsed() < Duration::from_secs(5), "failed after {:?}", started.elapsed());
    assert_eq!((status, error["error"]["code"].clone()), (503, json!("unavailable")), "{error}");
    let status = health(&http, &served.url).await;
    assert_eq!(status["status"], "degraded", "{status}");
    assert_eq!(status["store"]["state"], "degraded", "{status}");
    assert!(status["store"]["error"].as_str().is_some_and(|e| e.contains("PostgreSQL store")), "{status}");

    cluster(&["up", &dir]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let back = loop {
        match publish(&http, &served.url, "orders/a", 1001).await {
            Ok(answer) => break answer,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("publishing did not recover: {e:?}"),
        }
    };
    assert_ne!(back["epoch"], json!(epoch), "a failed write starts a new epoch: {back}");
    let status = health(&http, &served.url).await;
    assert_eq!(status["store"]["state"], "ok", "{status}");
    drop(served);
    cluster(&["stop", &dir]);
}
