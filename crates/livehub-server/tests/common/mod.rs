//! Test support: a real server on 127.0.0.1:0 and small real clients for it.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use livehub_server::Config;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should happen promptly before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often a test re-checks a condition it is waiting for: short, so that waiting adds little
/// to a test; [`WAIT`] bounds the whole wait.
pub const RECHECK: Duration = Duration::from_millis(5);

/// Waits until `check` gives `Some`, re-checking every [`RECHECK`]; fails the test, naming
/// `what`, when it has not after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "still waiting for {what} after {WAIT:?}");
        tokio::time::sleep(RECHECK).await;
    }
}

/// A server running in this process on a free loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The MQTT listener, on a free loopback port of its own.
    pub mqtt_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(Config::default()).await
    }

    /// A server with `config`, minus the built-in sources: tests publish their own data, and a
    /// source's ticks would only add noise to what they count.
    pub async fn with(mut config: Config) -> Self {
        config.sources = livehub_server::SourcesConfig::disabled();
        Self::with_sources(config).await
    }

    /// A server with `config` as it is, sources included; history in memory unless `config`
    /// names its own `[storage]` (a test about the store), so tests write no data directory.
    pub async fn with_sources(mut config: Config) -> Self {
        if config.storage == livehub_server::StorageSettings::default() {
            config.storage.store = livehub_server::StoreKind::Memory;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        config.listen = addr;
        // MQTT's default port is fixed (1883): every test server takes a free one instead.
        config.mqtt.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let mqtt = livehub_server::bind_mqtt(&config).expect("bind MQTT").expect("an MQTT listener");
        let mqtt_addr = mqtt.local_addr().expect("MQTT local addr");
        let shutdown = CancellationToken::new();
        let node = livehub_core::Node::new(config.node_config());
        let handle = tokio::spawn(livehub_server::serve_with_mqtt(
            node,
            config,
            listener,
            Some(mqtt),
            shutdown.clone(),
        ));
        Self { addr, mqtt_addr, shutdown, handle }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Publishes over the HTTP API and returns the answer.
    pub async fn publish(&self, channel: &str, data: Value) -> Value {
        let body = serde_json::json!({ "channel": channel, "data": data });
        let response = reqwest::Client::new()
            .post(self.url("/api/publish"))
            .json(&body)
            .send()
            .await
            .expect("publish request");
        assert!(response.status().is_success(), "publish failed: {}", response.status());
        response.json().await.expect("publish answer")
    }

    /// `GET /api/metrics`.
    pub async fn metrics(&self) -> Value {
        reqwest::get(self.url("/api/metrics")).await.expect("metrics").json().await.expect("metrics JSON")
    }

    /// `GET /api/presence`.
    pub async fn presence(&self) -> Value {
        reqwest::get(self.url("/api/presence")).await.expect("presence").json().await.expect("presence JSON")
    }

    /// Waits until exactly `n` long polls are held, waiting for a publication: a poll counted here
    /// has found nothing to replay after its cursor, so only a live publication can answer it.
    pub async fn wait_for_held_polls(&self, n: u64) {
        eventually(&format!("{n} held long polls"), || async {
            (self.metrics().await["long_polls_held"].as_u64() == Some(n)).then_some(())
        })
        .await
    }

    pub async fn ws(&self) -> Ws {
        Ws::connect(&self.ws_url(), None).await
    }
}

/// A WebSocket client speaking JSON.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(url: &str, protocol: Option<&str>) -> Self {
        let mut request = url.into_client_request().expect("request");
        if let Some(p) = protocol {
            request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(p).expect("header"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await.expect("websocket connect");
        let mut ws = Self { stream };
        if protocol.is_none() {
            let hello = ws.recv().await;
            assert_eq!(hello["type"], "connected", "{hello}");
        }
        ws
    }

    pub async fn send(&mut self, value: Value) {
        self.stream.send(Message::text(value.to_string())).await.expect("send");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.stream.send(msg).await.expect("send");
    }

    /// The next JSON message (pings are answered by the library and skipped).
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a message in time")
                .expect("stream open")
                .expect("no error");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("json"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next message of `kind`, skipping `$sys` presence messages.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == kind {
                return v;
            }
            assert!(v["channel"].as_str().is_some_and(|c| c.starts_with('$')), "expected {kind}, got {v}");
        }
    }

    /// Waits for the connection to end: `Some(code)` for a close frame, `None` for a reset or an
    /// end without one (a client that stopped reading may never get the server's close frame).
    pub async fn ended(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next()).await.expect("end in time") {
                Some(Ok(Message::Close(frame))) => return Some(frame.map_or(1005, |f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Waits for the server to close, returning the close code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            let next = tokio::time::timeout(WAIT, self.stream.next()).await.expect("close in time");
            match next {
                Some(Ok(Message::Close(frame))) => return frame.map_or(1005, |f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("error instead of close: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    }

    pub async fn subscribe(&mut self, channels: &[&str]) -> Vec<Value> {
        self.send(serde_json::json!({ "id": 1, "action": "subscribe", "channels": channels })).await;
        let mut out = Vec::new();
        for _ in channels {
            out.push(self.recv_type("subscribed").await);
        }
        out
    }
}

/// Reads an SSE response body event by event.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

/// One SSE event.
#[derive(Debug, Default, Clone)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

impl Sse {
    pub async fn open(url: &str, last_event_id: Option<&str>) -> Self {
        let mut request = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("sse request");
        Self::from_response(response)
    }

    /// Reads an answer that must be an SSE stream.
    pub fn from_response(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "sse status");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self { response, buffer: String::new() }
    }

    /// The `connected` event a stream starts with; returns its data.
    pub async fn connected(&mut self) -> Value {
        let event = self.next().await.expect("a connected event");
        assert_eq!(event.event, "connected", "{event:?}");
        let data = event.json();
        assert_eq!(data["type"], "connected", "{data}");
        data
    }

    /// The next event (comments and `retry:` lines are skipped).
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event::default();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        event.data = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        event.id = Some(v.to_owned());
                    }
                }
                if event.event.is_empty() && event.data.is_empty() {
                    continue;
                }
                return Some(event);
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk()).await.expect("sse data in time");
            match chunk.expect("sse body") {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).expect("utf8")),
                None => return None,
            }
        }
    }

    /// The next event on a non-`$` channel or a control event.
    pub async fn next_skipping_presence(&mut self) -> Option<Event> {
        loop {
            let e = self.next().await?;
            if !e.event.starts_with('$') {
                return Some(e);
            }
        }
    }
}

/// The value of `key` in a MessagePack map.
pub fn field<'a>(v: &'a rmpv::Value, key: &str) -> Option<&'a rmpv::Value> {
    v.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

/// Sends `v` as one MessagePack binary message.
pub async fn send_msgpack(ws: &mut Ws, v: rmpv::Value) {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, &v).expect("encode");
    ws.send_raw(Message::binary(buf)).await;
}

/// The next MessagePack message (pings and pongs skipped).
pub async fn recv_msgpack(ws: &mut Ws) -> rmpv::Value {
    loop {
        let msg =
            tokio::time::timeout(WAIT, ws.stream.next()).await.expect("in time").expect("open").expect("ok");
        match msg {
            Message::Binary(b) => return rmpv::decode::read_value(&mut &b[..]).expect("msgpack"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}
