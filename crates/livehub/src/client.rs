//! `livehub publish` and `livehub subscribe`: small clients of the HTTP API and the WebSocket
//! protocol, for shells and scripts.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

#[cfg(test)]
use crate::failure::Status;
use crate::failure::{self, Failure};

/// Arguments of `publish`.
#[derive(Args)]
pub(crate) struct PublishArgs {
    /// Channel to publish to.
    channel: String,
    /// JSON data; `-` reads it from standard input.
    data: String,
    /// Server URL.
    #[arg(long, env = "LIVEHUB_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Idempotency key: a retry with the same key is stored once.
    #[arg(long)]
    key: Option<String>,
    /// A JWT or API key, sent as `Authorization: Bearer` (docs/security.md).
    #[arg(long, env = "LIVEHUB_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Arguments of `subscribe`.
#[derive(Args)]
pub(crate) struct SubscribeArgs {
    /// Channels or patterns (`stocks/+`, `metrics/#`).
    #[arg(required = true)]
    channels: Vec<String>,
    /// Server URL.
    #[arg(long, env = "LIVEHUB_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Print each channel's latest publication first.
    #[arg(long)]
    latest: bool,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// A JWT or API key, sent as `Authorization: Bearer` (docs/security.md).
    #[arg(long, env = "LIVEHUB_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub(crate) async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let data = if args.data == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        args.data
    };
    let data: Value = serde_json::from_str(&data)
        .map_err(|e| Failure::usage(format!("the data is not JSON ({e}); quote a string as '\"hi\"'")))?;
    let mut body = json!({ "channel": args.channel, "data": data });
    if let Some(key) = args.key {
        body["key"] = key.into();
    }
    let url = format!("{}/api/publish", base_url(&args.url)?);
    let mut request = reqwest::Client::new().post(&url).json(&body);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response.text().await.with_context(|| format!("cannot read the answer of {url}"))?;
    if !status.is_success() {
        return Err(http_refusal("refused the publication", status, &text).into());
    }
    failure::print_line(&text)
}

/// A sentence for an HTTP error answer: its status, and the code and message of the documented
/// `{"error":{"code","message"}}` shape when the body has it, never the raw body.
fn http_refusal(what: &str, status: reqwest::StatusCode, body: &str) -> Failure {
    let error = serde_json::from_str::<Value>(body).ok().map(|v| v["error"].clone());
    let code = error.as_ref().and_then(|e| e["code"].as_str()).unwrap_or("");
    let detail = without_code(error.as_ref().and_then(|e| e["message"].as_str()).unwrap_or(""), code);
    let mut message = format!("the server {what} with {status}");
    if !code.is_empty() {
        message = format!("{message} {code}");
    }
    if !detail.is_empty() {
        message = format!("{message}: {detail}");
    }
    match status.as_u16() {
        401 | 403 | 429 => Failure::refused(message),
        400 | 404 | 409 | 413 | 422 => Failure::usage(message),
        _ => Failure::runtime(message),
    }
}

/// Subscribes over WebSocket and prints each message as one JSON line. After a dropped
/// connection it reconnects with back-off and recovers from the last positions seen; a channel
/// that cannot be recovered is reported on standard error.
pub(crate) async fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    let ws_url = ws_url(&base_url(&args.url)?);
    let mut positions: HashMap<String, Value> = HashMap::new();
    let mut printed = 0u64;
    let mut backoff = Duration::from_millis(250);
    loop {
        match run(&ws_url, &args, &mut positions, &mut printed).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if e.is::<Failure>() || e.is::<failure::OutputClosed>() => return Err(e),
            Err(e) => eprintln!(
                "livehub subscribe: {}; reconnecting in {} ms",
                failure::sentence(&e),
                backoff.as_millis()
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One connection; `Ok(true)` when done (count reached). A [`Failure`] when reconnecting
/// cannot help: a refusal, a close for good, a closed standard output.
async fn run(
    url: &str,
    args: &SubscribeArgs,
    positions: &mut HashMap<String, Value>,
    printed: &mut u64,
) -> anyhow::Result<bool> {
    let mut request =
        url.into_client_request().map_err(|_| Failure::usage(format!("{url} is not a valid URL")))?;
    if let Some(token) = &args.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Failure::usage("the token holds characters a header cannot carry"))?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(connected) => connected,
        Err(WsError::Http(response)) if response.status().as_u16() == 404 => {
            return Err(Failure::runtime(format!(
                "{url} answered 404: the server does not serve WebSocket (switched off with --disable?)"
            ))
            .into())
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot connect to {url}"))),
    };
    let recover: serde_json::Map<String, Value> =
        positions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let cmd = json!({ "id": SUBSCRIBE_ID, "action": "subscribe", "channels": args.channels, "latest": args.latest, "recover": recover });
    ws.send(Message::text(cmd.to_string())).await?;
    while let Some(msg) = ws.next().await {
        let text = match msg? {
            Message::Text(t) => t,
            Message::Close(frame) => {
                let (code, reason) = frame
                    .as_ref()
                    .map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                closed(code, &reason)?;
                return Ok(false);
            }
            _ => continue,
        };
        let value: Value =
            serde_json::from_str(&text).context("the server sent a message that is not JSON")?;
        match value["type"].as_str() {
            Some("message") => {
                if let Some(channel) = value["channel"].as_str() {
                    positions.insert(
                        channel.to_owned(),
                        json!({ "offset": value["offset"], "epoch": value["epoch"] }),
                    );
                }
                failure::print_line(&text)?;
                *printed += 1;
                if args.count.is_some_and(|n| *printed >= n) {
                    return Ok(true);
                }
            }
            Some("subscribed") => {
                if let (Some(channel), Some(position)) = (value["channel"].as_str(), value.get("position")) {
                    if value["recovered"] == true {
                        continue;
                    }
                    if positions.contains_key(channel) {
                        eprintln!("livehub subscribe: {channel}: history lost while disconnected; continuing from now");
                    }
                    positions.insert(channel.to_owned(), position.clone());
                }
            }
            Some("error") => refused(&value)?,
            _ => {}
        }
    }
    Ok(false)
}

/// The `id` of the subscribe command, which the server's replies to it carry.
const SUBSCRIBE_ID: u64 = 1;

/// A server message without the `code: ` some messages start with, which is said already.
fn without_code<'a>(message: &'a str, code: &str) -> &'a str {
    message.strip_prefix(code).and_then(|rest| rest.strip_prefix(": ")).unwrap_or(message)
}

/// An `error` from the server: a refused subscription ends the command (a partial subscription
/// would look like a quiet channel); any other error is reported and the command goes on.
fn refused(error: &Value) -> Result<(), Failure> {
    let code = error["code"].as_str().unwrap_or("error");
    let detail = without_code(error["message"].as_str().unwrap_or(""), code);
    let channel = error["channel"].as_str();
    if error["id"].as_u64() != Some(SUBSCRIBE_ID) {
        eprintln!("livehub subscribe: the server reported {code}: {detail}");
        return Ok(());
    }
    let what = channel.map_or_else(|| "the subscription".to_owned(), str::to_owned);
    let message = format!("the server refused to subscribe to {what} ({code}): {detail}");
    Err(match code {
        "forbidden" | "unauthorized" | "token_expired" | "rate_limited" => Failure::refused(message),
        "invalid_channel" | "too_many_subscriptions" | "bad_request" | "already_subscribed" => {
            Failure::usage(message)
        }
        _ => Failure::runtime(message),
    })
}

/// What a close with `code` and `reason` means: `Ok` when reconnecting may help (a restart, a
/// slow consumer, a lost ping), the [`Failure`] to end with otherwise.
fn closed(code: u16, reason: &str) -> Result<(), Failure> {
    let reason = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
    match code {
        1008 => Err(Failure::refused(format!(
            "the server refused the connection{reason}; check --token or LIVEHUB_TOKEN"
        ))),
        4003 => Err(Failure::refused("the token expired; run again with a fresh --token")),
        1009 => Err(Failure::runtime(format!(
            "the server closed the connection: a message was too large{reason}"
        ))),
        4500..=4999 => Err(Failure::runtime(format!(
            "the server closed the connection for good with code {code}{reason}"
        ))),
        _ => Ok(()),
    }
}

/// The server's base URL, without a trailing slash. A URL without a scheme
/// (`127.0.0.1:8080`) means `http://`.
pub(crate) fn base_url(url: &str) -> Result<String, Failure> {
    let input = url.trim();
    let (scheme, rest) = match input.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("http".to_owned(), input),
    };
    // The clients are built without TLS (no certificate store to trust, no flags to pick one):
    // say so, rather than let the HTTP library fail with "scheme is not http".
    if ["https", "wss"].contains(&scheme.as_str()) {
        return Err(Failure::usage(format!(
            "--url {input}: publish and subscribe speak plain HTTP only, not TLS; give the \
             server's plain http:// address (on its host, or through a tunnel)"
        )));
    }
    if !["http", "ws"].contains(&scheme.as_str()) {
        return Err(Failure::usage(format!("--url {input} has the scheme {scheme}; use http:// or ws://")));
    }
    let url = format!("{scheme}://{}", rest.trim_end_matches('/'));
    match reqwest::Url::parse(&url) {
        Ok(parsed) if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        _ => Err(Failure::usage(format!("--url {input:?} names no server; use http://HOST:PORT"))),
    }
}

/// The WebSocket URL for a base URL that [`base_url`] accepted (`http://` or `ws://`).
fn ws_url(base: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
    format!("ws://{rest}/ws")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_a_scheme_are_http() {
        assert_eq!(base_url("127.0.0.1:8080").expect("ok"), "http://127.0.0.1:8080");
        assert_eq!(base_url("localhost:8080/").expect("ok"), "http://localhost:8080");
        assert_eq!(base_url("ws://example.com").expect("ok"), "ws://example.com");
        assert!(base_url("ftp://example.com").expect_err("scheme").to_string().contains("ftp"));
        for tls in ["https://example.com", "WSS://example.com:443"] {
            let refused = base_url(tls).expect_err("no TLS");
            assert_eq!(refused.status, Status::Usage);
            assert!(refused.to_string().contains("plain HTTP only"), "{refused}");
        }
        assert!(base_url("").is_err());
        assert!(base_url("http://").is_err());
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws_url("ws://h:1"), "ws://h:1/ws");
    }

    #[test]
    fn a_refused_subscription_ends_the_command_with_its_status() {
        let forbidden =
            json!({"type":"error","id":1,"code":"forbidden","channel":"b/x","message":"not allowed"});
        let failure = refused(&forbidden).expect_err("ends");
        assert_eq!(failure.status, Status::Refused);
        assert_eq!(failure.to_string(), "the server refused to subscribe to b/x (forbidden): not allowed");
        let invalid = json!({"type":"error","id":1,"code":"invalid_channel","message":"bad"});
        assert_eq!(refused(&invalid).expect_err("ends").status, Status::Usage);
        let later = json!({"type":"error","code":"rate_limited","message":"slow down"});
        assert!(refused(&later).is_ok(), "an error that is no reply to the subscribe goes on");
    }

    #[test]
    fn closes_that_reconnecting_cannot_mend_end_the_command() {
        assert_eq!(closed(1008, "unauthorized").expect_err("ends").status, Status::Refused);
        assert_eq!(closed(4003, "token_expired").expect_err("ends").status, Status::Refused);
        assert_eq!(closed(4500, "").expect_err("ends").status, Status::Runtime);
        for code in [1000, 1001, 1011, 4001, 4002, 4029] {
            assert!(closed(code, "").is_ok(), "{code} reconnects");
        }
    }

    #[test]
    fn http_errors_become_sentences_with_their_status() {
        let body = r#"{"error":{"code":"forbidden","message":"not allowed"}}"#;
        let failure = http_refusal("refused the publication", reqwest::StatusCode::FORBIDDEN, body);
        assert_eq!(failure.status, Status::Refused);
        assert_eq!(
            failure.to_string(),
            "the server refused the publication with 403 Forbidden forbidden: not allowed"
        );
        let plain = http_refusal("refused the publication", reqwest::StatusCode::BAD_GATEWAY, "<html>");
        assert_eq!(plain.status, Status::Runtime);
        assert_eq!(plain.to_string(), "the server refused the publication with 502 Bad Gateway");
    }
}
