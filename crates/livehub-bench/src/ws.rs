//! A minimal WebSocket client (RFC 6455) for the load generator: the opening handshake, reading
//! frames in place from a growing buffer, and masked frames out. It does what measuring needs,
//! not what a general client needs: no extensions, and fragments are read frame by frame.

use std::io;
use std::net::{IpAddr, SocketAddr};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http::{self, invalid};

/// Largest frame accepted from a server.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Frame opcodes.
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;

/// An open client connection: the socket and what has been read but not yet parsed.
pub(crate) struct WsClient {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
}

/// A frame's header, parsed in place.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameHead {
    pub(crate) opcode: u8,
    /// Where the payload starts in the buffer.
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

impl WsClient {
    /// Connects from `source` and completes the opening handshake on `path`.
    pub(crate) async fn connect(
        addr: SocketAddr,
        source: IpAddr,
        path: &str,
        protocol: Option<&str>,
    ) -> io::Result<Self> {
        let mut stream = http::connect(addr, source).await?;
        let key = STANDARD.encode(rand::random::<[u8; 16]>());
        let mut headers = format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        if let Some(protocol) = protocol {
            headers.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
        }
        http::get(&mut stream, addr, path, &headers).await?;
        let mut buf = BytesMut::with_capacity(http::READ_BUFFER);
        let head = http::read_head(&mut stream, &mut buf).await?;
        if head.status != 101 {
            return Err(invalid(&format!("the WebSocket handshake on {path} was answered {}", head.status)));
        }
        Ok(Self { stream, buf })
    }

    /// Reads until a whole frame is buffered; its payload is `self.buf[offset..offset + len]`
    /// until [`consume`](Self::consume) is called.
    pub(crate) async fn next_frame(&mut self) -> io::Result<FrameHead> {
        loop {
            if let Some(frame) = parse(&self.buf)? {
                return Ok(frame);
            }
            http::fill(&mut self.stream, &mut self.buf).await?;
        }
    }

    /// The next frame already buffered, without reading.
    pub(crate) fn buffered_frame(&self) -> io::Result<Option<FrameHead>> {
        parse(&self.buf)
    }

    /// Drops `frame` from the buffer.
    pub(crate) fn consume(&mut self, frame: FrameHead) {
        self.buf.advance(frame.offset + frame.len);
    }

    /// Sends one masked frame.
    pub(crate) async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&client_frame(opcode, payload)).await
    }

    /// Answers a ping whose payload is `frame`'s, then consumes it.
    pub(crate) async fn pong(&mut self, frame: FrameHead) -> io::Result<()> {
        let payload = self.buf[frame.offset..frame.offset + frame.len].to_vec();
        self.consume(frame);
        self.send(0xA, &payload).await
    }

    /// The close code and reason of a close frame.
    pub(crate) fn close_reason(&self, frame: FrameHead) -> String {
        let p = &self.buf[frame.offset..frame.offset + frame.len];
        if p.len() >= 2 {
            let code = u16::from_be_bytes([p[0], p[1]]);
            format!("closed by the server with {code} {}", String::from_utf8_lossy(&p[2..]))
        } else {
            "closed by the server".to_string()
        }
    }
}

/// Parses the frame at the start of `buf`, if all of it is there.
fn parse(buf: &[u8]) -> io::Result<Option<FrameHead>> {
    let Some((opcode, masked, len, offset)) = header(buf)? else { return Ok(None) };
    if masked {
        return Err(invalid("the server sent a masked frame"));
    }
    if buf.len() < offset + len {
        return Ok(None);
    }
    Ok(Some(FrameHead { opcode, offset, len }))
}

/// A frame header: opcode, whether masked, payload length, and header length (without the mask
/// key).
fn header(buf: &[u8]) -> io::Result<Option<(u8, bool, usize, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (len, offset) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            (usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX), 10)
        }
        126 | 127 => return Ok(None),
        n => (usize::from(n), 2),
    };
    if len > MAX_FRAME {
        return Err(invalid("frame too large"));
    }
    Ok(Some((buf[0] & 0x0f, buf[1] & 0x80 != 0, len, offset)))
}

/// A final client frame: masked, as RFC 6455 requires of clients.
pub(crate) fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    push_len(&mut out, payload.len(), 0x80);
    let mask: [u8; 4] = rand::random();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A final, unmasked server frame.
pub(crate) fn server_frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    push_len(out, payload.len(), 0);
    out.extend_from_slice(payload);
}

fn push_len(out: &mut Vec<u8>, len: usize, mask_bit: u8) {
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Unmasks a client frame at the start of `buf`: its opcode and payload, and the bytes it took.
pub(crate) fn parse_client_frame(buf: &[u8]) -> io::Result<Option<(u8, Vec<u8>, usize)>> {
    let Some((opcode, masked, len, offset)) = header(buf)? else { return Ok(None) };
    if !masked {
        return Err(invalid("a client frame must be masked"));
    }
    let end = offset + 4 + len;
    if buf.len() < end {
        return Ok(None);
    }
    let mask = &buf[offset..offset + 4];
    let payload = buf[offset + 4..end].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
    Ok(Some((opcode, payload, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_every_length_encoding_round_trip() {
        for len in [0usize, 5, 125, 126, 300, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut wire = Vec::new();
            server_frame(TEXT, &payload, &mut wire);
            let head = parse(&wire).expect("valid").expect("whole");
            assert_eq!((head.opcode, head.len), (TEXT, len));
            assert_eq!(&wire[head.offset..], &payload[..]);
            assert!(parse(&wire[..wire.len() - 1]).expect("valid").is_none() || len == 0);

            let masked = client_frame(BINARY, &payload);
            let (opcode, unmasked, used) = parse_client_frame(&masked).expect("valid").expect("whole");
            assert_eq!((opcode, used), (BINARY, masked.len()));
            assert_eq!(unmasked, payload);
        }
    }

    #[test]
    fn masked_server_frames_are_refused() {
        assert!(parse(&[0x81, 0x81, 0, 0, 0, 0, b'x']).is_err());
        assert!(parse_client_frame(&[0x81, 0x01, b'x']).is_err());
    }
}
