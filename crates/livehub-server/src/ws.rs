//! The WebSocket transport: `GET /ws`, JSON text or MessagePack binary frames.
//!
//! One task per connection runs [`Connection::run`]: it reads commands, drains the session's
//! queue (several publications become one write), pings, and closes with a documented code.
//! [`socket`] holds the handshake and the frame writer.

mod socket;

use std::future::{poll_fn, Future};
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use livehub_auth::{AuthError, Identity, IdentityKind, TokenBucket};
use livehub_core::{
    ChannelFilter, ChannelName, DeliveryTracker, Disconnect, HistoryQuery, Publication, SessionReceiver,
    SubscribeOptions, WireFormat,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use self::socket::{frame_header, Socket, Upgrade, OPCODE_BINARY, OPCODE_TEXT};

use crate::access::{self, Admission};
use crate::error::ApiError;
use crate::gate::Gate;
use crate::protocol::{
    encode, error_message, message_frame, message_value, position_value, Command, CommandData, Format,
    JSON_PROTOCOL, MSGPACK_PROTOCOL,
};
use crate::App;

/// Most queued publications written in one batch: large enough to coalesce a backlog into few
/// writes, small enough that commands from the client are not kept waiting behind it.
const WRITE_BATCH: usize = 64;

/// Most publications one `history` command returns.
const MAX_HISTORY_LIMIT: usize = 1000;

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
    ws: Upgrade,
) -> Response {
    let config = app.config();
    if !config.websocket.enabled {
        return ApiError::disabled("websocket").into_response();
    }
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
    let max = config.limits.max_message_size;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(READ_BUFFER_SIZE);
    ws.accept(protocol, config, move |mut socket| async move {
        match admission {
            Ok(admission) => {
                let receiver = app.node().connect("websocket");
                let tracker = app.upgraded().clone();
                let connection = Connection::new(app, socket, format, receiver, admission, peer.ip());
                tracker.track_future(connection.run()).await;
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
    ws.accept(None, config, |mut socket| async move {
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

/// One WebSocket connection's state, owned by its task.
struct Connection {
    app: App,
    socket: Socket,
    format: Format,
    receiver: SessionReceiver,
    tracker: DeliveryTracker,
    batch: Vec<Arc<Publication>>,
    /// Whether a ping is out and nothing has come back since.
    awaiting_pong: bool,
    /// Who is connected, and the address's connection slot.
    admission: Admission,
    peer: IpAddr,
    /// Fires when the token expires (unless refreshed first).
    expiry: Option<Pin<Box<Sleep>>>,
    /// The client's message budget; `None` when unlimited.
    budget: Option<TokenBucket>,
    /// Messages refused in a row for the budget; too many close the connection.
    over_budget: u32,
}

/// What woke the connection loop.
enum Event {
    /// Publications were moved from the queue into the batch.
    Publications,
    /// The server asked the connection to close (slow consumer, shutdown, kicked).
    Disconnected(Disconnect),
    /// The token expired.
    Expired,
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
        app: App,
        socket: Socket,
        format: Format,
        receiver: SessionReceiver,
        admission: Admission,
        peer: IpAddr,
    ) -> Self {
        let budget = app.access().message_bucket();
        let expiry = expiry(&admission.identity);
        Self {
            app,
            socket,
            format,
            receiver,
            tracker: DeliveryTracker::default(),
            batch: Vec::new(),
            awaiting_pong: false,
            admission,
            peer,
            expiry,
            budget,
            over_budget: 0,
        }
    }

    fn identity(&self) -> &Identity {
        &self.admission.identity
    }

    async fn run(mut self) {
        let session = self.receiver.session().clone();
        tracing::debug!(client = %session.id(), format = ?self.format, "websocket connected");
        let ping_every = Duration::from_secs(self.app.config().websocket.ping_interval_secs.max(1));
        let connected = json!({
            "type": "connected",
            "client": session.id().to_string(),
            "version": env!("CARGO_PKG_VERSION"),
            "ping_interval": ping_every.as_secs(),
            "expires": self.identity().expires_at().map(unix_millis),
        });
        if Box::pin(self.send(&connected)).await.is_err() {
            return;
        }
        let shutdown = self.app.shutdown_token();
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
                if self.receiver.poll_recv_many(cx, &mut self.batch, WRITE_BATCH).is_ready() {
                    return Poll::Ready(Event::Publications);
                }
                rare.poll(cx, |cx| {
                    if let Poll::Ready(reason) = disconnected.as_mut().poll(cx) {
                        return Poll::Ready(Event::Disconnected(reason));
                    }
                    if cancelled.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Disconnected(Disconnect::SHUTDOWN));
                    }
                    if let Some(expiry) = &mut self.expiry {
                        if expiry.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Event::Expired);
                        }
                    }
                    if let Poll::Ready(message) = pin!(self.socket.recv()).poll(cx) {
                        return Poll::Ready(Event::Message(message));
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
                    tokio::select! {
                        biased;
                        written = self.write_batch() => if written.is_err() { break End::Gone },
                        reason = stopped => break End::Close(reason),
                    }
                }
                Event::Disconnected(reason) => break End::Close(reason),
                Event::Expired => {
                    self.app.access().refuse(AuthError::TokenExpired);
                    break End::Close(access::TOKEN_EXPIRED);
                }
                Event::Message(message) => {
                    self.awaiting_pong = false;
                    match message {
                        None => break End::Gone,
                        Some(Err(e)) => {
                            let reason = read_error_disconnect(e);
                            if reason.code == Disconnect::MESSAGE_TOO_BIG.code {
                                self.app.access().count_limit("message_too_big");
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
        if let End::Close(reason) = end {
            tracing::debug!(client = %session.id(), code = reason.code, reason = %reason.reason, "closing websocket");
            // Bounded: the client may not be reading at all.
            let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, close(&mut self.socket, &reason))).await;
        }
    }

    /// Writes the queued publications the client has not seen, in one write when it can.
    async fn write_batch(&mut self) -> Result<(), tungstenite::Error> {
        let tracker = &mut self.tracker;
        self.batch.retain(|publication| tracker.admit(publication));
        let format = self.format;
        let written = self.socket.write_frames(&self.batch, |p| websocket_frame(format, p)).await;
        self.batch.clear();
        written
    }

    async fn handle(&mut self, msg: Message) -> Result<(), End> {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && !self.within_budget() {
            // A client far over its budget is flooding, not bursting: answering each message
            // would only add to the load.
            if self.over_budget > self.app.config().rate_limits.message_burst.max(1) {
                return Err(End::Close(access::disconnect_for(&AuthError::RateLimited)));
            }
            let error = self.app.access().refuse(AuthError::RateLimited);
            let message = error_message(None, None, error.code(), &error.to_string());
            return self.send(&message).await.map_err(|_| End::Gone);
        }
        let result = match (msg, self.format) {
            (Message::Text(text), Format::Json) => match serde_json::from_str(text.as_str()) {
                Ok(command) => self.command::<Box<serde_json::value::RawValue>>(command).await,
                Err(e) => self.send(&parse_error(&e.to_string(), e.is_data())).await,
            },
            (Message::Binary(bin), Format::MessagePack) => match rmp_serde::from_slice(&bin) {
                Ok(command) => self.command::<rmpv::Value>(command).await,
                Err(e) => {
                    self.send(&parse_error(&e.to_string(), matches!(e, rmp_serde::decode::Error::Syntax(_))))
                        .await
                }
            },
            (Message::Text(_), Format::MessagePack) | (Message::Binary(_), Format::Json) => {
                let expected = if self.format == Format::Json { "JSON text" } else { "MessagePack binary" };
                let message = format!("this connection speaks {expected} frames");
                self.send(&error_message(None, None, "bad_request", &message)).await
            }
            // The client's close is answered by the library; reading on lets it flush the reply.
            // (`Frame` is for writing raw frames; reading never yields one.)
            (Message::Close(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_), _) => Ok(()),
        };
        result.map_err(|_| End::Gone)
    }

    /// Takes one message from the budget.
    fn within_budget(&mut self) -> bool {
        let Some(budget) = &mut self.budget else { return true };
        if budget.try_take(Instant::now()) {
            self.over_budget = 0;
            true
        } else {
            self.over_budget += 1;
            false
        }
    }

    async fn command<D: CommandData + DeserializeOwned>(
        &mut self,
        cmd: Command<D>,
    ) -> Result<(), tungstenite::Error> {
        match cmd.action.as_str() {
            "subscribe" => self.subscribe(cmd).await,
            "unsubscribe" => self.unsubscribe(cmd).await,
            "publish" => self.publish(cmd).await,
            "history" => self.history(cmd).await,
            "refresh" => self.refresh(cmd).await,
            "ping" => self.send(&json!({ "type": "pong", "id": cmd.id })).await,
            other => {
                let message = format!("unknown action {other:?}");
                self.send(&error_message(cmd.id, None, "unknown_action", &message)).await
            }
        }
    }

    async fn subscribe<D>(&mut self, cmd: Command<D>) -> Result<(), tungstenite::Error> {
        if cmd.channels.is_empty() {
            return self
                .send(&error_message(cmd.id, None, "bad_request", "subscribe needs \"channels\""))
                .await;
        }
        let node = self.app.node().clone();
        let limits = node.config().channel_limits;
        let session = self.receiver.session().clone();
        for name in &cmd.channels {
            let filter = match ChannelFilter::with_limits(name, &limits) {
                Ok(filter) => filter,
                Err(e) => {
                    self.app.access().count_limit(e.code());
                    self.feed(&error_message(cmd.id, Some(name), e.code(), &e.to_string())).await?;
                    continue;
                }
            };
            if let Err(e) = self.app.access().may_read(self.identity(), &filter) {
                self.feed(&error_message(cmd.id, Some(name), e.code(), &e.to_string())).await?;
                continue;
            }
            let options = SubscribeOptions { recover: cmd.recover.get(name).cloned(), latest: cmd.latest };
            let subscribed = match node.subscribe(&session, &filter, options).await {
                Ok(subscribed) => subscribed,
                Err(e) => {
                    self.app.access().count_limit(e.code());
                    self.feed(&error_message(cmd.id, Some(name), e.code(), &e.to_string())).await?;
                    continue;
                }
            };
            let mut reply = json!({ "type": "subscribed", "id": cmd.id, "channel": name, "recovered": subscribed.recovered });
            let mut replay = subscribed.publications;
            match (&filter, &subscribed.position) {
                (ChannelFilter::Exact(channel), Some(position)) => {
                    reply["position"] = position_value(position);
                    self.feed(&reply).await?;
                    self.replay(&replay).await?;
                    self.tracker.mark(channel, position.offset, &position.epoch);
                }
                _ => {
                    // A pattern recovers the concrete channels the client names in `recover`.
                    let mut channels = serde_json::Map::new();
                    for (name, since) in &cmd.recover {
                        let Ok(channel) = ChannelName::with_limits(name, &limits) else { continue };
                        if !filter.matches(&channel) {
                            continue;
                        }
                        match node.recover(&channel, since).await {
                            Ok(r) => {
                                channels.insert(
                                    name.clone(),
                                    json!({ "position": position_value(&r.position), "recovered": r.recovered }),
                                );
                                replay.extend(r.publications);
                            }
                            Err(e) => {
                                channels.insert(name.clone(), json!({ "error": e.code() }));
                            }
                        }
                    }
                    // `recovered` stays false: a pattern cannot vouch for channels the client
                    // never named (first published while it was away); `channels` says which
                    // named channels were recovered.
                    if !channels.is_empty() {
                        reply["channels"] = channels.into();
                    }
                    self.feed(&reply).await?;
                    self.replay(&replay).await?;
                }
            }
        }
        self.socket.flush().await
    }

    async fn replay(&mut self, publications: &[Arc<Publication>]) -> Result<(), tungstenite::Error> {
        let tracker = &mut self.tracker;
        let fresh: Vec<&Arc<Publication>> = publications.iter().filter(|p| tracker.admit(p)).collect();
        let format = self.format;
        self.socket.write_frames(&fresh, |p| websocket_frame(format, p)).await
    }

    async fn unsubscribe<D>(&mut self, cmd: Command<D>) -> Result<(), tungstenite::Error> {
        if cmd.channels.is_empty() {
            return self
                .send(&error_message(cmd.id, None, "bad_request", "unsubscribe needs \"channels\""))
                .await;
        }
        let mut failed = false;
        for name in &cmd.channels {
            let result = ChannelFilter::with_limits(name, &self.app.node().config().channel_limits)
                .and_then(|filter| self.app.node().unsubscribe(self.receiver.session(), &filter));
            if let Err(e) = result {
                failed = true;
                self.feed(&error_message(cmd.id, Some(name), e.code(), &e.to_string())).await?;
            }
        }
        if let (Some(id), false) = (cmd.id, failed) {
            self.feed(&json!({ "type": "ack", "id": id })).await?;
        }
        self.socket.flush().await
    }

    async fn publish<D: CommandData>(&mut self, cmd: Command<D>) -> Result<(), tungstenite::Error> {
        let (app, identity, peer) = (&self.app, &self.admission.identity, self.peer);
        let result = async {
            let channel = cmd.channel.as_deref().ok_or(CommandError::Missing("channel"))?;
            let channel = ChannelName::with_limits(channel, &app.node().config().channel_limits)?;
            app.access().may_publish(identity, &channel)?;
            app.access().publish_allowed(peer, 1)?;
            let payload = cmd.data.ok_or(CommandError::Missing("data"))?.into_payload()?;
            let published = app.node().publish(&channel, payload, cmd.key.as_deref()).await?;
            Ok::<_, CommandError>((channel, published))
        }
        .await;
        match result {
            Ok((channel, published)) => match cmd.id {
                Some(id) => {
                    let ack = json!({
                        "type": "ack", "id": id, "channel": channel,
                        "offset": published.position.offset, "epoch": published.position.epoch,
                        "duplicate": published.duplicate,
                    });
                    self.send(&ack).await
                }
                None => Ok(()),
            },
            Err(e) => {
                self.app.access().count_limit(e.code());
                self.send(&error_message(cmd.id, cmd.channel.as_deref(), e.code(), &e.to_string())).await
            }
        }
    }

    async fn history<D>(&mut self, cmd: Command<D>) -> Result<(), tungstenite::Error> {
        let (app, identity) = (&self.app, &self.admission.identity);
        let result = async {
            let channel = cmd.channel.as_deref().ok_or(CommandError::Missing("channel"))?;
            let channel = ChannelName::with_limits(channel, &app.node().config().channel_limits)?;
            let filter = ChannelFilter::Exact(channel.clone());
            app.access().may_read(identity, &filter)?;
            let limit = cmd.limit.unwrap_or(100).min(MAX_HISTORY_LIMIT);
            let after = cmd.since.as_ref().map(|s| s.offset);
            let history = app.node().history(&channel, HistoryQuery { after, limit }).await?;
            if let Some(since) = &cmd.since {
                if since.epoch != history.position.epoch {
                    return Err(CommandError::EpochMismatch(history.position.epoch.to_string()));
                }
            }
            Ok::<_, CommandError>((channel, history))
        }
        .await;
        match result {
            Ok((channel, history)) => {
                let reply = json!({
                    "type": "history", "id": cmd.id, "channel": channel,
                    "position": position_value(&history.position),
                    "publications": history.publications.iter().map(|p| message_value(p)).collect::<Vec<Value>>(),
                });
                self.send(&reply).await
            }
            Err(e) => {
                self.send(&error_message(cmd.id, cmd.channel.as_deref(), e.code(), &e.to_string())).await
            }
        }
    }

    /// `refresh`: replaces the connection's token before it expires. The new token must name the
    /// same subject; subscriptions it no longer allows are dropped, each with an `error`.
    async fn refresh<D>(&mut self, cmd: Command<D>) -> Result<(), tungstenite::Error> {
        let verified = (|| {
            let token = cmd.token.as_deref().ok_or(CommandError::Missing("token"))?;
            let identity = self.app.access().refresh(token)?;
            // Only a token can be refreshed: an anonymous or API-key connection taking on a user
            // would be a login, not a refresh.
            let user =
                matches!(self.identity().kind(), IdentityKind::User) && self.identity().subject().is_some();
            if !user || identity.subject() != self.identity().subject() {
                return Err(CommandError::SubjectChanged);
            }
            Ok(identity)
        })();
        let identity = match verified {
            Ok(identity) => identity,
            Err(e) => return self.send(&error_message(cmd.id, None, e.code(), &e.to_string())).await,
        };
        self.expiry = expiry(&identity);
        self.admission.identity = identity;
        let session = self.receiver.session().clone();
        for filter in session.filters() {
            if let Err(e) = self.identity().may_subscribe(&filter) {
                let _ = self.app.node().unsubscribe(&session, &filter);
                let name = filter.to_string();
                // No `id`: these are notices about subscriptions, and the `ack` is the answer.
                let message = "unsubscribed: the refreshed token does not allow this channel";
                self.feed(&error_message(None, Some(&name), e.code(), message)).await?;
            }
        }
        let expires = self.identity().expires_at().map(unix_millis);
        self.send(&json!({ "type": "ack", "id": cmd.id, "expires": expires })).await
    }

    async fn feed(&mut self, message: &Value) -> Result<(), tungstenite::Error> {
        self.socket.feed(frame(self.format, encode(self.format, message))).await
    }

    async fn send(&mut self, message: &Value) -> Result<(), tungstenite::Error> {
        self.feed(message).await?;
        self.socket.flush().await
    }
}

/// Why a command failed, as the client sees it.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    /// A required field is missing.
    #[error("missing field \"{0}\"")]
    Missing(&'static str),
    /// `history` was asked for positions of another epoch.
    #[error("the channel's history is now in epoch {0}; positions from another epoch cannot be continued")]
    EpochMismatch(String),
    /// A `refresh` token for another subject, or on a connection not opened with a token.
    #[error("a refreshed token must name the same subject as the token the connection was opened with")]
    SubjectChanged,
    /// Access control refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The channel model refused.
    #[error(transparent)]
    Core(#[from] livehub_core::Error),
}

impl CommandError {
    fn code(&self) -> &'static str {
        match self {
            Self::Missing(_) => "bad_request",
            Self::EpochMismatch(_) => "epoch_mismatch",
            Self::SubjectChanged => "forbidden",
            Self::Auth(e) => e.code(),
            Self::Core(e) => e.code(),
        }
    }
}

/// A timer for when `identity`'s token expires, if it does.
fn expiry(identity: &Identity) -> Option<Pin<Box<Sleep>>> {
    access::time_left(identity).map(|left| Box::pin(tokio::time::sleep(left)))
}

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The error for a command that could not be decoded: `bad_request` when it was well-formed but
/// lacked a field, `invalid_json`/`invalid_msgpack` otherwise.
fn parse_error(detail: &str, well_formed: bool) -> Value {
    let code = if well_formed { "bad_request" } else { "invalid_message" };
    error_message(None, None, code, detail)
}

/// A publication as one whole WebSocket frame in `format`, header included: encoded once per
/// publication and format, however many connections write it.
fn websocket_frame(format: Format, publication: &Publication) -> &[u8] {
    match format {
        Format::Json => publication.frame_ref(WireFormat::WebSocketText, |p| {
            let json = message_frame(Format::Json, p);
            // Our JSON encoder only produces UTF-8 (validated payloads and names); checked once
            // here so that a bug there yields an error message, not an invalid text frame.
            let json = match std::str::from_utf8(&json) {
                Ok(_) => json,
                Err(_) => Bytes::from_static(INTERNAL_ERROR.as_bytes()),
            };
            with_header(OPCODE_TEXT, &json)
        }),
        Format::MessagePack => publication.frame_ref(WireFormat::WebSocketBinary, |p| {
            with_header(OPCODE_BINARY, &message_frame(Format::MessagePack, p))
        }),
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
        tungstenite::Error::Utf8(_) => {
            Disconnect { code: 1007, reason: "invalid UTF-8 in a text message".into(), reconnect: false }
        }
        tungstenite::Error::Protocol(p) => {
            Disconnect { code: 1002, reason: truncate(p.to_string()).into(), reconnect: false }
        }
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
