//! The SignalR hub: ASP.NET Core SignalR clients connect to it unchanged and see the same
//! channels, history, permissions and limits as every other transport (`docs/signalr.md`).
//!
//! It is a transport of the engine, not a server beside it: each connection is a
//! [`Client`](crate::engine::Client) like a native WebSocket's, its hub methods are the engine's
//! commands, and its write side is the [`Transport`](crate::transport::Transport) seam
//! ([`hub::HubWriter`]).
//!
//! - [`negotiate`]: `POST {path}/negotiate` (versions 0 and 1) and the connections negotiated,
//!   waiting for their transport.
//! - [`protocol`]: the handshake and the JSON and MessagePack framings.
//! - [`connection`]: one connection's loop, the same for every transport ([`connection::Wire`]).
//! - [`hub`]: the methods.
//! - [`websocket`] and [`http`]: the transports (WebSockets; Server-Sent Events and long
//!   polling, each with POST for sending).

mod connection;
mod http;
mod hub;
mod negotiate;
pub(crate) mod protocol;
mod websocket;

use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use std::net::SocketAddr;

pub(crate) use negotiate::Registry;

use crate::error::ApiError;
use crate::App;

/// The hub's routes, at `[signalr] path`.
pub(crate) fn routes(app: &App) -> Router<App> {
    let path = app.config().signalr.path.trim_end_matches('/');
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    Router::new().route(&format!("{path}/negotiate"), post(negotiate::negotiate)).route(&path, any(endpoint))
}

/// The hub's endpoint: a WebSocket, an SSE stream or a long poll (GET), a message (POST), or the
/// end of a long-polling connection (DELETE).
async fn endpoint(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    if !app.config().signalr.enabled {
        return ApiError::disabled("signalr").into_response();
    }
    let id = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.into_owned());
    let headers = request.headers().clone();
    match *request.method() {
        Method::GET if is_upgrade(&headers) => websocket::upgrade(app, peer, query, id, request).await,
        _ if app.shutting_down() && id.is_none() => ApiError::shutting_down().into_response(),
        Method::GET if wants_events(&headers) => http::events(app, id).await,
        Method::GET => http::poll(app, id, &headers).await,
        Method::POST => http::send(app, id, request).await,
        Method::DELETE => http::delete(app, id).await,
        _ => (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, POST, DELETE")]).into_response(),
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket")))
}

fn wants_events(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/event-stream"))
}

/// `400` for a request without `id` where one is required, as the transport protocol says.
fn missing_id() -> Response {
    (StatusCode::BAD_REQUEST, "Connection ID required").into_response()
}

/// `404` for an unknown, expired or ended connection id, as the transport protocol says.
fn unknown_id() -> Response {
    (StatusCode::NOT_FOUND, "No Connection with that ID").into_response()
}
