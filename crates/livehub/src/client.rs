//! `livehub publish` and `livehub subscribe`: small clients of the HTTP API and the WebSocket
//! protocol, for shells and scripts.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

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
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        args.data
    };
    let data: Value = serde_json::from_str(&data).context("data must be JSON (quote strings: '\"hi\"')")?;
    let mut body = json!({ "channel": args.channel, "data": data });
    if let Some(key) = args.key {
        body["key"] = key.into();
    }
    let url = format!("{}/api/publish", args.url.trim_end_matches('/'));
    let mut request = reqwest::Client::new().post(&url).json(&body);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    println!("{text}");
    Ok(())
}

/// Subscribes over WebSocket and prints each message as one JSON line. After a dropped
/// connection it reconnects with back-off and recovers from the last positions seen; a channel
/// that cannot be recovered is reported on standard error.
pub(crate) async fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    let ws_url = ws_url(&args.url)?;
    let mut positions: HashMap<String, Value> = HashMap::new();
    let mut printed = 0u64;
    let mut backoff = Duration::from_millis(250);
    loop {
        match run(&ws_url, &args, &mut positions, &mut printed).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if e.is::<Final>() => return Err(e),
            Err(e) => eprintln!("livehub subscribe: {e:#}; reconnecting in {backoff:?}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One connection; `Ok(true)` when done (count reached or a terminal close).
async fn run(
    url: &str,
    args: &SubscribeArgs,
    positions: &mut HashMap<String, Value>,
    printed: &mut u64,
) -> anyhow::Result<bool> {
    let mut request = url.into_client_request()?;
    if let Some(token) = &args.token {
        let value =
            HeaderValue::from_str(&format!("Bearer {token}")).context("the token is not a valid header")?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let (mut ws, _) =
        tokio_tungstenite::connect_async(request).await.with_context(|| format!("connecting to {url}"))?;
    let recover: serde_json::Map<String, Value> =
        positions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let cmd = json!({ "id": 1, "action": "subscribe", "channels": args.channels, "latest": args.latest, "recover": recover });
    ws.send(Message::text(cmd.to_string())).await?;
    while let Some(msg) = ws.next().await {
        let text = match msg? {
            Message::Text(t) => t,
            Message::Close(frame) => {
                let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                // 4500-4999 and policy/size violations mean "do not reconnect"; an expired token
                // would only be refused again.
                if (4500..5000).contains(&code) || code == 1008 || code == 1009 {
                    return Err(Final(format!("server closed the connection for good: {frame:?}")).into());
                }
                if code == 4003 {
                    return Err(Final("the token expired; run again with a fresh --token".into()).into());
                }
                return Ok(false);
            }
            _ => continue,
        };
        let value: Value = serde_json::from_str(&text)?;
        match value["type"].as_str() {
            Some("message") => {
                if let Some(channel) = value["channel"].as_str() {
                    positions.insert(
                        channel.to_owned(),
                        json!({ "offset": value["offset"], "epoch": value["epoch"] }),
                    );
                }
                println!("{text}");
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
            Some("error") => eprintln!("livehub subscribe: {text}"),
            _ => {}
        }
    }
    Ok(false)
}

/// A close after which reconnecting cannot help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Final(String);

fn ws_url(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .or_else(|| (base.starts_with("ws://") || base.starts_with("wss://")).then(|| base.to_owned()));
    match rest {
        Some(url) => Ok(format!("{url}/ws")),
        None => bail!("the URL must start with http://, https://, ws:// or wss://"),
    }
}
