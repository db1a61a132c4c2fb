//! `livehub bench` end to end with tiny sizes: every scenario over every transport against a
//! real `livehub serve`, the raw ceiling, and the failures that must give a non-zero exit.
//! These check that the instrument works and reports; they assert no speed.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Served, BIN};
use serde_json::Value;

/// A server with the per-address limits off, as `bench/compare.sh` runs it.
fn unlimited() -> (Served, tempfile::NamedTempFile) {
    let config = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        config.path(),
        "[rate_limits]\nconnections_per_ip = 0\nmessages_per_sec = 0\npublishes_per_sec_per_ip = 0\nreads_per_sec_per_ip = 0\n",
    )
    .expect("write config");
    let served = Served::with_args(&["--config", config.path().to_str().expect("utf-8 path")]);
    (served, config)
}

fn bench(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .args(["--json", "--quiet"])
        .stdin(Stdio::null())
        .output()
        .expect("run livehub bench")
}

/// Runs a bench that must succeed and returns its JSON report.
fn report(args: &[&str]) -> Value {
    let out = bench(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench {args:?} failed:\n{stderr}");
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON on stdout ({e}):\n{stderr}"));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    report
}

const TINY: [&str; 6] = ["--connections", "20", "--duration", "0.6", "--warmup", "0.2"];

fn assert_delivered(r: &Value) {
    let connections = r["connections"].as_u64().expect("connections");
    assert_eq!(connections, 20, "{r}");
    assert!(r["published"].as_u64().expect("published") > 0, "{r}");
    assert!(r["delivered_per_sec"].as_f64().expect("rate") > 0.0, "{r}");
    // In a closed loop a publication reaches every subscriber of its channel, so receipts are
    // close to publications × subscribers per channel (the edges of the window blur it a little).
    let per_channel = connections / r["channels"].as_u64().expect("channels");
    let published = r["published"].as_u64().expect("published");
    let delivered = r["delivered"].as_u64().expect("delivered");
    assert!(delivered + 8 * 20 >= published * per_channel, "{r}");
    let l = &r["latency_ms"];
    let (p50, p99, max) = (l["p50"].as_f64(), l["p99"].as_f64(), l["max"].as_f64());
    assert!(p50 <= p99 && p99 <= max && max.is_some(), "{r}");
    assert_eq!(l["count"].as_u64(), Some(delivered), "{r}");
}

#[test]
fn fanout_completes_over_every_transport() {
    let (served, _config) = unlimited();
    for transport in ["ws", "ws-msgpack", "sse", "longpoll", "signalr", "signalr-msgpack"] {
        let r = report(&[&["fanout", "--url", &served.url, "--transport", transport][..], &TINY].concat());
        assert_eq!(r["transport"], transport);
        assert_delivered(&r);
        assert!(r["connect"]["per_sec"].as_f64().expect("connect rate") > 0.0, "{r}");
    }
}

#[test]
fn channels_spread_subscribers_and_a_fixed_rate_is_kept_to() {
    let (served, _config) = unlimited();
    let r = report(&[&["channels", "--url", &served.url, "--channels", "4"][..], &TINY].concat());
    assert_eq!(r["channels"], 4);
    assert_delivered(&r);

    let r = report(&[&["fanout", "--url", &served.url, "--rate", "50"][..], &TINY].concat());
    let per_sec = r["published_per_sec"].as_f64().expect("rate");
    assert!((20.0..=80.0).contains(&per_sec), "about 50/s asked for: {r}");
}

#[test]
fn wildcards_route_each_publication_to_the_one_pattern_that_matches() {
    let (served, _config) = unlimited();
    for transport in ["ws", "sse"] {
        let r = report(
            &[&["wildcards", "--url", &served.url, "--transport", transport, "--channels", "4"][..], &TINY]
                .concat(),
        );
        assert_eq!((r["connections"].as_u64(), r["channels"].as_u64()), (Some(20), Some(4)), "{r}");
        // One subscriber per channel: receipts are the publications, give or take the window
        // in flight at each edge of the measured time (8 per channel): receipts of publications
        // made in the warm-up count, and the last ones published may not have arrived.
        let published = r["published"].as_u64().expect("published");
        let delivered = r["delivered"].as_u64().expect("delivered");
        assert!(published > 0 && delivered.abs_diff(published) <= 8 * 4, "{r}");
        assert_eq!(r["latency_ms"]["count"].as_u64(), Some(delivered), "{r}");
    }
    let out = bench(&["wildcards", "--url", &served.url, "--transport", "longpoll"]);
    assert!(!out.status.success(), "a pattern has no positions to poll from");
}

#[test]
fn connect_and_idle_report_rates_and_the_servers_memory() {
    let (served, _config) = unlimited();
    let r = report(&[&["connect", "--url", &served.url][..], &TINY].concat());
    let c = &r["connect"];
    assert!(
        c["per_sec"].as_f64().expect("rate") > 0.0 && c["p50_ms"].as_f64() <= c["max_ms"].as_f64(),
        "{r}"
    );
    assert!(r["latency_ms"].is_null());

    for transport in ["ws", "sse", "signalr"] {
        let r = report(&[&["idle", "--url", &served.url, "--transport", transport][..], &TINY].concat());
        let m = &r["memory"];
        assert_eq!(m["server_pid"], serde_json::json!([served.child.id()]), "{r}");
        assert!(m["server_rss_kib"].as_u64().expect("rss") > 1000, "{r}");
        assert!(m["server_kib_per_connection"].is_number(), "{r}");
    }
}

#[test]
fn the_raw_ceiling_broadcasts_to_every_subscriber() {
    let mut raw = Command::new(BIN)
        .args(["bench", "serve-raw", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve-raw");
    let mut lines = BufReader::new(raw.stderr.take().expect("stderr")).lines();
    let line = lines.next().expect("a listening line").expect("read");
    let addr = line.rsplit(' ').next().expect("address").to_string();
    std::thread::spawn(move || for _ in lines {});
    let url = format!("http://{addr}");
    let r = report(&[&["fanout", "--target", "raw", "--url", &url][..], &TINY].concat());
    assert_delivered(&r);
    let _ = raw.kill();
    let _ = raw.wait();
}

/// The JSON of a run that must fail with exit status 1.
fn failed(args: &[&str]) -> Value {
    let out = bench(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "bench {args:?} should fail:\n{stderr}");
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON on stdout ({e}):\n{stderr}"));
    assert_eq!(report["ok"], false, "{report}");
    assert!(!report["errors"].as_array().expect("errors").is_empty(), "{report}");
    report
}

#[test]
fn failed_runs_exit_non_zero_with_the_reason() {
    // Nothing listens on a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let r = failed(&[&["fanout", "--url", &format!("http://127.0.0.1:{port}")][..], &TINY].concat());
    assert!(r["errors"][0].as_str().expect("error").contains("refused"), "{r}");

    // The default per-address limit is kept at 5 here, so most subscribers are turned away.
    let limited = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(limited.path(), "[rate_limits]\nconnections_per_ip = 5\n").expect("write config");
    let served = Served::with_args(&["--config", limited.path().to_str().expect("utf-8 path")]);
    let r = failed(&[&["fanout", "--url", &served.url][..], &TINY].concat());
    assert!(r.to_string().contains("4029"), "the close code of the refusal is reported: {r}");
}

#[test]
fn a_server_that_goes_away_mid_run_fails_the_run() {
    let (mut served, _config) = unlimited();
    let run = Command::new(BIN)
        .args([
            "bench",
            "fanout",
            "--url",
            &served.url,
            "--connections",
            "20",
            "--duration",
            "4",
            "--warmup",
            "0.5",
        ])
        .args(["--json", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bench");
    std::thread::sleep(Duration::from_millis(1500));
    served.child.kill().expect("kill the server");
    let out = run.wait_with_output().expect("bench output");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(r["ok"], false);
}

#[test]
fn only_loopback_is_ever_targeted() {
    let runs = [
        bench(&["fanout", "--url", "http://10.1.2.3:80"]),
        bench(&["fanout", "--source-addrs", "192.168.0.9"]),
        Command::new(BIN)
            .args(["bench", "serve-raw", "--listen", "0.0.0.0:0"])
            .output()
            .expect("run serve-raw"),
    ];
    for out in runs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("loopback"), "{stderr}");
    }
}
