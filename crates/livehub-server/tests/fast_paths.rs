//! The fast paths are really taken: a connection whose first request is an SSE stream is written
//! without hyper, and a WebSocket over plain TCP writes its frames straight to the socket. The
//! router decides both, so these tests fail when a renamed route or a wrapped socket turns them
//! off. Also: the first request of a connection that is not a stream is answered through hyper,
//! keep-alive and pipelining included.

mod common;

use std::time::Duration;

use common::{Sse, TestServer, WAIT};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn fast_paths(server: &TestServer) -> (u64, u64) {
    let metrics: Value =
        reqwest::get(server.url("/api/metrics")).await.expect("metrics").json().await.expect("json");
    let paths = &metrics["fast_paths"];
    (
        paths["direct_streams"].as_u64().expect("direct_streams"),
        paths["websocket_tcp"].as_u64().expect("websocket_tcp"),
    )
}

/// Reads from `tcp` until the text read satisfies `done`.
async fn read_until(tcp: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        while !done(&text) {
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed early after {text:?}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .expect("answered in time");
    text
}

#[tokio::test]
async fn an_sse_stream_opened_first_is_written_without_hyper() {
    let server = TestServer::start().await;
    assert_eq!(fast_paths(&server).await.0, 0);
    let mut sse = Sse::open(&server.url("/sse?channel=a"), None).await;
    sse.connected().await;
    assert_eq!(fast_paths(&server).await.0, 1);
    let mut path = Sse::open(&server.url("/sse/b/c"), None).await;
    path.connected().await;
    assert_eq!(fast_paths(&server).await.0, 2, "the path form is a stream route too");
}

#[tokio::test]
async fn a_websocket_over_plain_tcp_writes_straight_to_the_socket() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    ws.send(serde_json::json!({"action": "ping", "id": 1})).await;
    ws.recv_type("pong").await;
    assert_eq!(fast_paths(&server).await.1, 1);
}

#[tokio::test]
async fn an_sse_stream_after_another_request_is_served_by_hyper() {
    let server = TestServer::start().await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let host = server.addr;
    tcp.write_all(format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await.expect("write");
    let health = read_until(&mut tcp, |t| t.contains("\"status\":\"ok\"")).await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(!health.to_ascii_lowercase().contains("connection: close"), "kept alive: {health}");
    tcp.write_all(format!("GET /sse?channel=a HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let stream = read_until(&mut tcp, |t| t.contains("event: connected")).await;
    assert!(stream.contains("text/event-stream"), "{stream}");
    assert_eq!(fast_paths(&server).await.0, 0, "a second request is hyper's");
}

#[tokio::test]
async fn pipelined_requests_behind_a_first_plain_request_are_all_answered() {
    let server = TestServer::start().await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let host = server.addr;
    let requests = format!(
        "GET /health HTTP/1.1\r\nHost: {host}\r\n\r\nHEAD /health HTTP/1.1\r\nHost: {host}\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(requests.as_bytes()).await.expect("write");
    let mut text = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut text)).await.expect("in time").expect("read");
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
    assert_eq!(text.matches("\"status\":\"ok\"").count(), 1, "HEAD has no body: {text}");
    assert!(text.contains("HTTP/1.1 404 Not Found\r\n") && text.contains("not_found"), "{text}");
}

#[tokio::test]
async fn a_first_request_that_is_not_plain_goes_to_hyper() {
    let server = TestServer::start().await;
    // A body, so not parsed by the direct path: hyper answers, and nothing is counted.
    let response = reqwest::Client::new()
        .post(server.url("/api/publish"))
        .body(r#"{"channel":"a","data":1}"#)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 200);
    assert_eq!(fast_paths(&server).await, (0, 0));
}
