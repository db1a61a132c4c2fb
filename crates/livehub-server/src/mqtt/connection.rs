//! One MQTT connection: its `CONNECT`, then a loop over the session's queue, the socket, the
//! keep-alive and the server's signals, until it ends; then its will and its session.
//!
//! The loop is shaped for the many connections that mostly wait. Its task holds the connection's
//! state and a few wake-up futures, and nothing else: the `CONNECT` phase, the packet handlers
//! and the end are boxed futures that exist only while they run, bytes are read into the stack
//! and kept only while a packet is incomplete, and the write buffer is let go once written.
//! A wake-up for publications polls nothing else; the socket, the timer and the signals sit
//! behind a [`Gate`].

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use livehub_auth::{AuthError, Identity};
use livehub_core::{ChannelFilter, Publication, SubscribeOptions};
use livehub_mqtt::{
    decode, encode, Ack, AckKind, ConnAck, Connect, DecodeError, Disconnect, Packet, Properties, Publish,
    QoS, Reason, RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe, Version, Will,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{sleep_until, Instant, Sleep};

use super::publish::{self, Message, Outbound};
use super::session::{Claim, MqttSession, Outgoing, Queued, Subscription};
use super::shared::Member;
use super::Mqtt;
use crate::access::Admission;
use crate::gate::Gate;
use crate::half_open::Slot;
use crate::App;

/// Longest a write to the client may take; a client that stops reading for longer is closed,
/// so it cannot pin its task (and its session's queue) for ever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Publications taken from the session's queue at a time.
const BATCH: usize = 64;

/// Bytes read from the socket at a time, into the stack: only an incomplete packet is kept in
/// the connection's own buffer, so a waiting connection holds no read buffer at all.
const READ_CHUNK: usize = 4096;

/// Bytes gathered for the client before they are written, while more wait to be encoded.
const FLUSH_AT: usize = 64 * 1024;

/// Longest client identifier accepted, in bytes (the specification guarantees 23; devices use
/// serial numbers and UUIDs).
const MAX_CLIENT_ID_LEN: usize = 256;

/// Publications refused in a row for the publish rate before the connection is closed (0x96).
const MAX_OVER_BUDGET: u32 = 100;

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// `DISCONNECT` with reason 0: no will.
    Normal,
    /// `DISCONNECT` with reason 0x04, or the socket closed: the will is published.
    Unclean,
    /// The server closes it, telling a v5 client `reason`; the will is published.
    Error(Reason, &'static str),
    /// Another connection took the client identifier over.
    TakenOver,
    /// The server is shutting down.
    Shutdown,
}

type Step = Result<(), End>;

impl From<DecodeError> for End {
    fn from(e: DecodeError) -> Self {
        End::Error(e.reason, e.message)
    }
}

/// Serves one accepted connection (TCP, TLS or WebSocket), from its `CONNECT` to its end.
/// `slot` is its half-open slot, held until the `CONNECT` has arrived.
///
/// Not an `async fn`: one would keep its arguments in the connection's task for its whole life,
/// next to the copies made from them. Here they go into the boxed start, which is freed once the
/// client is connected, as is the boxed end: what only the start and the end of a connection
/// need would otherwise stay in its task.
pub(crate) fn serve<S>(
    app: App,
    mqtt: Arc<Mqtt>,
    io: S,
    peer: SocketAddr,
    slot: Option<Slot>,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let start = Box::pin(start(app, mqtt, io, peer, slot));
    async move {
        let Some(mut conn) = start.await else { return };
        let end = conn.run().await;
        Box::pin(conn.finish(end)).await;
    }
}

/// Reads the `CONNECT` and answers it: the connection once accepted.
async fn start<S>(
    app: App,
    mqtt: Arc<Mqtt>,
    mut io: S,
    peer: SocketAddr,
    slot: Option<Slot>,
) -> Option<Conn<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (connect, buf) = read_connect(&app, &mut io, peer, slot).await?;
    Conn::accept(app, mqtt, io, buf, peer, connect).await
}

/// Reads the `CONNECT`, within the time a request head gets; gives it with the bytes read after
/// it, or `None` when none came (or the server stops first).
async fn read_connect<S>(
    app: &App,
    io: &mut S,
    peer: SocketAddr,
    slot: Option<Slot>,
) -> Option<(Box<Connect>, BytesMut)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let settings = &app.config().mqtt;
    let mut buf = BytesMut::with_capacity(256);
    let deadline = Instant::now() + Duration::from_secs(app.config().limits.request_head_timeout_secs.max(1));
    let shutdown = app.shutdown_token();
    loop {
        match decode(&buf, None, settings.max_packet_size) {
            Ok(Some(decoded)) => {
                buf.advance(decoded.len);
                // A complete CONNECT: no longer half-open.
                drop(slot);
                if buf.is_empty() {
                    buf = BytesMut::new();
                }
                return match decoded.packet {
                    Packet::Connect(connect) => Some((connect, buf)),
                    _ => None,
                };
            }
            Ok(None) => {}
            Err(e) => {
                if e.reason == Reason::UnsupportedProtocolVersion {
                    // A 3.1.1-shaped CONNACK: what a client of an older version can read.
                    let _ = io.write_all(&[0x20, 0x02, 0x00, 0x01]).await;
                }
                tracing::debug!(%peer, error = %e, "bad MQTT CONNECT");
                return None;
            }
        }
        let shed = async {
            match &slot {
                Some(slot) => slot.shed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = io.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
            () = sleep_until(deadline) => {
                tracing::debug!(%peer, "no MQTT CONNECT in time");
                return None;
            }
            () = shed => return None,
            () = shutdown.cancelled() => return None,
        }
    }
}

/// What woke the connection's loop.
enum Event {
    /// Publications from the session's queue.
    Publications(Vec<Arc<Publication>>),
    /// A publication a shared subscription's group handed over.
    Shared(Arc<Publication>),
    /// Bytes were read into the connection's buffer; 0 at the end of the stream.
    Read(io::Result<usize>),
    /// The timer ran out: the keep-alive's or the token's deadline may have passed.
    Timer,
    /// The connection ends.
    End(End),
}

/// A connection after its `CONNACK`.
struct Conn<S> {
    app: App,
    mqtt: Arc<Mqtt>,
    io: S,
    /// Bytes read and not yet decoded.
    buf: BytesMut,
    /// Bytes to write at the next flush.
    out: Vec<u8>,
    peer: SocketAddr,
    version: Version,
    client_id: String,
    admission: Admission,
    claim: Claim,
    session: Box<MqttSession>,
    /// 1.5 times the client's keep-alive; `None` when it has none.
    keep_alive: Option<Duration>,
    /// When the keep-alive runs out; moved on by every packet.
    alive_until: Instant,
    /// When the client's token expires.
    expires: Option<Instant>,
    /// Set for the earlier of the keep-alive's and the token's deadlines, and moved on only
    /// when it runs out (every packet moves the keep-alive's, and a timer reset per packet
    /// would cost a trip through the timer wheel each); `None` when there is neither.
    timer: Option<Pin<Box<Sleep>>>,
    /// The largest packet the client accepts.
    client_max_packet: usize,
    /// QoS 1 and 2 publications in flight to the client at most.
    inflight_limit: usize,
    /// The client's topic aliases.
    aliases: HashMap<u16, String>,
    /// Boxed: most clients have none, and a will is large.
    will: Option<Box<Will>>,
    /// Seconds the session outlives the connection.
    session_expiry: u32,
    /// Publications refused in a row for the publish rate.
    over_budget: u32,
    /// `PUBLISH` packets written and not yet added to the broker's count.
    sent: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Conn<S> {
    /// Checks the `CONNECT`, admits the client, claims its session and answers `CONNACK`;
    /// `None` when it was refused (the refusal is written).
    async fn accept(
        app: App,
        mqtt: Arc<Mqtt>,
        mut io: S,
        buf: BytesMut,
        peer: SocketAddr,
        connect: Box<Connect>,
    ) -> Option<Self> {
        let version = connect.version;
        let settings = app.config().mqtt.clone();
        let refuse = |reason: Reason, message: &str| {
            let mut properties = Properties::default();
            if version == Version::V5 {
                properties.reason_string = Some(message.to_owned());
            }
            let mut out = Vec::new();
            encode(
                &Packet::ConnAck(ConnAck { session_present: false, reason, properties }),
                version,
                &mut out,
            );
            out
        };
        let refusal = if connect.properties.authentication_method.is_some() {
            Some((Reason::BadAuthenticationMethod, "extended authentication is not supported"))
        } else if connect.client_id.len() > MAX_CLIENT_ID_LEN {
            Some((Reason::ClientIdNotValid, "the client identifier is too long"))
        } else if version == Version::V311
            && settings.max_keep_alive_secs > 0
            && (connect.keep_alive == 0 || connect.keep_alive > settings.max_keep_alive_secs)
        {
            Some((Reason::ClientIdNotValid, "a keep-alive longer than the server allows"))
        } else if connect.client_id.is_empty() && !connect.clean_start && version == Version::V311 {
            Some((Reason::ClientIdNotValid, "an empty client identifier needs a clean session"))
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| ChannelFilter::new(&w.topic).is_err() || w.topic.contains(['+', '#']))
        {
            Some((Reason::TopicNameInvalid, "the will topic is not a valid topic"))
        } else {
            None
        };
        if let Some((reason, message)) = refusal {
            let _ = io.write_all(&refuse(reason, message)).await;
            return None;
        }
        let credential = connect.password.as_ref().and_then(|p| std::str::from_utf8(p).ok());
        let admission = match app.access().admit_credential(credential, peer.ip()) {
            Ok(admission) => admission,
            Err(e) => {
                let reason = match e {
                    AuthError::TooManyConnections => Reason::QuotaExceeded,
                    AuthError::RateLimited => Reason::ConnectionRateExceeded,
                    AuthError::Forbidden(_) => Reason::NotAuthorized,
                    _ => Reason::BadUserNameOrPassword,
                };
                let _ = io.write_all(&refuse(reason, e.code())).await;
                return None;
            }
        };
        let mut properties = Properties::default();
        let client_id = if connect.client_id.is_empty() {
            let id = format!("livehub-{}", mqtt.next_client_number());
            properties.assigned_client_id = Some(id.clone());
            id
        } else {
            connect.client_id.clone()
        };
        mqtt.cancel_will(&client_id);
        let mut claim = mqtt.sessions.claim(&client_id, connect.clean_start).await;
        let session_present = claim.session.is_some();
        let session = claim.session.take().unwrap_or_else(|| {
            Box::new(MqttSession::new(app.node().connect(super::TRANSPORT), mqtt.next_client_number()))
        });
        let session_expiry = match version {
            Version::V311 if connect.clean_start => 0,
            Version::V311 => settings.max_session_expiry_secs,
            Version::V5 => {
                connect.properties.session_expiry.unwrap_or(0).min(settings.max_session_expiry_secs)
            }
        };
        if version == Version::V5 {
            properties.receive_maximum = Some(settings.receive_maximum.max(1));
            properties.topic_alias_maximum = Some(settings.topic_alias_maximum);
            properties.maximum_packet_size = u32::try_from(settings.max_packet_size).ok();
            properties.retain_available = Some(1);
            properties.wildcard_available = Some(1);
            properties.subscription_ids_available = Some(1);
            properties.shared_available = Some(1);
            if connect.properties.session_expiry.is_some_and(|asked| asked > session_expiry) {
                properties.session_expiry = Some(session_expiry);
            }
        }
        let client_receive_max = connect.properties.receive_maximum.unwrap_or(u16::MAX);
        let max_keep_alive = settings.max_keep_alive_secs;
        let asked = connect.keep_alive;
        let keep_alive_secs = if max_keep_alive > 0 && (asked == 0 || asked > max_keep_alive) {
            // Only a v5 client gets here (a 3.1.1 one was refused): it is told.
            properties.server_keep_alive = Some(max_keep_alive);
            max_keep_alive
        } else {
            asked
        };
        let keep_alive =
            (keep_alive_secs > 0).then(|| Duration::from_millis(u64::from(keep_alive_secs) * 1500));
        let expires = crate::access::time_left(&admission.identity).map(|left| Instant::now() + left);
        let mut conn = Self {
            mqtt: mqtt.clone(),
            io,
            buf,
            out: Vec::new(),
            peer,
            version,
            client_id,
            admission,
            session,
            claim,
            keep_alive,
            alive_until: Instant::now() + keep_alive.unwrap_or_default(),
            expires,
            timer: None,
            client_max_packet: connect.properties.maximum_packet_size.map_or(usize::MAX, |m| m as usize),
            inflight_limit: usize::from(client_receive_max.min(settings.max_inflight.max(1))),
            aliases: HashMap::new(),
            will: connect.will.map(Box::new),
            session_expiry,
            over_budget: 0,
            sent: 0,
            app,
        };
        conn.timer = conn.deadline().map(|at| Box::pin(tokio::time::sleep_until(at)));
        conn.packet(&Packet::ConnAck(ConnAck { session_present, reason: Reason::Success, properties }));
        mqtt.connected.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%peer, client = %conn.client_id, ?version, session_present, "MQTT client connected");
        if session_present {
            conn.resume().await;
        }
        if conn.pump().await.is_err() || conn.flush().await.is_err() {
            return Some(conn);
        }
        Some(conn)
    }

    /// Picks a resumed session up: what was queued while the client was away is routed (QoS 0
    /// messages are not kept for an offline client, as in Mosquitto), and what was in flight is
    /// sent again with DUP set.
    async fn resume(&mut self) {
        if self.session.receiver.session().disconnect_reason().is_some() {
            // Its queue overflowed while the client was away: what it holds is delivered, and a
            // fresh session takes its subscriptions over from here.
            let mut fresh = self.app.node().connect(super::TRANSPORT);
            for subscription in self.session.subscriptions.values() {
                if !subscription.shared {
                    let _ = self
                        .app
                        .node()
                        .subscribe(fresh.session(), &subscription.filter, SubscribeOptions::default())
                        .await;
                }
            }
            std::mem::swap(&mut self.session.receiver, &mut fresh);
            while let Some(publication) = fresh.try_recv() {
                self.route(&publication, false, true);
            }
        } else {
            while let Some(publication) = self.session.receiver.try_recv() {
                self.route(&publication, false, true);
            }
        }
        let ids: Vec<u16> = self.session.outgoing.keys().copied().collect();
        for id in ids {
            match self.session.outgoing.get_mut(&id) {
                Some(Outgoing::Published(publish)) => {
                    publish.dup = true;
                    let publish = (**publish).clone();
                    self.packet(&Packet::Publish(publish));
                }
                Some(Outgoing::Released) => self.ack(AckKind::PubRel, id, Reason::Success),
                None => {}
            }
        }
    }

    /// The loop: until the client leaves, breaks a rule, is taken over or the server stops.
    async fn run(&mut self) -> End {
        let shutdown = self.app.shutdown_token();
        let kick = self.claim.kick.clone();
        let session = self.session.receiver.session().clone();
        // Made once, not per loop turn: each registers a waiter under a lock.
        let cancelled = shutdown.cancelled();
        let kicked = kick.notified();
        let disconnected = session.disconnected();
        tokio::pin!(cancelled, kicked, disconnected);
        let mut rare = Gate::for_session(&session);
        let max_queued = self.app.config().mqtt.max_queued_messages;
        loop {
            let event = poll_fn(|cx| {
                // Publications first: a wake-up for them then polls nothing else. The socket is
                // not starved: each batch drains the queue, which refills only while other
                // tasks run.
                let room = self.session.pending.len() < max_queued;
                if room {
                    let mut batch = Vec::new();
                    if self.session.receiver.poll_recv_many(cx, &mut batch, BATCH).is_ready() {
                        return Poll::Ready(Event::Publications(batch));
                    }
                }
                rare.poll(cx, |cx| {
                    if cancelled.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::End(End::Shutdown));
                    }
                    if kicked.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::End(End::TakenOver));
                    }
                    if disconnected.as_mut().poll(cx).is_ready() {
                        let end = End::Error(Reason::QuotaExceeded, "the client reads too slowly");
                        return Poll::Ready(Event::End(end));
                    }
                    if let (true, Some(inbox)) = (room, &mut self.session.inbox) {
                        if let Poll::Ready(Some(publication)) = inbox.rx.poll_recv(cx) {
                            return Poll::Ready(Event::Shared(publication));
                        }
                    }
                    if let Poll::Ready(read) = self.poll_read(cx) {
                        return Poll::Ready(Event::Read(read));
                    }
                    match &mut self.timer {
                        Some(timer) => timer.as_mut().poll(cx).map(|()| Event::Timer),
                        None => Poll::Pending,
                    }
                })
            })
            .await;
            let step = match event {
                Event::Publications(batch) => {
                    for publication in &batch {
                        self.route(publication, false, false);
                    }
                    Ok(())
                }
                Event::Shared(publication) => {
                    self.route(&publication, true, false);
                    Ok(())
                }
                Event::Read(Ok(0) | Err(_)) => Err(End::Unclean),
                // Boxed: handling packets (publishing above all) takes large futures, and
                // subscribers rarely send any.
                Event::Read(Ok(_)) => Box::pin(self.on_bytes()).await,
                Event::Timer => self.on_timer(),
                Event::End(end) => Err(end),
            };
            let step = match step {
                Ok(()) => self.pump().await,
                Err(end) => Err(end),
            };
            if let Err(end) = step.and(self.flush().await) {
                return end;
            }
        }
    }

    /// Reads what the socket has into the stack, and keeps it in `buf` for decoding.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut read = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        self.buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    }

    /// The earlier of the keep-alive's and the token's deadlines.
    fn deadline(&self) -> Option<Instant> {
        let alive = self.keep_alive.map(|_| self.alive_until);
        match (alive, self.expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The timer ran out: ends the connection if a deadline passed, or sets it for the next.
    fn on_timer(&mut self) -> Step {
        let now = Instant::now();
        if self.expires.is_some_and(|at| at <= now) {
            return Err(End::Error(Reason::NotAuthorized, "the token has expired"));
        }
        if self.keep_alive.is_some() && self.alive_until <= now {
            return Err(End::Error(Reason::KeepAliveTimeout, "no packet within 1.5 times the keep-alive"));
        }
        let next = self.deadline();
        if let (Some(timer), Some(at)) = (&mut self.timer, next) {
            timer.as_mut().reset(at);
        }
        Ok(())
    }

    /// Decodes and handles every whole packet read so far.
    async fn on_bytes(&mut self) -> Step {
        let max = self.app.config().mqtt.max_packet_size;
        while let Some(decoded) = decode(&self.buf, Some(self.version), max)? {
            self.buf.advance(decoded.len);
            if let Some(keep_alive) = self.keep_alive {
                self.alive_until = Instant::now() + keep_alive;
            }
            self.on_packet(decoded.packet).await?;
        }
        if self.buf.is_empty() {
            // Nothing incomplete: the buffer is let go until the next read.
            self.buf = BytesMut::new();
        }
        Ok(())
    }

    async fn on_packet(&mut self, packet: Packet) -> Step {
        match packet {
            Packet::Publish(publish) => self.on_publish(publish).await,
            Packet::Ack(ack) => self.on_ack(ack),
            Packet::Subscribe(subscribe) => self.on_subscribe(subscribe).await,
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(unsubscribe),
            Packet::PingReq => {
                self.packet(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(disconnect) => self.on_disconnect(disconnect),
            Packet::Connect(_) => Err(End::Error(Reason::ProtocolError, "a second CONNECT")),
            Packet::Auth(_) => Err(End::Error(Reason::ProtocolError, "AUTH without extended authentication")),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(End::Error(Reason::ProtocolError, "a packet only a server sends"))
            }
        }
    }

    async fn on_publish(&mut self, mut publish: Publish) -> Step {
        if let Some(alias) = publish.properties.topic_alias {
            if alias > self.app.config().mqtt.topic_alias_maximum {
                return Err(End::Error(Reason::TopicAliasInvalid, "a topic alias above the maximum"));
            }
            if publish.topic.is_empty() {
                match self.aliases.get(&alias) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => return Err(End::Error(Reason::ProtocolError, "an unknown topic alias")),
                }
            } else {
                self.aliases.insert(alias, publish.topic.clone());
            }
        }
        if publish.topic.is_empty() || publish.topic.contains(['+', '#']) {
            return Err(End::Error(Reason::TopicNameInvalid, "not a valid topic name"));
        }
        let id = publish.packet_id;
        if publish.qos == QoS::ExactlyOnce {
            let id = id.unwrap_or_default();
            if self.session.incoming.contains(&id) {
                // Sent again before its PUBREL: published once already.
                self.ack(AckKind::PubRec, id, Reason::Success);
                return Ok(());
            }
            if self.session.incoming.len() >= usize::from(self.app.config().mqtt.receive_maximum.max(1)) {
                return Err(End::Error(
                    Reason::ReceiveMaximumExceeded,
                    "more QoS 2 publications in flight than allowed",
                ));
            }
        }
        let reason = if publish.properties.payload_format == Some(1)
            && std::str::from_utf8(&publish.payload).is_err()
        {
            Reason::PayloadFormatInvalid
        } else {
            let message = Message::from_publish(&publish);
            let origin = self.session.receiver.session().id();
            publish::publish(&self.app, &self.mqtt, &self.admission.identity, self.peer.ip(), origin, message)
                .await
        };
        if reason == Reason::QuotaExceeded {
            self.over_budget += 1;
            if self.over_budget > MAX_OVER_BUDGET {
                return Err(End::Error(Reason::MessageRateTooHigh, "publishing faster than allowed"));
            }
        } else {
            self.over_budget = 0;
        }
        match (publish.qos, id) {
            (QoS::AtLeastOnce, Some(id)) => self.ack(AckKind::PubAck, id, reason),
            (QoS::ExactlyOnce, Some(id)) => {
                if !reason.is_error() {
                    self.session.incoming.insert(id);
                }
                self.ack(AckKind::PubRec, id, reason);
            }
            _ => {}
        }
        Ok(())
    }

    fn on_ack(&mut self, ack: Ack) -> Step {
        let id = ack.packet_id;
        match ack.kind {
            AckKind::PubAck => {
                if matches!(self.session.outgoing.get(&id), Some(Outgoing::Published(p)) if p.qos == QoS::AtLeastOnce)
                {
                    self.session.outgoing.remove(&id);
                }
            }
            AckKind::PubRec => match self.session.outgoing.get(&id) {
                Some(Outgoing::Published(p)) if p.qos == QoS::ExactlyOnce => {
                    if ack.reason.is_error() {
                        self.session.outgoing.remove(&id);
                    } else {
                        self.session.outgoing.insert(id, Outgoing::Released);
                        self.ack(AckKind::PubRel, id, Reason::Success);
                    }
                }
                Some(Outgoing::Released) => self.ack(AckKind::PubRel, id, Reason::Success),
                _ => self.ack(AckKind::PubRel, id, Reason::PacketIdNotFound),
            },
            AckKind::PubRel => {
                let reason = if self.session.incoming.remove(&id) {
                    Reason::Success
                } else {
                    Reason::PacketIdNotFound
                };
                self.ack(AckKind::PubComp, id, reason);
            }
            AckKind::PubComp => {
                if matches!(self.session.outgoing.get(&id), Some(Outgoing::Released)) {
                    self.session.outgoing.remove(&id);
                }
            }
        }
        Ok(())
    }

    async fn on_subscribe(&mut self, subscribe: Subscribe) -> Step {
        let sub_id = subscribe.properties.subscription_ids.first().copied();
        let mut reasons = Vec::with_capacity(subscribe.filters.len());
        for (text, options) in subscribe.filters {
            let parsed = super::parse_filter(&text, &self.app.node().config().channel_limits);
            let (filter, shared) = match parsed {
                Ok(parsed) => parsed,
                Err(_) => {
                    reasons.push(Reason::TopicFilterInvalid);
                    continue;
                }
            };
            if shared && options.no_local {
                return Err(End::Error(Reason::ProtocolError, "no local on a shared subscription"));
            }
            if self.app.access().may_read(&self.admission.identity, &filter).is_err() {
                reasons.push(Reason::NotAuthorized);
                continue;
            }
            let subscription = Subscription { filter: filter.clone(), options, id: sub_id, shared };
            let new = self.session.subscriptions.insert(text.clone(), subscription).is_none();
            if new {
                let result = if shared {
                    let member = Member { id: self.session.member, tx: self.session.inbox_sender() };
                    self.mqtt.shared.join(&text, &filter, member, self.app.node()).await.map(drop)
                } else {
                    let session = self.session.receiver.session();
                    self.app.node().subscribe(session, &filter, SubscribeOptions::default()).await.map(drop)
                };
                if let Err(e) = result {
                    self.session.subscriptions.remove(&text);
                    tracing::debug!(client = %self.client_id, error = %e, "MQTT subscribe refused");
                    reasons.push(match e {
                        livehub_core::Error::TooManySubscriptions(_) => Reason::QuotaExceeded,
                        livehub_core::Error::InvalidChannel(_) => Reason::TopicFilterInvalid,
                        _ => Reason::Unspecified,
                    });
                    continue;
                }
            }
            reasons.push(match options.max_qos() {
                QoS::AtMostOnce => Reason::Success,
                QoS::AtLeastOnce => Reason::GrantedQos1,
                QoS::ExactlyOnce => Reason::GrantedQos2,
            });
            let send_retained = !shared
                && match options.retain_handling {
                    RetainHandling::OnSubscribe => true,
                    RetainHandling::OnNewSubscribe => new,
                    RetainHandling::Never => false,
                };
            if send_retained {
                for retained in self.mqtt.retained.matching(&filter) {
                    let mut publish = publish::retained_publish(&retained, options.max_qos());
                    if let Some(id) = sub_id {
                        publish.properties.subscription_ids.push(id);
                    }
                    self.enqueue(Queued::Publish(Box::new(publish)));
                }
            }
        }
        let suback = SubAck { packet_id: subscribe.packet_id, properties: Properties::default(), reasons };
        // The SUBACK goes before the retained messages it releases.
        let mut first = Vec::new();
        encode(&Packet::SubAck(suback), self.version, &mut first);
        first.append(&mut self.out);
        self.out = first;
        Ok(())
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Step {
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        for text in unsubscribe.filters {
            match self.session.subscriptions.remove(&text) {
                Some(subscription) => {
                    if subscription.shared {
                        self.mqtt.shared.leave(&text, self.session.member);
                    } else {
                        let _ = self
                            .app
                            .node()
                            .unsubscribe(self.session.receiver.session(), &subscription.filter);
                    }
                    reasons.push(Reason::Success);
                }
                None => reasons.push(Reason::NoSubscriptionExisted),
            }
        }
        let unsuback =
            UnsubAck { packet_id: unsubscribe.packet_id, properties: Properties::default(), reasons };
        self.packet(&Packet::UnsubAck(unsuback));
        Ok(())
    }

    fn on_disconnect(&mut self, disconnect: Disconnect) -> Step {
        if let Some(expiry) = disconnect.properties.session_expiry {
            if self.session_expiry == 0 && expiry > 0 {
                return Err(End::Error(
                    Reason::ProtocolError,
                    "a session expiry on DISCONNECT after none on CONNECT",
                ));
            }
            self.session_expiry = expiry.min(self.app.config().mqtt.max_session_expiry_secs);
        }
        match disconnect.reason {
            Reason::DisconnectWithWill => Err(End::Unclean),
            _ => Err(End::Normal),
        }
    }

    /// Turns a publication from the session's queue into a `PUBLISH` for this client, if one of
    /// its subscriptions still wants it, and writes or queues it. `shared`: a shared
    /// subscription's group handed it over (only shared subscriptions count), otherwise only the
    /// others do. `offline`: it was queued while the client was away, when only QoS 1 and 2
    /// messages are kept.
    fn route(&mut self, publication: &Publication, shared: bool, offline: bool) {
        let origin = self.session.receiver.session().id();
        let meta = self.mqtt.meta.get(&publication.data);
        let subscriptions = self.session.subscriptions.values().filter(|s| s.shared == shared);
        match publish::route(publication, meta.as_deref(), origin, subscriptions, self.version) {
            None => {}
            Some(Outbound::Frame(_)) if offline => {}
            // The common case, written at once: no copy of the frame's handle, no queue entry.
            Some(Outbound::Frame(frame)) if self.session.pending.is_empty() && self.out.len() < FLUSH_AT => {
                self.write_frame(frame);
            }
            Some(Outbound::Frame(frame)) => self.enqueue(Queued::Frame(frame.clone())),
            Some(Outbound::Publish(publish)) if offline && publish.qos == QoS::AtMostOnce => {}
            Some(Outbound::Publish(publish)) => self.enqueue(Queued::Publish(publish)),
        }
    }

    /// Queues `item` behind what waits for the in-flight window; past the session's limit it is
    /// dropped (and counted), the oldest messages being the ones kept.
    fn enqueue(&mut self, item: Queued) {
        if self.session.pending.len() >= self.app.config().mqtt.max_queued_messages {
            self.mqtt.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.session.pending.push_back(item);
    }

    /// Adds an encoded QoS 0 `PUBLISH` to what is written next, unless it is larger than the
    /// client takes (then it is dropped, as if delivered).
    fn write_frame(&mut self, frame: &[u8]) {
        if frame.len() <= self.client_max_packet {
            self.out.extend_from_slice(frame);
            self.sent += 1;
        }
    }

    /// Sends what the in-flight window has room for.
    async fn pump(&mut self) -> Step {
        while let Some(front) = self.session.pending.front() {
            if matches!(front, Queued::Publish(p) if p.qos != QoS::AtMostOnce)
                && self.session.outgoing.len() >= self.inflight_limit
            {
                break;
            }
            match self.session.pending.pop_front() {
                Some(Queued::Frame(frame)) => self.write_frame(&frame),
                Some(Queued::Publish(publish)) => {
                    if !self.write_publish(publish) {
                        break;
                    }
                }
                None => break,
            }
            if self.out.len() >= FLUSH_AT {
                self.flush().await?;
            }
        }
        if self.session.pending.is_empty() && self.session.pending.capacity() > 0 {
            self.session.pending = std::collections::VecDeque::new();
        }
        Ok(())
    }

    /// Encodes `publish` into what is written next, with a packet identifier when its QoS needs
    /// one (then it is in flight until acknowledged); `false`, with `publish` put back, when all
    /// identifiers are in flight. Not async, so that no `PUBLISH` is kept in the task's future.
    fn write_publish(&mut self, mut publish: Box<Publish>) -> bool {
        if publish.qos != QoS::AtMostOnce {
            let Some(id) = self.session.next_id() else {
                self.session.pending.push_front(Queued::Publish(publish));
                return false;
            };
            publish.packet_id = Some(id);
        }
        let start = self.out.len();
        let packet = Packet::Publish(*publish);
        encode(&packet, self.version, &mut self.out);
        let Packet::Publish(publish) = packet else { unreachable!("made above") };
        if self.out.len() - start > self.client_max_packet {
            // Larger than the client takes: dropped, as if delivered.
            self.out.truncate(start);
            return true;
        }
        self.sent += 1;
        if let Some(id) = publish.packet_id {
            self.session.outgoing.insert(id, Outgoing::Published(Box::new(publish)));
        }
        true
    }

    fn ack(&mut self, kind: AckKind, packet_id: u16, reason: Reason) {
        self.packet(&Packet::Ack(Ack { kind, packet_id, reason, properties: Properties::default() }));
    }

    fn packet(&mut self, packet: &Packet) {
        encode(packet, self.version, &mut self.out);
    }

    /// Writes what was gathered, and lets the buffer go.
    async fn flush(&mut self) -> Step {
        if self.sent > 0 {
            self.mqtt.sent.fetch_add(std::mem::take(&mut self.sent), Ordering::Relaxed);
        }
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        // Most writes go through at once: then no timer is set and no future made.
        let mut written = 0;
        let done = poll_fn(|cx| Poll::Ready(write_now(&mut self.io, &out, &mut written, cx))).await;
        match done {
            Ok(true) => Ok(()),
            Ok(false) => {
                let rest = &out[written..];
                let io = &mut self.io;
                let slow = async {
                    io.write_all(rest).await?;
                    io.flush().await
                };
                match Box::pin(tokio::time::timeout(WRITE_TIMEOUT, slow)).await {
                    Ok(Ok(())) => Ok(()),
                    _ => Err(End::Unclean),
                }
            }
            Err(_) => Err(End::Unclean),
        }
    }

    /// Ends the connection: tells a v5 client why, publishes the will when due, and keeps the
    /// session when it outlives the connection.
    async fn finish(mut self, end: End) {
        tracing::debug!(peer = %self.peer, client = %self.client_id, ?end, "MQTT connection ends");
        let reason = match &end {
            End::Error(reason, _) => Some(*reason),
            End::TakenOver => Some(Reason::SessionTakenOver),
            End::Shutdown => Some(Reason::ServerShuttingDown),
            End::Normal | End::Unclean => None,
        };
        if let (Some(reason), Version::V5) = (reason, self.version) {
            let mut properties = Properties::default();
            if let End::Error(_, message) = &end {
                properties.reason_string = Some((*message).to_owned());
            }
            self.packet(&Packet::Disconnect(Disconnect { reason, properties }));
            let _ = self.flush().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
        self.mqtt.connected.fetch_sub(1, Ordering::Relaxed);
        if let (Some(will), false) = (self.will.take(), matches!(end, End::Normal | End::Shutdown)) {
            let will = *will;
            let delay = will.properties.will_delay.unwrap_or(0).min(self.session_expiry);
            let origin = self.session.receiver.session().id();
            let message = Message::from_will(&will);
            let identity: Arc<Identity> = self.admission.identity.clone();
            self.mqtt
                .publish_will(&self.app, &self.client_id, identity, self.peer.ip(), origin, message, delay)
                .await;
        }
        let expiry = (self.session_expiry > 0).then(|| Duration::from_secs(u64::from(self.session_expiry)));
        if expiry.is_none() {
            for (text, subscription) in &self.session.subscriptions {
                if subscription.shared {
                    self.mqtt.shared.leave(text, self.session.member);
                }
            }
        }
        let session = expiry.is_some().then_some(self.session);
        self.mqtt.sessions.release(&self.client_id, self.claim.generation, session, expiry);
    }
}

/// Writes as much of `out` (from `written` on) as the socket takes without waiting, and flushes;
/// `Ok(true)` when all of it went.
fn write_now<S: AsyncWrite + Unpin>(
    io: &mut S,
    out: &[u8],
    written: &mut usize,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    while *written < out.len() {
        match Pin::new(&mut *io).poll_write(cx, &out[*written..]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => *written += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(false),
        }
    }
    match Pin::new(io).poll_flush(cx) {
        Poll::Ready(result) => result.map(|()| true),
        Poll::Pending => Ok(false),
    }
}

/// The bytes of an MQTT packet, for tests and the WebSocket path.
#[allow(dead_code)]
pub(crate) fn to_bytes(packet: &Packet, version: Version) -> Bytes {
    let mut out = Vec::new();
    encode(packet, version, &mut out);
    Bytes::from(out)
}
