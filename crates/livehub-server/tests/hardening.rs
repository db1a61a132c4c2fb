//! The small hardening items of issue 15 over real sockets: `nosniff` on every answer (the direct
//! SSE path included, read off raw TCP) and the JSON `413` for a body over the limit.

mod common;

use common::{TestServer, WAIT};
use livehub_server::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request`; answers the status, the headers and the body as JSON (`Null` if not JSON).
async fn send(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let response =
        tokio::time::timeout(WAIT, request.send()).await.expect("answered in time").expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = tokio::time::timeout(WAIT, response.text()).await.expect("body in time").expect("body");
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// The response head a raw TCP request gets, lower-cased, read up to its blank line.
async fn raw_head(server: &TestServer, request: &str) -> String {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(WAIT, async {
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.expect("read head");
            assert_ne!(n, 0, "closed before the end of the head: {:?}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
    })
    .await
    .expect("head in time");
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

#[tokio::test]
async fn every_answer_says_nosniff() {
    let mut config = Config::default();
    config.limits.max_body_size = 64;
    let server = TestServer::with(config).await;
    let http = reqwest::Client::new();
    let requests = [
        ("dashboard", http.get(server.url("/"))),
        ("health", http.get(server.url("/health"))),
        ("publish", http.post(server.url("/api/publish")).json(&json!({ "channel": "a", "data": 1 }))),
        ("error", http.post(server.url("/api/publish")).json(&json!({ "channel": "", "data": 1 }))),
        (
            "413",
            http.post(server.url("/api/publish"))
                .header("content-type", "application/json")
                .body(vec![b' '; 65]),
        ),
        ("404", http.get(server.url("/no/such/endpoint"))),
        (
            "preflight",
            http.request(reqwest::Method::OPTIONS, server.url("/api/publish"))
                .header("origin", "https://app.example.com")
                .header("access-control-request-method", "POST"),
        ),
    ];
    for (what, request) in requests {
        let (status, headers, _) = send(request).await;
        assert_eq!(
            headers.get("x-content-type-options").and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{what} ({status}): {headers:?}"
        );
    }
    // The direct SSE path writes the head itself, from the router's answer.
    let head = raw_head(&server, "GET /sse?channel=a HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    assert!(head.contains("\r\nx-content-type-options: nosniff\r\n"), "{head}");
}

#[tokio::test]
async fn a_body_one_byte_over_the_limit_gets_the_json_error() {
    let mut config = Config::default();
    config.limits.max_body_size = 1024;
    let server = TestServer::with(config).await;
    let publish = |body: Vec<u8>| {
        reqwest::Client::new()
            .post(server.url("/api/publish?channel=bin"))
            .header("content-type", "application/octet-stream")
            .body(body)
    };
    let (status, _, _) = send(publish(vec![7; 1024])).await;
    assert_eq!(status, 200, "exactly the limit is fine");
    let (status, headers, body) = send(publish(vec![7; 1025])).await;
    assert_eq!((status, code(&body)), (413, "too_large"), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("max_body_size")), "{body}");
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    assert!(content_type.is_some_and(|v| v.starts_with("application/json")), "{headers:?}");
}
