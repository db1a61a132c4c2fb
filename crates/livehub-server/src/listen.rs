//! The accept loop. A connection's first request, when it is a plain `GET` or `HEAD`, is parsed
//! by [`direct`](crate::direct) and answered by the router; a stream in answer is written by
//! `direct`, any other answer by hyper, which serves the rest of the connection (upgrades
//! included), with the bytes already read handed back in front of the socket.
//!
//! hyper gives every HTTP/1 connection an 8 KiB head buffer and an 8 KiB read buffer and keeps
//! them while the connection lives; neither can be made smaller. A request answered at once does
//! not notice. An SSE stream lives for hours, and those 16 KiB were two thirds of its memory.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;

use axum::body::Body;
use axum::body::HttpBody;
use axum::extract::ConnectInfo;
use axum::http::Response;
use axum::serve::{Listener, ListenerExt};
use axum::Router;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::Either;
use futures_util::TryFutureExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use crate::direct::{self, First};
use crate::half_open::{HalfOpen, Slot};
use crate::tls::TlsListener;

/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`). A reconnect storm
/// after a restart, or a load generator opening hundreds at once, overflows a short queue, and
/// each dropped SYN costs its client a one-second retransmit.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` whose accept queue holds 4096 connections, or
/// `net.core.somaxconn` if that is lower (`TcpListener::bind` gives 128).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As `TcpListener::bind` does: a restarted server can listen again while old connections
    // are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// What hyper serves a plain TCP connection as. A WebSocket over it is taken back from hyper by
/// downcasting to this type (`ws/socket.rs`); `FastPaths::websocket_tcp` counts the connections
/// that were, so a test notices when a change of type turns that path off.
pub(crate) type PlainIo = TokioIo<Replay<TcpStream>>;

/// How many connections took each fast path; `/api/metrics` shows them, and tests check that
/// each path is really taken.
#[derive(Debug, Default)]
pub(crate) struct FastPaths {
    /// Streams written by `direct.rs` rather than hyper.
    pub(crate) direct_streams: AtomicU64,
    /// WebSockets whose frames go straight to the TCP socket.
    pub(crate) websocket_tcp: AtomicU64,
}

impl FastPaths {
    /// Counts one use of `path`.
    pub(crate) fn taken(path: &AtomicU64) {
        path.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the accept loop applies to every connection, whichever listener took it.
#[derive(Debug)]
pub(crate) struct Accepting {
    /// What took the fast paths.
    pub(crate) fast_paths: Arc<FastPaths>,
    /// Connections whose first request head is not complete yet.
    pub(crate) half_open: Arc<HalfOpen>,
    /// Longest a connection may take to send a complete request head, the first one from its
    /// accept, a later one from the end of the response before it (idle keep-alive included).
    pub(crate) head_timeout: Duration,
}

/// The socket the server accepts on.
pub(crate) enum Listen {
    Plain(TcpListener),
    Tls(TlsListener),
}

/// Accepts connections until `shutdown` is cancelled, serving each with `router` in a task on
/// `connections`. Connections in progress get a graceful shutdown: hyper finishes the request at
/// hand and closes, an SSE stream ends itself.
pub(crate) async fn run(
    listen: Listen,
    router: Router,
    accepting: Arc<Accepting>,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    match listen {
        Listen::Plain(plain) => {
            accept(plain.tap_io(no_delay), router, accepting, shutdown, connections).await
        }
        Listen::Tls(tls) => accept(tls, router, accepting, shutdown, connections).await,
    }
}

async fn accept<L>(
    mut listener: L,
    router: Router,
    accepting: Arc<Accepting>,
    shutdown: CancellationToken,
    connections: TaskTracker,
) where
    L: Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        // Both listeners retry failed accepts themselves (after a pause when out of files).
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        // Past its address's limit of half-open connections, closed at once: dropping `io`.
        let Some(slot) = accepting.half_open.admit(peer.ip()) else {
            tracing::debug!(%peer, "too many half-open connections from this address");
            continue;
        };
        let task = serve_connection(io, peer, router.clone(), accepting.clone(), slot, shutdown.clone());
        connections.spawn(task);
    }
}

async fn serve_connection<I>(
    mut io: I,
    peer: SocketAddr,
    router: Router,
    accepting: Arc<Accepting>,
    slot: Slot,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + accepting.head_timeout;
    let first = tokio::select! {
        first = direct::read_first(&mut io) => first,
        // Like hyper's graceful shutdown: a connection yet to send a request is closed.
        () = shutdown.cancelled() => return,
        () = slot.shed() => return,
        () = tokio::time::sleep_until(deadline) => {
            tracing::debug!(%peer, "no complete request head in time");
            return;
        }
    };
    // The connection's token from here on: cancelled when it is shed, now or between requests.
    let close = slot.shed_token();
    let hyper =
        HyperSetup { head_timeout: accepting.head_timeout, half_open: accepting.half_open.clone(), close };
    match first {
        Ok(First::Request(request, read)) => {
            // A complete request: no longer half-open.
            drop(slot);
            let version = request.version();
            let response = direct::answer(peer, request, router.clone()).await;
            if direct::is_stream(&response) {
                FastPaths::taken(&accepting.fast_paths.direct_streams);
                // Not kept for the stream's life: the first read's buffer is a kilobyte, as much
                // again as the rest of an idle stream's state.
                drop((read, router, accepting));
                direct::serve(io, peer, version, response).await;
            } else {
                // hyper reads the same request again and answers it with this response.
                let replay = Replay::new(read, io);
                let first = HyperFirst::Answered(response);
                Box::pin(serve_hyper(replay, peer, router, first, hyper, shutdown)).await
            }
        }
        // Boxed, so that the direct path's tasks do not carry hyper's larger future.
        Ok(First::Other(read)) => {
            let first = HyperFirst::Unread { slot, deadline };
            Box::pin(serve_hyper(Replay::new(read, io), peer, router, first, hyper, shutdown)).await
        }
        Ok(First::Closed) => {}
        Err(e) => tracing::trace!(%peer, error = %e, "connection failed before its first request"),
    }
}

/// Where hyper starts on a connection.
enum HyperFirst {
    /// The first request was answered already (by the router, for `direct`): hyper reads it again
    /// and writes this answer.
    Answered(Response<Body>),
    /// The first request head is hyper's to read: the connection is half-open until it is
    /// complete, and is closed at `deadline` or when shed.
    Unread { slot: Slot, deadline: tokio::time::Instant },
}

/// What hyper's service takes on its first call.
enum FirstCall {
    Answer(Response<Body>),
    Release,
    Done,
}

/// What `serve_hyper` needs of the listener besides the connection.
struct HyperSetup {
    head_timeout: Duration,
    half_open: Arc<HalfOpen>,
    /// The connection's shed token (see [`Between`]).
    close: CancellationToken,
}

/// How long a connection that was shed, or found no half-open place after a response, gets to
/// finish writing what it was answering before it is dropped.
const SHED_GRACE: Duration = Duration::from_secs(1);

/// A hyper connection between its requests. It is half-open again from the moment a response
/// has been handed to hyper in full until the next request's head (and body) is in: an idle
/// keep-alive connection, or one dripping its second request, counts against the per-address
/// and global limits like a new one, and is shed oldest first with them.
struct Between {
    half_open: Arc<HalfOpen>,
    peer: IpAddr,
    /// Held while the connection waits for a request or reads a request body.
    slot: Mutex<Option<Slot>>,
    /// Cancelled when the connection is shed, or when it found no half-open place after a
    /// response: it is then closed once the response is written.
    close: CancellationToken,
}

impl Between {
    /// A response is out of the router's hands: the connection waits for its next request.
    fn waiting(&self) {
        if self.close.is_cancelled() {
            return;
        }
        match self.half_open.admit_with(self.peer, self.close.clone()) {
            Some(slot) => *self.slot.lock() = Some(slot),
            None => self.close.cancel(),
        }
    }
}

/// A response body that tells its connection's [`Between`] when hyper is done with it: the
/// last frame taken, or the body dropped (hyper does not poll an empty body at all).
struct ResponseBody {
    body: Body,
    between: Arc<Between>,
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.between.waiting();
    }
}

/// Whether the client means to send another request on the connection after this one.
fn keep_alive<B>(request: &Request<B>) -> bool {
    let connection = |token: &str| {
        request
            .headers()
            .get_all(axum::http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if request.version() == axum::http::Version::HTTP_10 {
        connection("keep-alive")
    } else {
        !connection("close")
    }
}

/// Serves a connection with hyper's HTTP/1 server, upgrades included. Every request head must
/// be complete within `head_timeout` of hyper starting to read it (idle keep-alive included).
async fn serve_hyper<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    first: HyperFirst,
    setup: HyperSetup,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Until hyper calls the service once, the connection is half-open: watched for its
    // deadline (and, through `close`, for being shed).
    let head_done = CancellationToken::new();
    let (call, slot, deadline) = match first {
        HyperFirst::Answered(response) => (FirstCall::Answer(response), None, None),
        HyperFirst::Unread { slot, deadline } => (FirstCall::Release, Some(slot), Some(deadline)),
    };
    let between = Arc::new(Between {
        half_open: setup.half_open,
        peer: peer.ip(),
        slot: Mutex::new(slot),
        close: setup.close.clone(),
    });
    let head_late = {
        let head_done = head_done.clone();
        async move {
            let Some(deadline) = deadline else { return std::future::pending().await };
            tokio::select! {
                () = head_done.cancelled() => std::future::pending::<()>().await,
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    };
    // Taken once per request to see whether the first call's work is still there.
    let call = Arc::new(Mutex::new(call));
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let first = std::mem::replace(&mut *call.lock(), FirstCall::Done);
        // The head is in: the slot goes with the body, if there is one still coming.
        let slot = between.slot.lock().take();
        let respond = {
            // A connection the client closes after this answer never waits for another request.
            let between = keep_alive(&request).then(|| between.clone());
            move |response: Response<Body>| match between {
                Some(between) => response.map(|body| Body::new(ResponseBody { body, between })),
                None => response,
            }
        };
        match first {
            FirstCall::Answer(response) => return Either::Left(std::future::ready(Ok(respond(response)))),
            FirstCall::Release => head_done.cancel(),
            FirstCall::Done => {}
        }
        // What axum's `into_make_service_with_connect_info` would insert.
        request.extensions_mut().insert(ConnectInfo(peer));
        let request = if request.body().is_end_stream() {
            drop(slot);
            request.map(Body::new)
        } else {
            // A request with a body stays half-open until its body is in: a body drip-fed a
            // byte at a time holds a connection and its buffers as a head does.
            request.map(|body| Body::new(RequestBody::new(body, slot)))
        };
        Either::Right(router.clone().call(request).map_ok(respond))
    });
    let mut connection = pin!(hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(setup.head_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades());
    let result = tokio::select! {
        result = connection.as_mut() => result,
        // The first head past its deadline: closed without an answer, like a silent one.
        () = head_late => return,
        () = setup.close.cancelled() => {
            // Shed, or no place to wait for another request: whatever is being answered is
            // finished (briefly), and the connection closed instead of kept alive.
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHED_GRACE, connection).await;
            return;
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::trace!(%peer, error = %e, "connection ended with an error");
    }
}

/// Request body bytes are handed to the router in pieces of at least this size (or the rest of
/// the body).
///
/// A frame hyper hands over is a slice of its read buffer and keeps the whole buffer (kilobytes)
/// alive while the handler collects the body: a body drip-fed a byte per TCP segment made each
/// byte cost about 4 KiB, a megabyte per connection after 250 segments. Small frames are copied
/// into one buffer of ours and passed on when it holds this much or the body ends, so a slow body
/// costs what it has sent; a large frame fills most of its buffer anyway and is passed as it is.
const BODY_PIECE: usize = 4 * 1024;

/// A request body as the router sees it: small frames gathered out of hyper's buffer (see
/// [`BODY_PIECE`]), and, for a connection's first request, its half-open slot held until the
/// body has been read to its end (or failed, or was dropped unread).
///
/// Gathering holds bytes back until a piece is full or the body ends, which no route minds: each
/// reads its whole body before it answers.
struct RequestBody<B = Incoming> {
    body: B,
    slot: Option<Slot>,
    /// Small frames' bytes not passed on yet.
    gathered: BytesMut,
    /// A trailers frame that arrived while bytes were gathered: passed on after them.
    trailers: Option<Frame<Bytes>>,
}

impl<B> RequestBody<B> {
    fn new(body: B, slot: Option<Slot>) -> Self {
        Self { body, slot, gathered: BytesMut::new(), trailers: None }
    }

    fn gathered<E>(&mut self) -> Poll<Option<Result<Frame<Bytes>, E>>> {
        Poll::Ready(Some(Ok(Frame::data(self.gathered.split().freeze()))))
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for RequestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        loop {
            if this.trailers.is_some() {
                if !this.gathered.is_empty() {
                    return this.gathered();
                }
                return Poll::Ready(this.trailers.take().map(Ok));
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if this.gathered.is_empty() && data.len() >= BODY_PIECE => {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) => {
                        this.gathered.extend_from_slice(&data);
                        if this.body.is_end_stream() {
                            this.slot = None;
                        }
                        if this.gathered.len() >= BODY_PIECE || this.body.is_end_stream() {
                            return this.gathered();
                        }
                    }
                    Err(trailers) => this.trailers = Some(trailers),
                },
                None => {
                    this.slot = None;
                    if !this.gathered.is_empty() {
                        return this.gathered();
                    }
                    return Poll::Ready(None);
                }
                Some(Err(e)) => {
                    this.slot = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream() && self.gathered.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.body.size_hint();
        let held = self.gathered.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(held));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(held));
        }
        hint
    }
}

/// Turns off Nagle's algorithm on an accepted connection. With it on, a small frame written
/// while an earlier one is unacknowledged waits for the peer's delayed ACK (about 40 ms): every
/// live message would risk that wait.
pub(crate) fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// A connection with bytes already read from it, which reads return first.
pub(crate) struct Replay<I> {
    read: Bytes,
    io: I,
}

impl<I> Replay<I> {
    pub(crate) fn new(read: Bytes, io: I) -> Self {
        Self { read, io }
    }

    /// The same connection with `bytes` to be read before what it still holds.
    pub(crate) fn prepend(self, bytes: Bytes) -> Self {
        if bytes.is_empty() {
            return self;
        }
        if self.read.is_empty() {
            return Self { read: bytes, io: self.io };
        }
        let mut read = BytesMut::with_capacity(bytes.len() + self.read.len());
        read.extend_from_slice(&bytes);
        read.extend_from_slice(&self.read);
        Self { read: read.freeze(), io: self.io }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Replay<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read[..n]);
        self.read.advance(n);
        if self.read.is_empty() {
            // Frees the first read's buffer.
            self.read = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Replay<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    // Forwarded: the WebSocket frame writer depends on vectored writes reaching the socket.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;

    use axum::http::HeaderMap;
    use futures_util::future::poll_fn;

    use super::*;

    /// A body that yields its frames, one per poll, and says it has ended after the last.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(Ok))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    /// The frames the router gets: data pieces as lengths, trailers as `None`.
    async fn pieces(frames: Vec<Frame<Bytes>>) -> Vec<Option<usize>> {
        let mut body = RequestBody::new(Frames(frames.into()), None);
        let mut got = Vec::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let Ok(frame) = frame;
            got.push(frame.into_data().map(|data| data.len()).ok());
        }
        assert!(body.is_end_stream());
        got
    }

    fn data(n: usize) -> Frame<Bytes> {
        Frame::data(Bytes::from(vec![b'x'; n]))
    }

    #[tokio::test]
    async fn small_frames_are_gathered_into_pieces_and_nothing_is_lost() {
        // A byte per frame, as a drip-fed body arrives: pieces of BODY_PIECE, then the rest.
        let bytes = (0..BODY_PIECE * 2 + 10).map(|_| data(1)).collect();
        assert_eq!(pieces(bytes).await, [Some(BODY_PIECE), Some(BODY_PIECE), Some(10)]);
        // A large frame passes as it is; trailers come after the gathered bytes.
        let mut trailers = HeaderMap::new();
        trailers.insert("x-check", "1".parse().expect("a valid header value"));
        let frames = vec![data(BODY_PIECE * 3), data(5), Frame::trailers(trailers)];
        assert_eq!(pieces(frames).await, [Some(BODY_PIECE * 3), Some(5), None]);
        assert_eq!(pieces(vec![data(7)]).await, [Some(7)]);
    }
}
