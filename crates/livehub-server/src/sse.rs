//! Server-Sent Events: `GET /sse?channel=a&channel=b` and `GET /sse/{channel}`.
//!
//! The event name is the channel, `data:` is the same JSON `message` WebSocket clients get, and
//! `id:` is a cursor over every channel of the stream, so `Last-Event-ID` resumes all of them.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use livehub_core::{DeliveryTracker, Disconnect, Publication, SessionReceiver};
use serde_json::{json, Value};
use tokio::time::{Interval, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::access::{self, Admission};
use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::gate::Gate;
use crate::protocol::{sse_event, sse_event_positioned};
use crate::resume::{self, StreamRequest};
use crate::App;

/// Publications written per chunk when a backlog exists.
const WRITE_BATCH: usize = 64;

/// `GET /sse?channel=…`.
pub(crate) async fn stream(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    open(app, peer, query, None, &headers).await
}

/// `GET /sse/{channel}`.
pub(crate) async fn stream_path(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    open(app, peer, query, Some(channel), &headers).await
}

async fn open(
    app: App,
    peer: SocketAddr,
    query: Option<String>,
    path: Option<String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let config = app.config();
    if !config.sse.enabled {
        return Err(ApiError::disabled("sse"));
    }
    if app.shutting_down() {
        return Err(ApiError::shutting_down());
    }
    // Who and from where before what: a foreign or tokenless caller learns nothing from parsing.
    let admission = match app.access().admit(headers, query.as_deref(), peer.ip()) {
        Ok(admission) => admission,
        Err(e) => return Ok(access::refusal(e)),
    };
    let (max, limits) = (config.limits.max_stream_channels, &app.node().config().channel_limits);
    let mut request = StreamRequest::parse(
        query.as_deref(),
        path.as_deref(),
        &["last_event_id", "lastEventId"],
        max,
        limits,
    )?;
    // The header wins over the query parameter: it is what EventSource sends when it reconnects.
    if let Some(id) = headers.get("last-event-id").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
        request.cursor = Cursor::decode_with_limits(id, limits)?;
    }
    if let Err(e) = resume::authorize(&app, &admission.identity, &request) {
        return Ok(access::refusal(e));
    }
    let receiver = app.node().connect("sse");
    let mut tracker = DeliveryTracker::default();
    let opened = resume::open(app.node(), receiver.session(), &request, &mut tracker).await?;

    let mut first = BytesMut::new();
    first.put_slice(format!("retry: {}\n\n", config.sse.retry_ms).as_bytes());
    let connected = json!({
        "type": "connected",
        "client": receiver.session().id().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "channels": opened.channels,
    });
    put_event(&mut first, "connected", &connected);
    let session = receiver.session().clone();
    let mut stream = SseStream {
        rare: Gate::for_session(&session),
        disconnected: Box::pin(async move { session.disconnected().await }),
        receiver,
        tracker,
        batch: Vec::new(),
        heartbeat: tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(config.sse.heartbeat_secs.max(1)),
            Duration::from_secs(config.sse.heartbeat_secs.max(1)),
        ),
        shutdown: Box::pin(app.shutdown_token().cancelled_owned()),
        expiry: access::time_left(&admission.identity).map(|left| Box::pin(tokio::time::sleep(left))),
        _admission: admission,
        done: false,
    };
    // Each replayed event carries the cursor as of that event, so a stream cut off in the middle
    // of a long replay resumes right after the last event the client got.
    for publication in &opened.replay {
        if stream.tracker.admit(publication) {
            stream.put_publication(&mut first, publication);
        }
    }
    let first = first.freeze();
    let body = futures_util::stream::unfold((Some(first), stream), |(first, mut stream)| async move {
        if let Some(first) = first {
            return Some((Ok::<_, Infallible>(first), (None, stream)));
        }
        let chunk = stream.next_chunk().await?;
        Some((Ok(chunk), (None, stream)))
    });
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One SSE stream's state, moved into the response body.
struct SseStream {
    receiver: SessionReceiver,
    tracker: DeliveryTracker,
    batch: Vec<Arc<Publication>>,
    heartbeat: Interval,
    // The wake-up futures live as long as the stream: made per chunk, each would register and
    // unregister a waiter under a lock for every batch of publications.
    disconnected: Pin<Box<dyn Future<Output = Disconnect> + Send>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Everything but the queue: polled only when one of them woke the stream.
    rare: Gate,
    /// Ends the stream with `token_expired` when the token runs out.
    expiry: Option<Pin<Box<Sleep>>>,
    /// Holds the address's connection slot for as long as the stream lives.
    _admission: Admission,
    done: bool,
}

impl SseStream {
    /// The next bytes to send, or `None` to end the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        loop {
            let event = poll_fn(|cx| {
                // Publications first, as on WebSocket: a wake-up for them polls nothing else.
                if self.receiver.poll_recv_many(cx, &mut self.batch, WRITE_BATCH).is_ready() {
                    return Poll::Ready(Wake::Publications);
                }
                self.rare.poll(cx, |cx| {
                    if self.shutdown.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::End(Disconnect::SHUTDOWN));
                    }
                    if let Poll::Ready(reason) = self.disconnected.as_mut().poll(cx) {
                        return Poll::Ready(Wake::End(reason));
                    }
                    if let Some(expiry) = &mut self.expiry {
                        if expiry.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Wake::End(access::TOKEN_EXPIRED));
                        }
                    }
                    self.heartbeat.poll_tick(cx).map(|_| Wake::Heartbeat)
                })
            })
            .await;
            let mut out = BytesMut::new();
            match event {
                Wake::Publications => {
                    let mut batch = std::mem::take(&mut self.batch);
                    for publication in batch.drain(..) {
                        if self.tracker.admit(&publication) {
                            self.put_publication(&mut out, &publication);
                        }
                    }
                    self.batch = batch;
                }
                Wake::End(reason) => self.end(&mut out, &reason),
                Wake::Heartbeat => out.put_slice(b": ping\n\n"),
            }
            if !out.is_empty() {
                return Some(out.freeze());
            }
        }
    }

    /// Appends the shared event text and this stream's cursor as its `id:`.
    fn put_publication(&self, out: &mut BytesMut, publication: &Publication) {
        // A stream of one channel has the cursor every such stream has at this publication.
        if self.tracker.len() == 1 {
            out.put_slice(sse_event_positioned(publication));
            return;
        }
        out.put_slice(&sse_event(publication));
        out.put_slice(b"id: ");
        out.put_slice(Cursor::encode(self.tracker.positions()).as_bytes());
        out.put_slice(b"\n\n");
    }

    /// A last `disconnect` event telling the client whether to come back.
    fn end(&mut self, out: &mut BytesMut, reason: &Disconnect) {
        self.done = true;
        let event = json!({ "type": "disconnect", "code": reason.code, "reason": reason.reason, "reconnect": reason.reconnect });
        put_event(out, "disconnect", &event);
    }
}

/// What woke an SSE stream.
enum Wake {
    /// Publications were moved into the batch.
    Publications,
    /// The stream ends with this reason.
    End(Disconnect),
    /// Time for a comment line that keeps proxies from timing the stream out.
    Heartbeat,
}

fn put_event(out: &mut BytesMut, name: &str, data: &Value) {
    out.put_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
}
