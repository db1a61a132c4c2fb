//! Clients that connect and never finish a request: silent sockets, heads and bodies drip-fed a
//! byte at a time, idle keep-alive connections. Each is closed after its timeout; half-open
//! connections are limited per address, and past the global limit the oldest is shed, so real
//! clients still get in during a flood.
//!
//! Timeouts here are real time (one second): the server runs on real sockets. They bound what a
//! test waits, and nothing asserts how fast anything is.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TestServer, WAIT};
use livehub_server::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn config(adjust: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    config.limits.request_head_timeout_secs = 1;
    config.limits.request_body_timeout_secs = 1;
    adjust(&mut config);
    config
}

/// A TCP connection to `server` from `source` (any 127.x address: all are loopback on Linux).
async fn connect_from(server: &TestServer, source: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((source, 0))).expect("bind the source address");
    socket.connect(server.addr).await.expect("connect")
}

/// Reads until the server closes; returns what it sent. Fails the test if it stays open.
async fn closed_by_server(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await.expect("closed in time");
    // A reset is a close too.
    let _ = read;
    String::from_utf8_lossy(&got).into_owned()
}

/// A plain GET answered over a fresh connection from `source`.
async fn health_from(server: &TestServer, source: [u8; 4]) -> String {
    let mut tcp = connect_from(server, source).await;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    closed_by_server(&mut tcp).await
}

async fn metrics_from(server: &TestServer, source: [u8; 4]) -> Value {
    let mut tcp = connect_from(server, source).await;
    tcp.write_all(b"GET /api/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let text = closed_by_server(&mut tcp).await;
    let body = text.split_once("\r\n\r\n").expect("a head and a body").1;
    serde_json::from_str(body).expect("metrics JSON")
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_head_timeout() {
    let server = TestServer::with(config(|_| {})).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(closed_by_server(&mut tcp).await, "", "closed without an answer");
}

#[tokio::test]
async fn a_head_drip_fed_a_byte_at_a_time_is_closed_at_the_deadline_not_kept_alive() {
    for head in
        [&b"GET /sse?channel=a HTTP/1.1\r\nHost: x\r\n"[..], b"POST /api/publish HTTP/1.1\r\nHost: x\r\n"]
    {
        let server = TestServer::with(config(|_| {})).await;
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        // A byte every 100 ms: it never stops sending, but never finishes either.
        let mut closed = false;
        for byte in head.iter().cycle().take(200) {
            if tcp.write_all(&[*byte]).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !closed {
            closed_by_server(&mut tcp).await;
        }
        let metrics = metrics_from(&server, [127, 0, 0, 2]).await;
        assert_eq!(metrics["half_open"]["now"], 0, "{metrics}");
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_head_timeout() {
    let server = TestServer::with(config(|_| {})).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let text = closed_by_server(&mut tcp).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "answered first: {text}");
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_off_after_the_body_timeout() {
    let server = TestServer::with(config(|_| {})).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"chan")
        .await
        .expect("write");
    let text = closed_by_server(&mut tcp).await;
    assert!(!text.contains("\"offset\""), "nothing published: {text}");
}

#[tokio::test]
async fn an_address_over_its_half_open_limit_is_refused_and_others_are_not() {
    let server = TestServer::with(config(|c| {
        c.limits.request_head_timeout_secs = 30;
        c.limits.max_half_open_per_ip = 4;
    }))
    .await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(connect_from(&server, [127, 0, 0, 1]).await);
    }
    // Each is counted once its accept task ran.
    common::eventually("four half-open connections", || async {
        (metrics_from(&server, [127, 0, 0, 2]).await["half_open"]["now"] == 4).then_some(())
    })
    .await;
    let mut fifth = connect_from(&server, [127, 0, 0, 1]).await;
    assert_eq!(closed_by_server(&mut fifth).await, "", "a fifth is closed at once");
    let answer = health_from(&server, [127, 0, 0, 3]).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "another address gets in: {answer}");
    let metrics = metrics_from(&server, [127, 0, 0, 2]).await;
    assert!(metrics["half_open"]["refused"].as_u64() >= Some(1), "{metrics}");
    drop(silent);
}

#[tokio::test]
async fn past_the_global_limit_the_oldest_half_open_connection_makes_room() {
    let server = TestServer::with(config(|c| {
        c.limits.request_head_timeout_secs = 30;
        c.limits.max_half_open_per_ip = 0;
        c.limits.max_half_open = 4;
    }))
    .await;
    let mut oldest = TcpStream::connect(server.addr).await.expect("connect");
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // A real client under the flood: served, and the oldest silent one closed for it.
    let answer = health_from(&server, [127, 0, 0, 1]).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(closed_by_server(&mut oldest).await, "", "the oldest was shed");
    let metrics = metrics_from(&server, [127, 0, 0, 1]).await;
    assert!(metrics["half_open"]["shed"].as_u64() >= Some(1), "{metrics}");
}

#[tokio::test]
async fn requests_whose_bodies_are_still_coming_count_as_half_open() {
    let server = TestServer::with(config(|c| {
        c.limits.request_body_timeout_secs = 30;
        c.limits.max_half_open_per_ip = 3;
    }))
    .await;
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut tcp = connect_from(&server, [127, 0, 0, 1]).await;
        tcp.write_all(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"chan")
            .await
            .expect("a head and the start of a body");
        slow.push(tcp);
    }
    common::eventually("three bodies under way, still half-open", || async {
        (metrics_from(&server, [127, 0, 0, 2]).await["half_open"]["now"] == 3).then_some(())
    })
    .await;
    let mut fourth = connect_from(&server, [127, 0, 0, 1]).await;
    assert_eq!(closed_by_server(&mut fourth).await, "", "a fourth from the address is closed at once");
    // A body that completes frees its place.
    let body = br#"{"channel":"slow/done","data":1}"#;
    let mut done = connect_from(&server, [127, 0, 0, 3]).await;
    let head = format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    done.write_all(head.as_bytes()).await.expect("head");
    done.write_all(body).await.expect("body");
    assert!(closed_by_server(&mut done).await.contains("\"offset\":1"));
    drop(slow);
    common::eventually("nothing half-open once the slow clients left", || async {
        (metrics_from(&server, [127, 0, 0, 2]).await["half_open"]["now"] == 0).then_some(())
    })
    .await;
}

/// Reads one keep-alive answer (its head and its `Content-Length` body), leaving the connection open.
async fn answer_kept_alive(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(WAIT, async {
        loop {
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .expect("a content-length");
                if body.len() >= length {
                    return text;
                }
            }
            let n = tcp.read(&mut chunk).await.expect("read the answer");
            assert_ne!(n, 0, "closed instead of kept alive: {text}");
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("answered in time")
}

#[tokio::test]
async fn idle_keep_alive_connections_count_as_half_open_between_requests() {
    let server = TestServer::with(config(|c| {
        c.limits.request_head_timeout_secs = 30;
        c.limits.max_half_open_per_ip = 2;
    }))
    .await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut tcp = connect_from(&server, [127, 0, 0, 1]).await;
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        assert!(answer_kept_alive(&mut tcp).await.starts_with("HTTP/1.1 200 OK\r\n"));
        idle.push(tcp);
    }
    // Served once each, then silent: as costly as connections that never sent a head.
    common::eventually("two idle keep-alive connections, half-open", || async {
        (metrics_from(&server, [127, 0, 0, 2]).await["half_open"]["now"] == 2).then_some(())
    })
    .await;
    let mut third = connect_from(&server, [127, 0, 0, 1]).await;
    assert_eq!(closed_by_server(&mut third).await, "", "a third from the address is closed at once");
    // The next request takes an idle connection out of the count, and it is served as usual.
    idle[0].write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    assert!(closed_by_server(&mut idle[0]).await.starts_with("HTTP/1.1 200 OK\r\n"));
    common::eventually("one idle connection left", || async {
        (metrics_from(&server, [127, 0, 0, 2]).await["half_open"]["now"] == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn past_the_global_limit_an_idle_keep_alive_connection_is_shed() {
    let server = TestServer::with(config(|c| {
        c.limits.request_head_timeout_secs = 30;
        c.limits.max_half_open_per_ip = 0;
        c.limits.max_half_open = 2;
    }))
    .await;
    let mut idle = connect_from(&server, [127, 0, 0, 1]).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    assert!(answer_kept_alive(&mut idle).await.starts_with("HTTP/1.1 200 OK\r\n"));
    common::eventually("the idle connection is half-open", || async {
        (metrics_from(&server, [127, 0, 0, 2]).await["half_open"]["now"] == 1).then_some(())
    })
    .await;
    let _silent = [connect_from(&server, [127, 0, 0, 3]).await, connect_from(&server, [127, 0, 0, 3]).await];
    assert_eq!(closed_by_server(&mut idle).await, "", "the oldest, idle since its answer, was shed");
}
