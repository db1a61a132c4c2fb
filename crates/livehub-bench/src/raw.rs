//! The raw ceiling: a WebSocket broadcast with no protocol logic. Subscribers connect on `/`,
//! a publisher on `/publish`; each batch of publisher messages is framed once and written to
//! every subscriber socket by one plain loop. No queues per connection, no channels, no
//! history: what livehub delivers, read as a fraction of this, is what its features cost.

use std::io;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Buf, BytesMut};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::http::invalid;
use crate::ws;

/// The GUID of RFC 6455's opening handshake.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

enum Event {
    Subscriber(TcpStream),
    /// Frames ready to write, already encoded.
    Frames(Vec<u8>),
}

/// Serves the ceiling on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    // Unbounded: the publisher is the load generator's closed loop, which bounds what is in
    // flight by itself.
    let (events, receiver) = mpsc::unbounded_channel();
    tokio::spawn(broadcast(receiver));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, or a connection reset before it was accepted: the
            // listener itself is fine, so wait a moment and go on.
            Err(e) => {
                eprintln!("raw: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let events = events.clone();
        tokio::spawn(async move {
            if let Err(e) = accept(stream, events).await {
                eprintln!("raw: {e}");
            }
        });
    }
}

async fn accept(mut stream: TcpStream, events: mpsc::UnboundedSender<Event>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(1024);
    let (path, key) = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(len) = request.parse(&buf).map_err(|e| invalid(&e.to_string()))? {
            let key = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .ok_or_else(|| invalid("not a WebSocket handshake"))?;
            let path = request.path.unwrap_or("/").to_string();
            buf.advance(len);
            break (path, key);
        }
    };
    let accept = STANDARD.encode(Sha1::digest(format!("{key}{WS_GUID}").as_bytes()));
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await?;
    if path == "/publish" {
        publisher(stream, buf, events).await
    } else {
        let _ = events.send(Event::Subscriber(stream));
        Ok(())
    }
}

/// Reads the publisher's messages and hands each read's worth, framed, to the broadcast loop.
async fn publisher(
    mut stream: TcpStream,
    mut buf: BytesMut,
    events: mpsc::UnboundedSender<Event>,
) -> io::Result<()> {
    loop {
        let mut frames = Vec::new();
        while let Some((opcode, payload, used)) = ws::parse_client_frame(&buf)? {
            buf.advance(used);
            match opcode {
                ws::TEXT | ws::BINARY => ws::server_frame(opcode, &payload, &mut frames),
                ws::CLOSE => return Ok(()),
                _ => {}
            }
        }
        if !frames.is_empty() && events.send(Event::Frames(frames)).is_err() {
            return Ok(());
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// A subscriber socket and how far into the stream of frames it has been written.
struct Subscriber {
    stream: TcpStream,
    /// Bytes of the stream written to it.
    sent: u64,
}

/// The loop: to each subscriber in turn, every frame published up to that moment, in one write.
///
/// New frames are taken in before every write, not once per round: a batch that arrives in
/// pieces while a round is under way joins it at once, as it joins the queue of a server's
/// connection task. Taken in once per round, the same load came out at four or at eight frames
/// per write from one run to the next, and the ceiling moved by half.
async fn broadcast(mut events: mpsc::UnboundedReceiver<Event>) {
    let mut subscribers: Vec<Subscriber> = Vec::new();
    // The stream of frames not yet written to every subscriber: `log` starts at byte `base` of
    // it.
    let mut log: Vec<u8> = Vec::new();
    let mut base: u64 = 0;
    loop {
        // Wait only when every subscriber has been written everything.
        if log.is_empty() {
            let Some(event) = events.recv().await else { return };
            take(event, &mut subscribers, &mut log, base);
        }
        let mut i = 0;
        while i < subscribers.len() {
            while let Ok(event) = events.try_recv() {
                take(event, &mut subscribers, &mut log, base);
            }
            let end = base + log.len() as u64;
            let subscriber = &mut subscribers[i];
            if subscriber.sent == end {
                i += 1;
                continue;
            }
            // `sent` is within `log`: it is at least `base` (the log is trimmed to the least
            // `sent` below) and at most `end`.
            let unsent = &log[(subscriber.sent - base) as usize..];
            if subscriber.stream.write_all(unsent).await.is_err() {
                subscribers.swap_remove(i);
            } else {
                subscriber.sent = end;
                i += 1;
            }
        }
        let written = subscribers.iter().map(|s| s.sent).min().unwrap_or(base + log.len() as u64);
        log.drain(..(written - base) as usize);
        base = written;
    }
}

/// Takes in a new subscriber or publisher frames.
fn take(event: Event, subscribers: &mut Vec<Subscriber>, log: &mut Vec<u8>, base: u64) {
    match event {
        // A new subscriber gets what is published after it joined.
        Event::Subscriber(stream) => subscribers.push(Subscriber { stream, sent: base + log.len() as u64 }),
        Event::Frames(frames) => log.extend_from_slice(&frames),
    }
}
