//! `POST {path}/negotiate`, and the [`Registry`] of connections between their negotiate and their
//! end: negotiated ones waiting for a transport, the HTTP ones (whose POSTs and polls find them
//! here), and stateful ones parked while their client reconnects.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use livehub_core::ResumeToken;
use parking_lot::Mutex;
use serde_json::json;

use super::connection::Replay;
use super::http::HttpLink;
use super::hub::HubState;
use super::protocol::Protocol;
use crate::access::{self, Admission};
use crate::error::ApiError;
use crate::App;

/// The newest negotiate version spoken: 1 adds the secret `connectionToken`.
const NEGOTIATE_VERSION: u64 = 1;

/// How long a negotiated connection waits for its transport (ASP.NET Core's clients connect at
/// once; a connection never used must not hold its address's slot for long).
const PENDING_TTL: Duration = Duration::from_secs(30);

/// How long a stateful connection's session waits for its client to reconnect.
pub(crate) const RECONNECT_WINDOW: Duration = Duration::from_secs(30);

/// Longest wait for a running connection to notice its socket dropped when its client is
/// already reconnecting.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Most negotiated connections waiting for a transport at once; each also holds its address's
/// connection slot, so one address cannot take them all.
const MAX_PENDING: usize = 10_000;

/// A negotiated connection, waiting for its transport.
pub(crate) struct Pending {
    pub(crate) admission: Admission,
    /// Whether the client asked for stateful reconnect (honoured on WebSockets only).
    pub(crate) stateful: bool,
    pub(crate) token: ResumeToken,
    /// The address that negotiated.
    pub(crate) peer: std::net::IpAddr,
    expires: Instant,
}

/// A stateful connection whose transport dropped: its session is parked in the node under the
/// connection token; this is the hub's side of it.
pub(crate) struct Parked {
    /// The token the session is parked under in the node.
    pub(crate) token: ResumeToken,
    pub(crate) state: HubState,
    pub(crate) replay: Option<Replay>,
    pub(crate) protocol: Protocol,
    pub(crate) owner: Option<String>,
    expires: Instant,
}

/// Every connection the hub knows by token.
#[derive(Default)]
pub(crate) struct Registry {
    pending: Mutex<HashMap<String, Pending>>,
    http: Mutex<HashMap<String, Arc<HttpLink>>>,
    parked: Mutex<HashMap<String, Parked>>,
    /// Tokens of stateful WebSocket connections running now.
    live: Arc<Mutex<std::collections::HashSet<String>>>,
}

/// Marks a stateful connection as running until dropped.
pub(crate) struct Live {
    token: String,
    live: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.live.lock().remove(&self.token);
    }
}

impl Registry {
    fn sweep(&self, now: Instant) {
        self.pending.lock().retain(|_, p| p.expires > now);
        self.parked.lock().retain(|_, p| p.expires > now);
    }

    /// Takes the negotiated connection `token`, for its transport.
    pub(crate) fn take_pending(&self, token: &str) -> Option<Pending> {
        let pending = self.pending.lock().remove(token)?;
        (pending.expires > Instant::now()).then_some(pending)
    }

    /// The HTTP connection `token`.
    pub(crate) fn http(&self, token: &str) -> Option<Arc<HttpLink>> {
        self.http.lock().get(token).cloned()
    }

    /// Registers an HTTP connection.
    pub(crate) fn add_http(&self, token: String, link: Arc<HttpLink>) {
        self.http.lock().insert(token, link);
    }

    /// Forgets an HTTP connection that ended.
    pub(crate) fn remove_http(&self, token: &str) {
        self.http.lock().remove(token);
    }

    /// Parks a stateful connection's hub state while its client reconnects.
    pub(crate) fn park(
        &self,
        token: ResumeToken,
        state: HubState,
        replay: Option<Replay>,
        protocol: Protocol,
        owner: Option<String>,
    ) {
        let now = Instant::now();
        self.sweep(now);
        let expires = now + RECONNECT_WINDOW;
        let key = token.as_str().to_owned();
        self.parked.lock().insert(key, Parked { token, state, replay, protocol, owner, expires });
    }

    /// Takes a parked connection's hub state back.
    pub(crate) fn unpark(&self, token: &str) -> Option<Parked> {
        let parked = self.parked.lock().remove(token)?;
        (parked.expires > Instant::now()).then_some(parked)
    }

    /// Marks the stateful connection `token` as running, until the guard is dropped (after the
    /// session is parked).
    pub(crate) fn live(&self, token: &str) -> Live {
        self.live.lock().insert(token.to_owned());
        Live { token: token.to_owned(), live: self.live.clone() }
    }

    /// Waits (a little) while the connection `token` is still running: its client reconnected
    /// before the server saw the old socket go.
    pub(crate) async fn settle(&self, token: &str) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while self.live.lock().contains(token) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether a parked connection has `token` (so a WebSocket with it is a reconnect).
    pub(crate) fn is_parked(&self, token: &str) -> bool {
        self.parked.lock().contains_key(token)
    }
}

/// `POST {path}/negotiate`: admits the client (origin, credential, the address's connection
/// slot) and answers the connection's id, token and transports.
pub(crate) async fn negotiate(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !app.config().signalr.enabled {
        return ApiError::disabled("signalr").into_response();
    }
    if app.shutting_down() {
        return ApiError::shutting_down().into_response();
    }
    let params: HashMap<String, String> =
        form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    // Without the parameter the version is 0; a newer one gets the newest spoken.
    let version = match params.get("negotiateVersion").map(|v| v.parse::<u64>()) {
        None => 0,
        Some(Ok(v)) => v.min(NEGOTIATE_VERSION),
        Some(Err(_)) => return ApiError::bad_request("negotiateVersion must be a number").into_response(),
    };
    let stateful = params.get("useStatefulReconnect").is_some_and(|v| v == "true");
    let admission = match app.access().admit(&headers, query.as_deref(), peer.ip()) {
        Ok(admission) => admission,
        Err(e) => return access::refusal(e),
    };
    let registry = app.signalr();
    registry.sweep(Instant::now());
    if registry.pending.lock().len() >= MAX_PENDING {
        return Json(json!({ "error": "The server has too many connections waiting; try again later." }))
            .into_response();
    }
    let token = ResumeToken::random();
    let connection_id = ResumeToken::random();
    let id = if version == 0 { token.as_str() } else { connection_id.as_str() };
    let mut body = json!({
        "connectionId": id,
        "negotiateVersion": version,
        "availableTransports": [
            { "transport": "WebSockets", "transferFormats": ["Text", "Binary"] },
            { "transport": "ServerSentEvents", "transferFormats": ["Text"] },
            { "transport": "LongPolling", "transferFormats": ["Text", "Binary"] },
        ],
    });
    if version >= 1 {
        body["connectionToken"] = token.as_str().into();
    }
    if stateful {
        body["useStatefulReconnect"] = true.into();
    }
    let expires = Instant::now() + PENDING_TTL;
    registry
        .pending
        .lock()
        .insert(token.as_str().to_owned(), Pending { admission, stateful, token, peer: peer.ip(), expires });
    Json(body).into_response()
}
