//! One SignalR connection, whatever transport carries it: the handshake, then the loop that
//! drains the session's queue, runs the client's messages, pings, and enforces the timeouts.
//!
//! A transport is a [`Wire`]: bytes from the client (WebSocket messages, POST bodies) and
//! records to it (a WebSocket frame, an SSE event, the next long-poll body). The loop is the same
//! for all three, so a rule about the hub is written once.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use livehub_core::{Disconnect, Publication};
use tokio::time::Instant;

use super::hub::{self, HubState, HubWriter, Invocation};
use super::protocol::{
    handshake_response, read_handshake, Framer, Incoming, Outgoing, Protocol, ProtocolError,
};
use crate::access::Admission;
use crate::engine::{Budget, Client};
use crate::gate::Gate;
use crate::App;

/// Most queued publications written in one batch (as in the native WebSocket transport).
const WRITE_BATCH: usize = 64;

/// Most unacknowledged records kept for stateful reconnect; past it the connection is closed as a
/// slow consumer (ASP.NET Core bounds its buffer by bytes; a count keeps this simple).
const MAX_UNACKED: usize = 4096;

/// The transport side of a connection.
pub(crate) trait Wire: Send {
    /// Bytes from the client: `None` once it is gone, an error when the transport closes it
    /// with a reason (a WebSocket message over the limit). Cancel-safe.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Disconnect>>>;

    /// Writes whole records, in order, together: one WebSocket frame (binary when `binary`), one
    /// SSE event, or part of the next long-poll body. The records are shared (a publication's is
    /// cached for every connection), so a transport writes them without copying where it can.
    fn send(&mut self, records: &[Bytes], binary: bool) -> impl Future<Output = Result<(), ()>> + Send;

    /// Ends the transport (WebSocket close 1000, the end of the event stream, a `204` poll).
    fn close(&mut self, reason: &Disconnect) -> impl Future<Output = ()> + Send;

    /// Whether the transport carries binary records (SSE does not).
    fn binary(&self) -> bool {
        true
    }

    /// Whether the client shows it is there without sending anything (a long poll is held or
    /// just ended): the client timeout does not apply then.
    fn present(&self) -> bool {
        false
    }
}

/// What stateful reconnect keeps: the records the client has not acknowledged, and how many of
/// the client's messages arrived.
pub(crate) struct Replay {
    /// Sequence id of the first record in `unacked`.
    first: u64,
    unacked: VecDeque<Bytes>,
    /// Sequenced messages received from the client.
    received: u64,
    /// Whether `received` moved since the last `Ack` sent.
    ack_due: bool,
    /// Messages the client resends after a reconnect that had arrived already: skipped.
    skip: u64,
}

impl Replay {
    fn new() -> Self {
        Self { first: 1, unacked: VecDeque::new(), received: 0, ack_due: false, skip: 0 }
    }

    /// Keeps a record sent.
    pub(crate) fn keep(&mut self, record: Bytes) {
        self.unacked.push_back(record);
    }

    /// The client has every record up to `sequence`.
    fn ack(&mut self, sequence: u64) {
        while self.first <= sequence && self.unacked.pop_front().is_some() {
            self.first += 1;
        }
    }
}

/// Why a connection's loop ended.
pub(crate) enum End {
    /// Tell the client (a `Close` message) and end the transport.
    Close(Disconnect),
    /// The transport is gone; with stateful reconnect the session waits for the client.
    Gone,
    /// The client closed on purpose.
    Left,
}

/// What woke the loop.
enum Event {
    Publications,
    Disconnected(Disconnect),
    Received(Option<Result<Bytes, Disconnect>>),
    Ping,
    Timeout,
}

/// A connection after its handshake: the client, the hub's state, and its framing.
pub(crate) struct HubConnection {
    client: Client,
    protocol: Protocol,
    framer: Framer,
    state: HubState,
    out: Vec<Bytes>,
    batch: Vec<Arc<Publication>>,
    replay: Option<Replay>,
    last_seen: Instant,
}

/// The settings a connection runs with.
struct Timing {
    keep_alive: Duration,
    client_timeout: Duration,
}

/// Reads the handshake from `wire` and answers it; `None` when it failed or never came (the
/// client has been told, when it could be).
pub(crate) async fn handshake<W: Wire>(app: &App, wire: &mut W) -> Option<(Protocol, BytesMut)> {
    let timeout = Duration::from_secs(app.config().signalr.handshake_timeout_secs.max(1));
    let mut buf = BytesMut::new();
    let read = tokio::time::timeout(timeout, async {
        loop {
            match read_handshake(&mut buf) {
                Ok(Some(handshake)) => return Ok(handshake),
                Ok(None) => {}
                Err(e) => return Err(Some(e)),
            }
            match poll_fn(|cx| wire.poll_recv(cx)).await {
                Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
                _ => return Err(None),
            }
        }
    })
    .await;
    let refused = match read {
        Ok(Ok(handshake)) if handshake.protocol.is_binary() && !wire.binary() => {
            Some(ProtocolError::Handshake(
                "the 'messagepack' protocol needs a transport that carries binary data".into(),
            ))
        }
        Ok(Ok(handshake)) => {
            let ok = wire.send(&[handshake_response(None)], handshake.protocol.is_binary()).await;
            return ok.ok().map(|()| (handshake.protocol, buf));
        }
        Ok(Err(Some(e))) => Some(e),
        // The client left, or sent nothing in time: nothing to answer.
        Ok(Err(None)) | Err(_) => None,
    };
    if let Some(e) = refused {
        tracing::debug!(error = %e, "signalr handshake refused");
        let _ = wire.send(&[handshake_response(Some(&e.to_string()))], false).await;
    }
    wire.close(&Disconnect::PROTOCOL).await;
    None
}

impl HubConnection {
    /// A connection over a fresh session for `admission`, speaking `protocol`; `rest` is what
    /// followed the handshake. `stateful` keeps unacknowledged records for stateful reconnect.
    pub(crate) fn new(
        app: App,
        admission: Admission,
        peer: IpAddr,
        protocol: Protocol,
        rest: BytesMut,
        stateful: bool,
    ) -> Self {
        let max = app.config().limits.max_message_size;
        let receiver = app.node().connect("signalr");
        let client = Client::new(app, receiver, admission, peer, true);
        Self {
            client,
            protocol,
            framer: Framer::with(protocol, max, rest),
            state: HubState::default(),
            out: Vec::new(),
            batch: Vec::new(),
            replay: stateful.then(Replay::new),
            last_seen: Instant::now(),
        }
    }

    /// The connection's client.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Takes a new transport after a stateful reconnect. No handshake comes on it: the protocol
    /// is the one agreed before. Sends `Sequence` and every record the client has not
    /// acknowledged; the client sends its own `Sequence` and what the server has not
    /// acknowledged, and duplicates on either side are skipped by count.
    pub(crate) async fn reattach<W: Wire>(&mut self, wire: &mut W) -> bool {
        self.last_seen = Instant::now();
        let Some(replay) = &self.replay else { return false };
        let mut sequence = BytesMut::new();
        super::protocol::encode(self.protocol, &Outgoing::Sequence { sequence: replay.first }, &mut sequence);
        let records: Vec<Bytes> =
            std::iter::once(sequence.freeze()).chain(replay.unacked.iter().cloned()).collect();
        wire.send(&records, self.protocol.is_binary()).await.is_ok()
    }

    /// Whether the connection keeps records for stateful reconnect.
    pub(crate) fn is_stateful(&self) -> bool {
        self.replay.is_some()
    }

    /// Gives back the session, for parking it.
    pub(crate) fn into_parts(self) -> (Client, HubState, Option<Replay>, Protocol) {
        (self.client, self.state, self.replay, self.protocol)
    }

    /// A connection rebuilt from a parked one.
    pub(crate) fn from_parts(
        client: Client,
        state: HubState,
        replay: Option<Replay>,
        protocol: Protocol,
    ) -> Self {
        let max = client.app().config().limits.max_message_size;
        Self {
            client,
            protocol,
            framer: Framer::new(protocol, max),
            state,
            out: Vec::new(),
            batch: Vec::new(),
            replay,
            last_seen: Instant::now(),
        }
    }

    fn writer<'a, W: Wire>(
        &'a mut self,
        wire: &'a mut W,
        app: &'a App,
    ) -> (&'a mut Client, HubWriter<'a, W>) {
        let writer = HubWriter {
            wire,
            protocol: self.protocol,
            out: &mut self.out,
            state: &mut self.state,
            settings: &app.config().signalr,
            collected: Default::default(),
            sent: &mut self.replay,
        };
        (&mut self.client, writer)
    }

    /// Runs the connection on `wire` until it ends, and says why. Does not close the wire.
    pub(crate) async fn run<W: Wire>(&mut self, wire: &mut W) -> End {
        let app = self.client.app().clone();
        let settings = &app.config().signalr;
        let timing = Timing {
            keep_alive: Duration::from_secs(settings.keep_alive_secs.max(1)),
            client_timeout: Duration::from_secs(settings.client_timeout_secs.max(1)),
        };
        let session = self.client.session().clone();
        let shutdown = app.shutdown_token();
        let cancelled = shutdown.cancelled();
        let disconnected = session.disconnected();
        tokio::pin!(cancelled, disconnected);
        let mut keepalive = tokio::time::interval_at(Instant::now() + timing.keep_alive, timing.keep_alive);
        let deadline = tokio::time::sleep_until(self.last_seen + timing.client_timeout);
        tokio::pin!(deadline);
        let mut rare = Gate::for_session(&session);
        // Messages that followed the handshake in the same read.
        if let Err(end) = self.drain_framer(wire, &app).await {
            return end;
        }
        loop {
            let event = poll_fn(|cx| {
                if self.client.receiver().poll_recv_many(cx, &mut self.batch, WRITE_BATCH).is_ready() {
                    return Poll::Ready(Event::Publications);
                }
                // Everything else only when one of them woke the task: a wake-up for
                // publications polls nothing more.
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
                    if let Poll::Ready(received) = wire.poll_recv(cx) {
                        return Poll::Ready(Event::Received(received));
                    }
                    if keepalive.poll_tick(cx).is_ready() {
                        return Poll::Ready(Event::Ping);
                    }
                    deadline.as_mut().poll(cx).map(|()| Event::Timeout)
                })
            })
            .await;
            match event {
                Event::Publications => {
                    let mut batch = std::mem::take(&mut self.batch);
                    // A client that stopped reading blocks this write; the slow-consumer signal
                    // or shutdown must still end it. Polled through the gate, which they belong to.
                    let stopped = poll_fn(|cx| {
                        rare.poll_part(cx, |cx| {
                            if let Poll::Ready(reason) = disconnected.as_mut().poll(cx) {
                                return Poll::Ready(reason);
                            }
                            cancelled.as_mut().poll(cx).map(|()| Disconnect::SHUTDOWN)
                        })
                    });
                    let (client, mut writer) = self.writer(wire, &app);
                    let written = tokio::select! {
                        biased;
                        written = client.deliver(&mut batch, &mut writer) => written,
                        reason = stopped => return End::Close(reason),
                    };
                    self.batch = batch;
                    if written.is_err() {
                        return End::Gone;
                    }
                    if self.replay.as_ref().is_some_and(|r| r.unacked.len() > MAX_UNACKED) {
                        return End::Close(Disconnect::SLOW_CONSUMER);
                    }
                }
                Event::Disconnected(reason) => return End::Close(reason),
                Event::Received(None) => return End::Gone,
                Event::Received(Some(Err(reason))) => return End::Close(reason),
                Event::Received(Some(Ok(bytes))) => {
                    self.last_seen = Instant::now();
                    self.framer.push(&bytes);
                    if let Err(end) = self.drain_framer(wire, &app).await {
                        return end;
                    }
                }
                Event::Ping => {
                    let mut out = BytesMut::new();
                    if let Some(replay) = self.replay.as_mut().filter(|r| r.ack_due) {
                        replay.ack_due = false;
                        super::protocol::encode(
                            self.protocol,
                            &Outgoing::Ack { sequence: replay.received },
                            &mut out,
                        );
                    }
                    super::protocol::encode(self.protocol, &Outgoing::Ping, &mut out);
                    if wire.send(&[out.freeze()], self.protocol.is_binary()).await.is_err() {
                        return End::Gone;
                    }
                }
                Event::Timeout => {
                    if wire.present() {
                        self.last_seen = Instant::now();
                    }
                    let due = self.last_seen + timing.client_timeout;
                    if due <= Instant::now() {
                        let reason = format!(
                            "no message from the client in {} s (the client timeout)",
                            timing.client_timeout.as_secs()
                        );
                        return End::Close(Disconnect { code: 1000, reason: reason.into(), reconnect: true });
                    }
                    deadline.as_mut().reset(due);
                }
            }
        }
    }

    /// Runs every whole message the framer holds.
    async fn drain_framer<W: Wire>(&mut self, wire: &mut W, app: &App) -> Result<(), End> {
        loop {
            let message = match self.framer.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(client = %self.client.id(), error = %e, "signalr message refused");
                    let code = if matches!(e, ProtocolError::TooLarge(_)) { 1009 } else { 1002 };
                    return Err(End::Close(Disconnect {
                        code,
                        reason: e.to_string().into(),
                        reconnect: false,
                    }));
                }
            };
            if let Some(replay) = self.replay.as_mut().filter(|_| message.is_sequenced()) {
                if replay.skip > 0 {
                    replay.skip -= 1;
                    continue;
                }
                replay.received += 1;
                replay.ack_due = true;
            }
            self.handle(wire, app, message).await?;
        }
        if self.replay.as_ref().is_some_and(|r| r.ack_due) {
            // Acknowledged at once rather than at the next ping, so the client's buffer stays
            // small; one `Ack` per read covers every message in it.
            let replay = self.replay.as_mut().expect("checked just above");
            replay.ack_due = false;
            let mut out = BytesMut::new();
            super::protocol::encode(self.protocol, &Outgoing::Ack { sequence: replay.received }, &mut out);
            wire.send(&[out.freeze()], self.protocol.is_binary()).await.map_err(|()| End::Gone)?;
        }
        Ok(())
    }

    async fn handle<W: Wire>(&mut self, wire: &mut W, app: &App, message: Incoming) -> Result<(), End> {
        let budgeted = matches!(message, Incoming::Invocation { .. } | Incoming::StreamItem { .. });
        if budgeted {
            match self.client.take_budget() {
                Budget::Within => {}
                Budget::Flooding(reason) => return Err(End::Close(reason)),
                Budget::Over => {
                    if let Incoming::Invocation { id: Some(id), .. } = &message {
                        let (_, mut writer) = self.writer(wire, app);
                        let error = "rate_limited: too many messages; slow down".to_owned();
                        writer.message(&Outgoing::Completion { id, result: Err(error) });
                        writer.send().await.map_err(|()| End::Gone)?;
                    }
                    return Ok(());
                }
            }
        }
        let written = match message {
            Incoming::Invocation { id, target, arguments, stream_ids, stream } => {
                let (client, mut writer) = self.writer(wire, app);
                let invocation = Invocation { id, target, arguments, stream_ids, stream };
                hub::invoke(client, &mut writer, invocation).await
            }
            Incoming::StreamItem { id, item } => {
                let (client, mut writer) = self.writer(wire, app);
                hub::upload_item(client, &mut writer, &id, item).await
            }
            Incoming::Completion { id, error } => {
                let (_, mut writer) = self.writer(wire, app);
                hub::upload_done(&mut writer, &id, error).await
            }
            Incoming::Cancel { id } => {
                hub::cancel_stream(&mut self.client, &mut self.state, &id);
                Ok(())
            }
            Incoming::Close => return Err(End::Left),
            Incoming::Ack { sequence } => {
                if let Some(replay) = self.replay.as_mut() {
                    replay.ack(sequence);
                }
                Ok(())
            }
            // After a reconnect, the id of the client's next message: the ones it resends that
            // had arrived already are skipped by count.
            Incoming::Sequence { sequence } => {
                if let Some(replay) = self.replay.as_mut() {
                    replay.skip = replay.received.saturating_sub(sequence.saturating_sub(1));
                }
                Ok(())
            }
            Incoming::Unknown(kind) => {
                tracing::debug!(client = %self.client.id(), kind, "signalr message of an unknown type ignored");
                Ok(())
            }
            Incoming::Ping => Ok(()),
        };
        written.map_err(|()| End::Gone)
    }

    /// Tells the client why the connection ends (a `Close` message) and ends the transport.
    pub(crate) async fn close<W: Wire>(&mut self, wire: &mut W, reason: &Disconnect) {
        let mut out = BytesMut::new();
        let error = (reason.code != 1000 || !reason.reason.is_empty()).then_some(reason.reason.as_ref());
        let close = Outgoing::Close { error, allow_reconnect: reason.reconnect };
        super::protocol::encode(self.protocol, &close, &mut out);
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            wire.send(&[out.freeze()], self.protocol.is_binary()),
        )
        .await;
        wire.close(reason).await;
    }
}
