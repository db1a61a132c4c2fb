//! The WebSocket handshake (RFC 6455 §4.2) and the socket a connection task owns.
//!
//! tungstenite reads: it reassembles fragments, validates UTF-8 and close codes, and answers
//! pings and closes. It also writes the rare replies. Publications go around it: each one's whole
//! frame is encoded once per publication, and a connection writes a batch of them to its stream
//! in one vectored write, with nothing copied or reference-counted per subscriber.
//!
//! Both writers share one stream, so frames must never interleave. [`Socket`] keeps that true:
//! before writing frames of its own it flushes whatever tungstenite holds, and before tungstenite
//! writes, it finishes a batch the stream did not take whole (a slow reader).

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BytesMut};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::fragments::{ReassemblyBudget, Watched};
use crate::error::ApiError;
use crate::gather::{gather, GATHER_LIMIT};
use crate::listen::{PlainIo, Replay};

/// Frames one vectored write takes at most; the rest go in the next write.
const MAX_SLICES: usize = 64;

/// A checked WebSocket handshake request, not yet answered.
pub(crate) struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    /// The `Sec-WebSocket-Protocol` headers.
    protocols: Vec<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let refuse = |message: &str| ApiError::bad_request(message).into_response();
        if parts.method != Method::GET {
            return Err(refuse("a WebSocket handshake is a GET request"));
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            let message = "this endpoint speaks WebSocket: send Connection: Upgrade and Upgrade: websocket";
            return Err(upgrade_required(message, header::UPGRADE, "websocket"));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
            // RFC 6455 §4.4: say which version is spoken.
            let message = "only WebSocket version 13 is supported";
            return Err(upgrade_required(message, header::SEC_WEBSOCKET_VERSION, "13"));
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(refuse("Sec-WebSocket-Key is missing"));
        };
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(refuse("this connection cannot be upgraded"));
        };
        let protocols = parts.headers.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter().cloned().collect();
        Ok(Self { key, on_upgrade, protocols })
    }
}

impl Upgrade {
    /// The subprotocols the client offered, in its order.
    pub(crate) fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        self.protocols.iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim)
    }

    /// Answers `101 Switching Protocols`, choosing `protocol`, and runs `serve` on the socket once
    /// hyper hands the connection over.
    pub(crate) fn accept<F, Fut>(
        self,
        protocol: Option<&'static str>,
        config: WebSocketConfig,
        budget: Arc<ReassemblyBudget>,
        serve: F,
    ) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            // Fails only when the client went away before the 101 was written.
            let Ok(upgraded) = on_upgrade.await else { return };
            let io = Watched::new(Io::new(upgraded), budget);
            let stream = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            serve(Socket { stream, tungstenite_unflushed: false, unwritten: BytesMut::new() }).await;
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        // The accept key is base64, which is always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        if let Some(protocol) = protocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
        }
        response
    }
}

/// `426 Upgrade Required` (code `bad_request`), with the header that says what to upgrade to.
fn upgrade_required(message: &str, name: header::HeaderName, value: &'static str) -> Response {
    let mut response = ApiError::new(StatusCode::UPGRADE_REQUIRED, "bad_request", message).into_response();
    response.headers_mut().insert(name, HeaderValue::from_static(value));
    response
}

/// Whether `name`'s comma-separated tokens include `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The connection under a WebSocket.
pub(crate) enum Io {
    /// A plain TCP connection, taken back from hyper: every frame batch is written to it
    /// directly, not through hyper's boxed trait object and its rewind buffer.
    Tcp(Replay<TcpStream>),
    /// Any other connection (TLS), as hyper hands it over.
    Upgraded(TokioIo<Upgraded>),
}

impl Io {
    fn new(upgraded: Upgraded) -> Self {
        match upgraded.downcast::<PlainIo>() {
            // Bytes hyper read past the handshake (a client that did not wait for the 101) come
            // first.
            Ok(parts) => Self::Tcp(parts.io.into_inner().prepend(parts.read_buf)),
            Err(upgraded) => Self::Upgraded(TokioIo::new(upgraded)),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            Self::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            Self::Upgraded(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Self::Upgraded(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(io) => io.is_write_vectored(),
            Self::Upgraded(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(io) => Pin::new(io).poll_flush(cx),
            Self::Upgraded(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            Self::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// An accepted WebSocket: tungstenite for reading and replies, plus the direct frame writer.
pub(crate) struct Socket {
    stream: WebSocketStream<Watched<Io>>,
    /// Whether tungstenite may hold bytes not yet written: a message fed but not flushed, or the
    /// pong it queues when it reads a ping.
    tungstenite_unflushed: bool,
    /// The tail of a frame batch the stream did not take whole. Kept here, not in the writing
    /// future, so that a write given up on (the task had to close instead) is still finished
    /// before anything else is written.
    unwritten: BytesMut,
}

impl Socket {
    /// Whether frames go straight to the TCP socket (the connection was taken back from hyper).
    pub(crate) fn is_direct(&self) -> bool {
        matches!(self.stream.get_ref().get_ref(), Io::Tcp(_))
    }

    /// When the message the client is sending in fragments started, if it is unfinished.
    pub(crate) fn unfinished_since(&self) -> Option<tokio::time::Instant> {
        self.stream.get_ref().unfinished_since()
    }

    /// Whether the client's unfinished message took the server's reassembly budget past its
    /// limit.
    pub(crate) fn over_reassembly_budget(&self) -> bool {
        self.stream.get_ref().over_budget()
    }

    /// The next message; `None` once the stream has ended.
    pub(crate) async fn recv(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        // Reading may write (a pong), so the tail of a frame batch goes first.
        if let Err(e) = self.write_unwritten().await {
            return Some(Err(e.into()));
        }
        // Reading may queue a pong (or a close reply) and write only part of it, also when it
        // then waits for more input.
        self.tungstenite_unflushed = true;
        self.stream.next().await
    }

    /// Queues `message` behind everything written before it, without flushing.
    pub(crate) async fn feed(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.write_unwritten().await?;
        self.tungstenite_unflushed = true;
        self.stream.feed(message).await
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> Result<(), tungstenite::Error> {
        self.write_unwritten().await?;
        self.stream.flush().await?;
        self.tungstenite_unflushed = false;
        Ok(())
    }

    /// Queues `message` and writes everything queued.
    pub(crate) async fn send(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Writes the frames of `items` (whole, already encoded frames, picked out by `frame`) in
    /// order, after everything written before them, in as few vectored writes as the stream
    /// takes.
    ///
    /// Cancel-safe at frame boundaries: dropped while earlier output is still being written, it
    /// has written none of the frames; dropped later, what the stream has not taken yet is in
    /// `unwritten`, and is written before anything else.
    pub(crate) async fn write_frames<T>(
        &mut self,
        items: &[T],
        frame: impl Fn(&T) -> &[u8],
    ) -> Result<(), tungstenite::Error> {
        if self.tungstenite_unflushed {
            self.flush().await?;
        } else {
            self.write_unwritten().await?;
        }
        let Self { stream, unwritten, .. } = self;
        let io = stream.get_mut();
        // Completes in one poll, so the slices it builds live on the stack, not in this future
        // (which is part of every connection's task, idle ones included).
        poll_fn(|cx| Poll::Ready(write_now(Pin::new(&mut *io), cx, items, &frame, unwritten))).await?;
        self.write_unwritten().await?;
        // A no-op on plain TCP; TLS may hold the last record until flushed.
        let io = self.stream.get_mut();
        poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await?;
        Ok(())
    }

    /// Finishes the tail of an earlier frame batch.
    async fn write_unwritten(&mut self) -> io::Result<()> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let Self { stream, unwritten, .. } = self;
        let io = stream.get_mut();
        poll_fn(|cx| {
            while !unwritten.is_empty() {
                match Pin::new(&mut *io).poll_write(cx, unwritten) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    // Advanced at once, so that a cancelled write never writes a byte twice.
                    Poll::Ready(Ok(n)) => unwritten.advance(n),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Ready(Ok(()))
        })
        .await?;
        // A slow reader's backlog can be large; an idle connection should not keep its buffer.
        *unwritten = BytesMut::new();
        Ok(())
    }
}

/// Writes as much of the frames of `items` as `io` takes without waiting, and copies the rest
/// into `unwritten`: one frame as it is, a small batch [`gather`]ed into one buffer, a larger one
/// [`MAX_SLICES`] frames per vectored write.
fn write_now<T>(
    mut io: Pin<&mut impl AsyncWrite>,
    cx: &mut Context<'_>,
    items: &[T],
    frame: &impl Fn(&T) -> &[u8],
    unwritten: &mut BytesMut,
) -> io::Result<()> {
    if let [item] = items {
        return write_plain(io, cx, frame(item), unwritten);
    }
    let mut buf = [0u8; GATHER_LIMIT];
    if let Some(gathered) = gather(items.iter().map(frame), &mut buf) {
        return write_plain(io, cx, gathered, unwritten);
    }
    let mut rest = items;
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(MAX_SLICES));
        rest = after;
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        for (slice, item) in slices.iter_mut().zip(chunk) {
            *slice = IoSlice::new(frame(item));
        }
        let mut slices = &mut slices[..chunk.len()];
        while !slices.is_empty() {
            match io.as_mut().poll_write_vectored(cx, slices) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => IoSlice::advance_slices(&mut slices, n),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {
                    // The stream is full (a slow reader): the rest waits, copied once.
                    for slice in slices.iter() {
                        unwritten.extend_from_slice(slice);
                    }
                    for item in rest {
                        unwritten.extend_from_slice(frame(item));
                    }
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Writes as much of `bytes` as `io` takes without waiting, and copies the rest into `unwritten`.
fn write_plain(
    mut io: Pin<&mut impl AsyncWrite>,
    cx: &mut Context<'_>,
    mut bytes: &[u8],
    unwritten: &mut BytesMut,
) -> io::Result<()> {
    while !bytes.is_empty() {
        match io.as_mut().poll_write(cx, bytes) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => bytes = &bytes[n..],
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => {
                unwritten.extend_from_slice(bytes);
                break;
            }
        }
    }
    Ok(())
}

/// The header of an unmasked, final server frame with `opcode` and a payload of `len` bytes
/// (RFC 6455 §5.2), and how many of the 10 bytes it uses.
pub(crate) fn frame_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = 0x80 | opcode;
    let used = if len < 126 {
        header[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        header[1] = 126;
        header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (header, used)
}

/// The opcode of a text frame.
pub(crate) const OPCODE_TEXT: u8 = 0x1;
/// The opcode of a binary frame.
pub(crate) const OPCODE_BINARY: u8 = 0x2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_written_in_order_and_what_the_stream_refuses_is_kept() {
        // One frame, a batch gathered into one write, and batches past the gather limit and
        // past the slices of one vectored write; to a stream that takes everything, and to one
        // that fills up part way.
        let batches: [Vec<usize>; 4] = [vec![10], vec![10, 20, 30], vec![3000, 3000], vec![100; 70]];
        for sizes in batches {
            let frames: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| vec![i as u8; n]).collect();
            let all = frames.concat();
            for capacity in [1 << 20, 50] {
                let (mut writer, mut reader) = tokio::io::duplex(capacity);
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut unwritten = BytesMut::new();
                write_now(Pin::new(&mut writer), &mut cx, &frames, &|f: &Vec<u8>| &f[..], &mut unwritten)
                    .expect("written");
                let mut got = vec![0u8; all.len()];
                let mut read = tokio::io::ReadBuf::new(&mut got);
                while let Poll::Ready(Ok(())) = Pin::new(&mut reader).poll_read(&mut cx, &mut read) {
                    if read.remaining() == 0 || read.filled().len() == capacity {
                        break;
                    }
                }
                let mut written = read.filled().to_vec();
                assert_eq!(written.len(), all.len().min(capacity), "{sizes:?} to {capacity}");
                written.extend_from_slice(&unwritten);
                assert!(written == all, "{sizes:?} to {capacity}: bytes in order, none twice");
            }
        }
    }

    #[test]
    fn frame_headers_use_the_shortest_length_form() {
        let cases: &[(usize, &[u8])] = &[
            (0, &[0x81, 0]),
            (125, &[0x81, 125]),
            (126, &[0x81, 126, 0, 126]),
            (65535, &[0x81, 126, 0xff, 0xff]),
            (65536, &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
            (1 << 32, &[0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (len, want) in cases {
            let (header, used) = frame_header(OPCODE_TEXT, *len);
            assert_eq!(&header[..used], *want, "length {len}");
        }
        assert_eq!(frame_header(OPCODE_BINARY, 3).0[0], 0x82);
    }
}
