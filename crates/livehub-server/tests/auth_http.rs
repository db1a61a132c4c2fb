//! Access control on the HTTP transports over real sockets: SSE, long polling, the REST API
//! (publish, the channel reads that are short polling, presence, metrics) and CORS.
//!
//! Covers missing and bad credentials (expired, not yet valid, wrong signature, audience or
//! issuer, `alg: none`), every credential carrier, reads inside and outside the grants (wildcards
//! included) without revealing whether a channel exists, token expiry on live streams and held
//! polls, API keys and the per-prefix publish rules, the admin endpoints, public and
//! authenticated read rules, the origin check, CORS, and the connection and publish limits with
//! their `refused` counters.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{TestServer, WAIT};
use livehub_auth::{hash_api_key, mint_token, Algorithm, MintKey};
use livehub_server::{Config, CURSOR_HEADER};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

/// The HMAC secret the test servers verify tokens with.
const SECRET: &str = "auth-http-test-secret";
/// The `iss` the test servers require.
const ISSUER: &str = "https://id.livehub.test";
/// The `aud` the test servers require.
const AUDIENCE: &str = "livehub";
/// An API key that may read and publish everything and use the admin API (see [`secured`]).
const ADMIN_KEY: &str = "lh_admin-key-used-by-the-auth-http-tests";
/// The origin the origin and CORS tests allow.
const APP_ORIGIN: &str = "https://app.example.com";
/// An origin nobody allows.
const EVIL_ORIGIN: &str = "https://evil.example.org";

// ---------------------------------------------------------------------------------------------
// Tokens and configuration

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// The claims of a valid token for `alice` (right issuer and audience, an hour to live), with
/// `overrides` applied; a `null` override removes the claim.
fn claims(overrides: Value) -> Value {
    let mut claims = json!({ "sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 3600 });
    let map = claims.as_object_mut().expect("an object");
    for (key, value) in overrides.as_object().expect("overrides are an object") {
        if value.is_null() {
            map.remove(key);
        } else {
            map.insert(key.clone(), value.clone());
        }
    }
    claims
}

/// A token the test servers accept, with `overrides` applied to [`claims`].
fn token(overrides: Value) -> String {
    mint_token(&MintKey::hmac(SECRET.as_bytes()), Algorithm::HS256, &claims(overrides)).expect("mint token")
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// An unsigned token (`alg: none`, empty signature), built by hand as an attacker would.
fn unsigned(claims: &Value) -> String {
    format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(claims))
}

/// `token` with its payload replaced by `claims` and the original signature kept.
fn tampered(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(claims), parts[2])
}

/// A `[[auth.api_keys]]` block.
fn api_key(name: &str, key: &str, publish: &[&str], subscribe: &[&str], admin: bool) -> String {
    format!(
        "[[auth.api_keys]]\nname = \"{name}\"\nsha256 = \"{}\"\npublish = {}\nsubscribe = {}\nadmin = {admin}\n\n",
        hash_api_key(key),
        json!(publish),
        json!(subscribe),
    )
}

/// A configuration with auth on: the test secret, issuer and audience, the admin key, then
/// `extra` (TOML; it may open `[auth]`, `[[auth.channels]]`, `[rate_limits]`, …).
fn secured(extra: &str) -> Config {
    let text = format!(
        "[auth.jwt]\nhmac_secret = \"{SECRET}\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\n{}{extra}",
        api_key("admin", ADMIN_KEY, &["#"], &["#", "$sys/#"], true),
    );
    Config::from_toml(&text).unwrap_or_else(|e| panic!("invalid test config: {e}\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Where a request carries its credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carrier {
    Bearer,
    Token,
    AccessToken,
    Cookie,
}

const CARRIERS: [Carrier; 4] = [Carrier::Bearer, Carrier::Token, Carrier::AccessToken, Carrier::Cookie];

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A request for `path` with `credential` in its carrier.
fn request(
    server: &TestServer,
    method: Method,
    path: &str,
    credential: Option<(Carrier, &str)>,
) -> reqwest::RequestBuilder {
    let mut url = server.url(path);
    let mut header = None;
    if let Some((carrier, value)) = credential {
        match carrier {
            Carrier::Bearer => header = Some(("authorization", format!("Bearer {value}"))),
            Carrier::Cookie => header = Some(("cookie", format!("theme=dark; livehub_token={value}"))),
            Carrier::Token | Carrier::AccessToken => {
                let param = if carrier == Carrier::Token { "token" } else { "access_token" };
                let separator = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{separator}{param}={}", encode(value));
            }
        }
    }
    let mut builder = reqwest::Client::new().request(method, url);
    if let Some((name, value)) = header {
        builder = builder.header(name, value);
    }
    builder
}

fn get(server: &TestServer, path: &str, credential: Option<(Carrier, &str)>) -> reqwest::RequestBuilder {
    request(server, Method::GET, path, credential)
}

fn bearer(credential: &str) -> Option<(Carrier, &str)> {
    Some((Carrier::Bearer, credential))
}

/// A complete answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", self.status, self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a `{"error": {"code", "message"}}` answer with `status` and `code`.
    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.error_code().as_str()), (status, code), "answer: {}", self.text);
        assert!(self.json()["error"]["message"].is_string(), "{}", self.text);
        if status == 429 {
            assert_eq!(self.header("retry-after"), Some("1"), "a 429 says when to retry: {:?}", self.headers);
        }
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.text))
            .to_owned()
    }
}

/// Sends `request` and reads the whole answer, both bounded by [`WAIT`].
async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response =
        tokio::time::timeout(WAIT, request.send()).await.expect("answered in time").expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = tokio::time::timeout(WAIT, response.text()).await.expect("body in time").expect("body");
    Reply { status, headers, text }
}

// ---------------------------------------------------------------------------------------------
// SSE

/// One SSE event.
#[derive(Debug, Default)]
struct Event {
    event: String,
    data: String,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {self:?}"))
    }
}

/// An open SSE stream, read event by event.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    /// The next event (comments and `retry:` skipped), or `None` once the stream ended.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event::default();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        event.data = v.to_owned();
                    }
                }
                if event.event.is_empty() && event.data.is_empty() {
                    continue;
                }
                return Some(event);
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no SSE data in time; buffered: {:?}", self.buffer));
            match chunk.expect("sse body") {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).expect("utf8")),
                None => return None,
            }
        }
    }

    /// The `connected` event a stream starts with; returns its data.
    async fn connected(&mut self) -> Value {
        let event = self.next().await.expect("a connected event");
        assert_eq!(event.event, "connected", "{event:?}");
        let data = event.json();
        assert_eq!(data["type"], "connected", "{data}");
        data
    }
}

/// Sends an SSE request: the stream when admitted (200), the refusal otherwise.
async fn open_sse(request: reqwest::RequestBuilder) -> Result<Stream, Reply> {
    let response =
        tokio::time::timeout(WAIT, request.send()).await.expect("answered in time").expect("request");
    if response.status() == 200 {
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        return Ok(Stream { response, buffer: String::new() });
    }
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = tokio::time::timeout(WAIT, response.text()).await.expect("body in time").expect("body");
    Err(Reply { status, headers, text })
}

// ---------------------------------------------------------------------------------------------
// Reading a channel over each transport

/// The transports that read channels over HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Sse,
    Poll,
    /// `GET /api/channels/{channel}/history` (short polling).
    Rest,
}

const TRANSPORTS: [Transport; 3] = [Transport::Sse, Transport::Poll, Transport::Rest];

impl Transport {
    /// The path that reads `channels` (the REST read takes the first one's history). Polls do not
    /// wait.
    fn path(self, channels: &[&str]) -> String {
        let query: Vec<String> = channels.iter().map(|c| format!("channel={}", encode(c))).collect();
        let query = query.join("&");
        match self {
            Self::Sse => format!("/sse?{query}"),
            Self::Poll => format!("/poll?{query}&timeout=0"),
            Self::Rest => format!("/api/channels/{}/history", channels[0]),
        }
    }
}

/// What an admitted read answered: the status and the body (for SSE, the `connected` data).
#[derive(Debug)]
struct Admitted {
    status: u16,
    body: Value,
}

/// Reads `channels` over `transport` with `credential` and the extra `headers`.
async fn read(
    server: &TestServer,
    transport: Transport,
    channels: &[&str],
    credential: Option<(Carrier, &str)>,
    headers: &[(&str, &str)],
) -> Result<Admitted, Reply> {
    let mut builder = get(server, &transport.path(channels), credential);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if transport == Transport::Sse {
        let mut stream = open_sse(builder).await?;
        return Ok(Admitted { status: 200, body: stream.connected().await });
    }
    let reply = send(builder).await;
    match reply.status {
        200 => Ok(Admitted { status: 200, body: reply.json() }),
        204 if transport == Transport::Poll => {
            assert!(reply.header(CURSOR_HEADER).is_some(), "a 204 carries the cursor: {:?}", reply.headers);
            Ok(Admitted { status: 204, body: Value::Null })
        }
        _ => Err(reply),
    }
}

/// [`read`], which must be admitted.
async fn admitted(
    server: &TestServer,
    transport: Transport,
    channels: &[&str],
    credential: Option<(Carrier, &str)>,
) -> Admitted {
    read(server, transport, channels, credential, &[])
        .await
        .unwrap_or_else(|r| panic!("{transport:?} {channels:?} refused: {} {}", r.status, r.text))
}

/// [`read`], which must be refused; returns the refusal.
async fn refused(
    server: &TestServer,
    transport: Transport,
    channels: &[&str],
    credential: Option<(Carrier, &str)>,
) -> Reply {
    read(server, transport, channels, credential, &[])
        .await
        .map(|a| panic!("{transport:?} {channels:?} was admitted: {a:?}"))
        .unwrap_or_else(|reply| reply)
}

// ---------------------------------------------------------------------------------------------
// Publishing and the admin API

/// `POST /api/publish` with a JSON `body`.
async fn publish(server: &TestServer, credential: Option<(Carrier, &str)>, body: &Value) -> Reply {
    let builder = request(server, Method::POST, "/api/publish", credential)
        .header("content-type", "application/json")
        .body(body.to_string());
    send(builder).await
}

/// The publications of `channel`, read with the admin key (or without a credential on an
/// anonymous server, which knows no keys and refuses any).
async fn history(server: &TestServer, channel: &str) -> Vec<Value> {
    let path = format!("/api/channels/{channel}/history");
    let mut reply = send(get(server, &path, bearer(ADMIN_KEY))).await;
    if reply.status == 401 {
        reply = send(get(server, &path, None)).await;
    }
    assert_eq!(reply.status, 200, "history of {channel}: {}", reply.text);
    reply.json()["publications"].as_array().expect("publications").clone()
}

/// The `refused` counters of `GET /api/metrics`, read with `credential`.
async fn refused_counts(server: &TestServer, credential: Option<(Carrier, &str)>) -> Value {
    let reply = send(get(server, "/api/metrics", credential)).await;
    assert_eq!(reply.status, 200, "metrics: {}", reply.text);
    let refused = reply.json()["refused"].clone();
    assert!(refused.is_object(), "metrics carry refusals by code: {}", reply.text);
    refused
}

/// Waits until `at` (a Unix time in seconds) has passed.
async fn wait_until_after(at: u64) {
    let deadline = Instant::now() + WAIT;
    while now() <= at {
        assert!(Instant::now() < deadline, "the clock did not pass {at} in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Missing and bad credentials

#[tokio::test]
async fn missing_and_bad_credentials_are_refused_with_401_on_sse_poll_and_rest() {
    let server = TestServer::with(secured("")).await;
    let grants = json!({ "subscribe": ["news/#"] });
    let good = token(grants.clone());
    let t = now();
    let mut wide = claims(grants.clone());
    wide["subscribe"] = json!(["#"]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", token(json!({ "subscribe": ["news/#"], "exp": t - 3600 })), "token_expired"),
        ("not yet valid", token(json!({ "subscribe": ["news/#"], "nbf": t + 3600 })), "token_not_yet_valid"),
        (
            "wrong signature",
            mint_token(&MintKey::hmac(b"some-other-secret"), Algorithm::HS256, &claims(grants.clone()))
                .expect("mint"),
            "unauthorized",
        ),
        ("tampered payload", tampered(&good, &wide), "unauthorized"),
        ("wrong audience", token(json!({ "subscribe": ["news/#"], "aud": "someone-else" })), "unauthorized"),
        ("no audience", token(json!({ "subscribe": ["news/#"], "aud": null })), "unauthorized"),
        (
            "wrong issuer",
            token(json!({ "subscribe": ["news/#"], "iss": "https://evil.test" })),
            "unauthorized",
        ),
        ("alg none", unsigned(&claims(grants.clone())), "unauthorized"),
        ("no exp", token(json!({ "subscribe": ["news/#"], "exp": null })), "unauthorized"),
        ("unknown API key", "lh_not-a-configured-key".to_owned(), "unauthorized"),
        ("garbage", "not.a.jwt".to_owned(), "unauthorized"),
    ];
    for transport in TRANSPORTS {
        // The baseline: the same server admits the good token.
        admitted(&server, transport, &["news/a"], bearer(&good)).await;
        let reply = refused(&server, transport, &["news/a"], None).await;
        reply.assert_error(401, "unauthorized");
        for (name, credential, code) in &cases {
            for carrier in CARRIERS {
                let reply = refused(&server, transport, &["news/a"], Some((carrier, credential))).await;
                assert_eq!(
                    (reply.status, reply.error_code().as_str()),
                    (401, *code),
                    "{transport:?}, {name} token in {carrier:?}: {}",
                    reply.text
                );
                reply.assert_error(401, code);
                assert!(
                    !reply.text.contains(credential.as_str()),
                    "the body echoes the token: {}",
                    reply.text
                );
                for part in credential.split('.').filter(|p| p.len() > 8) {
                    assert!(!reply.text.contains(part), "the body echoes part of the token: {}", reply.text);
                }
            }
        }
    }
    let refused = refused_counts(&server, bearer(ADMIN_KEY)).await;
    for code in ["unauthorized", "token_expired", "token_not_yet_valid"] {
        assert!(refused[code].as_u64().is_some_and(|n| n >= 3), "refusals counted by code: {refused}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Every carrier

#[tokio::test]
async fn a_valid_credential_is_accepted_in_every_carrier() {
    let reader_key = "lh_reader-key-for-news";
    let server = TestServer::with(secured(&api_key("reader", reader_key, &[], &["news/#"], false))).await;
    assert_eq!(
        publish(&server, bearer(ADMIN_KEY), &json!({ "channel": "news/a", "data": 1 })).await.status,
        200
    );
    let user = token(json!({ "subscribe": ["news/#"] }));
    for credential in [user.as_str(), reader_key] {
        for carrier in CARRIERS {
            let cred = Some((carrier, credential));
            let sse = admitted(&server, Transport::Sse, &["news/a"], cred).await;
            assert_eq!(
                sse.body["channels"]["news/a"]["position"]["offset"], 1,
                "{carrier:?}: {:?}",
                sse.body
            );
            let poll = admitted(&server, Transport::Poll, &["news/a"], cred).await;
            assert_eq!(poll.status, 204, "{carrier:?}: nothing new after the cursor");
            let reply = send(get(&server, "/poll?channel=news/a&latest=true&timeout=0", cred)).await;
            assert_eq!(reply.status, 200, "{carrier:?}: {}", reply.text);
            assert_eq!(reply.json()["messages"][0]["data"], 1, "{}", reply.text);
            let rest = admitted(&server, Transport::Rest, &["news/a"], cred).await;
            assert_eq!(rest.body["publications"].as_array().map(Vec::len), Some(1), "{:?}", rest.body);
            let latest = send(get(&server, "/api/channels/news/a", cred)).await;
            assert_eq!(latest.status, 200, "{carrier:?}: {}", latest.text);
            assert_eq!(latest.json()["latest"]["data"], 1, "{}", latest.text);
        }
    }
    // The path form of SSE takes the query carriers too.
    let reply = open_sse(get(&server, "/sse/news/a", Some((Carrier::AccessToken, &user)))).await;
    reply.map_err(|r| r.text).expect("path form admitted").connected().await;
}

#[tokio::test]
async fn the_cookie_name_is_configurable() {
    let server = TestServer::with(secured("[auth]\ncookie = \"lh_session\"\n")).await;
    let user = token(json!({ "subscribe": ["news/#"] }));
    let with_cookie = |cookie: String| get(&server, "/api/channels/news/a", None).header("cookie", cookie);
    let reply = send(with_cookie(format!("a=1; lh_session={user}"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    send(with_cookie(format!("livehub_token={user}"))).await.assert_error(401, "unauthorized");
}

// ---------------------------------------------------------------------------------------------
// 3. Inside and outside the grants

#[tokio::test]
async fn sse_and_poll_refuse_the_whole_request_when_one_channel_is_forbidden() {
    let server = TestServer::with(secured("")).await;
    let user = token(json!({ "subscribe": ["news/#", "stocks/+"] }));
    let cred = bearer(&user);
    let allowed: [&[&str]; 6] = [
        &["news/a"],
        &["news/a", "news/b/c"],
        &["news/#"],
        &["news/+/c"],
        &["stocks/+"],
        &["stocks/aapl", "news/a"],
    ];
    let forbidden: [&[&str]; 8] = [
        &["secret/x"],
        &["news/a", "secret/x"],
        &["secret/x", "news/a"],
        &["#"],
        &["+/a"],
        &["stocks/#"],
        &["stocks/aapl/bid"],
        &["news/a", "$sys/presence"],
    ];
    for transport in [Transport::Sse, Transport::Poll] {
        for channels in allowed {
            admitted(&server, transport, channels, cred).await;
        }
        for channels in forbidden {
            let reply = refused(&server, transport, channels, cred).await;
            assert_eq!(reply.status, 403, "{transport:?} {channels:?}: {}", reply.text);
            reply.assert_error(403, "forbidden");
        }
    }
    // A refused stream subscribed nothing: no subscriber was left behind on the allowed channel.
    let reply = send(get(&server, "/api/channels/news/a", bearer(ADMIN_KEY))).await;
    assert_eq!(reply.json()["subscribers"], 0, "{}", reply.text);
    admitted(&server, Transport::Rest, &["news/a"], cred).await;
    let reply = send(get(&server, "/api/channels/news/a", cred)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    for path in ["/api/channels/secret/x", "/api/channels/secret/x/history", "/api/channels/stocks/a/b"] {
        send(get(&server, path, cred)).await.assert_error(403, "forbidden");
    }
}

#[tokio::test]
async fn a_forbidden_channel_looks_the_same_whether_it_exists_or_not() {
    let server = TestServer::with(secured("")).await;
    // `secret/existing` has history and a live subscriber; `secret/never` was never used.
    let reply =
        publish(&server, bearer(ADMIN_KEY), &json!({ "channel": "secret/existing", "data": 42 })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut watcher = open_sse(get(&server, "/sse?channel=secret/existing", bearer(ADMIN_KEY)))
        .await
        .map_err(|r| r.text)
        .expect("the admin key reads everything");
    watcher.connected().await;
    let user = token(json!({ "subscribe": ["news/#"] }));
    for transport in TRANSPORTS {
        let existing = refused(&server, transport, &["secret/existing"], bearer(&user)).await;
        let never = refused(&server, transport, &["secret/never"], bearer(&user)).await;
        existing.assert_error(403, "forbidden");
        assert_eq!((existing.status, &existing.text), (never.status, &never.text), "{transport:?}");
        assert!(!existing.text.contains("secret"), "the answer names the channel: {}", existing.text);
    }
    let existing = send(get(&server, "/api/channels/secret/existing", bearer(&user))).await;
    let never = send(get(&server, "/api/channels/secret/never", bearer(&user))).await;
    existing.assert_error(403, "forbidden");
    assert_eq!((existing.status, &existing.text), (never.status, &never.text));
}

// ---------------------------------------------------------------------------------------------
// 4. Token expiry on live connections

#[tokio::test]
async fn token_expiry_ends_a_live_sse_stream_with_4003() {
    let mut config = secured("");
    config.auth.jwt.leeway_secs = 0;
    let server = TestServer::with(config).await;
    let exp = now() + 2;
    let short = token(json!({ "subscribe": ["news/#"], "exp": exp }));
    let mut stream = open_sse(get(&server, "/sse?channel=news/a", Some((Carrier::Token, &short))))
        .await
        .map_err(|r| r.text)
        .expect("admitted while valid");
    stream.connected().await;
    let event = stream.next().await.expect("an event before the stream ends");
    assert_eq!(event.event, "disconnect", "{event:?}");
    assert_eq!(
        event.json(),
        json!({ "type": "disconnect", "code": 4003, "reason": "token_expired", "reconnect": true })
    );
    assert!(stream.next().await.is_none(), "the stream ends after the disconnect event");
    // Coming back with the same token is refused once it has expired.
    wait_until_after(exp).await;
    refused(&server, Transport::Sse, &["news/a"], Some((Carrier::Token, &short)))
        .await
        .assert_error(401, "token_expired");
}

#[tokio::test]
async fn a_held_long_poll_answers_when_its_token_expires() {
    let mut config = secured("");
    config.auth.jwt.leeway_secs = 0;
    let server = TestServer::with(config).await;
    let exp = now() + 2;
    let short = token(json!({ "subscribe": ["news/#"], "exp": exp }));
    // The poll would be held for 30 s; `send` gives up after WAIT (10 s).
    let reply = send(get(&server, "/poll?channel=news/a&timeout=30", bearer(&short))).await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(reply.header(CURSOR_HEADER).is_some_and(|c| !c.is_empty()), "{:?}", reply.headers);
    wait_until_after(exp).await;
    refused(&server, Transport::Poll, &["news/a"], bearer(&short)).await.assert_error(401, "token_expired");
}

/// BUG (see the report): a token past its `exp` but inside the leeway is admitted, then the poll
/// is held for `min(time_left, timeout)` = 0 s and answers a bare `204` at once. With the default
/// 30 s leeway a long-poll client whose token expired re-polls in a hot loop for up to 30 s, and
/// nothing tells it its token expired. Expected: `401 token_expired` (or a normal hold).
#[tokio::test]
async fn a_poll_with_a_token_past_exp_inside_the_leeway_is_not_answered_with_an_instant_204() {
    let server = TestServer::with(secured("")).await; // default leeway: 30 s
    let stale = token(json!({ "subscribe": ["news/#"], "exp": now() - 5 }));
    let started = Instant::now();
    let reply = send(get(&server, "/poll?channel=news/a&timeout=30", bearer(&stale))).await;
    let elapsed = started.elapsed();
    assert!(
        reply.status == 401 || elapsed >= Duration::from_secs(5),
        "an expired token got a {} after {elapsed:?}, telling the client nothing: {:?}",
        reply.status,
        reply.text
    );
    reply.assert_error(401, "token_expired");
}

/// RFC 7519 §4.1.4: the current time must be *before* `exp`. With `leeway_secs = 0` a token whose
/// `exp` is the current second is accepted (`exp + leeway < now` in `livehub-auth/src/jwt.rs`),
/// while `Identity::is_expired` (`now >= exp`) already calls it expired, so SSE admits it and
/// ends the stream at once.
#[tokio::test]
async fn a_token_whose_exp_is_now_is_expired() {
    let mut config = secured("");
    config.auth.jwt.leeway_secs = 0;
    let server = TestServer::with(config).await;
    let at_exp = token(json!({ "subscribe": ["news/#"], "exp": now() }));
    refused(&server, Transport::Rest, &["news/a"], bearer(&at_exp)).await.assert_error(401, "token_expired");
}

// ---------------------------------------------------------------------------------------------
// 5. Publishing

#[tokio::test]
async fn publishing_needs_a_credential_whose_pattern_matches_every_item() {
    let ingest = "lh_ingest-key-for-stocks";
    let server = TestServer::with(secured(&api_key("ingest", ingest, &["stocks/#"], &[], false))).await;
    let key = bearer(ingest);
    let reply = publish(&server, key, &json!({ "channel": "stocks/aapl", "data": 1 })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["offset"], 1, "{}", reply.text);
    // Outside its pattern: refused, nothing published.
    publish(&server, key, &json!({ "channel": "news/x", "data": 1 })).await.assert_error(403, "forbidden");
    assert!(history(&server, "news/x").await.is_empty());
    // A batch with one forbidden item publishes none of them.
    let batch = json!([
        { "channel": "stocks/aapl", "data": 2 },
        { "channel": "news/x", "data": 2 },
        { "channel": "stocks/msft", "data": 2 },
    ]);
    publish(&server, key, &batch).await.assert_error(403, "forbidden");
    assert_eq!(history(&server, "stocks/aapl").await.len(), 1, "the batch published nothing");
    assert!(history(&server, "stocks/msft").await.is_empty());
    assert!(history(&server, "news/x").await.is_empty());
    // Without a key, or with an unknown one, in any carrier.
    let body = json!({ "channel": "stocks/aapl", "data": 3 });
    publish(&server, None, &body).await.assert_error(401, "unauthorized");
    for carrier in CARRIERS {
        publish(&server, Some((carrier, "lh_unknown")), &body).await.assert_error(401, "unauthorized");
        let reply = publish(&server, Some((carrier, ingest)), &body).await;
        assert_eq!(reply.status, 200, "the key in {carrier:?}: {}", reply.text);
    }
    assert_eq!(history(&server, "stocks/aapl").await.len(), 5);
    // Binary publishing names its channel in the query, next to a query credential.
    let binary = |path: &str| {
        reqwest::Client::new()
            .post(server.url(path))
            .header("content-type", "application/octet-stream")
            .body(vec![1u8, 2, 3])
    };
    let reply = send(binary(&format!("/api/publish?channel=stocks/bin&access_token={ingest}"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    send(binary(&format!("/api/publish?channel=news/bin&access_token={ingest}")))
        .await
        .assert_error(403, "forbidden");
    send(binary("/api/publish?channel=stocks/bin")).await.assert_error(401, "unauthorized");
    assert_eq!(history(&server, "stocks/bin").await.len(), 1);
    assert!(history(&server, "news/bin").await.is_empty());
}

#[tokio::test]
async fn a_user_token_publishes_inside_its_grants() {
    let server = TestServer::with(secured("")).await;
    let alice = token(json!({ "publish": ["chat/{sub}/#"] }));
    let reply =
        publish(&server, bearer(&alice), &json!({ "channel": "chat/alice/room", "data": "hi" })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = publish(&server, bearer(&alice), &json!({ "channel": "chat/bob/room", "data": "hi" })).await;
    reply.assert_error(403, "forbidden");
    assert!(history(&server, "chat/bob/room").await.is_empty());
    // Subscribe grants do not allow publishing.
    let reader = token(json!({ "subscribe": ["#"] }));
    publish(&server, bearer(&reader), &json!({ "channel": "news/a", "data": 1 }))
        .await
        .assert_error(403, "forbidden");
    let expired = token(json!({ "publish": ["#"], "exp": now() - 3600 }));
    let reply = publish(&server, bearer(&expired), &json!({ "channel": "news/a", "data": 1 })).await;
    reply.assert_error(401, "token_expired");
    assert!(history(&server, "news/a").await.is_empty());
}

#[tokio::test]
async fn api_key_and_denied_prefixes_decide_who_publishes() {
    let collector = "lh_collector-key";
    let server = TestServer::with(secured(&format!(
        "{}[[auth.channels]]\nprefix = \"metrics\"\npublish = \"api_key\"\n\n\
         [[auth.channels]]\nprefix = \"audit\"\npublish = \"denied\"\n",
        api_key("collector", collector, &["metrics/#", "audit/#"], &[], false),
    )))
    .await;
    let user = token(json!({ "publish": ["#"] }));
    let cpu = json!({ "channel": "metrics/cpu", "data": 1 });
    publish(&server, bearer(&user), &cpu).await.assert_error(403, "forbidden");
    let reply = publish(&server, bearer(collector), &cpu).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let audit = json!({ "channel": "audit/log", "data": 1 });
    publish(&server, bearer(&user), &audit).await.assert_error(403, "forbidden");
    publish(&server, bearer(collector), &audit).await.assert_error(403, "forbidden");
    publish(&server, bearer(ADMIN_KEY), &audit).await.assert_error(403, "forbidden");
    assert_eq!(history(&server, "metrics/cpu").await.len(), 1);
    assert!(history(&server, "audit/log").await.is_empty());
    // Elsewhere the user token's grant applies as usual.
    let reply = publish(&server, bearer(&user), &json!({ "channel": "chat/x", "data": 1 })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // `$` channels stay read-only whoever asks.
    let presence = json!({ "channel": "$sys/presence", "data": 1 });
    for credential in [ADMIN_KEY, collector, user.as_str()] {
        publish(&server, bearer(credential), &presence).await.assert_error(403, "read_only_channel");
    }
}

/// BUG (see the report): `POST /api/publish` with a cookie credential from a foreign origin. A
/// JSON body sent as `text/plain` is a CORS "simple request" (no preflight), so a page on any
/// site can make a logged-in user's browser publish; CORS only hides the answer. The origin
/// check guards SSE, polls and WebSocket but not publishing.
#[tokio::test]
async fn a_cross_site_publish_carrying_the_cookie_is_refused() {
    let server = TestServer::with(secured(&format!("[auth.origins]\nallowed = [\"{APP_ORIGIN}\"]\n"))).await;
    let alice = token(json!({ "publish": ["chat/{sub}/#"] }));
    let forged = request(&server, Method::POST, "/api/publish", Some((Carrier::Cookie, &alice)))
        .header("origin", EVIL_ORIGIN)
        .header("content-type", "text/plain")
        .body(json!({ "channel": "chat/alice/room", "data": "forged" }).to_string());
    let reply = send(forged).await;
    let published = history(&server, "chat/alice/room").await;
    assert!(published.is_empty(), "a cross-site request published as alice: {published:?}");
    reply.assert_error(403, "origin_not_allowed");
}

// ---------------------------------------------------------------------------------------------
// 6. The admin endpoints

#[tokio::test]
async fn admin_endpoints_need_an_admin_credential_once_auth_is_on() {
    let plain_key = "lh_plain-publisher";
    let server = TestServer::with(secured(&api_key("plain", plain_key, &["#"], &["#"], false))).await;
    let user = token(json!({ "subscribe": ["#"], "publish": ["#"] }));
    let presence_reader = token(json!({ "subscribe": ["$sys/#"] }));
    for path in ["/api/channels", "/api/metrics", "/api/presence"] {
        send(get(&server, path, None)).await.assert_error(401, "unauthorized");
        send(get(&server, path, bearer(&user))).await.assert_error(403, "forbidden");
        send(get(&server, path, bearer(plain_key))).await.assert_error(403, "forbidden");
        let reply = send(get(&server, path, bearer(ADMIN_KEY))).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let reply = send(get(&server, path, Some((Carrier::Token, ADMIN_KEY)))).await;
        assert_eq!(reply.status, 200, "{path} with the key in the query: {}", reply.text);
    }
    // Presence is for whoever may read `$sys/presence`; the rest stays admin-only.
    let reply = send(get(&server, "/api/presence", bearer(&presence_reader))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json()["connections"].is_number(), "{}", reply.text);
    send(get(&server, "/api/channels", bearer(&presence_reader))).await.assert_error(403, "forbidden");
    send(get(&server, "/api/metrics", bearer(&presence_reader))).await.assert_error(403, "forbidden");
    let refused = refused_counts(&server, bearer(ADMIN_KEY)).await;
    assert!(refused["forbidden"].as_u64().is_some_and(|n| n >= 8), "{refused}");
    assert!(refused["unauthorized"].as_u64().is_some_and(|n| n >= 3), "{refused}");
}

#[tokio::test]
async fn admin_endpoints_stay_open_in_anonymous_mode() {
    let server = TestServer::with(Config::default()).await;
    server.publish("news/a", json!(1)).await;
    for path in ["/api/channels", "/api/metrics", "/api/presence", "/api/channels/news/a/history"] {
        let reply = send(get(&server, path, None)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
    let reply = send(get(&server, "/api/metrics", None)).await;
    assert_eq!(reply.json()["refused"], json!({}), "{}", reply.text);
    for transport in [Transport::Sse, Transport::Poll] {
        admitted(&server, transport, &["#"], None).await;
        admitted(&server, transport, &["$sys/presence"], None).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Public and authenticated read rules

fn with_read_rules(required: &str) -> Config {
    secured(&format!(
        "[auth]\n{required}\n\n[[auth.channels]]\nprefix = \"public\"\nread = \"public\"\n\n\
         [[auth.channels]]\nprefix = \"members\"\nread = \"authenticated\"\n"
    ))
}

#[tokio::test]
async fn a_public_prefix_is_readable_without_a_token_when_auth_is_optional() {
    let server = TestServer::with(with_read_rules("required = false")).await;
    for transport in TRANSPORTS {
        admitted(&server, transport, &["public/x"], None).await;
        refused(&server, transport, &["private/x"], None).await.assert_error(403, "forbidden");
    }
    for transport in [Transport::Sse, Transport::Poll] {
        admitted(&server, transport, &["public/#"], None).await;
        refused(&server, transport, &["#"], None).await.assert_error(403, "forbidden");
        refused(&server, transport, &["public/x", "private/x"], None).await.assert_error(403, "forbidden");
    }
    // Optional does not mean "bad tokens become anonymous".
    let expired = token(json!({ "exp": now() - 3600 }));
    refused(&server, Transport::Sse, &["public/x"], bearer(&expired))
        .await
        .assert_error(401, "token_expired");
    refused(&server, Transport::Sse, &["public/x"], bearer("lh_unknown"))
        .await
        .assert_error(401, "unauthorized");
    // Anonymous callers still may not publish (no anonymous grants once auth is on).
    publish(&server, None, &json!({ "channel": "public/x", "data": 1 })).await.assert_error(403, "forbidden");
}

#[tokio::test]
async fn an_authenticated_prefix_admits_any_valid_credential() {
    let server = TestServer::with(with_read_rules("required = false")).await;
    let nobody_special = token(json!({}));
    let no_grants_key = "lh_key-without-grants";
    let server_with_key = TestServer::with(secured(&format!(
        "{}[[auth.channels]]\nprefix = \"members\"\nread = \"authenticated\"\n",
        api_key("bare", no_grants_key, &[], &[], false)
    )))
    .await;
    for transport in TRANSPORTS {
        admitted(&server, transport, &["members/chat"], bearer(&nobody_special)).await;
        admitted(&server_with_key, transport, &["members/chat"], bearer(no_grants_key)).await;
        // Without a credential (allowed here) the anonymous identity is refused with 403: the
        // credential is optional, the channel needs one. See the report on 401 vs 403.
        refused(&server, transport, &["members/chat"], None).await.assert_error(403, "forbidden");
        // A valid token without grants reads nothing else.
        refused(&server, transport, &["private/x"], bearer(&nobody_special))
            .await
            .assert_error(403, "forbidden");
    }
    // Once credentials are required, the missing one is the reason.
    let required = TestServer::with(with_read_rules("required = true")).await;
    for transport in TRANSPORTS {
        refused(&required, transport, &["members/chat"], None).await.assert_error(401, "unauthorized");
        // Documented: a public prefix needs `required = false` to let tokenless readers in.
        refused(&required, transport, &["public/x"], None).await.assert_error(401, "unauthorized");
        admitted(&required, transport, &["public/x"], bearer(&nobody_special)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Origins

#[tokio::test]
async fn sse_and_polls_from_a_disallowed_origin_are_refused() {
    let server = TestServer::with(secured(&format!("[auth.origins]\nallowed = [\"{APP_ORIGIN}\"]\n"))).await;
    let user = token(json!({ "subscribe": ["news/#"] }));
    let same_origin = format!("http://{}", server.addr);
    for transport in [Transport::Sse, Transport::Poll] {
        for carrier in CARRIERS {
            let cred = Some((carrier, user.as_str()));
            let reply = read(&server, transport, &["news/a"], cred, &[("origin", EVIL_ORIGIN)])
                .await
                .expect_err("a foreign origin is refused");
            reply.assert_error(403, "origin_not_allowed");
            read(&server, transport, &["news/a"], cred, &[("origin", APP_ORIGIN)])
                .await
                .unwrap_or_else(|r| panic!("{transport:?} from the allowed origin: {}", r.text));
            read(&server, transport, &["news/a"], cred, &[("origin", &same_origin)])
                .await
                .unwrap_or_else(|r| panic!("{transport:?} from the server's own origin: {}", r.text));
            read(&server, transport, &["news/a"], cred, &[])
                .await
                .unwrap_or_else(|r| panic!("{transport:?} without an Origin: {}", r.text));
        }
        // The origin is checked first: a foreign page learns nothing about the credential.
        let reply = read(&server, transport, &["news/a"], None, &[("origin", EVIL_ORIGIN)]).await;
        reply.expect_err("refused").assert_error(403, "origin_not_allowed");
        for lookalike in ["https://app.example.com.evil.org", "http://app.example.com", "null"] {
            let reply = read(&server, transport, &["news/a"], bearer(&user), &[("origin", lookalike)]).await;
            reply.expect_err(lookalike).assert_error(403, "origin_not_allowed");
        }
    }
    let refused = refused_counts(&server, bearer(ADMIN_KEY)).await;
    assert!(refused["origin_not_allowed"].as_u64().is_some_and(|n| n >= 14), "{refused}");
}

#[tokio::test]
async fn any_origin_is_allowed_in_anonymous_mode() {
    let server = TestServer::with(Config::default()).await;
    for transport in [Transport::Sse, Transport::Poll] {
        read(&server, transport, &["news/a"], None, &[("origin", EVIL_ORIGIN)])
            .await
            .unwrap_or_else(|r| panic!("{transport:?}: {}", r.text));
    }
}

// ---------------------------------------------------------------------------------------------
// 9. CORS

/// A CORS preflight for `POST path` from `origin`.
async fn preflight(server: &TestServer, path: &str, origin: &str) -> Reply {
    let builder = reqwest::Client::new()
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type");
    send(builder).await
}

/// `GET path` from `origin`.
async fn cross_origin_get(server: &TestServer, path: &str, origin: &str) -> Reply {
    send(reqwest::Client::new().get(server.url(path)).header("origin", origin)).await
}

fn lists(reply: &Reply, header: &str, wanted: &str) -> bool {
    reply.header(header).is_some_and(|v| v.split(',').any(|item| item.trim().eq_ignore_ascii_case(wanted)))
}

#[tokio::test]
async fn cors_allows_any_origin_in_anonymous_mode() {
    let server = TestServer::with(Config::default()).await;
    let reply = preflight(&server, "/api/publish", "https://x.test").await;
    assert!(reply.status < 300, "{reply:?}");
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "{:?}", reply.headers);
    assert!(lists(&reply, "access-control-allow-methods", "POST"), "{:?}", reply.headers);
    assert!(lists(&reply, "access-control-allow-headers", "authorization"), "{:?}", reply.headers);
    assert_eq!(reply.header("access-control-allow-credentials"), None, "no credentials with *");
    let reply = cross_origin_get(&server, "/poll?channel=a&timeout=0", "https://x.test").await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "{:?}", reply.headers);
    assert!(lists(&reply, "access-control-expose-headers", CURSOR_HEADER), "{:?}", reply.headers);
}

#[tokio::test]
async fn cors_echoes_only_the_listed_origins_with_credentials() {
    let mut config = Config::default();
    config.cors.allowed_origins = vec![APP_ORIGIN.to_owned()];
    let server = TestServer::with(config).await;
    let reply = preflight(&server, "/api/publish", APP_ORIGIN).await;
    assert!(reply.status < 300, "{reply:?}");
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP_ORIGIN), "{:?}", reply.headers);
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"), "{:?}", reply.headers);
    assert!(lists(&reply, "vary", "origin"), "a per-origin answer must vary on Origin: {:?}", reply.headers);
    let other = preflight(&server, "/api/publish", "https://x.test").await;
    assert_eq!(other.header("access-control-allow-origin"), None, "{:?}", other.headers);
    let reply = cross_origin_get(&server, "/poll?channel=a&timeout=0", APP_ORIGIN).await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP_ORIGIN), "{:?}", reply.headers);
    assert!(lists(&reply, "access-control-expose-headers", CURSOR_HEADER), "{:?}", reply.headers);
    let reply = cross_origin_get(&server, "/poll?channel=a&timeout=0", "https://x.test").await;
    assert_eq!(reply.header("access-control-allow-origin"), None, "{:?}", reply.headers);
}

#[tokio::test]
async fn cors_follows_the_auth_origins_and_is_closed_by_default_once_auth_is_on() {
    let listed = TestServer::with(secured(&format!("[auth.origins]\nallowed = [\"{APP_ORIGIN}\"]\n"))).await;
    let reply = preflight(&listed, "/api/publish", APP_ORIGIN).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP_ORIGIN), "{:?}", reply.headers);
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"), "{:?}", reply.headers);
    let reply = preflight(&listed, "/api/publish", EVIL_ORIGIN).await;
    assert_eq!(reply.header("access-control-allow-origin"), None, "{:?}", reply.headers);
    // A refusal is readable by the allowed origin, so a browser client can see why.
    let reply = cross_origin_get(&listed, "/api/channels/news/a", APP_ORIGIN).await;
    reply.assert_error(401, "unauthorized");
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP_ORIGIN), "{:?}", reply.headers);

    let closed = TestServer::with(secured("")).await;
    for origin in [APP_ORIGIN, "https://x.test"] {
        let reply = preflight(&closed, "/api/publish", origin).await;
        assert_eq!(reply.header("access-control-allow-origin"), None, "{origin}: {:?}", reply.headers);
    }
}

// ---------------------------------------------------------------------------------------------
// 10. Limits

#[tokio::test]
async fn connections_per_ip_limit_sse_and_polls_and_free_the_slot() {
    let mut config = Config::default();
    config.rate_limits.connections_per_ip = 1;
    let server = TestServer::with(config).await;
    let mut first =
        open_sse(get(&server, "/sse?channel=a", None)).await.map_err(|r| r.text).expect("first stream");
    first.connected().await;
    refused(&server, Transport::Sse, &["a"], None).await.assert_error(429, "too_many_connections");
    refused(&server, Transport::Poll, &["a"], None).await.assert_error(429, "too_many_connections");
    // Short reads and publishes hold no connection slot.
    admitted(&server, Transport::Rest, &["a"], None).await;
    server.publish("a", json!(1)).await;
    let event = first.next().await.expect("the first stream still works");
    assert_eq!(event.event, "a", "{event:?}");
    drop(first);
    // Once the server sees the first stream gone, a new one is admitted.
    let deadline = Instant::now() + WAIT;
    loop {
        match open_sse(get(&server, "/sse?channel=a", None)).await {
            Ok(mut stream) => {
                stream.connected().await;
                break;
            }
            Err(reply) => {
                reply.assert_error(429, "too_many_connections");
                assert!(Instant::now() < deadline, "the dropped stream's slot was not freed within {WAIT:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let refused = refused_counts(&server, None).await;
    assert!(refused["too_many_connections"].as_u64().is_some_and(|n| n >= 2), "{refused}");
}

#[tokio::test]
async fn refused_streams_and_polls_give_their_connection_slot_back() {
    let server = TestServer::with(secured("[rate_limits]\nconnections_per_ip = 1\n")).await;
    let user = token(json!({ "subscribe": ["news/#"] }));
    for _ in 0..3 {
        for transport in [Transport::Sse, Transport::Poll] {
            refused(&server, transport, &["secret/x"], bearer(&user)).await.assert_error(403, "forbidden");
            refused(&server, transport, &["news/a", "#"], bearer(&user)).await.assert_error(403, "forbidden");
            refused(&server, transport, &["news/a"], None).await.assert_error(401, "unauthorized");
            let expired = token(json!({ "exp": now() - 3600 }));
            refused(&server, transport, &["news/a"], bearer(&expired))
                .await
                .assert_error(401, "token_expired");
            // A poll that answers at once gives its slot back too.
            admitted(&server, Transport::Poll, &["news/a"], bearer(&user)).await;
        }
    }
    let mut stream = open_sse(get(&server, "/sse?channel=news/a", bearer(&user)))
        .await
        .map_err(|r| r.text)
        .expect("the only slot is free");
    stream.connected().await;
    refused(&server, Transport::Poll, &["news/a"], bearer(&user))
        .await
        .assert_error(429, "too_many_connections");
}

#[tokio::test]
async fn a_held_long_poll_holds_a_connection_slot_until_it_answers() {
    let mut config = Config::default();
    config.rate_limits.connections_per_ip = 1;
    let server = TestServer::with(config).await;
    // The held poll retries until it gets the slot (a probe below may hold it for a moment).
    let held = tokio::spawn({
        let url = server.url("/poll?channel=a&timeout=30");
        async move {
            loop {
                let reply = send(reqwest::Client::new().get(&url)).await;
                if reply.status != 429 {
                    return reply;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    // A probe that does not wait is refused once the held poll has the slot.
    let deadline = Instant::now() + WAIT;
    loop {
        match read(&server, Transport::Poll, &["b"], None, &[]).await {
            Err(reply) => {
                reply.assert_error(429, "too_many_connections");
                break;
            }
            Ok(_) => {
                assert!(Instant::now() < deadline, "the poll was never held");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    refused(&server, Transport::Sse, &["b"], None).await.assert_error(429, "too_many_connections");
    server.publish("a", json!(1)).await;
    let answer = held.await.expect("poll task");
    assert_eq!(answer.status, 200, "{}", answer.text);
    admitted(&server, Transport::Sse, &["b"], None).await;
}

#[tokio::test]
async fn the_publish_rate_limit_trips_and_recovers() {
    let mut config = Config::default();
    config.rate_limits.publishes_per_sec_per_ip = 2.0;
    config.rate_limits.publish_burst_per_ip = 1;
    let server = TestServer::with(config).await;
    let body = json!({ "channel": "rl/a", "data": 1 });
    assert_eq!(publish(&server, None, &body).await.status, 200);
    let reply = publish(&server, None, &body).await;
    reply.assert_error(429, "rate_limited");
    // Refused publications do not count against the budget, so this recovers at the rate.
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = publish(&server, None, &body).await;
        if reply.status == 200 {
            break;
        }
        reply.assert_error(429, "rate_limited");
        assert!(Instant::now() < deadline, "the publish budget did not refill within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let published = history(&server, "rl/a").await;
    assert_eq!(published.len(), 2, "only the admitted publications: {published:?}");
    let refused = refused_counts(&server, None).await;
    assert!(refused["rate_limited"].as_u64().is_some_and(|n| n >= 1), "{refused}");
}

/// BUG (see the report): the per-address publish budget is taken item by item *while* the batch
/// is being published (`api.rs`, `publish`), so a batch larger than the remaining budget
/// publishes its first items and then answers 429, unlike every other refusal of a batch.
#[tokio::test]
async fn a_batch_over_the_publish_budget_publishes_nothing() {
    let mut config = Config::default();
    config.rate_limits.publishes_per_sec_per_ip = 0.01;
    config.rate_limits.publish_burst_per_ip = 2;
    let server = TestServer::with(config).await;
    let batch = json!([
        { "channel": "rl/batch", "data": 1 },
        { "channel": "rl/batch", "data": 2 },
        { "channel": "rl/batch", "data": 3 },
    ]);
    let reply = publish(&server, None, &batch).await;
    reply.assert_error(429, "rate_limited");
    let published = history(&server, "rl/batch").await;
    assert!(
        published.is_empty(),
        "a refused batch published {} of its items: {published:?}",
        published.len()
    );
}
