//! The HTTP/1.1 the load generator needs and no more: connect from a chosen source address, send
//! a request, read a response head, and read bodies by `Content-Length` or chunked, either whole
//! (long polling) or as they stream (SSE).

use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Initial read buffer of a connection: a small idle footprint; it grows for backlogs.
pub(crate) const READ_BUFFER: usize = 4 * 1024;

/// Opens a TCP connection to `addr` from `source` (port chosen by the kernel).
pub(crate) async fn connect(addr: SocketAddr, source: IpAddr) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // Binding picks the port before the destination is known, so a port is taken for every
    // destination, and the TIME_WAIT sockets of an earlier run exhaust the range. The default
    // source is left to connect(), which picks per destination and may reuse TIME_WAIT ports.
    if source != IpAddr::from([127, 0, 0, 1]) {
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length").and_then(|v| v.trim().parse().ok())
    }

    /// How the body after this head is delimited.
    pub(crate) fn framing(&self) -> Framing {
        if self.chunked() {
            Framing::Chunked
        } else if let Some(n) = self.content_length() {
            Framing::Length(n)
        } else if self.status == 204 || self.status == 304 || self.status == 101 {
            Framing::Length(0)
        } else {
            Framing::UntilClose
        }
    }
}

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads more bytes into `buf`; an error at end of stream.
pub(crate) async fn fill(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<()> {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(READ_BUFFER);
    }
    if stream.read_buf(buf).await? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
    }
    Ok(())
}

/// Reads a response head from `stream`, leaving what follows it in `buf`.
pub(crate) async fn read_head(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<Head> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let head = Head {
                    status: response.code.unwrap_or(0),
                    headers: response
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect(),
                };
                buf.advance(len);
                return Ok(head);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => fill(stream, buf).await?,
            Ok(httparse::Status::Partial) => return Err(invalid("response head too large")),
            Err(e) => return Err(invalid(&format!("bad response head: {e}"))),
        }
    }
}

/// Takes one whole response with a `Content-Length` body from the start of `buf`, if it is all
/// there; returns its status.
pub(crate) fn parse_response(buf: &mut BytesMut) -> io::Result<Option<u16>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&format!("bad response head: {e}"))),
    };
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
        .ok_or_else(|| invalid("a pipelined response needs a Content-Length"))?;
    let status = response.code.unwrap_or(0);
    if buf.len() < head_len + length {
        return Ok(None);
    }
    buf.advance(head_len + length);
    Ok(Some(status))
}

/// Writes a request with no body.
pub(crate) async fn get(
    stream: &mut TcpStream,
    host: SocketAddr,
    path: &str,
    headers: &str,
) -> io::Result<()> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await
}

/// Reads a whole body framed by `framing` (which must not be `UntilClose`).
pub(crate) async fn read_body(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    framing: Framing,
) -> io::Result<BytesMut> {
    match framing {
        Framing::Length(n) => {
            while buf.len() < n {
                fill(stream, buf).await?;
            }
            Ok(buf.split_to(n))
        }
        Framing::Chunked => {
            let mut body = BytesMut::new();
            let mut decoder = Dechunker::default();
            loop {
                if decoder.decode(buf, &mut body)? {
                    return Ok(body);
                }
                fill(stream, buf).await?;
            }
        }
        Framing::UntilClose => Err(invalid("a body without a length cannot be reused")),
    }
}

/// Decodes a chunked body incrementally.
#[derive(Default, Debug)]
pub(crate) struct Dechunker {
    /// Bytes left in the current chunk's data, then its CRLF.
    left: usize,
    in_data: bool,
}

impl Dechunker {
    /// Moves the decoded data available in `input` to `out`; `true` once the last chunk ended.
    pub(crate) fn decode(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> io::Result<bool> {
        loop {
            if self.in_data {
                let take = self.left.min(input.len());
                out.extend_from_slice(&input[..take]);
                input.advance(take);
                self.left -= take;
                if self.left > 0 {
                    return Ok(false);
                }
                if input.len() < 2 {
                    return Ok(false);
                }
                if &input[..2] != b"\r\n" {
                    return Err(invalid("chunk not followed by CRLF"));
                }
                input.advance(2);
                self.in_data = false;
            }
            let Some(eol) = input.windows(2).position(|w| w == b"\r\n") else {
                if input.len() > 1024 {
                    return Err(invalid("chunk size line too long"));
                }
                return Ok(false);
            };
            let line = std::str::from_utf8(&input[..eol]).map_err(|_| invalid("chunk size not ASCII"))?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // The last chunk: expect the empty trailer line.
                if input.len() < eol + 4 {
                    return Ok(false);
                }
                input.advance(eol + 4);
                return Ok(true);
            }
            input.advance(eol + 2);
            self.left = size;
            self.in_data = true;
        }
    }
}

pub(crate) fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_decode_across_any_split() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Dechunker::default();
            let mut out = BytesMut::new();
            let mut input = BytesMut::from(&wire[..split]);
            let done = d.decode(&mut input, &mut out).expect("decode");
            assert!(!done || split == wire.len());
            input.extend_from_slice(&wire[split..]);
            assert!(d.decode(&mut input, &mut out).expect("decode"));
            assert_eq!(&out[..], b"hello, world");
        }
    }

    #[test]
    fn pipelined_responses_are_taken_one_at_a_time() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 202 Accepted\r\nContent-Len"[..],
        );
        assert_eq!(parse_response(&mut buf).expect("valid"), Some(201));
        assert_eq!(parse_response(&mut buf).expect("valid"), None);
        buf.extend_from_slice(b"gth: 0\r\n\r\n");
        assert_eq!(parse_response(&mut buf).expect("valid"), Some(202));
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_chunks_are_errors() {
        let mut d = Dechunker::default();
        assert!(d.decode(&mut BytesMut::from(&b"zz\r\n"[..]), &mut BytesMut::new()).is_err());
    }
}
