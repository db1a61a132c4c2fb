//! A small HTTP/1.1 path for the responses that stay open. A connection's first request, when
//! it is a plain `GET` or `HEAD`, is parsed here and answered by the router; when the route
//! answers with a stream (its response carries [`DirectStream`]), the response is written here,
//! with nothing kept per connection but the socket and the body. Any other answer, and every later
//! request of the connection, is hyper's (see `listen.rs`).
//!
//! So the router decides what takes this path, not the bytes of a path: renaming the SSE route
//! moves its fast path with it, and `/api/metrics` counts what took it (`fast_paths`).
//!
//! Only the plain case is parsed: a complete head within [`HEAD_LIMIT`] bytes, at most
//! [`MAX_HEADERS`] headers, no request body, no `Upgrade`. Anything else (a malformed or oversized
//! head, a body, another method, a WebSocket handshake) goes to hyper with the bytes read so far.
//!
//! A stream closes the connection when it ends (`Connection: close`): a stream's connection is
//! not worth keeping for one more request. HTTP/1.1 bodies are chunked; HTTP/1.0 bodies end when
//! the connection does.

use std::future::poll_fn;
use std::io::{self, IoSlice, Write as _};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tower_service::Service;

use crate::gate::Gate;
use crate::gather::{gather, GATHER_LIMIT};

/// The largest request head this path reads; a longer one goes to hyper.
const HEAD_LIMIT: usize = 16 * 1024;
/// The most headers this path parses; more go to hyper.
const MAX_HEADERS: usize = 64;
/// The first read's buffer. A browser's request head usually fits.
const FIRST_READ: usize = 1024;

/// Marks a response to be written by this path when it answers a connection's first request: a
/// stream that stays open, whose connection is not worth hyper's buffers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirectStream;

/// What a connection sent first.
pub(crate) enum First {
    /// A complete, plain `GET` or `HEAD` request, and every byte read so far (for hyper, should
    /// the router's answer not be a stream).
    Request(Box<Request<Body>>, Bytes),
    /// Anything else: the bytes read so far, for hyper.
    Other(Bytes),
    /// The peer closed the connection before sending anything.
    Closed,
}

/// Reads a new connection's first request head, whole, into a small buffer of its own.
///
/// Every connection is read this far before hyper sees it, whatever its method: hyper's buffers
/// (about 16 KiB, kept for the connection's life) are then spent only on a complete head, and a
/// socket that dribbles or sends one byte and stops costs a kilobyte while it waits for the head
/// timeout, not four times a live WebSocket's state. Bytes that cannot begin a request end the
/// wait at once: hyper answers them.
pub(crate) async fn read_first(io: &mut (impl AsyncRead + Unpin)) -> io::Result<First> {
    let mut read = BytesMut::with_capacity(FIRST_READ);
    loop {
        if read.len() == read.capacity() {
            read.reserve(read.len());
        }
        if io.read_buf(&mut read).await? == 0 {
            // hyper answers an incomplete request with nothing too, but let it decide.
            return Ok(if read.is_empty() { First::Closed } else { First::Other(read.freeze()) });
        }
        match parse(&read) {
            Parsed::Complete(request) => return Ok(First::Request(request, read.freeze())),
            Parsed::Partial if read.len() < HEAD_LIMIT => {}
            Parsed::Partial | Parsed::Other => return Ok(First::Other(read.freeze())),
        }
    }
}

enum Parsed {
    Complete(Box<Request<Body>>),
    Partial,
    /// Not a request this path serves (or not a valid one): hyper's to answer.
    Other,
}

/// [`parse`] for the fuzz target: any bytes, nothing returned.
pub(crate) fn fuzz_parse(bytes: &[u8]) {
    let _ = parse(bytes);
}

fn parse(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    match head.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    }
    // Checked first: any other method is hyper's, and needs no header map built here.
    let method = match head.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Parsed::Other,
    };
    let version = match head.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Parsed::Other,
    };
    let Some(Ok(uri)) = head.path.map(Uri::try_from) else {
        return Parsed::Other;
    };
    let mut map = HeaderMap::with_capacity(head.headers.len());
    for h in head.headers.iter() {
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value))
        else {
            return Parsed::Other;
        };
        map.append(name, value);
    }
    let has_body = map.contains_key(header::TRANSFER_ENCODING)
        || map.get_all(header::CONTENT_LENGTH).iter().any(|length| length.as_bytes() != b"0");
    // A WebSocket handshake needs hyper's upgrade machinery.
    if has_body || map.contains_key(header::UPGRADE) {
        return Parsed::Other;
    }
    let mut request = Request::new(Body::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = map;
    Parsed::Complete(Box::new(request))
}

/// Answers a connection's first request with `router`, as hyper would: the request gets the
/// peer's address.
pub(crate) async fn answer(
    peer: SocketAddr,
    request: Box<Request<Body>>,
    mut router: Router,
) -> Response<Body> {
    let mut request = *request;
    request.extensions_mut().insert(ConnectInfo(peer));
    let Ok(response) = router.call(request).await;
    response
}

/// Whether the router marked `response` as a stream for this path.
pub(crate) fn is_stream(response: &Response<Body>) -> bool {
    response.extensions().get::<DirectStream>().is_some()
}

/// Writes a stream's response, until its body ends or the peer goes away, and closes.
pub(crate) async fn serve<I>(mut io: I, peer: SocketAddr, version: Version, response: Response<Body>)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    match write_response(&mut io, version, response).await {
        Ok(()) => {
            // Flushes a TLS close_notify; on TCP, sends FIN.
            let _ = io.shutdown().await;
        }
        Err(e) => tracing::trace!(%peer, error = %e, "stream connection ended"),
    }
}

/// How a response body's end is told.
#[derive(Clone, Copy)]
enum Framing {
    Length(u64),
    Chunked,
    /// By closing the connection: HTTP/1.0 without a known length.
    Close,
}

async fn write_response<I>(io: &mut I, version: Version, response: Response<Body>) -> io::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let (parts, body) = response.into_parts();
    let framing = match body.size_hint().exact() {
        Some(length) => Framing::Length(length),
        None if version == Version::HTTP_11 => Framing::Chunked,
        None => Framing::Close,
    };
    let head = response_head(parts.status, &parts.headers, framing);
    let mut body = body.into_data_stream();
    // A stream's first part (`retry:`, `connected`, the replay) is ready at once: sent with the
    // head, in one write.
    if let Some(Some(first)) = body.next().now_or_never() {
        let first = first.map_err(io::Error::other)?;
        write_data(io, &head, framing, &first).await?;
    } else {
        write_all(io, &mut [IoSlice::new(&head)]).await?;
    }
    // Not kept for the stream's life.
    drop(head);

    let mut closed = Gate::new();
    loop {
        let next = poll_fn(|cx| {
            if let Poll::Ready(next) = body.poll_next_unpin(cx) {
                return Poll::Ready(Some(next));
            }
            // The socket is polled only once it woke: at fan-out rates, the body wakes the task
            // for every batch of publications, and checking the socket each time costs a lock.
            closed.poll(cx, |cx| poll_closed(&mut *io, cx)).map(|()| None)
        })
        .await;
        match next {
            None => return Err(io::ErrorKind::ConnectionAborted.into()),
            Some(None) => break,
            Some(Some(data)) => write_data(io, &[], framing, &data.map_err(io::Error::other)?).await?,
        }
    }
    if let Framing::Chunked = framing {
        write_all(io, &mut [IoSlice::new(b"0\r\n\r\n")]).await?;
    }
    Ok(())
}

/// The status line and headers, with the framing headers this path decides.
fn response_head(status: axum::http::StatusCode, headers: &HeaderMap, framing: Framing) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    // Writes into a Vec cannot fail.
    let _ = write!(head, "HTTP/1.1 {} {}\r\n", status.as_str(), status.canonical_reason().unwrap_or(""));
    for (name, value) in headers {
        if [header::CONNECTION, header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::DATE]
            .contains(name)
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let _ = write!(head, "date: {}\r\n", httpdate::fmt_http_date(SystemTime::now()));
    match framing {
        Framing::Length(length) => {
            let _ = write!(head, "content-length: {length}\r\n");
        }
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Close => {}
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

/// Writes `before` (the head, or nothing) and `data` framed as `framing` says.
async fn write_data<I>(io: &mut I, before: &[u8], framing: Framing, data: &[u8]) -> io::Result<()>
where
    I: AsyncWrite + Unpin,
{
    match framing {
        // An empty chunk would end a chunked body, so an empty `data` is written as nothing.
        Framing::Chunked if !data.is_empty() => {
            // 16 hex digits and CRLF at most.
            let mut size = [0u8; 18];
            let mut line = &mut size[..];
            let _ = write!(line, "{:x}\r\n", data.len());
            let size_len = 18 - line.len();
            let mut slices = [
                IoSlice::new(before),
                IoSlice::new(&size[..size_len]),
                IoSlice::new(data),
                IoSlice::new(b"\r\n"),
            ];
            write_all(io, &mut slices).await
        }
        _ => write_all(io, &mut [IoSlice::new(before), IoSlice::new(data)]).await,
    }
}

/// Writes every slice, then flushes (TLS may hold the last record until flushed). Slices that
/// fit are [`gather`]ed into one plain write.
async fn write_all<I: AsyncWrite + Unpin>(io: &mut I, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    // Gathered within one poll, so the buffer is on the stack and not in the connection's
    // future; what the socket does not take at once is kept on the heap until it does.
    let mut rest = None;
    let gathered = poll_fn(|cx| {
        let mut buf = [0u8; GATHER_LIMIT];
        let Some(bytes) = gather(slices.iter().map(|slice| &slice[..]), &mut buf) else {
            return Poll::Ready(Ok(false));
        };
        let taken = match Pin::new(&mut *io).poll_write(cx, bytes) {
            Poll::Ready(Ok(0)) if !bytes.is_empty() => {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()))
            }
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => 0,
        };
        if taken < bytes.len() {
            rest = Some(bytes[taken..].to_vec());
        }
        Poll::Ready(Ok(true))
    })
    .await?;
    if let Some(rest) = rest {
        io.write_all(&rest).await?;
    }
    if gathered {
        return io.flush().await;
    }
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = io.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    io.flush().await
}

/// Ready once the peer has closed its side (or the socket failed). Bytes it sends meanwhile, a
/// request pipelined behind the stream, are read and dropped: the stream never ends to answer it.
fn poll_closed(io: &mut (impl AsyncRead + Unpin), cx: &mut Context<'_>) -> Poll<()> {
    let mut scratch = [0u8; 64];
    loop {
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
            Poll::Ready(Ok(())) => continue,
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_arrive_whole_and_in_order_through_a_stream_that_fills_up() {
        // Gathered (small) and vectored (past the gather limit) chunks, to a stream that takes
        // 50 bytes at a time, so that most writes are cut short or refused.
        let (mut writer, mut reader) = tokio::io::duplex(50);
        let chunks: Vec<Vec<u8>> = [10, 3000, GATHER_LIMIT + 100, 1].iter().map(|&n| vec![b'a'; n]).collect();
        let expected: Vec<u8> = chunks
            .iter()
            .flat_map(|c| [format!("{:x}\r\n", c.len()).into_bytes(), c.clone(), b"\r\n".to_vec()].concat())
            .collect();
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.map(|_| got)
        });
        for chunk in &chunks {
            write_data(&mut writer, &[], Framing::Chunked, chunk).await.expect("written");
        }
        drop(writer);
        let got = reading.await.expect("reader").expect("read");
        assert!(got == expected, "{} bytes, wanted {}", got.len(), expected.len());
    }

    /// What `read_first` made of `sent`, or `None` while it still waits for more (the peer stays
    /// connected and silent).
    async fn first_of(sent: &[u8]) -> Option<First> {
        let (mut peer, mut io) = tokio::io::duplex(64 * 1024);
        peer.write_all(sent).await.expect("the duplex buffer holds the bytes");
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), read_first(&mut io)).await;
        // A duplex stream only fails when its other end is gone, and `peer` lives until here.
        first.ok().map(|r| r.expect("duplex read"))
    }

    #[tokio::test(start_paused = true)]
    async fn every_head_is_read_whole_before_hyper_sees_it() {
        // A head that is not plain, one byte or a few at a time, is still read here: hyper's
        // buffers wait for a complete head.
        for sent in [&b"P"[..], b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-", b"x"] {
            let sent_text = String::from_utf8_lossy(sent);
            assert!(first_of(sent).await.is_none(), "{sent_text:?} was handed over before its head was in");
        }
        let post = b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"";
        let Some(First::Other(read)) = first_of(post).await else {
            panic!("a complete POST head is hyper's");
        };
        assert_eq!(&read[..], &post[..], "hyper gets every byte read, the body's start included");
        // Bytes that cannot begin a request are hyper's at once, to refuse.
        assert!(matches!(first_of(b"\x16\x03\x01\x02").await, Some(First::Other(_))));
        assert!(matches!(first_of(b"GET /sse HTTP/1.1\r\n\r\n").await, Some(First::Request(..))));
    }

    #[test]
    fn only_plain_complete_heads_are_parsed_here() {
        let Parsed::Complete(request) =
            parse(b"GET /sse?channel=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 5\r\n\r\n")
        else {
            panic!("a plain head was not parsed");
        };
        assert_eq!(request.uri(), "/sse?channel=a");
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.headers()["last-event-id"], "5");

        assert!(matches!(parse(b"GET /sse HTTP/1.1\r\nHost: x\r\n"), Parsed::Partial));
        for other in [
            &b"GET /sse HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"[..],
            b"GET /sse HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /sse HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        ] {
            assert!(matches!(parse(other), Parsed::Other), "{:?}", String::from_utf8_lossy(other));
        }
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("x-{i}: y\r\n")).collect();
        assert!(matches!(parse(format!("GET /sse HTTP/1.1\r\n{many}\r\n").as_bytes()), Parsed::Other));
    }

    #[test]
    fn the_head_carries_the_framing_this_path_decides() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        let head = String::from_utf8(response_head(axum::http::StatusCode::OK, &headers, Framing::Chunked))
            .expect("the head is ASCII");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ndate: "), "{head}");
        assert!(head.ends_with("\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
    }
}
