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
use livehub_core::{DeliveryTracker, Disconnect, Publication};
use serde_json::{json, Map, Value};
use tokio::time::Interval;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::access;
use crate::cursor::Cursor;
use crate::direct::DirectStream;
use crate::engine::{Client, ClientError, Reply};
use crate::error::ApiError;
use crate::gate::Gate;
use crate::protocol::{sse_event, sse_event_positioned};
use crate::resume::StreamRequest;
use crate::transport::Transport;
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
    app.access().read_allowed(peer.ip())?;
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
    let receiver = app.node().connect("sse");
    let session = receiver.session().clone();
    let mut client = Client::new(app.clone(), receiver, admission, peer.ip(), false);
    let opened = match client.open(&request.filters, &request.cursor.positions, request.latest).await {
        Ok(opened) => opened,
        Err(ClientError::Auth(e)) => return Ok(access::refusal(e)),
        Err(e) => return Err(e.into()),
    };

    let mut first = BytesMut::new();
    first.put_slice(format!("retry: {}\n\n", config.sse.retry_ms).as_bytes());
    let channels: Map<String, Value> =
        opened.channels.iter().map(|(channel, start)| (channel.to_string(), start.value())).collect();
    let connected = json!({
        "type": "connected",
        "client": client.id().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "channels": channels,
    });
    put_event(&mut first, "connected", &connected);
    let mut stream = SseStream {
        rare: Gate::for_session(&session),
        disconnected: Box::pin(async move { session.disconnected().await }),
        client,
        batch: Vec::new(),
        heartbeat: tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(config.sse.heartbeat_secs.max(1)),
            Duration::from_secs(config.sse.heartbeat_secs.max(1)),
        ),
        shutdown: Box::pin(app.shutdown_token().cancelled_owned()),
        done: false,
    };
    // Each replayed event carries the cursor as of that event, so a stream cut off in the middle
    // of a long replay resumes right after the last event the client got.
    let mut replay = opened.replay;
    stream
        .client
        .deliver(&mut replay, &mut Events { out: &mut first })
        .await
        .unwrap_or_else(|never| match never {});
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
    // Written without hyper when it answers a connection's first request.
    response.extensions_mut().insert(DirectStream);
    Ok(response)
}

/// One SSE stream's state, moved into the response body.
struct SseStream {
    client: Client,
    batch: Vec<Arc<Publication>>,
    heartbeat: Interval,
    // The wake-up futures live as long as the stream: made per chunk, each would register and
    // unregister a waiter under a lock for every batch of publications.
    disconnected: Pin<Box<dyn Future<Output = Disconnect> + Send>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Everything but the queue: polled only when one of them woke the stream.
    rare: Gate,
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
                if self.client.receiver().poll_recv_many(cx, &mut self.batch, WRITE_BATCH).is_ready() {
                    return Poll::Ready(Wake::Publications);
                }
                self.rare.poll(cx, |cx| {
                    if self.shutdown.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::End(Disconnect::SHUTDOWN));
                    }
                    if let Poll::Ready(reason) = self.disconnected.as_mut().poll(cx) {
                        return Poll::Ready(Wake::End(reason));
                    }
                    if let Poll::Ready(reason) = self.client.poll_expired(cx) {
                        return Poll::Ready(Wake::End(reason));
                    }
                    self.heartbeat.poll_tick(cx).map(|_| Wake::Heartbeat)
                })
            })
            .await;
            let mut out = BytesMut::new();
            let mut events = Events { out: &mut out };
            match event {
                Wake::Publications => {
                    let Ok(()) = self.client.deliver(&mut self.batch, &mut events).await;
                }
                Wake::End(reason) => {
                    self.done = true;
                    events.close(&reason).await;
                }
                Wake::Heartbeat => out.put_slice(b": ping\n\n"),
            }
            if !out.is_empty() {
                return Some(out.freeze());
            }
        }
    }
}

/// The write side of an SSE stream: events appended to the body's next chunk. Each publication
/// is the shared event text plus the stream's cursor as its `id:`.
struct Events<'a> {
    out: &'a mut BytesMut,
}

impl Transport for Events<'_> {
    type Error = Infallible;

    async fn write(&mut self, reply: &Reply<'_>) -> Result<(), Infallible> {
        let value = reply.value();
        let name = value["type"].as_str().unwrap_or("message").to_owned();
        put_event(self.out, &name, &value);
        Ok(())
    }

    async fn write_many(
        &mut self,
        publications: &mut Vec<Arc<Publication>>,
        tracker: &mut DeliveryTracker,
    ) -> Result<(), Infallible> {
        for publication in publications.iter() {
            if !tracker.admit(publication) {
                continue;
            }
            // A stream of one channel has the cursor every such stream has at this publication.
            if tracker.len() == 1 {
                self.out.put_slice(sse_event_positioned(publication));
                continue;
            }
            self.out.put_slice(&sse_event(publication));
            self.out.put_slice(b"id: ");
            self.out.put_slice(Cursor::encode(tracker.positions()).as_bytes());
            self.out.put_slice(b"\n\n");
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }

    /// A last `disconnect` event telling the client whether to come back.
    async fn close(&mut self, reason: &Disconnect) {
        let event = json!({ "type": "disconnect", "code": reason.code, "reason": reason.reason, "reconnect": reason.reconnect });
        put_event(self.out, "disconnect", &event);
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
