//! Long polling: `GET /poll?channel=…&cursor=…&timeout=30`.
//!
//! Answers at once when something follows the cursor, otherwise holds the request until a
//! publication arrives or the timeout passes (`204`, with the cursor in a header). The cursor is
//! self-contained: no session lives on the server between polls.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use livehub_core::{DeliveryTracker, Disconnect, Publication};
use serde_json::{Map, Value};

use crate::access;
use crate::cursor::Cursor;
use crate::engine::{Client, ClientError, Reply};
use crate::error::ApiError;
use crate::protocol::{message_frame, Format};
use crate::resume::StreamRequest;
use crate::transport::Transport;
use crate::App;

/// Header carrying the next cursor, on every answer (the only place for it on a `204`).
pub const CURSOR_HEADER: &str = "livehub-cursor";

/// Most publications taken from the live queue for one answer.
const MAX_BATCH: usize = 256;

/// `GET /poll`.
///
/// Each poll is admitted on its own (credential, origin, a connection slot for its address while
/// it is held); a token that expires during the hold ends it at that moment.
pub(crate) async fn poll(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let config = app.config();
    if !config.long_polling.enabled {
        return Err(ApiError::disabled("long-polling"));
    }
    if app.shutting_down() {
        return Err(ApiError::shutting_down());
    }
    app.access().read_allowed(peer.ip())?;
    // Who and from where before what: a foreign or tokenless caller learns nothing from parsing.
    let admission = match app.access().admit(&headers, query.as_deref(), peer.ip()) {
        Ok(admission) => admission,
        Err(e) => return Ok(access::refusal(e)),
    };
    let limits = &app.node().config().channel_limits;
    let request =
        StreamRequest::parse(query.as_deref(), None, &["cursor"], config.limits.max_stream_channels, limits)?;
    let _poller =
        app.node().poller("long-polling", poller_key("long-polling", peer, &headers, query.as_deref()));
    let timeout = match request.param("timeout") {
        None => config.long_polling.default_timeout_secs,
        Some(t) => t.parse::<u64>().map_err(|_| ApiError::bad_request("timeout must be whole seconds"))?,
    }
    .min(config.long_polling.max_timeout_secs);
    let hold = access::time_left(&admission.identity)
        .map_or(Duration::from_secs(timeout), |left| left.min(Duration::from_secs(timeout)));

    let receiver = app.node().connect_ephemeral("long-polling");
    let mut client = Client::new(app.clone(), receiver, admission, peer.ip(), false);
    let opened = match client.open(&request.filters, &request.cursor.positions, request.latest).await {
        Ok(opened) => opened,
        Err(ClientError::Auth(e)) => return Ok(access::refusal(e)),
        Err(e) => return Err(e.into()),
    };
    let mut body = Body::default();
    let mut replay = opened.replay;
    let Ok(()) = client.deliver(&mut replay, &mut body).await;

    if body.messages.is_empty() && !hold.is_zero() {
        // Counted only now that the replay found nothing: from here, only a live publication (or
        // the timeout) answers.
        let _held = app.held_polls().hold();
        let session = client.session().clone();
        let shutdown = app.shutdown_token();
        let mut batch = Vec::new();
        let deadline = tokio::time::sleep(hold);
        tokio::pin!(deadline);
        while body.messages.is_empty() {
            tokio::select! {
                _ = &mut deadline => break,
                _ = shutdown.cancelled() => break,
                _ = session.disconnected() => break,
                _ = client.receiver().recv_many(&mut batch, MAX_BATCH) => {
                    let Ok(()) = client.deliver(&mut batch, &mut body).await;
                }
            }
        }
    }
    let channels: Map<String, Value> =
        opened.channels.iter().map(|(channel, start)| (channel.to_string(), start.value())).collect();
    let cursor = Cursor::encode(client.tracker().positions());
    let cursor_header =
        HeaderValue::from_str(&cursor).map_err(|_| ApiError::bad_request("unencodable cursor"))?;
    let mut response = if body.messages.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        body.render(&cursor, &Value::Object(channels)).into_response()
    };
    response.headers_mut().insert(CURSOR_HEADER, cursor_header);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Who a polling client is, for presence: the `client` query parameter when the request names
/// one (an id the client makes up once, so that tabs behind one address count apart), else
/// its address and `User-Agent`. Keyed per process, so the key says nothing outside it.
pub(crate) fn poller_key(transport: &str, peer: SocketAddr, headers: &HeaderMap, query: Option<&str>) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    let client = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "client")
        .map(|(_, value)| value.into_owned());
    let agent = headers.get(header::USER_AGENT).map(HeaderValue::as_bytes).unwrap_or_default();
    let keys = KEYS.get_or_init(std::hash::RandomState::new);
    match client {
        Some(client) => keys.hash_one((transport, peer.ip(), "client", client)),
        None => keys.hash_one((transport, peer.ip(), "agent", agent)),
    }
}

/// How many long polls are held now, waiting for a publication: `long_polls_held` in
/// `GET /api/metrics`. Polls are not in presence, so without this a held poll could not be seen
/// from outside (a test that must publish only after its poll is held waits for it).
#[derive(Debug, Default)]
pub(crate) struct HeldPolls(AtomicUsize);

impl HeldPolls {
    /// Counts one poll as held until the guard is dropped.
    fn hold(&self) -> Held<'_> {
        // Relaxed: a gauge that nothing else is ordered by.
        self.0.fetch_add(1, Ordering::Relaxed);
        Held(self)
    }

    /// Polls held now.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// One held poll, counted in [`HeldPolls`] while it lives.
struct Held<'a>(&'a HeldPolls);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The write side of a long poll: the messages of its one answer.
#[derive(Default)]
struct Body {
    /// The shared JSON frames of the publications to answer with.
    messages: Vec<Bytes>,
}

impl Body {
    /// `{"messages": [...], "cursor": "...", "channels": {...}}`, splicing in the shared frames.
    fn render(&self, cursor: &str, channels: &Value) -> ([(header::HeaderName, HeaderValue); 1], Bytes) {
        let messages = &self.messages;
        let mut out = BytesMut::with_capacity(messages.iter().map(Bytes::len).sum::<usize>() + 128);
        out.put_slice(b"{\"messages\":[");
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            out.put_slice(m);
        }
        out.put_slice(format!("],\"cursor\":\"{cursor}\",\"channels\":{channels}}}").as_bytes());
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], out.freeze())
    }
}

impl Transport for Body {
    type Error = Infallible;

    /// A long poll answers with publications only; its errors are HTTP statuses.
    async fn write(&mut self, _reply: &Reply<'_>) -> Result<(), Infallible> {
        Ok(())
    }

    async fn write_many(
        &mut self,
        publications: &mut Vec<Arc<Publication>>,
        tracker: &mut DeliveryTracker,
    ) -> Result<(), Infallible> {
        for publication in publications.iter() {
            if tracker.admit(publication) {
                self.messages.push(message_frame(Format::Json, publication));
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }

    /// The answer ends the poll; there is nothing to close.
    async fn close(&mut self, _reason: &Disconnect) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_counts_as_held_while_its_guard_lives() {
        let held = HeldPolls::default();
        let first = held.hold();
        let second = held.hold();
        assert_eq!(held.count(), 2);
        drop(first);
        assert_eq!(held.count(), 1);
        drop(second);
        assert_eq!(held.count(), 0);
    }
}
