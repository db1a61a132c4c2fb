//! Long polling: `GET /poll?channel=…&cursor=…&timeout=30`.
//!
//! Answers at once when something follows the cursor, otherwise holds the request until a
//! publication arrives or the timeout passes (`204`, with the cursor in a header). The cursor is
//! self-contained: no session lives on the server between polls.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use livehub_core::DeliveryTracker;
use serde_json::Value;

use crate::access;
use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::protocol::{message_frame, Format};
use crate::resume::{self, StreamRequest};
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
    // Who and from where before what: a foreign or tokenless caller learns nothing from parsing.
    let admission = match app.access().admit(&headers, query.as_deref(), peer.ip()) {
        Ok(admission) => admission,
        Err(e) => return Ok(access::refusal(e)),
    };
    let limits = &app.node().config().channel_limits;
    let request =
        StreamRequest::parse(query.as_deref(), None, &["cursor"], config.limits.max_stream_channels, limits)?;
    let timeout = match request.param("timeout") {
        None => config.long_polling.default_timeout_secs,
        Some(t) => t.parse::<u64>().map_err(|_| ApiError::bad_request("timeout must be whole seconds"))?,
    }
    .min(config.long_polling.max_timeout_secs);
    if let Err(e) = resume::authorize(&app, &admission.identity, &request) {
        return Ok(access::refusal(e));
    }
    let hold = access::time_left(&admission.identity)
        .map_or(Duration::from_secs(timeout), |left| left.min(Duration::from_secs(timeout)));

    let mut receiver = app.node().connect_ephemeral("long-polling");
    let mut tracker = DeliveryTracker::default();
    let opened = resume::open(app.node(), receiver.session(), &request, &mut tracker).await?;
    let mut messages: Vec<Bytes> =
        opened.replay.iter().filter(|p| tracker.admit(p)).map(|p| message_frame(Format::Json, p)).collect();

    if messages.is_empty() && !hold.is_zero() {
        let session = receiver.session().clone();
        let shutdown = app.shutdown_token();
        let mut batch = Vec::new();
        let deadline = tokio::time::sleep(hold);
        tokio::pin!(deadline);
        while messages.is_empty() {
            tokio::select! {
                _ = &mut deadline => break,
                _ = shutdown.cancelled() => break,
                _ = session.disconnected() => break,
                _ = receiver.recv_many(&mut batch, MAX_BATCH) => {
                    for publication in batch.drain(..) {
                        if tracker.admit(&publication) {
                            messages.push(message_frame(Format::Json, &publication));
                        }
                    }
                }
            }
        }
    }
    let cursor = Cursor::encode(tracker.positions());
    let cursor_header =
        HeaderValue::from_str(&cursor).map_err(|_| ApiError::bad_request("unencodable cursor"))?;
    let mut response = if messages.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        body(&messages, &cursor, &Value::Object(opened.channels)).into_response()
    };
    response.headers_mut().insert(CURSOR_HEADER, cursor_header);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `{"messages": [...], "cursor": "...", "channels": {...}}`, splicing in the shared JSON frames.
fn body(
    messages: &[Bytes],
    cursor: &str,
    channels: &Value,
) -> ([(header::HeaderName, HeaderValue); 1], Bytes) {
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
