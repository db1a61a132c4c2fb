//! The WebSocket transport: `GET /ws`, JSON text or MessagePack binary frames.
//!
//! One task per connection runs [`Connection::run`]: it reads commands, drains the session's
//! queue (several publications become one write), pings, and closes with a documented code.
//! [`socket`] holds the handshake and the frame writer.

mod fragments;
mod socket;

pub(crate) use self::fragments::{fuzz_frames, ReassemblyBudget};
pub(crate) use self::socket::{frame_header, Socket, Upgrade, OPCODE_BINARY, OPCODE_TEXT};

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, LazyLock};
use std::task::Poll;
use std::time::Duration;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use livehub_core::{DeliveryTracker, Disconnect, Encoding, Publication, ResumeToken};
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use crate::access;
use crate::engine::{Budget, Client, ClientError, Reply, Request};
use crate::error::ApiError;
use crate::gate::Gate;
use crate::listen::FastPaths;
use crate::protocol::{message_frame, Format, JSON_PROTOCOL, MSGPACK_PROTOCOL};
use crate::transport::Transport;
use crate::App;

/// Most queued publications written in one batch: large enough to coalesce a backlog into few
/// writes, small enough that commands from the client are not kept waiting behind it.
const WRITE_BATCH: usize = 64;

/// What a client gets instead of a message our encoder failed to make valid UTF-8 (a bug).
const INTERNAL_ERROR: &str = "{\"type\":\"error\",\"code\":\"internal\"}";

/// How long to wait for the client's close frame after sending ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Initial read buffer of a connection. tungstenite's default (128 KiB) would dominate the memory
/// of an idle connection; commands are small, and the buffer grows for the rare large one.
const READ_BUFFER_SIZE: usize = 512;

/// `GET /ws`: upgrades to a WebSocket speaking the native protocol.
///
/// A refused connection (credential, origin, per-address limit) is still upgraded, and then
/// closed with a documented code and the error code as reason: browsers see nothing of an HTTP
/// refusal of a WebSocket handshake, but they do see a close frame.
pub(crate) async fn upgrade(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<Upgrade, Response>,
) -> Response {
    let config = app.config();
    // Before the handshake is checked: a client can then learn with a plain GET that the
    // transport is off, which a browser cannot read from a refused handshake.
    if !config.websocket.enabled {
        return ApiError::disabled("websocket").into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(refusal) => return refusal,
    };
    if app.shutting_down() {
        return ApiError::shutting_down().into_response();
    }
    // MessagePack when offered; the subprotocol is echoed only when the client named one.
    let (format, protocol) = if ws.requested_protocols().any(|p| p == MSGPACK_PROTOCOL) {
        (Format::MessagePack, Some(MSGPACK_PROTOCOL))
    } else if ws.requested_protocols().any(|p| p == JSON_PROTOCOL) {
        (Format::Json, Some(JSON_PROTOCOL))
    } else {
        (Format::Json, None)
    };
    let admission = app.access().admit(&headers, query.as_deref(), peer.ip());
    let resume = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "resume")
        .map(|(_, v)| v.into_owned());
    let max = config.limits.max_message_size;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(READ_BUFFER_SIZE);
    let budget = app.reassembly().clone();
    let message_timeout = Duration::from_secs(app.config().limits.message_timeout_secs.max(1));
    ws.accept(protocol, config, budget, move |mut socket| async move {
        match admission {
            Ok(admission) => {
                if socket.is_direct() {
                    FastPaths::taken(&app.fast_paths().websocket_tcp);
                }
                let tasks = app.upgraded().clone();
                let ttl = Duration::from_secs(app.config().websocket.session_ttl_secs);
                let owner = admission.identity.subject().map(str::to_owned);
                // Resumed when asked and possible; a fresh session otherwise, which the client
                // learns from `resumed: false` and fills by subscribing with its positions.
                let resumed = resume
                    .filter(|_| !ttl.is_zero())
                    .map(|token| app.node().resume(&token, owner.as_deref()));
                let (client, resumed) = match resumed {
                    Some(Ok(session)) => {
                        (Client::resumed(app, session, admission, peer.ip(), true), Some(true))
                    }
                    other => {
                        let receiver = app.node().connect("websocket");
                        (Client::new(app, receiver, admission, peer.ip(), true), other.map(|_| false))
                    }
                };
                let session = (!ttl.is_zero())
                    .then(|| Box::new(Resumable { token: ResumeToken::random(), ttl, owner }));
                let connection = Connection::new(socket, format, client, session, message_timeout);
                tasks.track_future(connection.run(resumed)).await;
            }
            Err(e) => {
                tracing::debug!(%peer, code = e.code(), "websocket refused");
                let reason = access::disconnect_for(&e);
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, close(&mut socket, &reason)).await;
            }
        }
    })
}

/// `GET /_test/echo`: echoes every message, for the Autobahn conformance suite only.
///
/// Replies go through the same frame writer as publications, so the suite also checks that
/// writer's framing and its interleaving with tungstenite's pongs and closes.
pub(crate) async fn echo(ws: Upgrade) -> Response {
    // Autobahn's largest messages are 16 MiB (cases 9.1.6 and 9.2.6).
    const ECHO_MAX: usize = 32 * 1024 * 1024;
    let config = WebSocketConfig::default().max_message_size(Some(ECHO_MAX)).max_frame_size(Some(ECHO_MAX));
    // Autobahn sends its large fragmented messages quickly; no budget of its own here.
    ws.accept(None, config, ReassemblyBudget::new(0), |mut socket| async move {
        while let Some(msg) = socket.recv().await {
            let (opcode, payload) = match msg {
                Ok(Message::Text(t)) => (OPCODE_TEXT, Bytes::from(t)),
                Ok(Message::Binary(b)) => (OPCODE_BINARY, b),
                Ok(_) => continue,
                Err(e) => {
                    let _ =
                        tokio::time::timeout(CLOSE_TIMEOUT, close(&mut socket, &read_error_disconnect(e)))
                            .await;
                    return;
                }
            };
            let (header, used) = frame_header(opcode, payload.len());
            if socket.write_frames(&[&header[..used], &payload[..]], |part| part).await.is_err() {
                return;
            }
        }
    })
}

/// One WebSocket connection's state, owned by its task: the socket, and the [`Client`] that
/// holds the protocol state and runs the commands.
struct Connection {
    socket: Socket,
    format: Format,
    client: Client,
    batch: Vec<Arc<Publication>>,
    /// Whether a ping is out and nothing has come back since.
    awaiting_pong: bool,
    /// Whether the client sent a close frame: it left on purpose, so its session is not parked.
    client_closed: bool,
    /// How the session outlives the connection, when it may (boxed: rare, and idle connections
    /// should stay small).
    resumable: Option<Box<Resumable>>,
    /// How long a message sent in fragments may take to finish.
    message_timeout: Duration,
    /// Fires when the unfinished fragmented message is past `message_timeout`; only while one is.
    message_deadline: Option<Pin<Box<Sleep>>>,
}

/// What parks a session when its connection drops.
struct Resumable {
    /// The token the client resumes with, given to it in `connected`.
    token: ResumeToken,
    /// How long the session waits.
    ttl: Duration,
    /// The subject that may resume it.
    owner: Option<String>,
}

/// The write side of a WebSocket connection: replies through tungstenite, publications as their
/// cached whole frames.
struct Writer<'a> {
    socket: &'a mut Socket,
    format: Format,
}

impl Transport for Writer<'_> {
    type Error = tungstenite::Error;

    async fn write(&mut self, reply: &Reply<'_>) -> Result<(), Self::Error> {
        self.socket.feed(frame(self.format, reply.encode(self.format))).await
    }

    async fn write_many(
        &mut self,
        publications: &mut Vec<Arc<Publication>>,
        tracker: &mut DeliveryTracker,
    ) -> Result<(), Self::Error> {
        publications.retain(|publication| tracker.admit(publication));
        let format = self.format;
        self.socket.write_frames(publications, |p| websocket_frame(format, p)).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.socket.flush().await
    }

    async fn close(&mut self, reason: &Disconnect) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close(self.socket, reason)).await;
    }
}

/// What woke the connection loop.
enum Event {
    /// Publications were moved from the queue into the batch.
    Publications,
    /// The server asked the connection to close (slow consumer, shutdown, kicked, token expired).
    Disconnected(Disconnect),
    /// The client sent a message, or the stream ended (`None`).
    Message(Option<Result<Message, tungstenite::Error>>),
    /// Time to ping.
    Ping,
}

/// Why the connection loop ended.
enum End {
    /// Close with this reason.
    Close(Disconnect),
    /// The socket is already gone (closed by the client, or broken).
    Gone,
}

impl Connection {
    fn new(
        socket: Socket,
        format: Format,
        client: Client,
        resumable: Option<Box<Resumable>>,
        message_timeout: Duration,
    ) -> Self {
        Self {
            socket,
            format,
            client,
            batch: Vec::new(),
            awaiting_pong: false,
            client_closed: false,
            resumable,
            message_timeout,
            message_deadline: None,
        }
    }

    fn writer(&mut self) -> Writer<'_> {
        Writer { socket: &mut self.socket, format: self.format }
    }

    async fn run(mut self, resumed: Option<bool>) {
        let session = self.client.session().clone();
        tracing::debug!(client = %session.id(), format = ?self.format, ?resumed, "websocket connected");
        let ping_every = Duration::from_secs(self.client.app().config().websocket.ping_interval_secs.max(1));
        let token = self.resumable.as_ref().map(|r| r.token.as_str().to_owned());
        let connected = self.client.connected(ping_every.as_secs(), token.as_deref(), resumed);
        let mut writer = self.writer();
        if Box::pin(async {
            writer.write(&connected).await?;
            writer.flush().await
        })
        .await
        .is_err()
        {
            return;
        }
        let shutdown = self.client.app().shutdown_token();
        // The wake-up futures are made once, not per loop turn: each one registers a waiter
        // under a lock, and the loop turns once per batch of publications on every connection.
        let cancelled = shutdown.cancelled();
        let disconnected = session.disconnected();
        tokio::pin!(cancelled, disconnected);
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        // Everything but the queue: polled only when one of them woke the task.
        let mut rare = Gate::for_session(&session);
        let end = loop {
            // Publications first: a wake-up for a publication then polls nothing else.
            // Commands are not starved by it: the queue is drained by each batch, and it only
            // refills while other tasks run, after this one has polled the socket.
            let event = poll_fn(|cx| {
                if self.client.receiver().poll_recv_many(cx, &mut self.batch, WRITE_BATCH).is_ready() {
                    return Poll::Ready(Event::Publications);
                }
                rare.poll(cx, |cx| {
                    if let Poll::Ready(reason) = disconnected.as_mut().poll(cx) {
                        return Poll::Ready(Event::Disconnected(reason));
                    }
                    if cancelled.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Disconnected(Disconnect::SHUTDOWN));
                    }
                    if let Poll::Ready(reason) = self.client.poll_expired(cx) {
                        return Poll::Ready(Event::Disconnected(reason));
                    }
                    if let Poll::Ready(message) = pin!(self.socket.recv()).poll(cx) {
                        return Poll::Ready(Event::Message(message));
                    }
                    // Reading may have gone through fragments of a message that is not finished.
                    if let Poll::Ready(reason) =
                        poll_unfinished(&self.socket, &mut self.message_deadline, self.message_timeout, cx)
                    {
                        return Poll::Ready(Event::Disconnected(reason));
                    }
                    keepalive.poll_tick(cx).map(|_| Event::Ping)
                })
            })
            .await;
            match event {
                Event::Publications => {
                    // A client that stopped reading blocks this write; the slow-consumer signal
                    // (its queue filled up meanwhile) or shutdown must still get through.
                    let stopped = poll_fn(|cx| {
                        rare.poll_part(cx, |cx| {
                            if let Poll::Ready(reason) = disconnected.as_mut().poll(cx) {
                                return Poll::Ready(reason);
                            }
                            cancelled.as_mut().poll(cx).map(|()| Disconnect::SHUTDOWN)
                        })
                    });
                    let mut writer = Writer { socket: &mut self.socket, format: self.format };
                    tokio::select! {
                        biased;
                        written = self.client.deliver(&mut self.batch, &mut writer) => if written.is_err() { break End::Gone },
                        reason = stopped => break End::Close(reason),
                    }
                }
                Event::Disconnected(reason) => break End::Close(reason),
                Event::Message(message) => {
                    self.awaiting_pong = false;
                    match message {
                        None => break End::Gone,
                        // The connection broke under us: nothing to close.
                        Some(Err(
                            tungstenite::Error::Io(_)
                            | tungstenite::Error::ConnectionClosed
                            | tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                        )) => break End::Gone,
                        Some(Err(e)) => {
                            let reason = read_error_disconnect(e);
                            if reason.code == Disconnect::MESSAGE_TOO_BIG.code {
                                self.client.app().access().count_limit("message_too_big");
                            }
                            break End::Close(reason);
                        }
                        // Boxed: commands are rare next to publications, and their futures are
                        // large; inline, they would make every idle connection's task kilobytes
                        // bigger.
                        Some(Ok(msg)) => match Box::pin(self.handle(msg)).await {
                            Ok(()) => {}
                            Err(end) => break end,
                        },
                    }
                }
                Event::Ping => {
                    if self.awaiting_pong {
                        break End::Close(Disconnect::NO_PONG);
                    }
                    self.awaiting_pong = true;
                    if Box::pin(self.socket.send(Message::Ping(Bytes::new()))).await.is_err() {
                        break End::Gone;
                    }
                }
            }
        };
        // A connection that dropped without a close (or stopped answering pings) may come back:
        // its session waits for it, when the server keeps sessions.
        let dropped = matches!(&end, End::Gone) && !self.client_closed
            || matches!(&end, End::Close(reason) if *reason == Disconnect::NO_PONG);
        if let End::Close(reason) = &end {
            tracing::debug!(client = %session.id(), code = reason.code, reason = %reason.reason, "closing websocket");
            Box::pin(self.writer().close(reason)).await;
        }
        if let (true, Some(resumable)) = (dropped, self.resumable.take()) {
            let Resumable { token, ttl, owner } = *resumable;
            let node = self.client.app().node().clone();
            let (receiver, tracker) = self.client.into_session();
            let parked = node.detach(token, receiver, tracker, owner.as_deref(), ttl);
            tracing::debug!(client = %session.id(), parked, "websocket dropped");
        }
    }

    /// Decodes one message and hands it to the client.
    async fn handle(&mut self, msg: Message) -> Result<(), End> {
        let bytes = match (&msg, self.format) {
            (Message::Text(text), Format::Json) => text.as_bytes(),
            (Message::Binary(bin), Format::MessagePack) => &bin[..],
            (Message::Text(_), Format::MessagePack) | (Message::Binary(_), Format::Json) => {
                let expected = if self.format == Format::Json { "JSON text" } else { "MessagePack binary" };
                let error = ClientError::BadRequest(format!("this connection speaks {expected} frames"));
                let reply = Reply::error(None, None, &error, self.client.id());
                let mut writer = Writer { socket: &mut self.socket, format: self.format };
                let written = async {
                    writer.write(&reply).await?;
                    writer.flush().await
                }
                .await;
                return written.map_err(|_| End::Gone);
            }
            // The client's close is answered by the library; reading on lets it flush the reply.
            (Message::Close(_), _) => {
                self.client_closed = true;
                return Ok(());
            }
            // (`Frame` is for writing raw frames; reading never yields one.)
            (Message::Ping(_) | Message::Pong(_) | Message::Frame(_), _) => return Ok(()),
        };
        let mut writer = Writer { socket: &mut self.socket, format: self.format };
        let written = match self.client.take_budget() {
            Budget::Flooding(reason) => return Err(End::Close(reason)),
            Budget::Over => self.client.refuse_over_budget(&mut writer).await,
            Budget::Within => match Request::decode(self.format, bytes) {
                Ok(request) => self.client.handle(request, &mut writer).await,
                Err(rejected) => self.client.reject(rejected, &mut writer).await,
            },
        };
        written.map_err(|_| End::Gone)
    }
}

/// Ready with the reason to close when the client's unfinished fragmented message is past its
/// deadline or over the server's reassembly budget. The deadline's timer exists only while a
/// message is unfinished.
fn poll_unfinished(
    socket: &Socket,
    deadline: &mut Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    cx: &mut std::task::Context<'_>,
) -> Poll<Disconnect> {
    if socket.over_reassembly_budget() {
        return Poll::Ready(Disconnect::REASSEMBLY_BUDGET);
    }
    let Some(started) = socket.unfinished_since() else {
        *deadline = None;
        return Poll::Pending;
    };
    let sleep = deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + timeout)));
    sleep.as_mut().poll(cx).map(|()| Disconnect::MESSAGE_TIMEOUT)
}

/// A publication as one whole WebSocket text frame of its JSON `message`, header included.
static TEXT_FRAME: LazyLock<Encoding> = LazyLock::new(|| Encoding::register("websocket-text"));
/// A publication as one whole WebSocket binary frame of its MessagePack `message`.
static BINARY_FRAME: LazyLock<Encoding> = LazyLock::new(|| Encoding::register("websocket-binary"));

/// A publication as one whole WebSocket frame in `format`, header included: encoded once per
/// publication and format, however many connections write it.
fn websocket_frame(format: Format, publication: &Publication) -> &[u8] {
    match format {
        Format::Json => publication.frame_ref(*TEXT_FRAME, |p| {
            let json = message_frame(Format::Json, p);
            // Our JSON encoder only produces UTF-8 (validated payloads and names); checked once
            // here so that a bug there yields an error message, not an invalid text frame.
            let json = match std::str::from_utf8(&json) {
                Ok(_) => json,
                Err(_) => Bytes::from_static(INTERNAL_ERROR.as_bytes()),
            };
            with_header(OPCODE_TEXT, &json)
        }),
        Format::MessagePack => publication
            .frame_ref(*BINARY_FRAME, |p| with_header(OPCODE_BINARY, &message_frame(Format::MessagePack, p))),
    }
}

/// `payload` as one whole frame with `opcode`.
fn with_header(opcode: u8, payload: &[u8]) -> Bytes {
    let (header, used) = frame_header(opcode, payload.len());
    let mut frame = BytesMut::with_capacity(used + payload.len());
    frame.put_slice(&header[..used]);
    frame.put_slice(payload);
    frame.freeze()
}

/// Wraps an encoded message in the frame type of `format`.
fn frame(format: Format, bytes: Bytes) -> Message {
    match format {
        Format::Json => match Utf8Bytes::try_from(bytes) {
            Ok(text) => Message::Text(text),
            // Our JSON encoders only produce UTF-8; this arm exists so that a bug there cannot
            // panic the connection task.
            Err(_) => Message::Text(Utf8Bytes::from_static(INTERNAL_ERROR)),
        },
        Format::MessagePack => Message::Binary(bytes),
    }
}

/// The close code for a read error: too big, invalid UTF-8 or a protocol violation.
fn read_error_disconnect(e: tungstenite::Error) -> Disconnect {
    match e {
        tungstenite::Error::Capacity(_) => Disconnect::MESSAGE_TOO_BIG,
        tungstenite::Error::Utf8(_) => Disconnect::INVALID_UTF8,
        tungstenite::Error::Protocol(p) => Disconnect::protocol_violation(truncate(p.to_string())),
        _ => Disconnect::PROTOCOL,
    }
}

/// Close reasons must fit in a control frame (123 bytes).
fn truncate(mut s: String) -> String {
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Sends a close frame and waits briefly for the client's, so the close handshake completes.
async fn close(socket: &mut Socket, reason: &Disconnect) -> Result<(), tungstenite::Error> {
    let frame = CloseFrame {
        code: CloseCode::from(reason.code),
        reason: Utf8Bytes::from(truncate(reason.reason.to_string())),
    };
    socket.send(Message::Close(Some(frame))).await?;
    let _ =
        tokio::time::timeout(CLOSE_TIMEOUT, async { while let Some(Ok(_)) = socket.recv().await {} }).await;
    Ok(())
}
