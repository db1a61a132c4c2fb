//! The SignalR hub on the wire, byte by byte, over real sockets: negotiate and its status codes,
//! the handshake and its errors, each hub method, both framings, long polling, SSE, the
//! keep-alive, the timeouts, and the close on shutdown. `tests/signalr/run.sh` runs the official
//! JavaScript client against the binary; this pins what that client relies on.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use common::{TestServer, WAIT};
use futures_util::{SinkExt, StreamExt};
use livehub_server::Config;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const RS: u8 = 0x1e;

/// A raw hub connection over a WebSocket, reading JSON records or MessagePack ones.
struct Hub {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    buf: BytesMut,
    records: VecDeque<Vec<u8>>,
    msgpack: bool,
}

impl Hub {
    /// Connects (skipping negotiation, or with `?id=` in `query`) without a handshake.
    async fn open(server: &TestServer, query: &str) -> Self {
        let url = format!("ws://{}/hubs/live{query}", server.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connect");
        Self { ws, buf: BytesMut::new(), records: VecDeque::new(), msgpack: false }
    }

    /// Connects and completes a JSON (or MessagePack) handshake.
    async fn connect(server: &TestServer, msgpack: bool) -> Self {
        let mut hub = Self::open(server, "").await;
        let protocol = if msgpack { "messagepack" } else { "json" };
        hub.send_text(&format!("{{\"protocol\":\"{protocol}\",\"version\":1}}\u{1e}")).await;
        assert_eq!(hub.handshake().await, json!({}));
        hub.msgpack = msgpack;
        hub
    }

    async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    async fn send(&mut self, value: Value) {
        self.send_text(&format!("{value}\u{1e}")).await;
    }

    async fn send_msgpack(&mut self, value: rmpv::Value) {
        self.ws.send(Message::binary(msgpack_record(&value))).await.expect("send");
    }

    /// Reads frames until a record is whole; `None` when the socket closes first.
    async fn record(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(record) = self.records.pop_front() {
                return Some(record);
            }
            let message = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame in time");
            match message {
                Some(Ok(Message::Text(text))) => self.buf.extend_from_slice(text.as_bytes()),
                Some(Ok(Message::Binary(bytes))) => self.buf.extend_from_slice(&bytes),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
            self.split();
        }
    }

    fn split(&mut self) {
        loop {
            if self.msgpack {
                let Some((len, used)) = read_varint(&self.buf) else { return };
                if self.buf.len() < used + len {
                    return;
                }
                self.buf.advance(used);
                self.records.push_back(self.buf.split_to(len).to_vec());
            } else {
                let Some(end) = self.buf.iter().position(|&b| b == RS) else { return };
                let record = self.buf.split_to(end + 1);
                self.records.push_back(record[..end].to_vec());
            }
        }
    }

    /// The handshake response (always a JSON record).
    async fn handshake(&mut self) -> Value {
        let saved = self.msgpack;
        self.msgpack = false;
        let record = self.record().await.expect("a handshake response");
        self.msgpack = saved;
        serde_json::from_slice(&record).expect("JSON")
    }

    /// The next JSON message other than a ping.
    async fn next(&mut self) -> Value {
        loop {
            let record = self.record().await.expect("a message");
            let value: Value = serde_json::from_slice(&record).expect("a JSON record");
            if value["type"] != 6 {
                return value;
            }
        }
    }

    /// The next MessagePack message other than a ping.
    async fn next_msgpack(&mut self) -> rmpv::Value {
        loop {
            let record = self.record().await.expect("a message");
            let value = rmpv::decode::read_value(&mut &record[..]).expect("a MessagePack record");
            if value[0].as_u64() != Some(6) {
                return value;
            }
        }
    }

    /// Invokes `target` with `arguments` and returns its completion.
    async fn invoke(&mut self, id: &str, target: &str, arguments: Value) -> Value {
        self.send(json!({ "type": 1, "invocationId": id, "target": target, "arguments": arguments })).await;
        loop {
            let message = self.next().await;
            if message["type"] == 3 && message["invocationId"] == id {
                return message;
            }
        }
    }

    /// Waits for the close frame; returns its code.
    async fn close_code(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("a close in time") {
                Some(Ok(Message::Close(frame))) => return frame.map_or(1005, |f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    }
}

fn msgpack_record(value: &rmpv::Value) -> Vec<u8> {
    let mut body = Vec::new();
    rmpv::encode::write_value(&mut body, value).expect("encode");
    let mut out = BytesMut::new();
    let mut len = body.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.put_u8(byte);
            break;
        }
        out.put_u8(byte | 0x80);
    }
    out.extend_from_slice(&body);
    out.to_vec()
}

fn read_varint(buf: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, &byte) in buf.iter().enumerate().take(5) {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

async fn negotiate(server: &TestServer, query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url(&format!("/hubs/live/negotiate{query}")))
        .send()
        .await
        .expect("negotiate")
}

async fn negotiated(server: &TestServer) -> String {
    let body: Value = negotiate(server, "?negotiateVersion=1").await.json().await.expect("JSON");
    body["connectionToken"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn negotiate_answers_both_versions_with_url_safe_tokens() {
    let server = TestServer::start().await;
    let v1: Value = negotiate(&server, "?negotiateVersion=1").await.json().await.expect("JSON");
    assert_eq!(v1["negotiateVersion"], 1);
    let token = v1["connectionToken"].as_str().expect("a token");
    let id = v1["connectionId"].as_str().expect("an id");
    assert_ne!(token, id, "the token is a secret, the id is not");
    assert!(token.len() >= 32 && token.bytes().all(|b| b.is_ascii_alphanumeric()), "{token}");
    let transports: Vec<&str> = v1["availableTransports"]
        .as_array()
        .expect("transports")
        .iter()
        .filter_map(|t| t["transport"].as_str())
        .collect();
    assert_eq!(transports, ["WebSockets", "ServerSentEvents", "LongPolling"]);
    assert_eq!(v1["availableTransports"][1]["transferFormats"], json!(["Text"]));
    assert!(v1.get("useStatefulReconnect").is_none());

    let v0: Value = negotiate(&server, "").await.json().await.expect("JSON");
    assert_eq!(v0["negotiateVersion"], 0);
    assert!(v0.get("connectionToken").is_none(), "{v0}");
    let newer: Value =
        negotiate(&server, "?negotiateVersion=9&useStatefulReconnect=true").await.json().await.expect("JSON");
    assert_eq!(
        (newer["negotiateVersion"].clone(), newer["useStatefulReconnect"].clone()),
        (json!(1), json!(true))
    );
    assert_eq!(negotiate(&server, "?negotiateVersion=x").await.status(), 400);
    // Version 0's id is what its transports name it by.
    let id = v0["connectionId"].as_str().expect("an id");
    let first = reqwest::get(server.url(&format!("/hubs/live?id={id}"))).await.expect("poll");
    assert_eq!(first.status(), 200);
}

#[tokio::test]
async fn unknown_ids_are_404_and_missing_ones_400() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let url = server.url("/hubs/live?id=nope");
    assert_eq!(client.get(&url).send().await.expect("poll").status(), 404);
    let sse = client.get(&url).header("accept", "text/event-stream").send().await.expect("sse");
    assert_eq!(sse.status(), 404);
    assert_eq!(client.post(&url).body("x").send().await.expect("post").status(), 404);
    assert_eq!(client.delete(&url).send().await.expect("delete").status(), 404);
    let bare = server.url("/hubs/live");
    assert_eq!(client.get(&bare).send().await.expect("poll").status(), 400);
    assert_eq!(client.post(&bare).body("x").send().await.expect("post").status(), 400);
    let ws = tokio_tungstenite::connect_async(format!("ws://{}/hubs/live?id=nope", server.addr)).await;
    match ws {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("a 404, not {other:?}"),
    }
    // A token is used once: a second transport for it is unknown.
    let token = negotiated(&server).await;
    let url = server.url(&format!("/hubs/live?id={token}"));
    assert_eq!(client.get(&url).send().await.expect("poll").status(), 200);
    let sse = client.get(&url).header("accept", "text/event-stream").send().await.expect("sse");
    assert_eq!(sse.status(), 404);
}

#[tokio::test]
async fn the_hub_can_be_turned_off_and_moved() {
    let mut config = Config::default();
    config.signalr.enabled = false;
    let server = TestServer::with(config).await;
    let response = negotiate(&server, "?negotiateVersion=1").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "transport_disabled");

    let mut config = Config::default();
    config.signalr.path = "/signalr/feed".into();
    let server = TestServer::with(config).await;
    let moved =
        reqwest::Client::new().post(server.url("/signalr/feed/negotiate")).send().await.expect("negotiate");
    assert_eq!(moved.status(), 200);
    assert_eq!(negotiate(&server, "").await.status(), 404);
}

#[tokio::test]
async fn handshake_errors_name_the_protocol_or_version_and_close() {
    let server = TestServer::start().await;
    let table = [
        ("{\"protocol\":\"xml\",\"version\":1}\u{1e}", "The protocol 'xml' is not supported."),
        (
            "{\"protocol\":\"json\",\"version\":3}\u{1e}",
            "The server does not support version 3 of the 'json' protocol.",
        ),
        ("not json\u{1e}", "invalid handshake"),
    ];
    for (request, error) in table {
        let mut hub = Hub::open(&server, "").await;
        hub.send_text(request).await;
        let response = hub.handshake().await;
        assert!(response["error"].as_str().is_some_and(|e| e.starts_with(error)), "{request}: {response}");
        assert!(hub.record().await.is_none(), "{request}: the connection ends");
    }
    // Versions 0 to 2 are accepted, as ASP.NET Core does (signalrcore sends 0).
    for version in 0..=2 {
        let mut hub = Hub::open(&server, "").await;
        hub.send_text(&format!("{{\"protocol\":\"json\",\"version\":{version}}}\u{1e}")).await;
        assert_eq!(hub.handshake().await, json!({}), "version {version}");
    }
}

#[tokio::test]
async fn each_method_answers_with_a_completion_over_json() {
    let server = TestServer::start().await;
    let mut hub = Hub::connect(&server, false).await;
    let subscribed = hub.invoke("1", "Subscribe", json!([["m/a"]])).await;
    assert_eq!(subscribed["result"]["m/a"]["position"]["offset"], 0, "{subscribed}");
    let published = server.publish("m/a", json!({ "v": 1 })).await;
    let receive = hub.next().await;
    assert_eq!(receive["type"], 1);
    assert_eq!(receive["target"], "Receive");
    assert!(receive.get("invocationId").is_none(), "a publication wants no answer: {receive}");
    assert_eq!(receive["arguments"][0], "m/a");
    let message = &receive["arguments"][1];
    assert_eq!((message["channel"].clone(), message["data"].clone()), (json!("m/a"), json!({ "v": 1 })));
    assert_eq!((message["offset"].clone(), message["epoch"].clone()), (json!(1), published["epoch"].clone()));
    assert!(message["ts"].as_u64().is_some(), "{message}");

    // Names are matched case-insensitively.
    let own = hub.invoke("2", "pUbLiSh", json!(["m/a", [1, 2]])).await;
    assert_eq!(own["result"]["offset"], 2, "{own}");
    let history = hub.invoke("3", "History", json!(["m/a", null, 1])).await;
    assert_eq!(history["result"]["publications"][0]["data"], json!([1, 2]), "{history}");
    let presence = hub.invoke("4", "Presence", json!(["m/a"])).await;
    assert_eq!(presence["result"]["subscribers"], 1);
    let left = hub.invoke("5", "Unsubscribe", json!(["m/a"])).await;
    assert!(left.get("result").is_none() && left.get("error").is_none(), "a void completion: {left}");
    let presence = hub.invoke("6", "Presence", json!(["m/a"])).await;
    assert_eq!(presence["result"]["subscribers"], 0);
}

#[tokio::test]
async fn bad_invocations_get_errors_and_the_connection_goes_on() {
    let server = TestServer::start().await;
    let mut hub = Hub::connect(&server, false).await;
    let table = [
        ("Nope", json!([]), "Failed to invoke 'Nope': the hub has no such method"),
        ("Publish", json!(["a"]), "Failed to invoke 'Publish': 1 argument(s) given, 2 to 3 expected"),
        ("Publish", json!([1, 2]), "Failed to invoke 'Publish': the channel must be a string"),
        (
            "Subscribe",
            json!([{}]),
            "Failed to invoke 'Subscribe': channels must be a string or an array of strings",
        ),
        ("Publish", json!(["$sys/x", 1]), "read_only_channel: $sys/x:"),
        ("Subscribe", json!([["a/#/b"]]), "invalid_channel: a/#/b:"),
        ("Stream", json!(["a"]), "Failed to invoke 'Stream': 'Stream' is a streaming method"),
    ];
    for (i, (target, arguments, error)) in table.into_iter().enumerate() {
        let id = i.to_string();
        let completion = hub.invoke(&id, target, arguments).await;
        let got = completion["error"].as_str().unwrap_or_default();
        assert!(got.starts_with(error), "{target}: {completion}");
    }
    // Without an id there is no answer at all: the next message is the later invocation's.
    hub.send(json!({ "type": 1, "target": "Nope", "arguments": [] })).await;
    hub.send(json!({ "type": 1, "target": "Publish", "arguments": ["q/x", 1] })).await;
    // An unknown message type is ignored.
    hub.send(json!({ "type": 99 })).await;
    let next = hub.invoke("last", "Presence", json!(["q/x"])).await;
    assert_eq!(next["result"]["subscribers"], 0, "{next}");
    let history = hub.invoke("h", "History", json!(["q/x"])).await;
    assert_eq!(history["result"]["offset"], 1, "the invocation without an id ran: {history}");
}

#[tokio::test]
async fn a_malformed_record_closes_only_that_connection_with_a_reason() {
    let server = TestServer::start().await;
    let mut bystander = Hub::connect(&server, false).await;
    let mut hub = Hub::connect(&server, false).await;
    hub.send_text("{\"type\":1,\"target\":\u{1e}").await;
    let close = hub.next().await;
    assert_eq!(close["type"], 7, "{close}");
    assert_eq!(close["allowReconnect"], false);
    assert!(close["error"].as_str().is_some_and(|e| e.starts_with("invalid message")), "{close}");
    assert_eq!(hub.close_code().await, 1002);
    let still = bystander.invoke("1", "Presence", json!(["a"])).await;
    assert_eq!(still["result"]["subscribers"], 0);
}

#[tokio::test]
async fn messagepack_records_carry_length_prefixes_and_binary_data() {
    let server = TestServer::start().await;
    let mut hub = Hub::connect(&server, true).await;
    let headers = || rmpv::Value::Map(Vec::new());
    let subscribe = rmpv::Value::Array(vec![
        1.into(),
        headers(),
        "1".into(),
        "Subscribe".into(),
        rmpv::Value::Array(vec!["b/x".into()]),
    ]);
    hub.send_msgpack(subscribe).await;
    let completion = hub.next_msgpack().await;
    assert_eq!(
        (completion[0].as_u64(), completion[2].as_str(), completion[3].as_u64()),
        (Some(3), Some("1"), Some(3))
    );
    // Two records in one frame, the second publishing binary data.
    let mut frame = msgpack_record(&rmpv::Value::Array(vec![6.into()]));
    frame.extend(msgpack_record(&rmpv::Value::Array(vec![
        1.into(),
        headers(),
        "2".into(),
        "Publish".into(),
        rmpv::Value::Array(vec!["b/x".into(), rmpv::Value::Binary(vec![0, 159, 255])]),
    ])));
    hub.ws.send(Message::binary(frame)).await.expect("send");
    let mut completion = None;
    let mut receive = None;
    while completion.is_none() || receive.is_none() {
        let message = hub.next_msgpack().await;
        match message[0].as_u64() {
            Some(3) => completion = Some(message),
            Some(1) => receive = Some(message),
            other => panic!("unexpected type {other:?}: {message}"),
        }
    }
    let completion = completion.expect("a completion");
    assert_eq!(completion[2].as_str(), Some("2"));
    let receive = receive.expect("a publication");
    // [1, headers, nil, target, [channel, message], streamIds]
    assert!(receive[2].is_nil());
    assert_eq!(receive[3].as_str(), Some("Receive"));
    let message = &receive[4][1];
    let data = common::field(message, "data").expect("data");
    assert_eq!(data, &rmpv::Value::Binary(vec![0, 159, 255]));
    // An error completion: [3, headers, id, 1, error].
    hub.send_msgpack(rmpv::Value::Array(vec![
        1.into(),
        headers(),
        "3".into(),
        "Nope".into(),
        rmpv::Value::Array(vec![]),
    ]))
    .await;
    let error = hub.next_msgpack().await;
    assert_eq!((error[3].as_u64(), error[4].as_str().is_some()), (Some(1), true), "{error}");
}

#[tokio::test]
async fn long_polling_answers_the_first_poll_at_once_and_delete_ends_the_held_one() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let token = negotiated(&server).await;
    let url = server.url(&format!("/hubs/live?id={token}"));
    let first = client.get(&url).send().await.expect("poll");
    assert_eq!(first.status(), 200);
    assert!(first.bytes().await.expect("body").is_empty());
    let sent =
        client.post(&url).body("{\"protocol\":\"json\",\"version\":1}\u{1e}").send().await.expect("post");
    assert_eq!(sent.status(), 200);
    let handshake = client.get(&url).send().await.expect("poll").bytes().await.expect("body");
    assert_eq!(&handshake[..], b"{}\x1e");
    let invocation = json!({ "type": 1, "invocationId": "1", "target": "Publish", "arguments": ["lp/a", 5] });
    client.post(&url).body(format!("{invocation}\u{1e}")).send().await.expect("post");
    let body = client.get(&url).send().await.expect("poll").bytes().await.expect("body");
    let completion: Value = serde_json::from_slice(&body[..body.len() - 1]).expect("one record");
    assert_eq!(completion["result"]["offset"], 1, "{completion}");
    // A poll held for nothing ends with 204 once the client deletes the connection.
    let held = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move { client.get(&url).send().await.expect("poll").status() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(client.delete(&url).send().await.expect("delete").status(), 202);
    assert_eq!(tokio::time::timeout(WAIT, held).await.expect("in time").expect("task"), 204);
    assert_eq!(client.get(&url).send().await.expect("poll").status(), 404);
    // A client may send its handshake before its first poll (signalrcore does): the POST starts
    // the connection as long polling.
    let token = negotiated(&server).await;
    let url = server.url(&format!("/hubs/live?id={token}"));
    let sent =
        client.post(&url).body("{\"protocol\":\"json\",\"version\":0}\u{1e}").send().await.expect("post");
    assert_eq!(sent.status(), 200);
    let handshake = client.get(&url).send().await.expect("poll").bytes().await.expect("body");
    assert_eq!(&handshake[..], b"{}\x1e");
}

#[tokio::test]
async fn server_sent_events_carry_records_and_post_sends() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let token = negotiated(&server).await;
    let url = server.url(&format!("/hubs/live?id={token}"));
    let mut stream = client.get(&url).header("accept", "text/event-stream").send().await.expect("sse");
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    client.post(&url).body("{\"protocol\":\"json\",\"version\":1}\u{1e}").send().await.expect("post");
    let subscribe = json!({ "type": 1, "invocationId": "1", "target": "Subscribe", "arguments": ["sse/a"] });
    client.post(&url).body(format!("{subscribe}\u{1e}")).send().await.expect("post");
    let mut text = String::new();
    let mut read_until = async |needle: &str, text: &mut String| {
        while !text.contains(needle) {
            let chunk = tokio::time::timeout(WAIT, stream.chunk()).await.expect("in time").expect("body");
            text.push_str(std::str::from_utf8(&chunk.expect("open")).expect("UTF-8"));
        }
    };
    read_until("\"invocationId\":\"1\"", &mut text).await;
    assert!(text.contains("data: {}\u{1e}\r\n\r\n"), "the handshake is an event: {text:?}");
    server.publish("sse/a", json!("hi")).await;
    read_until("\"target\":\"Receive\"", &mut text).await;
    assert!(text.contains("\"data\":\"hi\""), "{text:?}");
    // MessagePack needs binary data, which SSE cannot carry: refused in the handshake.
    let token = negotiated(&server).await;
    let url = server.url(&format!("/hubs/live?id={token}"));
    let mut stream = client.get(&url).header("accept", "text/event-stream").send().await.expect("sse");
    client.post(&url).body("{\"protocol\":\"messagepack\",\"version\":1}\u{1e}").send().await.expect("post");
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, stream.chunk()).await.expect("in time").expect("body")
    {
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
    assert!(text.contains("\"error\":\"invalid handshake: the 'messagepack' protocol needs"), "{text:?}");
}

#[tokio::test]
async fn the_server_pings_and_drops_a_silent_client() {
    let mut config = Config::default();
    config.signalr.keep_alive_secs = 1;
    config.signalr.client_timeout_secs = 2;
    let server = TestServer::with(config).await;
    let mut hub = Hub::connect(&server, false).await;
    let ping = hub.record().await.expect("a ping");
    assert_eq!(&ping[..], b"{\"type\":6}");
    let close = hub.next().await;
    assert_eq!((close["type"].clone(), close["allowReconnect"].clone()), (json!(7), json!(true)), "{close}");
    assert!(close["error"].as_str().is_some_and(|e| e.contains("client timeout")), "{close}");
    assert_eq!(hub.close_code().await, 1000);
}

#[tokio::test]
async fn a_missing_handshake_is_closed_at_its_deadline() {
    let mut config = Config::default();
    config.signalr.handshake_timeout_secs = 1;
    let server = TestServer::with(config).await;
    let mut hub = Hub::open(&server, "").await;
    assert!(hub.record().await.is_none(), "closed without a handshake response");
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect_and_closes_with_1000() {
    let server = TestServer::start().await;
    let mut hub = Hub::connect(&server, false).await;
    hub.invoke("1", "Subscribe", json!(["s/a"])).await;
    server.shutdown.cancel();
    let close = hub.next().await;
    assert_eq!(close, json!({ "type": 7, "error": "server shutting down", "allowReconnect": true }));
    assert_eq!(hub.close_code().await, 1000);
}

#[tokio::test]
async fn streams_end_at_cancel_and_uploads_complete_with_a_count() {
    let server = TestServer::start().await;
    let mut hub = Hub::connect(&server, false).await;
    hub.send(json!({ "type": 4, "invocationId": "s", "target": "stream", "arguments": ["st/a"] })).await;
    common::eventually("the stream's subscription", || async {
        (server.presence().await["channels"]["st/a"] == 1).then_some(())
    })
    .await;
    server.publish("st/a", json!(1)).await;
    let item = hub.next().await;
    assert_eq!((item["type"].clone(), item["invocationId"].clone()), (json!(2), json!("s")), "{item}");
    assert_eq!(item["item"]["data"], 1);
    hub.send(json!({ "type": 5, "invocationId": "s" })).await;
    let presence = hub.invoke("p", "Presence", json!(["st/a"])).await;
    assert_eq!(presence["result"]["subscribers"], 0);

    hub.send(json!({ "type": 1, "invocationId": "u", "target": "Upload", "arguments": ["up/a"], "streamIds": ["0"] }))
        .await;
    for n in 1..=2 {
        hub.send(json!({ "type": 2, "invocationId": "0", "item": n })).await;
    }
    hub.send(json!({ "type": 3, "invocationId": "0" })).await;
    let done = hub.next().await;
    assert_eq!(done["invocationId"], "u", "{done}");
    assert_eq!((done["result"]["published"].clone(), done["result"]["offset"].clone()), (json!(2), json!(2)));
}
