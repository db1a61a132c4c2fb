//! The publishing side of each target: livehub's `publish` command over a WebSocket, nchan's
//! HTTP publisher endpoint, and the `/publish` WebSocket of the broadcast peers.

use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http::{self, invalid};
use crate::ws::{self, WsClient};
use crate::Target;

/// Most nchan publish requests sent and not yet answered.
const PIPELINE: usize = 32;

/// An open publishing connection.
pub(crate) enum Publisher {
    /// livehub: `publish` commands without an `id`, so no `ack` comes back; an `error` does.
    Livehub(WsClient),
    /// node-ws and raw: every text frame is broadcast.
    Broadcast(WsClient),
    /// nchan: `POST /pub/{channel}` on a keep-alive connection, pipelined: up to
    /// [`PIPELINE`] requests are sent before their answers are read, so that the publisher's
    /// round trips do not limit a server that could take more.
    Nchan { stream: TcpStream, buf: BytesMut, addr: SocketAddr, outstanding: usize },
}

impl Publisher {
    /// Connects to `target`'s publishing endpoint; `None` for a server that publishes by itself.
    pub(crate) async fn open(target: Target, addr: SocketAddr, source: IpAddr) -> io::Result<Option<Self>> {
        Ok(Some(match target {
            Target::Livehub => {
                let mut client = WsClient::connect(addr, source, "/ws", None).await?;
                // The `connected` greeting.
                let frame = client.next_frame().await?;
                client.consume(frame);
                Self::Livehub(client)
            }
            Target::NodeWs | Target::Raw => {
                Self::Broadcast(WsClient::connect(addr, source, "/publish", None).await?)
            }
            Target::Nchan => Self::Nchan {
                stream: http::connect(addr, source).await?,
                buf: BytesMut::with_capacity(http::READ_BUFFER),
                addr,
                outstanding: 0,
            },
            Target::PythonWs => return Ok(None),
        }))
    }

    /// Publishes `data` (compact JSON) on `channel`.
    pub(crate) async fn publish(&mut self, channel: &str, data: &str) -> io::Result<()> {
        match self {
            Self::Livehub(client) => {
                let command = format!("{{\"action\":\"publish\",\"channel\":\"{channel}\",\"data\":{data}}}");
                client.send(ws::TEXT, command.as_bytes()).await?;
                check_incoming(client)
            }
            Self::Broadcast(client) => {
                client.send(ws::TEXT, data.as_bytes()).await?;
                check_incoming(client)
            }
            Self::Nchan { stream, buf, addr, outstanding } => {
                let request = format!(
                    "POST /pub/{channel} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{data}",
                    data.len()
                );
                stream.write_all(request.as_bytes()).await?;
                *outstanding += 1;
                // Take the answers that are already in, then wait only if the pipeline is full.
                loop {
                    match stream.try_read_buf(buf) {
                        Ok(0) => return Err(invalid("nchan closed the publisher's connection")),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                while *outstanding > 0 {
                    let status = match http::parse_response(buf)? {
                        Some(status) => status,
                        None if *outstanding < PIPELINE => break,
                        None => {
                            http::fill(stream, buf).await?;
                            continue;
                        }
                    };
                    *outstanding -= 1;
                    if !(200..300).contains(&status) {
                        return Err(invalid(&format!("nchan refused a publication with {status}")));
                    }
                }
                Ok(())
            }
        }
    }
}

/// An `error` message as a sentence: its code and message, not the raw JSON.
fn refusal(payload: &[u8]) -> String {
    let error: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => format!("the server refused a publication ({code}): {message}"),
        (Some(code), None) => format!("the server refused a publication ({code})"),
        _ => "the server refused a publication".to_owned(),
    }
}

/// Reads what the server sent the publisher without waiting: answers pings, and fails on an
/// `error` or a close, which mean publications were refused.
fn check_incoming(client: &mut WsClient) -> io::Result<()> {
    loop {
        match client.stream.try_read_buf(&mut client.buf) {
            Ok(0) => return Err(invalid("the server closed the publisher's connection")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    while let Some(frame) = client.buffered_frame()? {
        let payload = &client.buf[frame.offset..frame.offset + frame.len];
        match frame.opcode {
            ws::CLOSE => return Err(invalid(&client.close_reason(frame))),
            ws::PING => {
                // Pongs are rare (one per ping interval); a frame written without waiting for
                // the socket is enough, and a full socket is the same failure as any other.
                let pong = ws::client_frame(0xA, payload);
                client.consume(frame);
                match client.stream.try_write(&pong) {
                    Ok(n) if n == pong.len() => {}
                    Ok(_) | Err(_) => return Err(invalid("could not answer a ping")),
                }
            }
            _ if payload.windows(7).any(|w| w == b"\"error\"") => {
                return Err(invalid(&refusal(payload)));
            }
            _ => client.consume(frame),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_a_sentence_not_json() {
        let payload = br#"{"type":"error","code":"rate_limited","message":"rate limit exceeded, slow down"}"#;
        assert_eq!(
            refusal(payload),
            "the server refused a publication (rate_limited): rate limit exceeded, slow down"
        );
        assert_eq!(refusal(b"not json"), "the server refused a publication");
    }
}
