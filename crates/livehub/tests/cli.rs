//! The `livehub` binary end to end: `serve` on a free port, `publish` and `subscribe` against
//! it, a graceful stop on SIGTERM, and the start-up warnings about an exposed listener.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::{Served, BIN};

#[test]
fn publish_and_subscribe_commands_talk_to_serve() {
    let served = Served::start();
    let mut subscriber = Command::new(BIN)
        .args(["subscribe", "demo/ticks", "--count", "2", "--url", &served.url])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn subscribe");
    // The subscriber may not be subscribed yet when the first publishes land, so publish until it
    // has printed its two messages and exited.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut published = 0u64;
    while subscriber.try_wait().expect("try_wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "subscriber did not get two messages in time");
        let out = Command::new(BIN)
            .args(["publish", "demo/ticks", &format!("{{\"v\":{published}}}"), "--url", &served.url])
            .output()
            .expect("run publish");
        assert!(out.status.success(), "publish failed: {}", String::from_utf8_lossy(&out.stderr));
        let answer: Value = serde_json::from_slice(&out.stdout).expect("publish prints JSON");
        published += 1;
        assert_eq!(answer["offset"], published);
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = subscriber.wait_with_output().expect("subscriber output");
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|m| m["type"] == "message" && m["channel"] == "demo/ticks"));
    let first = lines[0]["offset"].as_u64().expect("offset");
    assert_eq!(lines[1]["offset"].as_u64(), Some(first + 1), "consecutive, nothing lost");
}

#[test]
fn publish_and_subscribe_carry_a_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("livehub.toml");
    std::fs::write(&config, "[auth.jwt]\nhmac_secret = \"cli-secret\"\n").expect("write config");
    let config = config.to_str().expect("utf-8 path");
    let served = Served::with_args(&["--config", config]);
    let mint = Command::new(BIN)
        .args(["token", "--config", config, "--sub", "cli", "--subscribe", "demo/#", "--publish", "demo/#"])
        .output()
        .expect("run token");
    assert!(mint.status.success(), "{}", String::from_utf8_lossy(&mint.stderr));
    let token = String::from_utf8(mint.stdout).expect("utf-8").trim().to_owned();

    let publish = |extra: &[&str]| {
        Command::new(BIN)
            .args(["publish", "demo/auth", "1", "--url", &served.url])
            .args(extra)
            .env_remove("LIVEHUB_TOKEN")
            .output()
            .expect("run publish")
    };
    let refused = publish(&[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unauthorized"));
    let accepted = publish(&["--token", &token]);
    assert!(accepted.status.success(), "{}", String::from_utf8_lossy(&accepted.stderr));

    let subscribe = |extra: &[&str]| {
        Command::new(BIN)
            .args(["subscribe", "demo/auth", "--latest", "--count", "1", "--url", &served.url])
            .args(extra)
            .env_remove("LIVEHUB_TOKEN")
            .output()
            .expect("run subscribe")
    };
    let without = subscribe(&[]);
    assert!(!without.status.success(), "a refused subscriber gives up instead of reconnecting");
    assert!(String::from_utf8_lossy(&without.stderr).contains("unauthorized"));
    let with = subscribe(&["--token", &token]);
    assert!(with.status.success(), "{}", String::from_utf8_lossy(&with.stderr));
    let line: Value = serde_json::from_slice(&with.stdout).expect("one JSON line");
    assert_eq!(line["channel"], "demo/auth");
}

#[test]
fn publish_reports_a_server_error() {
    let served = Served::start();
    let out = Command::new(BIN)
        .args(["publish", "bad/+/channel", "1", "--url", &served.url])
        .output()
        .expect("run publish");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_channel"));
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits() {
    let mut served = Served::start();
    let ws_url = format!("{}/ws", served.url.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("connect");
    let hello = ws.next().await.expect("open").expect("ok");
    assert!(matches!(hello, Message::Text(_)));

    let pid = served.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = ws.next().await {
            if let Ok(Message::Close(frame)) = msg {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("closed in time");
    assert_eq!(close, Some(1001));
    drop(ws);
    let exit = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = served.child.try_wait().expect("wait") {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .expect("join");
    assert!(exit.expect("exits within the grace period").success());
}

/// What `livehub serve` with `args` logs up to and including its listening line; the server is
/// killed after that. Start-up warnings come before the listening line, so this sees them all.
fn startup_log(args: &[&str]) -> String {
    let mut child = common::serve().args(args).spawn().expect("spawn livehub serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut log = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("read stderr");
        log.push_str(&line);
        log.push('\n');
        if line.contains("livehub listening") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("livehub listening"), "serve did not start:\n{log}");
    log
}

#[test]
fn serve_warns_when_other_hosts_can_reach_it_without_auth() {
    let log = startup_log(&["--listen", "0.0.0.0:0"]);
    assert!(log.contains("AUTH IS OFF") && log.contains("docs/security.md"), "{log}");
    assert!(log.contains("anyone who can reach it"), "{log}");

    let log = startup_log(&["--listen", "127.0.0.1:0"]);
    assert!(!log.contains("AUTH IS OFF") && !log.contains("plain HTTP"), "{log}");
}

#[test]
fn serve_warns_when_credentials_would_cross_the_network_in_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("livehub.toml");
    std::fs::write(&config, "[auth.jwt]\nhmac_secret = \"0123456789abcdef0123456789abcdef\"\n")
        .expect("write config");
    let config = config.to_str().expect("utf8 path");
    let log = startup_log(&["--listen", "0.0.0.0:0", "--config", config]);
    assert!(log.contains("plain HTTP") && !log.contains("AUTH IS OFF"), "{log}");

    let log = startup_log(&["--listen", "127.0.0.1:0", "--config", config]);
    assert!(!log.contains("plain HTTP"), "{log}");
}
