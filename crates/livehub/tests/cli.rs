//! The `livehub` binary end to end: `serve` on a free port, `publish` and `subscribe` against
//! it, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_livehub");

/// A `livehub serve` process on 127.0.0.1:0, killed when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start() -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log", "info"])
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn livehub serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        // The listening line names the bound address, since the port was chosen by the OS.
        let url = loop {
            let line = lines.next().expect("serve logs a listening line").expect("read stderr");
            if let Some(rest) = line.split("http://").nth(1) {
                break format!("http://{}", rest.split('/').next().expect("address"));
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
fn publish_reports_a_server_error() {
    let served = Served::start();
    let out = Command::new(BIN)
        .args(["publish", "bad//channel", "1", "--url", &served.url])
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
