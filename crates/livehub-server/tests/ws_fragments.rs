//! WebSocket messages sent in fragments: finished ones are handled like any other, an unfinished
//! one is closed at its deadline (1008 `message_timeout`) however long the client keeps the
//! connection alive, and the server's reassembly budget closes the connection that passes it
//! (1013). Raw frames over TCP, so the test controls every fragment.

mod common;

use common::{TestServer, WAIT};
use livehub_server::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A WebSocket from a raw handshake, its `connected` message read.
async fn open(server: &TestServer) -> TcpStream {
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let request = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.expect("handshake");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.expect("101");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let (_, connected) = read_frame(&mut tcp).await;
    assert!(String::from_utf8_lossy(&connected).contains("\"type\":\"connected\""));
    tcp
}

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let mask = [9, 8, 7, 6];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The next server frame: opcode and payload (servers do not mask, and send short frames here).
async fn read_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    tokio::time::timeout(WAIT, async {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).await.expect("frame head");
        let length = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                tcp.read_exact(&mut ext).await.expect("length");
                usize::from(u16::from_be_bytes(ext))
            }
            n => usize::from(n),
        };
        let mut payload = vec![0u8; length];
        tcp.read_exact(&mut payload).await.expect("payload");
        (head[0] & 0x0f, payload)
    })
    .await
    .expect("a frame in time")
}

/// Reads frames until a close; returns its code and reason.
async fn close_of(tcp: &mut TcpStream) -> (u16, String) {
    loop {
        let (opcode, payload) = read_frame(tcp).await;
        if opcode == 8 {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
        }
    }
}

async fn metrics(server: &TestServer) -> Value {
    reqwest::get(server.url("/api/metrics")).await.expect("metrics").json().await.expect("json")
}

#[tokio::test]
async fn a_message_finished_in_fragments_is_handled_like_any_other() {
    let server = TestServer::start().await;
    let mut tcp = open(&server).await;
    let text = br#"{"action":"ping","id":7}"#;
    tcp.write_all(&frame(false, 1, &text[..5])).await.expect("first");
    tcp.write_all(&frame(true, 9, b"ping between fragments")).await.expect("ping");
    tcp.write_all(&frame(false, 0, &text[5..12])).await.expect("middle");
    tcp.write_all(&frame(true, 0, &text[12..])).await.expect("last");
    loop {
        let (opcode, payload) = read_frame(&mut tcp).await;
        if opcode == 1 {
            assert_eq!(payload, br#"{"id":7,"type":"pong"}"#);
            break;
        }
    }
    assert_eq!(metrics(&server).await["reassembly_bytes"], 0);
}

#[tokio::test]
async fn an_unfinished_message_is_closed_at_its_deadline_though_the_client_answers_pings() {
    let mut config = Config::default();
    config.limits.message_timeout_secs = 1;
    let server = TestServer::with(config).await;
    let mut tcp = open(&server).await;
    tcp.write_all(&frame(false, 1, &[b'x'; 1000])).await.expect("a first fragment");
    // Keep talking (pongs are what a live client sends), but never finish the message.
    tcp.write_all(&frame(true, 10, b"")).await.expect("pong");
    assert_eq!(close_of(&mut tcp).await, (1008, "message_timeout".to_owned()));
}

#[tokio::test]
async fn the_connection_that_passes_the_reassembly_budget_is_closed_and_the_bytes_given_back() {
    let mut config = Config::default();
    config.limits.max_reassembly_bytes = 1000;
    config.limits.message_timeout_secs = 60;
    let server = TestServer::with(config).await;
    let mut first = open(&server).await;
    first.write_all(&frame(false, 1, &[b'x'; 600])).await.expect("first connection's fragment");
    common::eventually("the first fragment counted", || async {
        (metrics(&server).await["reassembly_bytes"] == 600).then_some(())
    })
    .await;
    let mut second = open(&server).await;
    second.write_all(&frame(false, 1, &[b'y'; 600])).await.expect("second connection's fragment");
    assert_eq!(close_of(&mut second).await, (1013, "reassembly_budget".to_owned()));
    drop(first);
    common::eventually("every held byte given back", || async {
        (metrics(&server).await["reassembly_bytes"] == 0).then_some(())
    })
    .await;
}
