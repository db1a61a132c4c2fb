//! The small hardening items of issue 15 over real sockets: `nosniff` on every answer (the direct
//! SSE path included, read off raw TCP), the JSON `413` for a body over the limit, the
//! per-address budget of failed credentials, and the `Host` allow-list against DNS rebinding.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{TestServer, WAIT};
use livehub_auth::hash_api_key;
use livehub_server::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An API key the secured test servers know, admin included.
const ADMIN_KEY: &str = "lh_hardening-admin-key";
/// The only host name the host-checking test server answers to.
const LIVE_HOST: &str = "live.example.test";

/// Auth on with [`ADMIN_KEY`], then `extra` TOML (which may open `[rate_limits]`).
fn secured(extra: &str) -> Config {
    let text = format!(
        "[auth.jwt]\nhmac_secret = \"hardening-secret\"\n\n[[auth.api_keys]]\nname = \"admin\"\nsha256 = \"{}\"\n\
         publish = [\"#\"]\nsubscribe = [\"#\"]\nadmin = true\n\n{extra}",
        hash_api_key(ADMIN_KEY)
    );
    Config::from_toml(&text).unwrap_or_else(|e| panic!("test config: {e}\n{text}"))
}

/// A client whose connections come from `from` (any 127.x address reaches the server).
fn client_from(from: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::V4(from)).build().expect("client")
}

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

#[tokio::test]
async fn failed_credentials_are_throttled_per_address() {
    // Three failures, then (practically) no refill: the test never depends on how fast it runs.
    let config =
        secured("[rate_limits]\nauth_failure_burst_per_ip = 3\nauth_failures_per_sec_per_ip = 0.0001\n");
    let server = TestServer::with(config).await;
    let attacker = client_from(Ipv4Addr::new(127, 0, 0, 1));
    let metrics =
        |client: &reqwest::Client, key: &str| client.get(server.url("/api/metrics")).bearer_auth(key);
    for attempt in 0..3 {
        let (status, _, body) = send(metrics(&attacker, &format!("lh_guess-{attempt}"))).await;
        assert_eq!((status, code(&body)), (401, "unauthorized"), "attempt {attempt}: {body}");
    }
    let (status, headers, body) = send(metrics(&attacker, "lh_guess-3")).await;
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    // Over the budget even the right key is not looked at, on every transport…
    let (status, _, body) = send(metrics(&attacker, ADMIN_KEY)).await;
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");
    let sse = attacker.get(server.url("/sse?channel=a")).bearer_auth(ADMIN_KEY);
    let (status, _, body) = send(sse).await;
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");
    // … while a request without a credential is not a credential check.
    let (status, _, body) = send(attacker.get(server.url("/sse?channel=a"))).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    // Another address has its own budget, and the refusals are counted.
    let other = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let (status, _, body) = send(metrics(&other, ADMIN_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refused"]["rate_limited"].as_u64().is_some_and(|n| n >= 3), "{body}");
    assert!(body["refused"]["unauthorized"].as_u64().is_some_and(|n| n >= 3), "{body}");
}

#[tokio::test]
async fn only_the_listed_hosts_are_served_once_auth_is_on() {
    let server = TestServer::with(secured(&format!("[auth]\nallowed_hosts = [\"{LIVE_HOST}\"]\n"))).await;
    let http = reqwest::Client::new();
    let port = server.addr.port();
    // A DNS-rebinding page is same-origin with itself: its Host and Origin agree.
    let rebound = |path: &str| {
        http.get(server.url(path))
            .header("host", format!("evil.example:{port}"))
            .header("origin", format!("http://evil.example:{port}"))
            .bearer_auth(ADMIN_KEY)
    };
    for path in ["/api/metrics", "/sse?channel=a", "/poll?channel=a&timeout=0", "/api/channels/a"] {
        let (status, _, body) = send(rebound(path)).await;
        assert_eq!((status, code(&body)), (403, "host_not_allowed"), "{path}: {body}");
    }
    let (status, _, body) = send(
        http.get(server.url("/api/metrics"))
            .header("host", format!("{LIVE_HOST}:{port}"))
            .bearer_auth(ADMIN_KEY),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refused"]["host_not_allowed"].as_u64().is_some_and(|n| n >= 4), "{body}");
    // `/health` answers whatever the name, for load balancers that probe by address.
    let (status, _, _) = send(http.get(server.url("/health"))).await;
    assert_eq!(status, 200);
}
