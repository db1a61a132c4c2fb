//! Access control on the WebSocket transport, over real sockets: credentials and their carriers,
//! bad tokens, subscribe/publish/history permissions, channel rules and API keys, token expiry
//! and `refresh`, the origin check, the connection and rate limits, and the refusal counters.

#[path = "../common/mod.rs"]
mod common;

mod credentials;
mod limits;
mod permissions;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{TestServer, WAIT};
use futures_util::{SinkExt, StreamExt};
use livehub_auth::{hash_api_key, mint_token, Algorithm, MintKey};
use livehub_server::Config;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The HMAC secret the secured test servers verify tokens with.
const SECRET: &str = "auth-ws-test-secret";

/// An API key that may publish (its grants depend on the test's configuration).
const PUBLISHER_KEY: &str = "lh_test_ws_publisher_key_0123456789";

/// An API key with access to the admin API.
const ADMIN_KEY: &str = "lh_test_ws_admin_key_0123456789";

// ---------------------------------------------------------------------------------------------
// Tokens and configurations
// ---------------------------------------------------------------------------------------------

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Signs `claims` with HS256 and `secret`.
fn sign(secret: &str, claims: &Value) -> String {
    mint_token(&MintKey::hmac(secret.as_bytes()), Algorithm::HS256, claims).expect("mint a token")
}

/// Claims for `sub` valid for an hour, with `extra` merged over them.
fn claims(sub: &str, extra: Value) -> Value {
    let mut claims = json!({ "sub": sub, "exp": now() + 3600 });
    if let (Some(into), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        into.extend(extra);
    }
    claims
}

/// A token for `sub`, valid for an hour, with `extra` claims.
fn token(sub: &str, extra: Value) -> String {
    sign(SECRET, &claims(sub, extra))
}

/// A token that may publish and subscribe everywhere (but `$` channels).
fn publisher_token() -> String {
    token("publisher", json!({ "subscribe": ["#"], "publish": ["#"] }))
}

/// An unsigned token (`alg: none`) with these claims, built by hand.
fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// Auth on: tokens signed with [`SECRET`], no clock skew, and `extra` TOML appended (tables such
/// as `[auth.roles.x]`, `[[auth.channels]]`, `[rate_limits]`).
fn secured(extra: &str) -> Config {
    let text = format!("[auth.jwt]\nhmac_secret = \"{SECRET}\"\nleeway_secs = 0\n{extra}");
    let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
    // Many refusals from one address on purpose; the failure budget is tested in hardening.rs.
    config.rate_limits.auth_failures_per_sec_per_ip = 0.0;
    config
}

/// A `[[auth.api_keys]]` entry for `key`.
fn api_key_toml(name: &str, key: &str, rest: &str) -> String {
    format!("[[auth.api_keys]]\nname = \"{name}\"\nsha256 = \"{}\"\n{rest}\n", hash_api_key(key))
}

/// Sleeps until the wall clock is a second past the UNIX time `secs`.
async fn sleep_past(secs: u64) {
    let target = UNIX_EPOCH + Duration::from_secs(secs + 1);
    if let Ok(left) = target.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
}

// ---------------------------------------------------------------------------------------------
// A WebSocket client that can see close frames
// ---------------------------------------------------------------------------------------------

/// What the server sent next.
#[derive(Debug)]
enum Event {
    Json(Value),
    Closed(u16, String),
}

struct Client {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Whether commands are sent as MessagePack binary frames (the `livehub.msgpack`
    /// subprotocol was asked for) rather than JSON text.
    msgpack: bool,
}

impl Client {
    /// Opens `/ws{query}` with extra request headers; the upgrade itself must succeed (refusals
    /// come as close frames after it).
    async fn open(server: &TestServer, query: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = format!("{}{query}", server.ws_url()).into_client_request().expect("request");
        for (name, value) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let (stream, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("handshake in time")
            .expect("the upgrade succeeds");
        assert_eq!(response.status(), 101, "switching protocols");
        let msgpack = headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("sec-websocket-protocol") && value.contains("livehub.msgpack")
        });
        Self { stream, msgpack }
    }

    /// Opens a connection that must be admitted: the first message is `connected`.
    async fn connected(server: &TestServer, query: &str, headers: &[(&str, &str)]) -> Self {
        let mut client = Self::open(server, query, headers).await;
        match client.next_event().await {
            Event::Json(hello) => assert_eq!(hello["type"], "connected", "{hello}"),
            Event::Closed(code, reason) => {
                panic!("expected `connected` for {query:?} {headers:?}, got close {code} {reason:?}")
            }
        }
        client
    }

    /// Opens a connection that must be refused: the first frame is a close, returned as
    /// (code, reason).
    async fn refused(server: &TestServer, query: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut client = Self::open(server, query, headers).await;
        match client.next_event().await {
            Event::Closed(code, reason) => (code, reason),
            Event::Json(v) => panic!("expected a close for {query:?} {headers:?}, got {v}"),
        }
    }

    /// The next message or close frame (pings and pongs are skipped).
    async fn next_event(&mut self) -> Event {
        loop {
            let next = tokio::time::timeout(WAIT, self.stream.next()).await.expect("a frame in time");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Event::Json(serde_json::from_str(text.as_str()).expect("JSON message"))
                }
                Some(Ok(Message::Binary(bytes))) => {
                    return Event::Json(rmp_serde::from_slice(&bytes).expect("MessagePack message"))
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) =
                        frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                    return Event::Closed(code, reason);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
                Some(Err(e)) => panic!("error instead of a frame: {e}"),
                None => panic!("the stream ended without a close frame"),
            }
        }
    }

    /// The next message; a close is a failure.
    async fn recv(&mut self) -> Value {
        match self.next_event().await {
            Event::Json(v) => v,
            Event::Closed(code, reason) => panic!("closed with {code} {reason:?} while a message was due"),
        }
    }

    /// Waits for the server's close, skipping messages; returns (code, reason).
    async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Event::Closed(code, reason) = self.next_event().await {
                return (code, reason);
            }
        }
    }

    async fn send(&mut self, command: Value) {
        let frame = if self.msgpack {
            Message::binary(rmp_serde::to_vec_named(&command).expect("encode MessagePack"))
        } else {
            Message::text(command.to_string())
        };
        self.stream.send(frame).await.expect("send");
    }

    /// Sends a command and returns the next message.
    async fn request(&mut self, command: Value) -> Value {
        self.send(command).await;
        self.recv().await
    }

    /// A ping that must be answered: the connection is up and the server reads it.
    async fn ping(&mut self, id: u64) {
        let pong = self.request(json!({ "id": id, "action": "ping" })).await;
        assert_eq!(pong, json!({ "type": "pong", "id": id }), "the connection is still up");
    }

    /// Subscribes to one channel or pattern; returns the `subscribed` or `error` reply.
    async fn subscribe(&mut self, id: u64, channel: &str) -> Value {
        self.request(json!({ "id": id, "action": "subscribe", "channels": [channel] })).await
    }

    /// Subscribes to `channel`, which must be allowed.
    async fn subscribed(&mut self, id: u64, channel: &str) {
        let reply = self.subscribe(id, channel).await;
        assert_eq!(
            (reply["type"].as_str(), reply["channel"].as_str()),
            (Some("subscribed"), Some(channel)),
            "{reply}"
        );
    }

    /// Subscribes to `channel`, which must be refused with `forbidden`.
    async fn forbidden(&mut self, id: u64, channel: &str) {
        let reply = self.subscribe(id, channel).await;
        assert_forbidden(&reply, id, channel);
    }

    /// Publishes; returns the `ack` or `error`.
    async fn publish(&mut self, id: u64, channel: &str, data: Value) -> Value {
        self.request(json!({ "id": id, "action": "publish", "channel": channel, "data": data })).await
    }

    /// Publishes to `channel`, which must be allowed.
    async fn published(&mut self, id: u64, channel: &str, data: Value) -> Value {
        let ack = self.publish(id, channel, data).await;
        assert_eq!((ack["type"].as_str(), ack["id"].as_u64()), (Some("ack"), Some(id)), "{ack}");
        assert_eq!(ack["channel"], channel);
        ack
    }

    /// Publishes to `channel`, which must be refused with `forbidden`.
    async fn publish_forbidden(&mut self, id: u64, channel: &str) {
        let reply = self.publish(id, channel, json!("nope")).await;
        assert_forbidden(&reply, id, channel);
    }

    /// The next publication (skipping `$` channels); returns (channel, data).
    async fn message(&mut self) -> (String, Value) {
        loop {
            let m = self.recv().await;
            assert_eq!(m["type"], "message", "expected a publication, got {m}");
            let channel = m["channel"].as_str().expect("channel").to_owned();
            if !channel.starts_with('$') {
                return (channel, m["data"].clone());
            }
        }
    }

    /// Closes from the client side and waits until the server has let go of the socket.
    async fn close(mut self) {
        let _ = self.stream.close(None).await;
        let _ =
            tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = self.stream.next().await {} }).await;
    }
}

fn assert_forbidden(reply: &Value, id: u64, channel: &str) {
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str(), reply["id"].as_u64(), reply["channel"].as_str()),
        (Some("error"), Some("forbidden"), Some(id), Some(channel)),
        "{reply}"
    );
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(!message.contains(channel), "the message does not repeat the channel: {message}");
}

/// Request headers as (name, value) pairs.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// `?token=…`
fn q(token: &str) -> String {
    format!("?token={token}")
}

/// `GET /api/metrics`, with an optional bearer credential; returns (status, body).
async fn metrics(server: &TestServer, bearer: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(server.url("/api/metrics"));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.expect("metrics request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("metrics body is JSON"))
}
