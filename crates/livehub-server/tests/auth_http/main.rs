//! Access control on the HTTP transports over real sockets: SSE, long polling, the REST API
//! (publish, the channel reads that are short polling, presence, metrics) and CORS.
//!
//! Covers missing and bad credentials (expired, not yet valid, wrong signature, audience or
//! issuer, `alg: none`), every credential carrier, reads inside and outside the grants (wildcards
//! included) without revealing whether a channel exists, token expiry on live streams and held
//! polls, API keys and the per-prefix publish rules, the admin endpoints, public and
//! authenticated read rules, the origin check, CORS, and the connection and publish limits with
//! their `refused` counters.

#[path = "../common/mod.rs"]
mod common;

mod browsers;
mod credentials;
mod permissions;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{Sse, TestServer, WAIT};
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
    let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("invalid test config: {e}\n{text}"));
    // These tests fail credentials from one address on purpose, many times over; the failure
    // budget has its own tests (`hardening.rs`), which set it.
    if !extra.contains("auth_failure") {
        config.rate_limits.auth_failures_per_sec_per_ip = 0.0;
    }
    config
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

/// Sends an SSE request: the stream when admitted (200), the refusal otherwise.
async fn open_sse(request: reqwest::RequestBuilder) -> Result<Sse, Reply> {
    let response =
        tokio::time::timeout(WAIT, request.send()).await.expect("answered in time").expect("request");
    if response.status() == 200 {
        return Ok(Sse::from_response(response));
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
