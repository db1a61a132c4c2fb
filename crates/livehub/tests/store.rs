//! The real binary over the SQLite store: publish, SIGKILL or SIGTERM, start again, and recover
//! by offset. Acknowledged durable publications are all there exactly once under the same
//! epoch; write-behind channels keep their epoch across a clean stop and get a new one after a
//! crash; a second process on the same data directory is refused.

mod common;

use std::path::Path;
use std::process::Command;

use common::history::{offsets_and_values, publish, recover};
use common::{Served, BIN};
use serde_json::{json, Value};

/// A config file putting the store in `dir`, with `orders/` durable, and no MQTT `$SYS` figures
/// (they would be stored beside the tests' channels).
fn config(dir: &Path) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("config file");
    let text = format!(
        "[storage]\nstore = \"sqlite\"\ndata_dir = {:?}\ndurable = [\"orders/\"]\n\n[mqtt]\nsys_interval_secs = 0\n",
        dir.to_str().expect("utf-8 path")
    );
    std::fs::write(file.path(), text).expect("write config");
    file
}

/// `serve` over the store of `config` (the flag overrides the tests' `LIVEHUB_STORE=memory`).
fn start(config: &tempfile::NamedTempFile) -> Served {
    Served::with_args(&["--store", "sqlite", "--config", config.path().to_str().expect("utf-8 path")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_durable_publications_survive_sigkill_and_sigterm() {
    let dir = tempfile::tempdir().expect("data dir");
    let config = config(dir.path());
    let http = reqwest::Client::new();
    let mut served = start(&config);

    // 8 publishers racing on one durable channel, and a write-behind channel beside them.
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
    let behind = publish(&http, &served.url, "metrics/a", 1).await.expect("published");
    let behind_epoch = behind["epoch"].as_str().expect("epoch").to_owned();
    let health: Value =
        http.get(format!("{}/health", served.url)).send().await.expect("health").json().await.expect("JSON");
    assert_eq!(health["store"]["kind"], "sqlite", "{health}");
    assert_eq!(health["store"]["state"], "ok", "{health}");

    served.child.kill().expect("SIGKILL");
    served.child.wait().expect("wait");
    drop(served);

    let served = start(&config);
    let history = recover(&http, &served.url, "orders/a", 0, &epoch).await;
    assert_eq!(history["position"]["epoch"], json!(epoch), "same epoch after SIGKILL: {history}");
    let mut stored = offsets_and_values(&history);
    let offsets: Vec<u64> = stored.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (1..=200).collect::<Vec<_>>(), "consecutive, nothing lost or repeated");
    stored.sort_unstable();
    let mut expected: Vec<(u64, u64)> = acked.iter().map(|(o, v, _)| (*o, *v)).collect();
    expected.sort_unstable();
    assert_eq!(stored, expected, "every acknowledged publication at the offset it was acknowledged at");
    // Recovery from the middle, by offset, as a reconnecting client would.
    let tail = recover(&http, &served.url, "orders/a", 190, &epoch).await;
    assert_eq!(offsets_and_values(&tail).len(), 10);
    // A retry of an acknowledged publish is recognised after the crash.
    let retry = publish(&http, &served.url, "orders/a", 0).await.expect("published");
    assert_eq!(
        (retry["duplicate"].clone(), retry["offset"].clone()),
        (json!(true), json!(acked_offset(&acked, 0)))
    );
    // The write-behind channel may have lost its tail: it says so with a new epoch.
    let after_crash = recover(&http, &served.url, "metrics/a", 0, &behind_epoch).await;
    assert_eq!(after_crash["error"]["code"], "epoch_mismatch", "{after_crash}");

    // A second process on the same data directory is refused before it listens.
    let second = Command::new(BIN)
        .args(["serve", "--no-sources", "--listen", "127.0.0.1:0", "--store", "sqlite"])
        .args(["--config", config.path().to_str().expect("utf-8 path")])
        .env("NO_COLOR", "1")
        .output()
        .expect("run a second serve");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another livehub process"), "{stderr}");

    // A clean stop keeps write-behind epochs too.
    let behind = publish(&http, &served.url, "metrics/a", 2).await.expect("published");
    let behind_epoch = behind["epoch"].as_str().expect("epoch").to_owned();
    let offset = behind["offset"].as_u64().expect("offset");
    let mut served = served;
    let pid = served.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let status = served.child.wait().expect("wait");
    assert!(status.success(), "{status}");
    drop(served);

    let served = start(&config);
    let history = recover(&http, &served.url, "metrics/a", 0, &behind_epoch).await;
    assert_eq!(history["position"]["offset"], json!(offset), "{history}");
    assert_eq!(offsets_and_values(&history).last().map(|(_, v)| *v), Some(2));
    let history = recover(&http, &served.url, "orders/a", 200, &epoch).await;
    assert_eq!(history["position"]["offset"], 200, "{history}");
    drop(served);
}

fn acked_offset(acked: &[(u64, u64, Value)], v: u64) -> u64 {
    acked.iter().find(|(_, value, _)| *value == v).map(|(o, _, _)| *o).expect("acknowledged")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_an_online_backup_beside_a_running_server() {
    let dir = tempfile::tempdir().expect("data dir");
    let config = config(dir.path());
    let http = reqwest::Client::new();
    let served = start(&config);
    for v in 1..=3 {
        publish(&http, &served.url, "orders/b", v).await.expect("published");
    }
    let epoch = publish(&http, &served.url, "orders/c", 1).await.expect("published")["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    let data_dir = dir.path().to_str().expect("utf-8 path");

    let stats = Command::new(BIN).args(["store", "stats", "--data-dir", data_dir]).output().expect("stats");
    assert!(stats.status.success(), "{}", String::from_utf8_lossy(&stats.stderr));
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(text.contains("channels        2\n"), "{text}");
    assert!(text.contains("entries         4\n"), "{text}");
    assert!(text.contains("schema version  1\n"), "{text}");

    let copies = tempfile::tempdir().expect("backup dir");
    let copy = copies.path().join("backup.sqlite3");
    let backup = Command::new(BIN)
        .args(["store", "backup", "--data-dir", data_dir, copy.to_str().expect("utf-8 path")])
        .output()
        .expect("backup");
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    let again = Command::new(BIN)
        .args(["store", "backup", "--data-dir", data_dir, copy.to_str().expect("utf-8 path")])
        .output()
        .expect("backup");
    assert!(!again.status.success(), "an existing file is never overwritten");
    drop(served);

    // Restored into an empty data directory, the copy serves the same history and epoch.
    let restored = tempfile::tempdir().expect("restore dir");
    std::fs::copy(&copy, restored.path().join("livehub.sqlite3")).expect("restore");
    let served = start(&self::config(restored.path()));
    let history = recover(&http, &served.url, "orders/c", 0, &epoch).await;
    assert_eq!(history["position"]["offset"], 1, "{history}");
    let history = recover(&http, &served.url, "orders/b", 0, "").await;
    assert_eq!(offsets_and_values(&history).len(), 3, "{history}");

    let missing = Command::new(BIN)
        .args(["store", "stats", "--data-dir", "/nonexistent/livehub"])
        .output()
        .expect("stats");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no store here"));
}
