//! The REST API: publishing over HTTP and reading channels (short polling).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use livehub_core::{ChannelFilter, ChannelLimits, ChannelName, HistoryQuery, Payload, PRESENCE_CHANNEL};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::{self, ClientError};
use crate::error::ApiError;
use crate::poll;
use crate::protocol::{message_value, position_value};
use crate::storage::ServerStore;
use crate::{series, timeq, App};

/// Publications one `POST /api/publish` may carry.
const MAX_BATCH: usize = 1000;

/// Channels one `GET /api/channels` lists without `?limit=`.
const DEFAULT_CHANNEL_PAGE: usize = 100;

/// Most channels one `GET /api/channels` lists: bounds the answer (a few hundred bytes each)
/// whatever the number of channels.
const MAX_CHANNEL_PAGE: usize = 1000;

/// One publication in a publish request.
#[derive(Deserialize)]
struct PublishItem {
    channel: String,
    data: Box<serde_json::value::RawValue>,
    #[serde(default)]
    key: Option<String>,
}

/// `POST /api/publish`: one publication `{"channel", "data", "key"?}` or an array of them;
/// with `Content-Type: application/octet-stream`, the body is binary data for `?channel=`.
/// Every item is checked against the caller's grants before anything is published.
pub(crate) async fn publish(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let identity = app.access().identify_api(&headers, query.as_deref())?;
    let limits = &app.node().config().channel_limits;
    let binary =
        headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/octet-stream");
    let (items, batch) = if binary {
        let channel = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "channel")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| ApiError::bad_request("binary publish needs ?channel="))?;
        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (vec![(ChannelName::with_limits(&channel, limits)?, Payload::Binary(body), key)], false)
    } else {
        parse_json_items(&body, limits)?
    };
    for (channel, _, _) in &items {
        app.access().may_publish(&identity, channel)?;
    }
    // The whole batch is taken from the budget up front: a batch is published whole or not at all.
    app.access().publish_allowed(peer.ip(), items.len())?;
    let mut results = Vec::with_capacity(items.len());
    for (channel, payload, key) in items {
        let published =
            app.node().publish(&channel, payload, key.as_deref()).await.map_err(ClientError::from)?;
        results.push(json!({
            "channel": channel,
            "offset": published.position.offset,
            "epoch": published.position.epoch,
            "duplicate": published.duplicate,
        }));
    }
    let body = if batch { json!({ "results": results }) } else { results.pop().unwrap_or(Value::Null) };
    Ok(Json(body).into_response())
}

type Item = (ChannelName, Payload, Option<String>);

/// Validates every item before anything is published, so a bad batch publishes nothing.
fn parse_json_items(body: &[u8], limits: &ChannelLimits) -> Result<(Vec<Item>, bool), ApiError> {
    let invalid = |e: serde_json::Error| {
        let code = if e.is_data() { "bad_request" } else { "invalid_json" };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code,
            format!("expected {{\"channel\": …, \"data\": …}} or an array of them: {e}"),
        )
    };
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let raw: Vec<PublishItem> = if batch {
        serde_json::from_slice(body).map_err(invalid)?
    } else {
        vec![serde_json::from_slice(body).map_err(invalid)?]
    };
    if raw.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!("at most {MAX_BATCH} publications per request")));
    }
    let items = raw
        .into_iter()
        .map(|item| {
            let channel = ChannelName::with_limits(&item.channel, limits)?;
            let payload = Payload::json(Bytes::from(item.data.get().to_owned()))?;
            Ok((channel, payload, item.key))
        })
        .collect::<Result<Vec<_>, livehub_core::Error>>()?;
    Ok((items, batch))
}

/// `GET /api/channels?limit=&after=`: a page of channels, sorted by name, with their positions
/// and subscriber counts, and the name to ask for the next page `after` (`null` on the last).
/// Admin only once auth is on: the list shows which channels exist.
pub(crate) async fn channels(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    polling_enabled(&app)?;
    app.access().read_allowed(peer.ip())?;
    admin(&app, &headers, query.as_deref())?;
    let (mut after, mut limit) = (None, DEFAULT_CHANNEL_PAGE);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "limit" => {
                let n: usize =
                    value.parse().map_err(|_| ApiError::bad_request("limit must be a whole number"))?;
                limit = n.clamp(1, MAX_CHANNEL_PAGE);
            }
            "after" => after = Some(ChannelName::with_limits(&value, &app.node().config().channel_limits)?),
            _ => {}
        }
    }
    // One more than the page says whether another page follows.
    let mut page = app.node().channels(after.as_ref(), limit + 1).await?;
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|c| c.summary.channel.clone())
    } else {
        None
    };
    let channels: Vec<Value> = page
        .into_iter()
        .map(|c| {
            json!({
                "channel": c.summary.channel,
                "position": position_value(&c.summary.position),
                "subscribers": c.subscribers,
                "last_ts": c.summary.last_ts,
            })
        })
        .collect();
    Ok(Json(json!({ "channels": channels, "next": next })))
}

/// `GET /api/presence`: for callers who may read `$sys/presence`.
pub(crate) async fn presence(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let identity = app.access().identify_api(&headers, query.as_deref())?;
    let channel = ChannelFilter::new(PRESENCE_CHANNEL)?;
    if identity.may_subscribe(&channel).is_err() {
        identity.may_admin().map_err(|e| app.access().refuse(e))?;
    }
    Ok(Json(serde_json::to_value(app.node().presence()).unwrap_or(Value::Null)))
}

/// `GET /api/metrics`: counters of this node, including refusals by code. Admin only once auth
/// is on.
pub(crate) async fn metrics(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    admin(&app, &headers, query.as_deref())?;
    let presence = app.node().presence();
    let stats = app.node().stats();
    let half_open = app.half_open().figures();
    Ok(Json(json!({
        "connections": presence.connections,
        "transports": presence.transports,
        "subscriptions": presence.subscriptions,
        "publications": stats.publications,
        "deliveries": stats.deliveries,
        "long_polls_held": app.held_polls().count(),
        "refused": app.access().refused(),
        "reassembly_bytes": app.reassembly().held(),
        "half_open": {
            "now": half_open.0,
            "shed": half_open.1,
            "refused": half_open.2,
        },
        "fast_paths": {
            "direct_streams": app.fast_paths().direct_streams.load(Ordering::Relaxed),
            "websocket_tcp": app.fast_paths().websocket_tcp.load(Ordering::Relaxed),
        },
    })))
}

/// Refuses a non-admin caller once auth is on.
fn admin(app: &App, headers: &HeaderMap, query: Option<&str>) -> Result<(), ApiError> {
    let identity = app.access().identify_api(headers, query)?;
    if app.access().enabled() {
        identity.may_admin().map_err(|e| app.access().refuse(e))?;
    }
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct HistoryParams {
    since: Option<u64>,
    epoch: Option<String>,
    limit: Option<usize>,
    from: Option<u64>,
    to: Option<u64>,
}

/// `GET /api/channels/{channel}` (latest value and position) and
/// `GET /api/channels/{channel}/history?since=&epoch=&limit=`. A path that ends in a literal
/// `/history` selects the history endpoint; a name that itself ends in `/history` is reached by
/// percent-encoding that slash (`%2F`), which `uri` still shows encoded while `path` is decoded.
pub(crate) async fn channel(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    polling_enabled(&app)?;
    app.access().read_allowed(peer.ip())?;
    let identity = app.access().identify_api(&headers, query.as_deref())?;
    let readable =
        |channel: &ChannelName| app.access().may_read(&identity, &ChannelFilter::Exact(channel.clone()));
    let node = app.node();
    let limits = &node.config().channel_limits;
    if let Some(name) = path.strip_suffix("/history").filter(|_| uri.path().ends_with("/history")) {
        let params: HistoryParams = history_params(query.as_deref())?;
        // Reading on from a position is what a polling client does on every tick; a one-off
        // history read (a chart opening) is not a client in presence.
        let _poller = params
            .since
            .is_some()
            .then(|| node.poller("polling", poll::poller_key("polling", peer, &headers, query.as_deref())));
        let limit = params.limit.unwrap_or(engine::DEFAULT_HISTORY_LIMIT);
        let mut history_query = HistoryQuery::new(params.since, limit);
        history_query.from_ms = params.from;
        history_query.to_ms = params.to;
        let (channel, history) =
            engine::read_history_query(&app, &identity, name, history_query, params.epoch.as_deref()).await?;
        let publications: Vec<Value> = history.publications.iter().map(|p| message_value(p)).collect();
        return Ok(Json(json!({
            "channel": channel,
            "position": position_value(&history.position),
            "oldest": history.oldest,
            "publications": publications,
            "next": timeq::next_page(&history_query, &history.publications),
        })));
    }
    if let Some(name) = path.strip_suffix("/series").filter(|_| uri.path().ends_with("/series")) {
        let params = series::SeriesParams::parse(query.as_deref())?;
        let channel = ChannelName::with_limits(name, limits)?;
        readable(&channel)?;
        let context = series::SeriesContext { store: app.store().map_or("memory", ServerStore::kind) };
        return Ok(Json(series::series(node, &channel, params, context).await?));
    }
    let channel = ChannelName::with_limits(&path, limits)?;
    readable(&channel)?;
    let history = node.history(&channel, HistoryQuery::newest(0)).await?;
    Ok(Json(json!({
        "channel": channel,
        "position": position_value(&history.position),
        "latest": history.latest.as_deref().map(message_value),
        "subscribers": node.subscribers(&channel),
    })))
}

pub(crate) fn history_params(query: Option<&str>) -> Result<HistoryParams, ApiError> {
    let mut params = HistoryParams { since: None, epoch: None, limit: None, from: None, to: None };
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let number =
            |v: &str| v.parse().map_err(|_| ApiError::bad_request(format!("{key} must be a whole number")));
        match key.as_ref() {
            "since" => params.since = Some(number(&value)?),
            "limit" => params.limit = Some(number(&value)? as usize),
            "epoch" => params.epoch = Some(value.into_owned()),
            "from" => params.from = Some(timeq::parse_time("from", &value)?),
            "to" => params.to = Some(timeq::parse_time("to", &value)?),
            _ => {}
        }
    }
    timeq::check_range(params.from, params.to)?;
    if let Some(limit) = params.limit.filter(|&l| l > engine::MAX_HISTORY_LIMIT) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit_too_large",
            format!(
                "limit {limit} is over the most one read returns ({}); page with since",
                engine::MAX_HISTORY_LIMIT
            ),
        ));
    }
    Ok(params)
}

fn polling_enabled(app: &App) -> Result<(), ApiError> {
    if app.config().api.polling_enabled {
        Ok(())
    } else {
        Err(ApiError::disabled("polling"))
    }
}

/// `GET /health`: 200 while the server serves, 503 once it is shutting down. `status` is
/// `degraded` (still 200) while the store fails writes or refuses publishes.
pub(crate) async fn health(State(app): State<App>) -> Response {
    if app.shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "shutting_down" }))).into_response();
    }
    let (store, degraded) = crate::storage::health(app.store());
    let status = if degraded { "degraded" } else { "ok" };
    Json(json!({ "status": status, "version": env!("CARGO_PKG_VERSION"), "store": store })).into_response()
}

/// `GET /api/sources`: what the built-in sources publish, with the static data the dashboard
/// draws with (`docs/sources.md`).
pub(crate) async fn sources(State(app): State<App>) -> Response {
    Json(livehub_sources::catalog(&app.config().sources)).into_response()
}
