//! Server-Sent Events over real HTTP: the stream's framing (`retry:`, `connected`, one event per
//! publication with an `id:`), the path form, several channels in one stream, resuming with
//! `Last-Event-ID` (header or query) without loss or duplicates, epochs, `latest`, wildcards,
//! bad input, the disabled transport, heartbeats and graceful shutdown; and, over raw TCP, the
//! connection itself: how a stream's body is framed and ended, heads in pieces or too long for
//! the SSE fast path, errors, streams on a reused connection, and closing.

mod common;

use common::{Event, Sse, TestServer, WAIT};
use livehub_core::{ChannelName, Epoch};
use livehub_server::{Config, Cursor};
use serde_json::{json, Value};

/// The next event, which must exist.
async fn next_event(sse: &mut Sse) -> Event {
    sse.next().await.expect("the stream is still open")
}

/// Reads the `connected` event a stream starts with and returns its data.
async fn connected(sse: &mut Sse) -> Value {
    let event = next_event(sse).await;
    assert_eq!(event.event, "connected", "{event:?}");
    let data = event.json();
    assert_eq!(data["type"], "connected", "{data}");
    data
}

/// Reads the next event, which must be a publication on `channel`; returns its data and `id:`.
async fn message_on(sse: &mut Sse, channel: &str) -> (Value, String) {
    let event = next_event(sse).await;
    assert_eq!(event.event, channel, "expected a publication on {channel}, got {event:?}");
    let data = event.json();
    assert_eq!(data["type"], "message", "{data}");
    assert_eq!(data["channel"], channel, "{data}");
    (data, event.id.expect("a publication event has an id"))
}

/// Reads the next publication and returns its `(channel, data.n)` and `id:`.
async fn numbered(sse: &mut Sse) -> ((String, i64), String) {
    let event = next_event(sse).await;
    let data = event.json();
    assert_eq!(data["type"], "message", "{event:?}");
    let n = data["data"]["n"].as_i64().expect("data.n");
    ((event.event, n), event.id.expect("a publication event has an id"))
}

/// Publishes `{"n": n}` on `marker_channel` as a marker, then returns the `data.n` of every
/// publication read up to and including it: anything lost or repeated before it shows.
async fn until_marker(
    server: &TestServer,
    sse: &mut Sse,
    marker_channel: &str,
    marker: i64,
) -> Vec<(String, i64)> {
    publish_n(server, marker_channel, marker).await;
    let mut got = Vec::new();
    loop {
        let (item, _) = numbered(sse).await;
        let done = item.0 == marker_channel && item.1 == marker;
        got.push(item);
        if done {
            return got;
        }
    }
}

/// `(channel, n)` pairs, for comparing with [`until_marker`].
fn pairs(items: &[(&str, i64)]) -> Vec<(String, i64)> {
    items.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
}

/// Publishes `{"n": n}` on `channel`.
async fn publish_n(server: &TestServer, channel: &str, n: i64) -> Value {
    server.publish(channel, json!({ "n": n })).await
}

/// Sends a GET and returns the status and the `error.code` of its JSON body.
async fn error_of(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("an error body is JSON");
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}")).to_owned();
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, code)
}

/// Reads raw body chunks until the text read so far satisfies `done`; returns that text.
async fn read_raw_until(response: &mut reqwest::Response, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    while !done(&text) {
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no more data in time; got so far: {text:?}"))
            .expect("body chunk")
            .unwrap_or_else(|| panic!("the body ended; got: {text:?}"));
        text.push_str(std::str::from_utf8(&chunk).expect("utf8"));
    }
    text
}

#[tokio::test]
async fn stream_starts_with_retry_then_connected_event() {
    let mut config = Config::default();
    config.sse.retry_ms = 1234;
    let server = TestServer::with(config).await;
    let mut response = reqwest::get(server.url("/sse?channel=a")).await.expect("sse request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let text = read_raw_until(&mut response, |t| t.matches("\n\n").count() >= 2).await;
    let mut blocks = text.split("\n\n");
    assert_eq!(blocks.next(), Some("retry: 1234"), "{text:?}");
    let connected = blocks.next().expect("a second block");
    let data = connected.strip_prefix("event: connected\ndata: ").unwrap_or_else(|| panic!("{connected:?}"));
    let data: Value = serde_json::from_str(data).expect("connected data is JSON");
    assert_eq!(data["type"], "connected");
    assert!(data["client"].as_str().is_some_and(|c| !c.is_empty()), "{data}");
    assert_eq!(data["channels"]["a"]["position"]["offset"], 0, "{data}");
    assert!(data["channels"]["a"]["position"]["epoch"].is_string(), "{data}");
}

#[tokio::test]
async fn publication_arrives_as_event_named_after_channel_with_message_data_and_id() {
    let server = TestServer::start().await;
    let mut sse = Sse::open(&server.url("/sse?channel=a"), None).await;
    let hello = connected(&mut sse).await;
    assert_eq!(hello["channels"]["a"]["position"]["offset"], 0, "{hello}");
    let published = server.publish("a", json!({"price": 1.5})).await;
    let (data, id) = message_on(&mut sse, "a").await;
    assert_eq!(data["data"], json!({"price": 1.5}));
    assert_eq!(data["offset"], 1);
    assert_eq!(data["offset"], published["offset"]);
    assert_eq!(data["epoch"], published["epoch"]);
    assert_eq!(data["epoch"], hello["channels"]["a"]["position"]["epoch"]);
    assert!(data["ts"].as_u64().is_some_and(|ts| ts > 1_600_000_000_000), "{data}");
    assert!(!id.is_empty());
}

#[tokio::test]
async fn path_form_serves_channels_with_slashes() {
    let server = TestServer::start().await;
    let mut sse = Sse::open(&server.url("/sse/demo/ticks"), None).await;
    let hello = connected(&mut sse).await;
    assert!(hello["channels"]["demo/ticks"]["position"].is_object(), "{hello}");
    publish_n(&server, "demo/ticks", 1).await;
    let (data, _) = message_on(&mut sse, "demo/ticks").await;
    assert_eq!(data["data"]["n"], 1);
}

/// Opens `?channel=a&channel=b`, sees a1 b1 a2, drops it, publishes b2 a3 a4 b3 and returns the
/// last id seen and the server.
async fn two_channels_with_a_gap() -> (TestServer, String) {
    let server = TestServer::start().await;
    let mut sse = Sse::open(&server.url("/sse?channel=a&channel=b"), None).await;
    let hello = connected(&mut sse).await;
    assert!(hello["channels"]["a"].is_object() && hello["channels"]["b"].is_object(), "{hello}");
    publish_n(&server, "a", 1).await;
    publish_n(&server, "b", 1).await;
    publish_n(&server, "a", 2).await;
    let mut last = String::new();
    for want in [("a", 1), ("b", 1), ("a", 2)] {
        let (got, id) = numbered(&mut sse).await;
        assert_eq!(got, (want.0.to_owned(), want.1));
        last = id;
    }
    drop(sse);
    for (channel, n) in [("b", 2), ("a", 3), ("a", 4), ("b", 3)] {
        publish_n(&server, channel, n).await;
    }
    (server, last)
}

/// Reads what a resumed stream replays: every missed publication once, in order per channel,
/// then (after a marker publication) nothing else.
async fn assert_resumes_gap_exactly(server: &TestServer, sse: &mut Sse) {
    let hello = connected(sse).await;
    assert_eq!(hello["channels"]["a"]["recovered"], true, "{hello}");
    assert_eq!(hello["channels"]["b"]["recovered"], true, "{hello}");
    // Anything repeated or extra would come before the marker a5.
    let got = until_marker(server, sse, "a", 5).await;
    let of =
        |channel: &str| -> Vec<i64> { got.iter().filter(|(c, _)| c == channel).map(|(_, n)| *n).collect() };
    assert_eq!(of("a"), vec![3, 4, 5], "missed publications of a, then the marker: {got:?}");
    assert_eq!(of("b"), vec![2, 3], "missed publications of b: {got:?}");
    assert_eq!(got.len(), 5, "{got:?}");
}

#[tokio::test]
async fn last_event_id_header_resumes_every_channel_without_loss_or_duplicates() {
    let (server, last) = two_channels_with_a_gap().await;
    let mut sse = Sse::open(&server.url("/sse?channel=a&channel=b"), Some(&last)).await;
    assert_resumes_gap_exactly(&server, &mut sse).await;
}

#[tokio::test]
async fn last_event_id_query_parameter_resumes_like_the_header() {
    let (server, last) = two_channels_with_a_gap().await;
    let url = server.url(&format!("/sse?channel=a&channel=b&last_event_id={last}"));
    let mut sse = Sse::open(&url, None).await;
    assert_resumes_gap_exactly(&server, &mut sse).await;
}

#[tokio::test]
async fn each_replayed_event_id_resumes_right_after_that_event() {
    let server = TestServer::start().await;
    let mut sse = Sse::open(&server.url("/sse?channel=a"), None).await;
    connected(&mut sse).await;
    publish_n(&server, "a", 1).await;
    let (_, first_id) = numbered(&mut sse).await;
    drop(sse);
    for n in 2..=4 {
        publish_n(&server, "a", n).await;
    }
    // The replay of 2, 3, 4 arrives in one go; a client that only got the first of them before
    // losing the connection resumes from that event's id and must still get 3 and 4.
    let mut sse = Sse::open(&server.url("/sse?channel=a"), Some(&first_id)).await;
    connected(&mut sse).await;
    let (got, id_of_2) = numbered(&mut sse).await;
    assert_eq!(got, ("a".to_owned(), 2));
    drop(sse);
    let mut sse = Sse::open(&server.url("/sse?channel=a"), Some(&id_of_2)).await;
    connected(&mut sse).await;
    let got = until_marker(&server, &mut sse, "a", 5).await;
    assert_eq!(got, pairs(&[("a", 3), ("a", 4), ("a", 5)]), "resuming from the id of replayed publication 2");
}

#[tokio::test]
async fn resume_of_an_exact_channel_and_a_matching_pattern_sends_each_publication_once() {
    let server = TestServer::start().await;
    let url = server.url("/sse?channel=stocks/AAPL&channel=stocks/%2B");
    let mut sse = Sse::open(&url, None).await;
    connected(&mut sse).await;
    publish_n(&server, "stocks/AAPL", 1).await;
    let (_, id) = numbered(&mut sse).await;
    drop(sse);
    publish_n(&server, "stocks/AAPL", 2).await;
    publish_n(&server, "stocks/AAPL", 3).await;
    let mut sse = Sse::open(&url, Some(&id)).await;
    connected(&mut sse).await;
    let got = until_marker(&server, &mut sse, "stocks/AAPL", 4).await;
    let want = pairs(&[("stocks/AAPL", 2), ("stocks/AAPL", 3), ("stocks/AAPL", 4)]);
    assert_eq!(got, want, "missed publications once each, then the live marker");
}

#[tokio::test]
async fn cursor_from_another_epoch_is_not_recovered_and_gets_the_latest() {
    // With a history of one, the new epoch is no longer complete: only the latest value comes.
    let mut config = Config::default();
    config.history.size = 1;
    let server = TestServer::with(config).await;
    publish_n(&server, "a", 1).await;
    let latest = publish_n(&server, "a", 2).await;
    let channel = ChannelName::new("a").expect("valid channel");
    let other = Epoch::from_client("other");
    let cursor = Cursor::encode([(&channel, 1, &other)].into_iter());
    let mut sse = Sse::open(&server.url("/sse?channel=a"), Some(&cursor)).await;
    let hello = connected(&mut sse).await;
    assert_eq!(hello["channels"]["a"]["recovered"], false, "{hello}");
    assert_eq!(hello["channels"]["a"]["position"]["offset"], 2, "{hello}");
    assert_eq!(hello["channels"]["a"]["position"]["epoch"], latest["epoch"], "{hello}");
    let (data, _) = message_on(&mut sse, "a").await;
    assert_eq!((data["offset"].as_u64(), data["data"]["n"].as_i64()), (Some(2), Some(2)));
    assert_eq!(data["epoch"], latest["epoch"]);
    assert_eq!(until_marker(&server, &mut sse, "a", 3).await, pairs(&[("a", 3)]));
}

#[tokio::test]
async fn latest_true_sends_the_latest_publication_right_after_connected() {
    let server = TestServer::start().await;
    publish_n(&server, "a", 1).await;
    publish_n(&server, "a", 2).await;
    let mut sse = Sse::open(&server.url("/sse?channel=a&latest=true"), None).await;
    connected(&mut sse).await;
    assert_eq!(numbered(&mut sse).await.0, ("a".to_owned(), 2));
    assert_eq!(until_marker(&server, &mut sse, "a", 3).await, pairs(&[("a", 3)]));
}

#[tokio::test]
async fn without_latest_nothing_is_sent_before_the_next_publication() {
    let server = TestServer::start().await;
    publish_n(&server, "a", 1).await;
    let mut sse = Sse::open(&server.url("/sse?channel=a"), None).await;
    connected(&mut sse).await;
    assert_eq!(until_marker(&server, &mut sse, "a", 2).await, pairs(&[("a", 2)]));
}

#[tokio::test]
async fn wildcard_receives_matching_channels_only() {
    let server = TestServer::start().await;
    let mut sse = Sse::open(&server.url("/sse?channel=stocks/%2B"), None).await;
    connected(&mut sse).await;
    for (channel, n) in [("bonds/X", 1), ("stocks/AAPL", 2), ("stocks/AAPL/bid", 3), ("stocks/MSFT", 4)] {
        publish_n(&server, channel, n).await;
    }
    publish_n(&server, "bonds/X", 5).await;
    let got = until_marker(&server, &mut sse, "stocks/AAPL", 6).await;
    assert_eq!(got, pairs(&[("stocks/AAPL", 2), ("stocks/MSFT", 4), ("stocks/AAPL", 6)]));
}

#[tokio::test]
async fn a_stream_without_channels_is_idle_but_connected() {
    let server = TestServer::start().await;
    let mut sse = Sse::open(&server.url("/sse"), None).await;
    let connected = sse.next().await.expect("connected event");
    assert_eq!(connected.event, "connected");
    assert_eq!(connected.json()["channels"], json!({}));
}

#[tokio::test]
async fn bad_input_is_answered_with_json_errors() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let cases = [
        ("/sse?channel=a%2Bb", None, "invalid_channel"),
        ("/sse/a+b", None, "invalid_channel"),
        ("/sse?channel=a", Some("!!not a cursor!!"), "bad_cursor"),
        ("/sse?channel=a&last_event_id=%21%21%21", None, "bad_cursor"),
    ];
    for (path, last_event_id, want) in cases {
        let mut request = client.get(server.url(path));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        assert_eq!(error_of(request).await, (400, want.to_owned()), "{path} {last_event_id:?}");
    }
}

#[tokio::test]
async fn disabled_sse_answers_404_transport_disabled() {
    let mut config = Config::default();
    config.sse.enabled = false;
    let server = TestServer::with(config).await;
    let client = reqwest::Client::new();
    for path in ["/sse?channel=a", "/sse/a"] {
        assert_eq!(error_of(client.get(server.url(path))).await, (404, "transport_disabled".to_owned()));
    }
}

#[tokio::test]
async fn shutdown_sends_disconnect_event_then_ends_the_stream_and_the_server() {
    // Long enough that only a graceful close lets the server task finish within the test's wait.
    let config = Config { shutdown_grace_secs: 60, ..Config::default() };
    let server = TestServer::with(config).await;
    let mut sse = Sse::open(&server.url("/sse?channel=a"), None).await;
    connected(&mut sse).await;
    server.shutdown.cancel();
    let event = next_event(&mut sse).await;
    assert_eq!(event.event, "disconnect", "{event:?}");
    let data = event.json();
    assert_eq!(data["type"], "disconnect");
    assert_eq!(data["code"], 1001);
    assert_eq!(data["reconnect"], true);
    assert!(sse.next().await.is_none(), "the body ends after the disconnect event");
    let result = tokio::time::timeout(WAIT, server.handle).await.expect("server task ends in time");
    result.expect("server task did not panic").expect("server returned Ok");
}

#[tokio::test]
async fn idle_stream_gets_heartbeat_comments() {
    let mut config = Config::default();
    config.sse.heartbeat_secs = 1;
    let server = TestServer::with(config).await;
    let mut response = reqwest::get(server.url("/sse?channel=a")).await.expect("sse request");
    assert_eq!(response.status(), 200);
    let text = read_raw_until(&mut response, |t| t.contains("\n: ping\n\n")).await;
    assert!(text.contains("event: connected"), "{text:?}");
}

/// The response byte for byte, without an HTTP client: headers, then the chunked event stream.
#[tokio::test]
async fn raw_bytes_stream_over_plain_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let request =
        format!("GET /sse/raw/x HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n", server.addr);
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains("event: connected") {
        let n = tokio::time::timeout(common::WAIT, tcp.read(&mut buf)).await.expect("in time").expect("read");
        assert!(n > 0, "stream ended early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let lower = text.to_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{text}");
    assert!(lower.contains("content-type: text/event-stream"), "{text}");
    assert!(lower.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.contains("retry: 2000\n\n"), "{text}");
    server.publish("raw/x", serde_json::json!({"v": 1})).await;
    while !text.contains("event: raw/x\ndata: {\"type\":\"message\",\"channel\":\"raw/x\",\"data\":{\"v\":1}")
    {
        let n = tokio::time::timeout(common::WAIT, tcp.read(&mut buf)).await.expect("in time").expect("read");
        assert!(n > 0, "stream ended early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.contains("\nid: "), "{text}");
}

#[tokio::test]
async fn a_cursor_from_before_a_restart_gets_the_whole_new_epoch() {
    // A regression: the new epoch's replay was cut to its last item.
    let server = TestServer::start().await;
    for n in 1..=3 {
        publish_n(&server, "restart/a", n).await;
    }
    let channel = ChannelName::new("restart/a").expect("valid channel");
    let before = Epoch::from_client("before-restart");
    let cursor = Cursor::encode([(&channel, 57, &before)].into_iter());
    let mut sse = Sse::open(&server.url("/sse?channel=restart/a"), Some(&cursor)).await;
    let hello = connected(&mut sse).await;
    assert_eq!(hello["channels"]["restart/a"]["recovered"], false, "{hello}");
    let got = until_marker(&server, &mut sse, "restart/a", 4).await;
    assert_eq!(got, pairs(&[("restart/a", 1), ("restart/a", 2), ("restart/a", 3), ("restart/a", 4)]));
}

// The connection: a connection whose first request is a plain `GET /sse…` is served without
// hyper (see `direct.rs`); everything else still is. Both must look the same to clients.

/// A raw connection to `server` that has sent `request`.
async fn raw(server: &TestServer, request: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(request).await.expect("write");
    tcp
}

/// Reads until `done` holds for the text read so far, failing if the connection ends first.
async fn raw_until(tcp: &mut tokio::net::TcpStream, text: &mut String, done: impl Fn(&str) -> bool) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    while !done(text) {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await.expect("in time").expect("read");
        assert!(n > 0, "the connection ended early: {text:?}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// Reads until the server closes the connection, and returns everything read.
async fn raw_to_end(tcp: &mut tokio::net::TcpStream, mut text: String) -> String {
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest)).await.expect("closed in time").expect("read");
    text.push_str(&String::from_utf8_lossy(&rest));
    text
}

/// The number of connections the node counts.
async fn connections(server: &TestServer) -> i64 {
    let metrics: Value =
        reqwest::get(server.url("/api/metrics")).await.expect("metrics").json().await.expect("json");
    metrics["connections"].as_i64().expect("a count")
}

#[tokio::test]
async fn a_stream_ends_with_the_last_chunk_and_the_connection_closes() {
    let config = Config { shutdown_grace_secs: 60, ..Config::default() };
    let server = TestServer::with(config).await;
    let mut tcp = raw(&server, b"GET /sse?channel=end HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut text = String::new();
    raw_until(&mut tcp, &mut text, |t| t.contains("event: connected")).await;
    let lower = text.to_lowercase();
    assert!(lower.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(lower.contains("\r\ndate: "), "{text}");
    server.shutdown.cancel();
    let text = raw_to_end(&mut tcp, text).await;
    assert!(text.contains("event: disconnect\n"), "{text}");
    assert!(text.ends_with("\r\n0\r\n\r\n"), "the chunked body ends properly: {text:?}");
}

#[tokio::test]
async fn an_http_1_0_stream_is_not_chunked_and_ends_with_the_connection() {
    let config = Config { shutdown_grace_secs: 60, ..Config::default() };
    let server = TestServer::with(config).await;
    let mut tcp = raw(&server, b"GET /sse/old HTTP/1.0\r\n\r\n").await;
    let mut text = String::new();
    raw_until(&mut tcp, &mut text, |t| t.contains("event: connected")).await;
    let lower = text.to_lowercase();
    assert!(lower.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(!lower.contains("transfer-encoding"), "{text}");
    assert!(text.contains("\r\n\r\nretry: 2000\n\n"), "the body starts right after the head: {text:?}");
    server.shutdown.cancel();
    let text = raw_to_end(&mut tcp, text).await;
    assert!(text.ends_with("\"type\":\"disconnect\"}\n\n"), "the body ends with the last event: {text:?}");
}

#[tokio::test]
async fn a_request_head_arriving_in_pieces_is_served() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let mut tcp = raw(&server, b"GE").await;
    for piece in [&b"T /s"[..], b"se/pie", b"ces HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"] {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        tcp.write_all(piece).await.expect("write");
    }
    let mut text = String::new();
    raw_until(&mut tcp, &mut text, |t| t.contains("event: connected")).await;
    assert!(text.contains("\"pieces\""), "{text}");
}

#[tokio::test]
async fn long_heads_are_served_whoever_parses_them() {
    // 3 KiB outgrows the first read; 20 KiB is past this path's limit, so hyper answers.
    let server = TestServer::start().await;
    for size in [3 * 1024, 20 * 1024] {
        let cookie = "c".repeat(size);
        let request = format!("GET /sse/long HTTP/1.1\r\nHost: x\r\nCookie: a={cookie}\r\n\r\n");
        let mut tcp = raw(&server, request.as_bytes()).await;
        let mut text = String::new();
        raw_until(&mut tcp, &mut text, |t| t.contains("event: connected")).await;
        assert!(text.to_lowercase().starts_with("http/1.1 200 ok\r\n"), "{size}: {text}");
    }
}

#[tokio::test]
async fn an_error_on_a_stream_request_is_a_complete_response_on_a_connection_kept_alive() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let mut tcp = raw(&server, b"GET /sse?channel=a%00b HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut text = String::new();
    raw_until(&mut tcp, &mut text, |t| t.contains("\r\n\r\n") && t.ends_with('}')).await;
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let head = head.to_lowercase();
    assert!(head.starts_with("http/1.1 400 bad request\r\n"), "{text}");
    assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())), "{text}");
    let error: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(error["error"]["code"], "invalid_channel", "{error}");
    // Not a stream, so hyper wrote it, and the connection takes another request.
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let rest = raw_to_end(&mut tcp, String::new()).await;
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
}

#[tokio::test]
async fn a_stream_after_another_request_on_the_same_connection_is_served() {
    let server = TestServer::start().await;
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /sse/second HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut tcp = raw(&server, request).await;
    let mut text = String::new();
    raw_until(&mut tcp, &mut text, |t| t.contains("event: connected")).await;
    assert!(text.contains("\"second\""), "{text}");
}

#[tokio::test]
async fn closing_a_stream_connection_releases_its_session() {
    let server = TestServer::start().await;
    let mut tcp = raw(&server, b"GET /sse/release HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut text = String::new();
    raw_until(&mut tcp, &mut text, |t| t.contains("event: connected")).await;
    assert_eq!(connections(&server).await, 1);
    drop(tcp);
    let deadline = tokio::time::Instant::now() + WAIT;
    while connections(&server).await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the session outlived its connection");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bytes_sent_behind_a_stream_are_ignored_and_it_keeps_streaming() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let mut tcp =
        raw(&server, b"GET /sse/behind HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\n\r\n").await;
    let mut text = String::new();
    raw_until(&mut tcp, &mut text, |t| t.contains("event: connected")).await;
    tcp.write_all(b"more bytes the server never answers").await.expect("write");
    server.publish("behind", json!({"v": 1})).await;
    raw_until(&mut tcp, &mut text, |t| t.contains("event: behind\n")).await;
    assert!(!text.contains("\"status\""), "the pipelined request was not answered: {text}");
}
