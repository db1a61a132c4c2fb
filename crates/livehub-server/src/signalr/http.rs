//! The HTTP transports: Server-Sent Events and long polling carry the server's records, and the
//! client sends with `POST`. Each connection's task (the same loop as a WebSocket's) writes into
//! its [`HttpLink`]'s outbox; the SSE stream or the next poll takes what is there.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::stream;
use livehub_core::Disconnect;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::connection::{handshake, End, HubConnection, Wire};
use crate::App;

/// How long a poll is held when there is nothing to send (the JavaScript client gives up on a
/// poll after 100 s).
const POLL_TIMEOUT: Duration = Duration::from_secs(90);

/// Most bytes waiting in an outbox for the client to take; past it the connection is a slow
/// consumer.
const MAX_OUTBOX: usize = 4 * 1024 * 1024;

/// POST bodies a connection's task has not taken yet; a client sends one at a time.
const INBOUND_CAPACITY: usize = 4;

/// Which HTTP transport a connection uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Sse,
    LongPolling,
}

/// What the HTTP requests of one connection share with its task.
pub(crate) struct HttpLink {
    kind: Kind,
    inbound: mpsc::Sender<Bytes>,
    outbox: Mutex<Outbox>,
    /// Woken when the outbox gets records or is closed.
    notify: Notify,
    /// Cancelled when the client is gone: its event stream dropped, or it sent `DELETE`.
    gone: CancellationToken,
}

struct Outbox {
    buf: BytesMut,
    /// Whether the records are binary (a long poll's content type).
    binary: bool,
    /// The connection ended: an SSE stream ends, a poll answers `204`.
    closed: bool,
    /// Bumped by each poll, so that an older poll still held ends with `204`.
    poll: u64,
    /// Whether a poll is held now.
    polling: bool,
    /// When the last poll ended.
    last_poll: Instant,
}

impl HttpLink {
    fn new(kind: Kind) -> (Arc<Self>, mpsc::Receiver<Bytes>) {
        let (inbound, receiver) = mpsc::channel(INBOUND_CAPACITY);
        let outbox = Outbox {
            buf: BytesMut::new(),
            binary: false,
            closed: false,
            poll: 0,
            polling: false,
            last_poll: Instant::now(),
        };
        let link = Self {
            kind,
            inbound,
            outbox: Mutex::new(outbox),
            notify: Notify::new(),
            gone: CancellationToken::new(),
        };
        (Arc::new(link), receiver)
    }
}

/// The connection task's side of an HTTP connection.
struct HttpWire {
    link: Arc<HttpLink>,
    inbound: mpsc::Receiver<Bytes>,
    gone: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
    /// How long a client may go without a poll.
    timeout: Duration,
}

impl Wire for HttpWire {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Disconnect>>> {
        if self.gone.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        self.inbound.poll_recv(cx).map(|bytes| bytes.map(Ok))
    }

    async fn send(&mut self, records: &[Bytes], binary: bool) -> Result<(), ()> {
        {
            let mut outbox = self.link.outbox.lock();
            let len: usize = records.iter().map(Bytes::len).sum();
            if outbox.closed || outbox.buf.len() + len > MAX_OUTBOX {
                return Err(());
            }
            outbox.binary = binary;
            for record in records {
                outbox.buf.extend_from_slice(record);
            }
        }
        self.link.notify.notify_waiters();
        Ok(())
    }

    async fn close(&mut self, _reason: &Disconnect) {
        self.link.outbox.lock().closed = true;
        self.link.notify.notify_waiters();
    }

    fn binary(&self) -> bool {
        self.link.kind == Kind::LongPolling
    }

    fn present(&self) -> bool {
        let outbox = self.link.outbox.lock();
        self.link.kind == Kind::LongPolling && (outbox.polling || outbox.last_poll.elapsed() < self.timeout)
    }
}

/// Starts the connection task of a negotiated connection over `kind`.
fn start(app: &App, token: String, kind: Kind) -> Option<Arc<HttpLink>> {
    let pending = app.signalr().take_pending(&token)?;
    let (link, inbound) = HttpLink::new(kind);
    app.signalr().add_http(token.clone(), link.clone());
    let timeout = Duration::from_secs(app.config().signalr.client_timeout_secs.max(1));
    let gone = Box::pin(link.gone.clone().cancelled_owned());
    let mut wire = HttpWire { link: link.clone(), inbound, gone, timeout };
    let app = app.clone();
    // The publish budget goes by the address that negotiated the connection.
    let peer = pending.peer;
    app.upgraded().clone().spawn(async move {
        if let Some((protocol, rest)) = handshake(&app, &mut wire).await {
            let mut connection =
                HubConnection::new(app.clone(), pending.admission, peer, protocol, rest, false);
            tracing::debug!(client = %connection.client().id(), ?kind, ?protocol, "signalr connected");
            match connection.run(&mut wire).await {
                End::Close(reason) => connection.close(&mut wire, &reason).await,
                End::Gone | End::Left => wire.close(&Disconnect::SHUTDOWN).await,
            }
        }
        app.signalr().remove_http(&token);
    });
    Some(link)
}

/// `GET {path}?id=` with `Accept: text/event-stream`: the connection's records as events.
pub(super) async fn events(app: App, id: Option<String>) -> Response {
    let Some(token) = id else { return super::missing_id() };
    let Some(link) = start(&app, token, Kind::Sse) else { return super::unknown_id() };
    // The stream's end (the client went away) ends the connection.
    let guard = link.gone.clone().drop_guard();
    // A comment first, so that the client sees the stream open before any record.
    let first = Bytes::from_static(b":\r\n\r\n");
    let body = stream::unfold((link, Some(first), guard), |(link, first, guard)| async move {
        if let Some(first) = first {
            return Some((Ok::<_, std::io::Error>(first), (link, None, guard)));
        }
        let event = next_event(&link).await?;
        Some((Ok(event), (link, None, guard)))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The next SSE event of `link`: every record waiting, as one event's data; `None` once the
/// connection has ended.
async fn next_event(link: &HttpLink) -> Option<Bytes> {
    loop {
        let notified = link.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut outbox = link.outbox.lock();
            if !outbox.buf.is_empty() {
                // JSON records hold no line breaks (strings escape them), so one `data:` line
                // carries them all.
                let records = outbox.buf.split();
                let mut event = BytesMut::with_capacity(records.len() + 10);
                event.extend_from_slice(b"data: ");
                event.extend_from_slice(&records);
                event.extend_from_slice(b"\r\n\r\n");
                return Some(event.freeze());
            }
            if outbox.closed {
                return None;
            }
        }
        notified.await;
    }
}

/// `GET {path}?id=`: a long poll. The first one answers at once (the connection starts); later
/// ones are held until there are records or [`POLL_TIMEOUT`] passes (`200` with no body), and
/// answer `204` once the connection has ended or a newer poll took over.
pub(super) async fn poll(app: App, id: Option<String>, _headers: &HeaderMap) -> Response {
    let Some(token) = id else { return super::missing_id() };
    let link = match app.signalr().http(&token) {
        Some(link) if link.kind == Kind::LongPolling => link,
        Some(_) => return (StatusCode::BAD_REQUEST, "the connection uses another transport").into_response(),
        None => {
            return match start(&app, token, Kind::LongPolling) {
                Some(_) => StatusCode::OK.into_response(),
                None => super::unknown_id(),
            }
        }
    };
    let generation = {
        let mut outbox = link.outbox.lock();
        outbox.poll += 1;
        outbox.polling = true;
        outbox.poll
    };
    link.notify.notify_waiters();
    let answer = tokio::time::timeout(POLL_TIMEOUT, async {
        loop {
            let notified = link.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut outbox = link.outbox.lock();
                if outbox.poll != generation {
                    return StatusCode::NO_CONTENT.into_response();
                }
                if !outbox.buf.is_empty() {
                    let records = outbox.buf.split().freeze();
                    let kind =
                        if outbox.binary { "application/octet-stream" } else { "text/plain; charset=utf-8" };
                    return ([(header::CONTENT_TYPE, kind)], records).into_response();
                }
                if outbox.closed {
                    return StatusCode::NO_CONTENT.into_response();
                }
            }
            notified.await;
        }
    })
    .await
    .unwrap_or_else(|_| StatusCode::OK.into_response());
    let mut outbox = link.outbox.lock();
    if outbox.poll == generation {
        outbox.polling = false;
        outbox.last_poll = Instant::now();
    }
    answer
}

/// `POST {path}?id=`: a message (or several) from the client of an SSE or long-polling
/// connection.
pub(super) async fn send(app: App, id: Option<String>, request: Request) -> Response {
    let Some(token) = id else { return super::missing_id() };
    // A negotiated connection exists before its first poll, and some clients (signalrcore) send
    // their handshake first: that starts it as long polling, the one transport a POST can
    // precede.
    let link = app.signalr().http(&token).or_else(|| start(&app, token, Kind::LongPolling));
    let Some(link) = link else { return super::unknown_id() };
    let body = match axum::body::to_bytes(request.into_body(), app.config().limits.max_body_size).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "the message is over the limit").into_response(),
    };
    match link.inbound.send(body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => super::unknown_id(),
    }
}

/// `DELETE {path}?id=`: the client ends its long-polling connection; the poll held answers `204`.
pub(super) async fn delete(app: App, id: Option<String>) -> Response {
    let Some(token) = id else { return super::missing_id() };
    let Some(link) = app.signalr().http(&token) else { return super::unknown_id() };
    link.gone.cancel();
    app.signalr().remove_http(&token);
    (StatusCode::ACCEPTED, "").into_response()
}
