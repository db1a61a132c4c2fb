//! One subscriber connection per task, speaking the target's protocol with the minimal clients
//! of [`crate::ws`] and [`crate::http`]. [`Subscriber::open`] returns once the server has the
//! subscription; [`Subscriber::run`] then counts every marker that arrives until the connection
//! ends.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;

use crate::http::{self, invalid, Dechunker, Framing};
use crate::marker::now_micros;
use crate::marker::{self, Encoding};
use crate::tally::Tally;
use crate::ws::{self, WsClient};
use crate::{Target, Transport};

/// The channel subscriber `index` of `channels` uses, as the target names it.
pub(crate) fn channel_name(target: Target, channel: usize) -> String {
    match target {
        // nchan's channel ids in the peer config are `\w+`.
        Target::Nchan => format!("bench{channel}"),
        _ => format!("bench/{channel}"),
    }
}

/// The pattern subscriber `index` follows in the `wildcards` scenario: a pattern of its own, as
/// each MQTT device follows its own command topic.
pub(crate) fn pattern_name(index: usize) -> String {
    format!("bench/{index}/+")
}

/// The channel the `wildcards` publisher uses for its channel `channel`: matched by the pattern
/// of subscriber `channel` and by no other.
pub(crate) fn wildcard_channel(channel: usize) -> String {
    format!("bench/{channel}/w")
}

/// `filter` for a query string: the wildcards `+` (a space there) and `#` (the fragment)
/// percent-encoded; channel names have nothing else that needs it.
fn query_value(filter: &str) -> String {
    filter.replace('+', "%2B").replace('#', "%23")
}

/// An open, subscribed connection.
pub(crate) enum Subscriber {
    Ws { client: WsClient, encoding: Encoding },
    Sse { stream: TcpStream, buf: BytesMut, body: BytesMut, chunks: Option<Dechunker> },
    Longpoll(Longpoll),
}

/// A long poller: one request at a time on a keep-alive connection.
pub(crate) struct Longpoll {
    target: Target,
    addr: SocketAddr,
    stream: TcpStream,
    buf: BytesMut,
    channel: String,
    /// livehub: the cursor of the last answer.
    cursor: String,
    /// nchan: `Last-Modified` and `Etag` of the last answer.
    since: Option<(String, String)>,
}

impl Subscriber {
    /// Connects from `source` and subscribes to `channel` (a pattern in the `wildcards` scenario).
    pub(crate) async fn open(
        target: Target,
        transport: Transport,
        addr: SocketAddr,
        source: IpAddr,
        channel: &str,
    ) -> io::Result<Self> {
        match transport {
            Transport::Ws | Transport::WsMsgpack => {
                let msgpack = transport == Transport::WsMsgpack;
                let path = match target {
                    Target::Livehub => "/ws".to_string(),
                    Target::Nchan => format!("/sub/{channel}"),
                    Target::NodeWs | Target::PythonWs | Target::Raw => "/".to_string(),
                };
                let protocol = msgpack.then_some("livehub.msgpack");
                let mut client = WsClient::connect(addr, source, &path, protocol).await?;
                if target == Target::Livehub {
                    livehub_subscribe(&mut client, channel, msgpack).await?;
                }
                let encoding = if msgpack { Encoding::MessagePack } else { Encoding::Json };
                Ok(Self::Ws { client, encoding })
            }
            Transport::SignalR | Transport::SignalRMsgpack => {
                let msgpack = transport == Transport::SignalRMsgpack;
                let mut client = WsClient::connect(addr, source, "/hubs/live", None).await?;
                signalr_subscribe(&mut client, channel, msgpack).await?;
                let encoding = if msgpack { Encoding::MessagePack } else { Encoding::Json };
                Ok(Self::Ws { client, encoding })
            }
            Transport::Sse => {
                let mut stream = http::connect(addr, source).await?;
                let path = match target {
                    Target::Livehub => format!("/sse?channel={}", query_value(channel)),
                    _ => format!("/sub/{channel}"),
                };
                http::get(&mut stream, addr, &path, "Accept: text/event-stream\r\n").await?;
                let mut buf = BytesMut::with_capacity(http::READ_BUFFER);
                let head = http::read_head(&mut stream, &mut buf).await?;
                if head.status != 200 {
                    return Err(invalid(&format!("the event stream {path} was answered {}", head.status)));
                }
                let chunks = (head.framing() == Framing::Chunked).then(Dechunker::default);
                Ok(Self::Sse { stream, buf, body: BytesMut::new(), chunks })
            }
            Transport::Longpoll => {
                let stream = http::connect(addr, source).await?;
                let mut poll = Longpoll {
                    target,
                    addr,
                    stream,
                    buf: BytesMut::with_capacity(http::READ_BUFFER),
                    channel: channel.to_string(),
                    cursor: String::new(),
                    since: None,
                };
                poll.start().await?;
                Ok(Self::Longpoll(poll))
            }
        }
    }

    /// Counts what arrives until the connection ends; the error says how it ended.
    pub(crate) async fn run(self, tally: Arc<Tally>) -> io::Error {
        let result = match self {
            Self::Ws { mut client, encoding } => read_ws(&mut client, encoding, &tally).await,
            Self::Sse { mut stream, mut buf, mut body, mut chunks } => loop {
                if let Err(e) = http::fill(&mut stream, &mut buf).await {
                    break Err(e);
                }
                let now = now_micros();
                match &mut chunks {
                    Some(decoder) => match decoder.decode(&mut buf, &mut body) {
                        Ok(false) => {}
                        Ok(true) => break Err(invalid("the event stream ended")),
                        Err(e) => break Err(e),
                    },
                    None => body.extend_from_slice(&buf.split()),
                }
                // Only whole events: a marker split across reads is seen once it is complete.
                if let Some(end) = body.windows(2).rposition(|w| w == b"\n\n") {
                    marker::scan(&body[..end], Encoding::Json, |seq, ts| tally.receive(seq, ts, now));
                    body.advance(end + 2);
                }
            },
            Self::Longpoll(mut poll) => loop {
                match poll.next().await {
                    Ok(body) => {
                        let now = now_micros();
                        marker::scan(&body, Encoding::Json, |seq, ts| tally.receive(seq, ts, now));
                    }
                    Err(e) => break Err(e),
                }
            },
        };
        match result {
            Err(e) => e,
            Ok(()) => invalid("ended"),
        }
    }
}

async fn read_ws(client: &mut WsClient, encoding: Encoding, tally: &Tally) -> io::Result<()> {
    loop {
        let mut frame = client.next_frame().await?;
        // One timestamp for everything one read brought in.
        let now = now_micros();
        loop {
            match frame.opcode {
                ws::PING => client.pong(frame).await?,
                ws::CLOSE => return Err(invalid(&client.close_reason(frame))),
                _ => {
                    let payload = &client.buf[frame.offset..frame.offset + frame.len];
                    marker::scan(payload, encoding, |seq, ts| tally.receive(seq, ts, now));
                    client.consume(frame);
                }
            }
            match client.buffered_frame()? {
                Some(next) => frame = next,
                None => break,
            }
        }
    }
}

/// Sends livehub's `subscribe` and waits for its `subscribed`.
async fn livehub_subscribe(client: &mut WsClient, channel: &str, msgpack: bool) -> io::Result<()> {
    let command = serde_json::json!({ "id": 1, "action": "subscribe", "channels": [channel] });
    if msgpack {
        let bytes = rmp_serde::to_vec_named(&command).map_err(|e| invalid(&e.to_string()))?;
        client.send(ws::BINARY, &bytes).await?;
    } else {
        client.send(ws::TEXT, command.to_string().as_bytes()).await?;
    }
    loop {
        let frame = client.next_frame().await?;
        match frame.opcode {
            ws::PING => client.pong(frame).await?,
            ws::CLOSE => return Err(invalid(&client.close_reason(frame))),
            _ => {
                let payload = &client.buf[frame.offset..frame.offset + frame.len];
                let subscribed = contains(payload, b"subscribed");
                let error =
                    contains(payload, b"error").then(|| String::from_utf8_lossy(payload).into_owned());
                client.consume(frame);
                if let Some(error) = error {
                    return Err(invalid(&format!("subscribe refused: {error}")));
                }
                if subscribed {
                    return Ok(());
                }
            }
        }
    }
}

/// The SignalR handshake, then `Subscribe(channel)`, waiting for its completion.
async fn signalr_subscribe(client: &mut WsClient, channel: &str, msgpack: bool) -> io::Result<()> {
    let protocol = if msgpack { "messagepack" } else { "json" };
    let handshake = format!("{{\"protocol\":\"{protocol}\",\"version\":1}}\u{1e}");
    client.send(ws::TEXT, handshake.as_bytes()).await?;
    let answer = signalr_frame(client).await?;
    if answer != b"{}\x1e" {
        return Err(invalid(&format!("handshake refused: {}", String::from_utf8_lossy(&answer))));
    }
    if msgpack {
        let headers = std::collections::BTreeMap::<String, String>::new();
        let invocation = (1, headers, "1", "Subscribe", [[channel]]);
        let mut body = rmp_serde::to_vec(&invocation).map_err(|e| invalid(&e.to_string()))?;
        // Invocations this small have a one-byte length prefix.
        let len = u8::try_from(body.len())
            .ok()
            .filter(|len| *len < 0x80)
            .ok_or_else(|| invalid("channel name too long"))?;
        body.insert(0, len);
        client.send(ws::BINARY, &body).await?;
    } else {
        let invocation = serde_json::json!({ "type": 1, "invocationId": "1", "target": "Subscribe", "arguments": [[channel]] });
        client.send(ws::TEXT, format!("{invocation}\u{1e}").as_bytes()).await?;
    }
    // The completion: [3, {}, "1", 1 (error) | 3 (result), …] or {"type":3,…}.
    let completion = signalr_frame(client).await?;
    let failed = if msgpack { completion.get(5) == Some(&1) } else { contains(&completion, b"\"error\"") };
    if failed {
        return Err(invalid(&format!("subscribe refused: {}", String::from_utf8_lossy(&completion))));
    }
    Ok(())
}

/// The next data frame's payload, answering pings.
async fn signalr_frame(client: &mut WsClient) -> io::Result<Vec<u8>> {
    loop {
        let frame = client.next_frame().await?;
        match frame.opcode {
            ws::PING => client.pong(frame).await?,
            ws::CLOSE => return Err(invalid(&client.close_reason(frame))),
            _ => {
                let payload = client.buf[frame.offset..frame.offset + frame.len].to_vec();
                client.consume(frame);
                return Ok(payload);
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Longpoll {
    /// Makes sure the server will keep what is published from now on for this poller.
    async fn start(&mut self) -> io::Result<()> {
        match self.target {
            // A short poll gives the cursor of the current position; every later poll resumes
            // from a cursor, so nothing published in between is lost.
            Target::Livehub => {
                let path = format!("/poll?channel={}&timeout=0", self.channel);
                let (status, _) = self.request(&path, "").await?;
                if status != 204 && status != 200 {
                    return Err(invalid(&format!("the short poll {path} was answered {status}")));
                }
                self.send_next().await
            }
            // nchan holds a first request without `If-Modified-Since` for the next message.
            _ => self.send_next().await,
        }
    }

    fn next_path(&self) -> (String, String) {
        match self.target {
            Target::Livehub => {
                (format!("/poll?channel={}&timeout=30&cursor={}", self.channel, self.cursor), String::new())
            }
            _ => {
                let headers = match &self.since {
                    Some((modified, etag)) => {
                        format!("If-Modified-Since: {modified}\r\nIf-None-Match: {etag}\r\n")
                    }
                    None => String::new(),
                };
                (format!("/sub/{}", self.channel), headers)
            }
        }
    }

    async fn send_next(&mut self) -> io::Result<()> {
        let (path, headers) = self.next_path();
        http::get(&mut self.stream, self.addr, &path, &headers).await
    }

    /// Sends a request and reads its whole answer, remembering where to resume.
    async fn request(&mut self, path: &str, headers: &str) -> io::Result<(u16, BytesMut)> {
        http::get(&mut self.stream, self.addr, path, headers).await?;
        self.answer().await
    }

    async fn answer(&mut self) -> io::Result<(u16, BytesMut)> {
        let head = http::read_head(&mut self.stream, &mut self.buf).await?;
        let body = http::read_body(&mut self.stream, &mut self.buf, head.framing()).await?;
        match self.target {
            Target::Livehub => {
                if let Some(cursor) = head.header("livehub-cursor") {
                    self.cursor = cursor.to_string();
                }
            }
            _ => {
                if let (Some(modified), Some(etag)) = (head.header("last-modified"), head.header("etag")) {
                    self.since = Some((modified.to_string(), etag.to_string()));
                }
            }
        }
        Ok((head.status, body))
    }

    /// Waits for the outstanding poll's answer, sends the next poll, and returns the body.
    async fn next(&mut self) -> io::Result<BytesMut> {
        loop {
            let (status, body) = self.answer().await?;
            self.send_next().await?;
            match status {
                200 => return Ok(body),
                // Held until the timeout with nothing new; poll again.
                204 | 304 | 408 => continue,
                other => return Err(invalid(&format!("a poll was answered {other}"))),
            }
        }
    }
}
