//! Access control on the WebSocket transport, over real sockets: credentials and their carriers,
//! bad tokens, subscribe/publish/history permissions, channel rules and API keys, token expiry
//! and `refresh`, the origin check, the connection and rate limits, and the refusal counters.

mod common;

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
    Config::from_toml(&text).unwrap_or_else(|e| panic!("test config: {e}\n{text}"))
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

// ---------------------------------------------------------------------------------------------
// 1. No credential
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn without_a_credential_the_upgrade_succeeds_then_closes_1008_unauthorized() {
    let server = TestServer::with(secured("")).await;
    let unauthorized = (1008, "unauthorized".to_owned());
    assert_eq!(Client::refused(&server, "", &[]).await, unauthorized, "no credential at all");
    // Empty carriers and other schemes are no credential either.
    assert_eq!(Client::refused(&server, "?token=", &[]).await, unauthorized, "empty ?token=");
    assert_eq!(
        Client::refused(&server, "", &[("authorization", "Bearer ")]).await,
        unauthorized,
        "empty bearer"
    );
    assert_eq!(
        Client::refused(&server, "", &[("authorization", "Basic dXNlcjpwYXNz")]).await,
        unauthorized,
        "basic auth is not a bearer token"
    );
    assert_eq!(
        Client::refused(&server, "", &[("cookie", "livehub_token=")]).await,
        unauthorized,
        "empty cookie"
    );
    // A credential that is not shaped like a JWT is taken for an API key, and none matches.
    assert_eq!(Client::refused(&server, "?token=not-a-key", &[]).await, unauthorized, "unknown API key");
}

// ---------------------------------------------------------------------------------------------
// 2. Bad tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_tokens_are_refused_with_their_documented_close_codes() {
    let mut config = secured("");
    config.auth.jwt.issuer = Some("https://id.livehub.test".to_owned());
    config.auth.jwt.audience = Some("livehub".to_owned());
    let server = TestServer::with(config).await;
    let good = |extra: Value| {
        let mut c = claims("alice", json!({ "iss": "https://id.livehub.test", "aud": "livehub" }));
        if let (Some(into), Value::Object(extra)) = (c.as_object_mut(), extra) {
            into.extend(extra);
        }
        c
    };

    // The baseline is accepted, so each refusal below is down to the one thing changed.
    Client::connected(&server, &q(&sign(SECRET, &good(json!({})))), &[]).await;
    Client::connected(&server, &q(&sign(SECRET, &good(json!({ "aud": ["other", "livehub"] })))), &[]).await;

    let unauthorized = (1008, "unauthorized".to_owned());
    let cases: Vec<(&str, String, (u16, String))> = vec![
        ("expired", sign(SECRET, &good(json!({ "exp": now() - 60 }))), (4003, "token_expired".to_owned())),
        (
            "not yet valid",
            sign(SECRET, &good(json!({ "nbf": now() + 3600 }))),
            (1008, "token_not_yet_valid".to_owned()),
        ),
        ("wrong signature", sign("another-secret", &good(json!({}))), unauthorized.clone()),
        ("wrong audience", sign(SECRET, &good(json!({ "aud": "someone-else" }))), unauthorized.clone()),
        ("wrong audiences", sign(SECRET, &good(json!({ "aud": ["a", "b"] }))), unauthorized.clone()),
        ("no audience", sign(SECRET, &good(json!({ "aud": null }))), unauthorized.clone()),
        ("wrong issuer", sign(SECRET, &good(json!({ "iss": "https://evil.test" }))), unauthorized.clone()),
        ("no issuer", sign(SECRET, &good(json!({ "iss": null }))), unauthorized.clone()),
        ("alg none", unsigned(&good(json!({}))), unauthorized.clone()),
        ("no exp (require_exp)", sign(SECRET, &good(json!({ "exp": null }))), unauthorized.clone()),
        ("garbage", "aaa.bbb.ccc".to_owned(), unauthorized.clone()),
    ];
    for (what, token, want) in &cases {
        assert_eq!(&Client::refused(&server, &q(token), &[]).await, want, "{what} in ?token=");
    }
    // `alg: none` also through the header, and with the signature of a real token kept.
    let none = unsigned(&good(json!({})));
    let bearer = format!("Bearer {none}");
    assert_eq!(Client::refused(&server, "", &[("authorization", &bearer)]).await, unauthorized, "alg none");
    let real = sign(SECRET, &good(json!({})));
    let signature = real.rsplit('.').next().expect("signature");
    assert_eq!(Client::refused(&server, &q(&format!("{none}{signature}")), &[]).await, unauthorized);
    // A payload changed under a valid signature.
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(good(json!({ "sub": "mallory", "subscribe": ["#"] })).to_string());
    assert_eq!(Client::refused(&server, &q(&parts.join(".")), &[]).await, unauthorized, "tampered payload");
}

// ---------------------------------------------------------------------------------------------
// 3. Carriers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_token_is_accepted_in_every_carrier() {
    let server = TestServer::with(secured("")).await;
    let token = token("alice", json!({ "subscribe": ["a/#"] }));
    let bearer = format!("Bearer {token}");
    let lower = format!("bearer {token}");
    let cookie = format!("theme=dark; livehub_token={token}; other=1");
    let carriers: Vec<(&str, String, Headers)> = vec![
        ("Authorization: Bearer", String::new(), vec![("authorization", &bearer)]),
        ("authorization: bearer", String::new(), vec![("authorization", &lower)]),
        ("?token=", format!("?token={token}"), vec![]),
        ("?access_token=", format!("?x=1&access_token={token}"), vec![]),
        ("cookie", String::new(), vec![("cookie", &cookie)]),
    ];
    for (id, (what, query, headers)) in (1..).zip(&carriers) {
        let mut client = Client::connected(&server, query, headers).await;
        // The connection carries alice's grants, not the (empty) anonymous ones.
        let reply = client.subscribe(id, "a/x").await;
        assert_eq!(reply["type"], "subscribed", "{what}: {reply}");
        client.forbidden(id + 100, "b/x").await;
    }
    // The header is looked at first: a bad bearer is not rescued by a good query token.
    let bad = format!("Bearer {}", sign("another-secret", &claims("alice", json!({}))));
    assert_eq!(
        Client::refused(&server, &q(&token), &[("authorization", &bad)]).await,
        (1008, "unauthorized".to_owned())
    );
}

#[tokio::test]
async fn messagepack_clients_get_the_same_refusals_and_denials() {
    let server = TestServer::with(secured("")).await;
    let msgpack = ("sec-websocket-protocol", "livehub.msgpack");
    assert_eq!(Client::refused(&server, "", &[msgpack]).await, (1008, "unauthorized".to_owned()));
    let expired = sign(SECRET, &claims("alice", json!({ "exp": now() - 60 })));
    assert_eq!(Client::refused(&server, &q(&expired), &[msgpack]).await, (4003, "token_expired".to_owned()));

    let alice = token("alice", json!({ "subscribe": ["a/#"], "publish": ["a/#"] }));
    let mut ws = Client::connected(&server, &q(&alice), &[msgpack]).await;
    assert!(ws.msgpack);
    ws.subscribed(1, "a/x").await;
    ws.forbidden(2, "b/x").await;
    ws.publish_forbidden(3, "b/x").await;
    ws.published(4, "a/x", json!({ "v": 1 })).await;
    assert_eq!(ws.message().await, ("a/x".to_owned(), json!({ "v": 1 })));
    let fresh = token("alice", json!({ "subscribe": ["a/#"] }));
    let ack = ws.request(json!({ "id": 5, "action": "refresh", "token": fresh })).await;
    assert_eq!((ack["type"].as_str(), ack["id"].as_u64()), (Some("ack"), Some(5)), "{ack}");
    let other = token("bob", json!({}));
    let reply = ws.request(json!({ "id": 6, "action": "refresh", "token": other })).await;
    assert_eq!(reply["code"], "forbidden", "{reply}");
    ws.ping(7).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Subscribe permissions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn subscriptions_are_checked_against_the_token_patterns() {
    let server = TestServer::with(secured("")).await;
    let mut publisher = Client::connected(&server, &q(&publisher_token()), &[]).await;
    let alice = token("alice", json!({ "subscribe": ["a/#", "user/{sub}/#"] }));
    let mut ws = Client::connected(&server, &q(&alice), &[]).await;

    ws.subscribed(1, "a/x").await;
    ws.subscribed(2, "a/+").await;
    ws.subscribed(3, "a/#").await;
    ws.subscribed(4, "user/alice/inbox").await;
    ws.subscribed(5, "user/alice/#").await;
    ws.forbidden(6, "b/x").await;
    ws.ping(7).await;
    // Wildcards that could reach a channel outside the grants.
    ws.forbidden(8, "#").await;
    ws.forbidden(9, "+/x").await;
    ws.forbidden(10, "+/+").await;
    ws.forbidden(11, "user/+/inbox").await;
    ws.forbidden(12, "user/#").await;
    ws.forbidden(13, "user/bob/inbox").await;
    ws.forbidden(14, "$sys/presence").await;
    ws.ping(15).await;

    // One command, one answer per channel, in order.
    ws.send(json!({ "id": 16, "action": "subscribe", "channels": ["a/m", "b/m", "user/alice/m"] })).await;
    let replies = [ws.recv().await, ws.recv().await, ws.recv().await];
    assert_eq!(
        (replies[0]["type"].as_str(), replies[0]["channel"].as_str()),
        (Some("subscribed"), Some("a/m"))
    );
    assert_forbidden(&replies[1], 16, "b/m");
    assert_eq!(replies[2]["type"], "subscribed", "{}", replies[2]);

    // Nothing from the refused channels arrives; the allowed ones do.
    publisher.published(1, "b/x", json!("secret")).await;
    publisher.published(2, "user/bob/inbox", json!("for bob")).await;
    publisher.published(3, "a/x", json!("hello")).await;
    let (channel, data) = ws.message().await;
    assert_eq!((channel.as_str(), data), ("a/x", json!("hello")));
}

#[tokio::test]
async fn a_refusal_says_nothing_about_whether_the_channel_exists() {
    let server = TestServer::with(secured("")).await;
    let mut publisher = Client::connected(&server, &q(&publisher_token()), &[]).await;
    publisher.published(1, "b/exists", json!(1)).await;
    let mut ws = Client::connected(&server, &q(&token("alice", json!({ "subscribe": ["a/#"] }))), &[]).await;
    let mut answers = Vec::new();
    for (id, channel) in [(1, "b/exists"), (1, "b/missing")] {
        let mut sub = ws.subscribe(id, channel).await;
        let mut history = ws.request(json!({ "id": id, "action": "history", "channel": channel })).await;
        for reply in [&mut sub, &mut history] {
            reply.as_object_mut().expect("object").remove("channel");
        }
        answers.push((sub, history));
    }
    assert_eq!(answers[0], answers[1], "same answers for an existing and a missing channel");
}

#[tokio::test]
async fn roles_from_the_configuration_grant_through_the_roles_claim() {
    let config = secured(
        r##"
[auth.roles.admin]
subscribe = ["#"]
publish = ["#"]
[auth.roles.reader]
subscribe = ["news/#", "home/{sub}/#"]
"##,
    );
    let server = TestServer::with(config).await;

    let mut admin = Client::connected(&server, &q(&token("root", json!({ "roles": ["admin"] }))), &[]).await;
    admin.subscribed(1, "#").await;
    admin.subscribed(2, "anything/at/all").await;
    admin.forbidden(3, "$sys/presence").await; // `#` never reaches `$` channels.
    admin.published(4, "news/today", json!("headline")).await;

    // `roles` may be a single string.
    let mut reader = Client::connected(&server, &q(&token("rita", json!({ "roles": "reader" }))), &[]).await;
    reader.subscribed(1, "news/#").await;
    reader.subscribed(2, "home/rita/lights").await;
    reader.forbidden(3, "home/root/lights").await;
    reader.forbidden(4, "sports/x").await;
    reader.publish_forbidden(5, "news/today").await;

    // A role the configuration does not know grants nothing.
    let mut stranger =
        Client::connected(&server, &q(&token("sam", json!({ "roles": ["superuser", "admin2"] }))), &[]).await;
    stranger.forbidden(1, "news/today").await;
    stranger.forbidden(2, "#").await;
}

#[tokio::test]
async fn a_subject_that_is_not_one_plain_level_gets_nothing_from_a_sub_placeholder() {
    let server = TestServer::with(secured("")).await;
    let grants = json!({ "subscribe": ["user/{sub}/#"], "publish": ["user/{sub}/out"] });
    for (i, sub) in (1..).zip(["+", "#", "bob/x", "$sys", ""]) {
        let token = sign(SECRET, &claims(sub, grants.clone()));
        let mut ws = Client::connected(&server, &q(&token), &[]).await;
        ws.forbidden(i, "user/bob/inbox").await;
        ws.forbidden(i, "user/+/inbox").await;
        ws.forbidden(i, "user/bob/x/inbox").await;
        ws.publish_forbidden(i, "user/bob/out").await;
    }
    // A token without a subject gets nothing from it either.
    let token = sign(SECRET, &json!({ "exp": now() + 3600, "subscribe": ["user/{sub}/#"] }));
    let mut ws = Client::connected(&server, &q(&token), &[]).await;
    ws.forbidden(1, "user/bob/inbox").await;
}

// ---------------------------------------------------------------------------------------------
// 5. Publish and history permissions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn publishing_and_history_are_checked_against_the_token_patterns() {
    let server = TestServer::with(secured("")).await;
    let mut watcher = Client::connected(&server, &q(&publisher_token()), &[]).await;
    watcher.subscribed(1, "#").await;

    let alice = token("alice", json!({ "subscribe": ["a/#"], "publish": ["a/pub/#", "user/{sub}/out"] }));
    let mut ws = Client::connected(&server, &q(&alice), &[]).await;
    let ack = ws.published(1, "a/pub/x", json!({ "v": 1 })).await;
    assert_eq!(ack["offset"], 1);
    ws.publish_forbidden(2, "a/x").await;
    ws.publish_forbidden(3, "b/x").await;
    ws.published(4, "user/alice/out", json!("mine")).await;
    ws.publish_forbidden(5, "user/bob/out").await;
    // `$` channels are read-only for everyone, whatever the grants.
    let sys = ws.publish(6, "$sys/presence", json!({})).await;
    assert_eq!(
        (sys["type"].as_str(), sys["code"].as_str()),
        (Some("error"), Some("read_only_channel")),
        "{sys}"
    );
    ws.ping(7).await;

    // The refused publications were not stored: the watcher sees only the two accepted ones.
    assert_eq!(watcher.message().await, ("a/pub/x".to_owned(), json!({ "v": 1 })));
    assert_eq!(watcher.message().await, ("user/alice/out".to_owned(), json!("mine")));
    watcher.ping(2).await;

    // History follows the read grants.
    let history = ws.request(json!({ "id": 8, "action": "history", "channel": "a/pub/x" })).await;
    assert_eq!(history["type"], "history", "{history}");
    assert_eq!(history["publications"].as_array().map(Vec::len), Some(1));
    let history = ws.request(json!({ "id": 9, "action": "history", "channel": "user/alice/out" })).await;
    assert_forbidden(&history, 9, "user/alice/out"); // Publishing there does not grant reading it.
    let history = ws.request(json!({ "id": 10, "action": "history", "channel": "b/x" })).await;
    assert_forbidden(&history, 10, "b/x");

    // A token without publish grants cannot publish anywhere.
    let reader = token("rita", json!({ "subscribe": ["#"] }));
    let mut reader = Client::connected(&server, &q(&reader), &[]).await;
    reader.publish_forbidden(1, "a/pub/x").await;
    reader.publish_forbidden(2, "rita").await;
    reader.ping(3).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Channel rules and API keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn channel_rules_and_api_keys_over_websocket() {
    let mut config = secured(&format!(
        r##"
[[auth.channels]]
prefix = "public"
read = "public"
[[auth.channels]]
prefix = "members"
read = "authenticated"
[[auth.channels]]
prefix = "ingest"
publish = "api_key"
[[auth.channels]]
prefix = "locked"
publish = "denied"
{}"##,
        api_key_toml("ingest", PUBLISHER_KEY, r##"publish = ["ingest/#", "locked/#", "public/#"]"##)
    ));
    config.auth.required = Some(false);
    let server = TestServer::with(config).await;

    // Without a credential: public reads only.
    let mut guest = Client::connected(&server, "", &[]).await;
    guest.subscribed(1, "public/x").await;
    guest.subscribed(1, "public").await; // The prefix covers itself.
    guest.forbidden(1, "publicity").await; // … and not other names that start with it.
    guest.subscribed(2, "public/#").await;
    guest.forbidden(3, "private/x").await;
    guest.forbidden(4, "members/chat").await;
    guest.forbidden(5, "#").await;
    guest.forbidden(6, "+/x").await; // Reaches `public/x`, but also `private/x`.
    guest.publish_forbidden(7, "public/x").await;
    guest.ping(8).await;

    // An API key as a bearer credential on the WebSocket.
    let bearer = format!("Bearer {PUBLISHER_KEY}");
    let mut key = Client::connected(&server, "", &[("authorization", &bearer)]).await;
    key.published(1, "ingest/prices", json!(1)).await;
    key.publish_forbidden(2, "locked/x").await; // `denied` even with a matching pattern.
    key.publish_forbidden(3, "other/x").await; // Outside the key's patterns.
    key.published(4, "public/x", json!("for everyone")).await;
    key.subscribed(5, "members/chat").await; // Any authenticated identity reads `members`.
    key.forbidden(6, "ingest/prices").await; // The key has no subscribe grants there.
    assert_eq!(guest.message().await, ("public/x".to_owned(), json!("for everyone")));

    // A user token with matching publish grants: refused on `api_key` and `denied` prefixes.
    let user = token("ursula", json!({ "publish": ["ingest/#", "locked/#", "open/#"] }));
    let mut user = Client::connected(&server, &q(&user), &[]).await;
    user.publish_forbidden(1, "ingest/prices").await;
    user.publish_forbidden(2, "locked/x").await;
    user.published(3, "open/x", json!(true)).await;
    user.subscribed(4, "members/chat").await;
    user.forbidden(5, "open/x").await;

    // A wrong API key is no credential.
    let wrong = "Bearer lh_not_the_right_key";
    assert_eq!(
        Client::refused(&server, "", &[("authorization", wrong)]).await,
        (1008, "unauthorized".to_owned()),
        "a wrong key is refused even where anonymous connections are allowed"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Expiry and refresh
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_expiring_on_a_live_connection_closes_it_with_4003() {
    let server = TestServer::with(secured("")).await;
    let exp = now() + 2;
    let short = token("alice", json!({ "exp": exp, "subscribe": ["a/#"] }));
    let mut ws = Client::connected(&server, &q(&short), &[]).await;
    ws.subscribed(1, "a/x").await;
    ws.ping(2).await;
    assert_eq!(ws.closed().await, (4003, "token_expired".to_owned()));
    // Closed for the expiry, not for something else: not (more than clock granularity) early.
    assert!(now() + 1 >= exp, "closed at the token's exp, not before");
}

#[tokio::test]
async fn refresh_before_expiry_keeps_the_connection_open() {
    let server = TestServer::with(secured("")).await;
    let mut publisher = Client::connected(&server, &q(&publisher_token()), &[]).await;
    let old_exp = now() + 2;
    let grants = json!({ "subscribe": ["a/#"] });
    let short = sign(SECRET, &claims("alice", json!({ "exp": old_exp, "subscribe": ["a/#"] })));
    let mut ws = Client::connected(&server, &q(&short), &[]).await;
    ws.subscribed(1, "a/x").await;

    let new_exp = now() + 3600;
    let fresh = sign(SECRET, &claims("alice", json!({ "exp": new_exp, "subscribe": grants["subscribe"] })));
    let ack = ws.request(json!({ "id": 2, "action": "refresh", "token": fresh })).await;
    assert_eq!(ack, json!({ "type": "ack", "id": 2, "expires": new_exp * 1000 }));

    sleep_past(old_exp).await;
    ws.ping(3).await;
    publisher.published(1, "a/x", json!("still here")).await;
    assert_eq!(ws.message().await, ("a/x".to_owned(), json!("still here")));
}

#[tokio::test]
async fn refresh_moves_the_expiry_to_the_new_token() {
    let server = TestServer::with(secured("")).await;
    let long = token("alice", json!({}));
    let mut ws = Client::connected(&server, &q(&long), &[]).await;
    // A refresh may also shorten the life of the connection.
    let exp = now() + 2;
    let short = sign(SECRET, &claims("alice", json!({ "exp": exp })));
    let ack = ws.request(json!({ "id": 1, "action": "refresh", "token": short })).await;
    assert_eq!(ack, json!({ "type": "ack", "id": 1, "expires": exp * 1000 }));
    assert_eq!(ws.closed().await, (4003, "token_expired".to_owned()));
}

#[tokio::test]
async fn refresh_for_another_subject_is_forbidden_and_the_old_expiry_stands() {
    let server = TestServer::with(secured("")).await;
    let exp = now() + 2;
    let short = sign(SECRET, &claims("alice", json!({ "exp": exp })));
    let mut ws = Client::connected(&server, &q(&short), &[]).await;
    let bob = token("bob", json!({ "subscribe": ["#"] }));
    let reply = ws.request(json!({ "id": 5, "action": "refresh", "token": bob })).await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str(), reply["id"].as_u64()),
        (Some("error"), Some("forbidden"), Some(5)),
        "{reply}"
    );
    ws.ping(6).await;
    // Still alice's grants (none), not bob's.
    ws.forbidden(7, "a/x").await;
    assert_eq!(ws.closed().await, (4003, "token_expired".to_owned()));
    assert!(now() + 1 >= exp, "closed at the old token's exp, not before");
}

#[tokio::test]
async fn refresh_with_a_bad_token_is_refused_and_the_connection_stays() {
    let server = TestServer::with(secured("")).await;
    let mut ws = Client::connected(&server, &q(&token("alice", json!({ "subscribe": ["a/#"] }))), &[]).await;
    ws.subscribed(1, "a/x").await;
    let cases = [
        ("wrong signature", json!(sign("another-secret", &claims("alice", json!({})))), "unauthorized"),
        ("expired", json!(sign(SECRET, &claims("alice", json!({ "exp": now() - 60 })))), "token_expired"),
        (
            "not yet valid",
            json!(sign(SECRET, &claims("alice", json!({ "nbf": now() + 3600 })))),
            "token_not_yet_valid",
        ),
        ("alg none", json!(unsigned(&claims("alice", json!({ "subscribe": ["#"] })))), "unauthorized"),
        ("missing", Value::Null, "bad_request"),
    ];
    for (id, (what, token, code)) in (10..).zip(cases) {
        let mut command = json!({ "id": id, "action": "refresh" });
        if !token.is_null() {
            command["token"] = token;
        }
        let reply = ws.request(command).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str(), reply["id"].as_u64()),
            (Some("error"), Some(code), Some(id)),
            "{what}: {reply}"
        );
    }
    ws.ping(20).await;
    ws.forbidden(21, "b/x").await; // The grants did not change.
}

#[tokio::test]
async fn refresh_that_no_longer_grants_a_channel_drops_that_subscription() {
    let server = TestServer::with(secured("")).await;
    let mut publisher = Client::connected(&server, &q(&publisher_token()), &[]).await;
    let before = token("alice", json!({ "subscribe": ["c/#", "d/#"] }));
    let mut ws = Client::connected(&server, &q(&before), &[]).await;
    ws.subscribed(1, "c/x").await;
    ws.subscribed(2, "d/x").await;
    ws.subscribed(3, "d/#").await;

    let after = token("alice", json!({ "subscribe": ["c/#"] }));
    ws.send(json!({ "id": 4, "action": "refresh", "token": after })).await;
    let mut dropped = Vec::new();
    let ack = loop {
        let m = ws.recv().await;
        if m["type"] == "ack" {
            break m;
        }
        assert_eq!(
            (m["type"].as_str(), m["code"].as_str(), m["id"].as_u64()),
            (Some("error"), Some("forbidden"), None),
            "{m}"
        );
        dropped.push(m["channel"].as_str().expect("channel").to_owned());
    };
    assert_eq!(ack["id"], 4);
    dropped.sort();
    assert_eq!(dropped, ["d/#", "d/x"], "one error per dropped subscription");

    publisher.published(1, "d/x", json!("gone")).await;
    publisher.published(2, "c/x", json!("kept")).await;
    assert_eq!(ws.message().await, ("c/x".to_owned(), json!("kept")));
    ws.ping(5).await;
    // And the dropped channel cannot be subscribed again.
    ws.forbidden(6, "d/x").await;
}

// ---------------------------------------------------------------------------------------------
// 8. Origin
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn origins_outside_the_allow_list_are_closed_1008() {
    let config = secured("[auth.origins]\nallowed = [\"https://app.example.com\"]\n");
    let server = TestServer::with(config).await;
    let token = q(&token("alice", json!({})));
    assert_eq!(
        Client::refused(&server, &token, &[("origin", "https://evil.example.org")]).await,
        (1008, "origin_not_allowed".to_owned())
    );
    // Near misses of the allowed origin.
    for origin in
        ["http://app.example.com", "https://app.example.com:8443", "https://app.example.com.evil.org", "null"]
    {
        assert_eq!(
            Client::refused(&server, &token, &[("origin", origin)]).await,
            (1008, "origin_not_allowed".to_owned()),
            "{origin}"
        );
    }
    // The origin is checked before the credential: no token, bad origin, still the origin.
    assert_eq!(
        Client::refused(&server, "", &[("origin", "https://evil.example.org")]).await,
        (1008, "origin_not_allowed".to_owned())
    );

    Client::connected(&server, &token, &[("origin", "https://app.example.com")]).await;
    // Same origin: the page was served by this server (the Host header names it).
    let same = format!("http://{}", server.addr);
    Client::connected(&server, &token, &[("origin", &same)]).await;
    // Non-browser clients send no Origin.
    Client::connected(&server, &token, &[]).await;
    // An allowed origin does not stand in for a credential.
    assert_eq!(
        Client::refused(&server, "", &[("origin", "https://app.example.com")]).await,
        (1008, "unauthorized".to_owned())
    );
}

#[tokio::test]
async fn once_auth_is_on_an_empty_origin_list_means_same_origin_only() {
    let server = TestServer::with(secured("")).await;
    let token = q(&token("alice", json!({})));
    assert_eq!(
        Client::refused(&server, &token, &[("origin", "https://app.example.com")]).await,
        (1008, "origin_not_allowed".to_owned())
    );
    let same = format!("http://{}", server.addr);
    Client::connected(&server, &token, &[("origin", &same)]).await;
}

// ---------------------------------------------------------------------------------------------
// 9. Limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connections_per_ip_are_limited_and_freed_on_close() {
    let mut config = Config::default();
    config.rate_limits.connections_per_ip = 2;
    let server = TestServer::with(config).await;
    let a = Client::connected(&server, "", &[]).await;
    let mut b = Client::connected(&server, "", &[]).await;
    assert_eq!(Client::refused(&server, "", &[]).await, (4029, "too_many_connections".to_owned()));
    b.ping(1).await; // The refusal did not disturb the admitted ones.

    a.close().await;
    // The slot is freed once the server has finished with the closed connection; wait for it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut c = loop {
        let mut client = Client::open(&server, "", &[]).await;
        match client.next_event().await {
            Event::Json(hello) => {
                assert_eq!(hello["type"], "connected");
                break client;
            }
            Event::Closed(code, reason) => {
                assert_eq!((code, reason.as_str()), (4029, "too_many_connections"));
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the closed connection's slot was never freed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    c.ping(1).await;
    assert_eq!(Client::refused(&server, "", &[]).await, (4029, "too_many_connections".to_owned()));
}

#[tokio::test]
async fn the_message_budget_answers_rate_limited_and_recovers() {
    let mut config = Config::default();
    config.rate_limits.messages_per_sec = 2.0;
    config.rate_limits.message_burst = 3;
    let server = TestServer::with(config).await;
    let mut ws = Client::connected(&server, "", &[]).await;

    // Five at once: the burst of three is answered, the rest refused (fewer than the burst in a
    // row, so the connection stays).
    for id in 1..=5 {
        ws.stream.feed(Message::text(json!({ "id": id, "action": "ping" }).to_string())).await.expect("feed");
    }
    ws.stream.flush().await.expect("flush");
    let (mut pongs, mut limited) = (0, 0);
    for _ in 1..=5 {
        let m = ws.recv().await;
        match (m["type"].as_str(), m["code"].as_str()) {
            (Some("pong"), _) => pongs += 1,
            (Some("error"), Some("rate_limited")) => limited += 1,
            _ => panic!("unexpected {m}"),
        }
    }
    assert!(pongs >= 3, "the burst is allowed ({pongs} pongs)");
    assert!(limited >= 1, "some pings were refused");

    // At 2 per second, 1.5 s refills enough for a command again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws.ping(6).await;
}

#[tokio::test]
async fn a_flood_of_refused_messages_closes_the_connection_with_4029() {
    let mut config = Config::default();
    config.rate_limits.messages_per_sec = 2.0;
    config.rate_limits.message_burst = 3;
    let server = TestServer::with(config).await;
    let mut ws = Client::connected(&server, "", &[]).await;
    for id in 1..=30 {
        if ws.stream.feed(Message::text(json!({ "id": id, "action": "ping" }).to_string())).await.is_err() {
            break;
        }
    }
    let _ = ws.stream.flush().await;
    let mut limited = 0;
    let close = loop {
        match ws.next_event().await {
            Event::Closed(code, reason) => break (code, reason),
            Event::Json(m) if m["type"] == "pong" => {}
            Event::Json(m) if m["code"] == "rate_limited" => limited += 1,
            Event::Json(m) => panic!("unexpected {m}"),
        }
    };
    assert_eq!(close, (4029, "rate_limited".to_owned()));
    assert!(limited <= 3, "closed after more than `message_burst` refusals in a row, not later ({limited})");
    // Other connections are not affected.
    Client::connected(&server, "", &[]).await.ping(1).await;
}

#[tokio::test]
async fn the_publish_budget_per_ip_answers_rate_limited_and_recovers() {
    let mut config = Config::default();
    config.rate_limits.publishes_per_sec_per_ip = 1.0;
    config.rate_limits.publish_burst_per_ip = 2;
    let server = TestServer::with(config).await;
    let mut a = Client::connected(&server, "", &[]).await;
    let mut b = Client::connected(&server, "", &[]).await;

    let mut results = Vec::new();
    for id in 1..=3 {
        let reply = a.publish(id, "p/x", json!(id)).await;
        results.push((reply["type"].as_str().unwrap_or_default().to_owned(), reply["code"].clone()));
    }
    assert!(results.iter().filter(|(t, _)| t == "ack").count() >= 2, "the burst is allowed: {results:?}");
    let refused = a.publish(4, "p/x", json!(4)).await;
    assert_eq!(
        (
            refused["type"].as_str(),
            refused["code"].as_str(),
            refused["id"].as_u64(),
            refused["channel"].as_str()
        ),
        (Some("error"), Some("rate_limited"), Some(4), Some("p/x")),
        "{refused}"
    );
    // The budget is the address's, shared by its connections.
    let other = b.publish(1, "p/y", json!(1)).await;
    assert_eq!(other["code"], "rate_limited", "{other}");
    // Subscribing and pinging are not publications.
    a.subscribed(5, "p/x").await;
    a.ping(6).await;

    // At 1 per second, 1.5 s refills one publication.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.published(7, "p/x", json!("again")).await;
}

// ---------------------------------------------------------------------------------------------
// 10. Metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_count_refusals_by_code_in_anonymous_mode() {
    let mut config = Config::default();
    config.rate_limits.connections_per_ip = 1;
    config.rate_limits.messages_per_sec = 2.0;
    config.rate_limits.message_burst = 3;
    let server = TestServer::with(config).await;
    let mut ws = Client::connected(&server, "", &[]).await;
    assert_eq!(Client::refused(&server, "", &[]).await, (4029, "too_many_connections".to_owned()));
    for id in 1..=5 {
        ws.stream.feed(Message::text(json!({ "id": id, "action": "ping" }).to_string())).await.expect("feed");
    }
    ws.stream.flush().await.expect("flush");
    let mut limited = 0;
    for _ in 1..=5 {
        if ws.recv().await["code"] == "rate_limited" {
            limited += 1;
        }
    }
    assert!(limited >= 1);

    let (status, body) = metrics(&server, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refused"], json!({ "too_many_connections": 1, "rate_limited": limited }), "{body}");
}

#[tokio::test]
async fn metrics_count_refusals_by_code_for_an_admin_key() {
    let mut config = secured(&api_key_toml("ops", ADMIN_KEY, "admin = true"));
    config.auth.origins.allowed = vec!["https://app.example.com".to_owned()];
    let server = TestServer::with(config).await;
    // A token that expires on its live connection is counted as well.
    let short = sign(SECRET, &claims("carol", json!({ "exp": now() + 2 })));
    let mut expiring = Client::connected(&server, &q(&short), &[]).await;

    assert_eq!(Client::refused(&server, "", &[]).await.1, "unauthorized");
    let expired = sign(SECRET, &claims("alice", json!({ "exp": now() - 60 })));
    assert_eq!(Client::refused(&server, &q(&expired), &[]).await.1, "token_expired");
    let early = sign(SECRET, &claims("alice", json!({ "nbf": now() + 3600 })));
    assert_eq!(Client::refused(&server, &q(&early), &[]).await.1, "token_not_yet_valid");
    let alice = token("alice", json!({ "subscribe": ["a/#"] }));
    assert_eq!(
        Client::refused(&server, &q(&alice), &[("origin", "https://evil.example.org")]).await.1,
        "origin_not_allowed"
    );
    let mut ws = Client::connected(&server, &q(&alice), &[]).await;
    ws.forbidden(1, "b/x").await;
    ws.publish_forbidden(2, "a/x").await;
    let history = ws.request(json!({ "id": 3, "action": "history", "channel": "b/x" })).await;
    assert_forbidden(&history, 3, "b/x");

    assert_eq!(expiring.closed().await, (4003, "token_expired".to_owned()));

    // The metrics are for admins only: anonymous is 401, a user token 403 (both counted too).
    assert_eq!(metrics(&server, None).await.0, 401);
    assert_eq!(metrics(&server, Some(&alice)).await.0, 403);
    let (status, body) = metrics(&server, Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["refused"],
        json!({
            "unauthorized": 2,
            "token_expired": 2,
            "token_not_yet_valid": 1,
            "origin_not_allowed": 1,
            "forbidden": 4,
        }),
        "{body}"
    );
    assert!(body["connections"].as_u64().is_some_and(|n| n >= 1), "{body}");
}

// ---------------------------------------------------------------------------------------------
// 11. Anonymous mode
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn anonymous_mode_still_allows_everything_but_publishing_to_system_channels() {
    let server = TestServer::start().await;
    // Any origin, no credential.
    let mut ws = Client::connected(&server, "", &[("origin", "https://evil.example.org")]).await;
    ws.subscribed(1, "#").await;
    ws.subscribed(2, "$sys/presence").await;
    ws.subscribed(3, "+/x").await;
    let mut other = Client::connected(&server, "", &[]).await;
    other.published(1, "any/x", json!("hi")).await;
    assert_eq!(ws.message().await, ("any/x".to_owned(), json!("hi")));
    let sys = other.publish(2, "$sys/presence", json!({})).await;
    assert_eq!(
        (sys["type"].as_str(), sys["code"].as_str(), sys["id"].as_u64()),
        (Some("error"), Some("read_only_channel"), Some(2)),
        "{sys}"
    );
    let history = other.request(json!({ "id": 3, "action": "history", "channel": "any/x" })).await;
    assert_eq!(history["publications"].as_array().map(Vec::len), Some(1), "{history}");
    let (status, body) = metrics(&server, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["refused"], json!({}), "nothing was refused: {body}");
}

// ---------------------------------------------------------------------------------------------
// Bugs these tests found, fixed.
// ---------------------------------------------------------------------------------------------

/// A validly signed token whose `exp` is a huge (but finite, in-range for `u64`) NumericDate
/// panics in `Authenticator::verify_token_at` (`UNIX_EPOCH + Duration::from_secs(exp)` overflows
/// `SystemTime`), which kills the handshake handler and, on `refresh`, the connection task.
#[tokio::test]
async fn a_far_future_exp_does_not_crash_the_handshake_or_the_connection() {
    let server = TestServer::with(secured("")).await;
    let far = sign(SECRET, &json!({ "sub": "alice", "exp": 1e19, "subscribe": ["a/#"] }));
    // Either answer is acceptable (admitted as never expiring, or refused as a malformed time
    // claim); a dropped handshake is not.
    let mut client = Client::open(&server, &q(&far), &[]).await;
    match client.next_event().await {
        Event::Json(hello) => assert_eq!(hello["type"], "connected"),
        Event::Closed(code, reason) => assert_eq!((code, reason.as_str()), (1008, "unauthorized")),
    }
    let mut ws = Client::connected(&server, &q(&token("alice", json!({}))), &[]).await;
    let reply = ws.request(json!({ "id": 1, "action": "refresh", "token": far })).await;
    assert!(reply["type"] == "ack" || reply["code"] == "unauthorized", "{reply}");
    ws.ping(2).await;
}

/// Issue 6: exceeding a limit "yields the documented error or close code, and is counted in
/// metrics". The subscription limit, the channel-name length and the message size answer with
/// their codes, but `refused` in `/api/metrics` only counts `AuthError`s.
#[tokio::test]
async fn size_and_subscription_limits_are_counted_in_metrics() {
    let mut config = Config::default();
    config.limits.max_subscriptions = 1;
    config.limits.max_message_size = 1024;
    let server = TestServer::with(config).await;
    let mut ws = Client::connected(&server, "", &[]).await;
    ws.subscribed(1, "a").await;
    let reply = ws.subscribe(2, "b").await;
    assert_eq!(reply["code"], "too_many_subscriptions", "{reply}");
    let long = "x".repeat(300);
    let reply = ws.subscribe(3, &long).await;
    assert_eq!(reply["code"], "invalid_channel", "{reply}");
    ws.send(json!({ "id": 4, "action": "ping", "pad": "x".repeat(4096) })).await;
    assert_eq!(ws.closed().await.0, 1009);

    let (_, body) = metrics(&server, None).await;
    let refused = body["refused"].as_object().expect("refused is an object");
    assert_eq!(refused.get("too_many_subscriptions"), Some(&json!(1)), "{body}");
    let total: u64 = refused.values().filter_map(Value::as_u64).sum();
    assert!(total >= 3, "each of the three limits is counted: {body}");
}

/// With no keys configured a credential cannot be checked, so a stray one (a cookie left by a
/// secured instance on another port of the same host) is ignored rather than locking anyone out.
#[tokio::test]
async fn an_open_server_ignores_stray_credentials() {
    let server = TestServer::start().await;
    let stray = token("alice", json!({}));
    let cookie = format!("livehub_token={stray}");
    let mut ws = Client::connected(&server, "?token=garbage", &[("cookie", &cookie)]).await;
    let reply = ws.subscribe(1, "anything/at/all").await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
}

/// `refresh` replaces a token with a newer one for the same user; it cannot turn an anonymous
/// or API-key connection into a user.
#[tokio::test]
async fn only_a_token_connection_can_be_refreshed() {
    let keys = api_key_toml("pub", PUBLISHER_KEY, "publish = [\"#\"]");
    let server = TestServer::with(secured(&format!("[auth]\nrequired = false\n{keys}"))).await;
    let user = token("alice", json!({ "subscribe": ["#"] }));
    let bearer = format!("Bearer {PUBLISHER_KEY}");
    for (query, headers) in [("", vec![]), ("", vec![("authorization", bearer.as_str())])] {
        let mut ws = Client::connected(&server, query, &headers).await;
        let reply = ws.request(json!({ "id": 7, "action": "refresh", "token": user })).await;
        assert_eq!(reply["code"], "forbidden", "{reply}");
        ws.ping(8).await;
    }
}
