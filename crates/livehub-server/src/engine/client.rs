//! [`Client`]: one connection's protocol state, and the one implementation of every command.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use livehub_auth::{AuthError, Identity, IdentityKind, TokenBucket};
use livehub_core::{
    ChannelFilter, ChannelName, ClientId, DeliveryTracker, Publication, Resumed, Session, SessionReceiver,
};
use tokio::time::Sleep;

use super::command::{Command, HistoryRequest, Publish, Refresh, Rejected, Request, Subscribe, Unsubscribe};
use super::error::ClientError;
use super::reply::{ChannelStart, Reply};
use super::subscribe::{Positions, Subscriber};
use crate::access::{self, Admission};
use crate::transport::Transport;
use crate::App;

/// One connection's protocol state: who it is, what it has been sent, its budget and its token's
/// expiry. Owned by the connection's task; every transport drives one.
pub(crate) struct Client {
    app: App,
    receiver: SessionReceiver,
    tracker: DeliveryTracker,
    /// Who is connected, and the address's connection slot.
    admission: Admission,
    /// Fires when the token expires (unless refreshed first).
    expiry: Option<Pin<Box<Sleep>>>,
    /// What a transport that takes commands needs; `None` for a stream that only subscribes
    /// once (SSE, long polling). Boxed: an idle stream should not carry it.
    commands: Option<Box<Commands>>,
}

/// The state of a connection that sends commands.
struct Commands {
    /// Where the connection comes from, for the per-address publish budget.
    peer: IpAddr,
    /// The client's message budget; `None` when unlimited.
    budget: Option<TokenBucket>,
    /// Messages refused in a row for the budget; too many close the connection.
    over_budget: u32,
}

/// What the budget says about one more message from the client.
pub(crate) enum Budget {
    /// Within it: handle the message.
    Within,
    /// Over it: answer `rate_limited` and drop the message.
    Over,
    /// Far over it, flooding rather than bursting: close with this reason.
    Flooding(livehub_core::Disconnect),
}

/// A stream's start, for transports that subscribe once, from the URL (SSE, long polling).
pub(crate) struct Opened {
    /// Per concrete channel resumed or subscribed: where it starts.
    pub(crate) channels: Vec<(ChannelName, ChannelStart)>,
    /// What to send before live publications, in order; pass it to
    /// [`Transport::write_many`] with the client's tracker.
    pub(crate) replay: Vec<Arc<Publication>>,
}

impl Client {
    /// A client for `receiver`'s session, admitted as `admission` from `peer`. `commands` says
    /// whether the transport takes commands (and so needs a message budget).
    pub(crate) fn new(
        app: App,
        receiver: SessionReceiver,
        admission: Admission,
        peer: IpAddr,
        commands: bool,
    ) -> Self {
        let commands = commands
            .then(|| Box::new(Commands { peer, budget: app.access().message_bucket(), over_budget: 0 }));
        let expiry = expiry(&admission.identity);
        Self { app, receiver, tracker: DeliveryTracker::default(), admission, expiry, commands }
    }

    /// A client over a session resumed from a parked one: it keeps what that session delivered.
    pub(crate) fn resumed(
        app: App,
        resumed: Resumed,
        admission: Admission,
        peer: IpAddr,
        commands: bool,
    ) -> Self {
        let mut client = Self::new(app, resumed.receiver, admission, peer, commands);
        client.tracker = resumed.tracker;
        client
    }

    /// The session and what it delivered, for parking it when the connection goes away.
    pub(crate) fn into_session(self) -> (SessionReceiver, DeliveryTracker) {
        (self.receiver, self.tracker)
    }

    /// Where a connection that sends commands comes from (unspecified for a stream, which
    /// sends none).
    fn peer(&self) -> IpAddr {
        self.commands.as_ref().map_or(IpAddr::from([0, 0, 0, 0]), |c| c.peer)
    }

    /// The session (for fan-out and presence).
    pub(crate) fn session(&self) -> &Session {
        self.receiver.session()
    }

    /// The connection's id.
    pub(crate) fn id(&self) -> ClientId {
        self.receiver.session().id()
    }

    /// Who is connected.
    pub(crate) fn identity(&self) -> &Identity {
        &self.admission.identity
    }

    /// The app.
    pub(crate) fn app(&self) -> &App {
        &self.app
    }

    /// Last delivered position per channel.
    pub(crate) fn tracker(&self) -> &DeliveryTracker {
        &self.tracker
    }

    /// The receiving side of the session's queue, for the transport's loop.
    pub(crate) fn receiver(&mut self) -> &mut SessionReceiver {
        &mut self.receiver
    }

    /// The `connected` message, with the session's resume token when it can outlive the
    /// connection, and whether it was resumed when that was asked for.
    pub(crate) fn connected<'a>(
        &self,
        ping_interval: u64,
        session: Option<&'a str>,
        resumed: Option<bool>,
    ) -> Reply<'a> {
        Reply::Connected {
            client: self.id(),
            ping_interval,
            expires: self.identity().expires_at().map(unix_millis),
            session,
            resumed,
        }
    }

    /// Ready when the connection's token has expired (and counts the refusal).
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<livehub_core::Disconnect> {
        let Some(expiry) = &mut self.expiry else { return Poll::Pending };
        if expiry.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.expiry = None;
        self.app.access().refuse(AuthError::TokenExpired);
        Poll::Ready(livehub_core::Disconnect::TOKEN_EXPIRED)
    }

    /// Takes one message from the client's budget.
    pub(crate) fn take_budget(&mut self) -> Budget {
        let Some(Commands { budget: Some(budget), over_budget, .. }) = self.commands.as_deref_mut() else {
            return Budget::Within;
        };
        if budget.try_take(Instant::now()) {
            *over_budget = 0;
            return Budget::Within;
        }
        *over_budget += 1;
        if *over_budget > self.app.config().rate_limits.message_burst.max(1) {
            return Budget::Flooding(access::disconnect_for(&AuthError::RateLimited));
        }
        Budget::Over
    }

    /// Writes the `rate_limited` error for a message over the budget.
    pub(crate) async fn refuse_over_budget<T: Transport>(
        &mut self,
        transport: &mut T,
    ) -> Result<(), T::Error> {
        let error = ClientError::Auth(self.app.access().refuse(AuthError::RateLimited));
        transport.write(&Reply::error(None, None, &error, self.id())).await?;
        transport.flush().await
    }

    /// Writes the queued publications this connection has not seen, in order.
    pub(crate) async fn deliver<T: Transport>(
        &mut self,
        batch: &mut Vec<Arc<Publication>>,
        transport: &mut T,
    ) -> Result<(), T::Error> {
        let written = transport.write_many(batch, &mut self.tracker).await;
        batch.clear();
        written
    }

    /// Answers a message that could not be decoded.
    pub(crate) async fn reject<T: Transport>(
        &mut self,
        rejected: Rejected,
        transport: &mut T,
    ) -> Result<(), T::Error> {
        transport.write(&Reply::error(rejected.id, None, &rejected.error, self.id())).await?;
        transport.flush().await
    }

    /// Runs one command and writes its replies.
    pub(crate) async fn handle<T: Transport>(
        &mut self,
        request: Request,
        transport: &mut T,
    ) -> Result<(), T::Error> {
        let id = request.id;
        match request.command {
            Command::Subscribe(cmd) => self.subscribe(id, cmd, transport).await,
            Command::Unsubscribe(cmd) => self.unsubscribe(id, cmd, transport).await,
            Command::Publish(cmd) => self.publish(id, cmd, transport).await,
            Command::History(cmd) => self.history(id, cmd, transport).await,
            Command::Refresh(cmd) => self.refresh(id, cmd, transport).await,
            Command::Ping => transport.write(&Reply::Pong { id }).await,
        }?;
        transport.flush().await
    }

    /// Subscribes to every filter, for a stream that names its channels once (SSE, long polling).
    /// One forbidden or failing filter fails the whole request, so that a stream never silently
    /// carries less than it asked for.
    pub(crate) async fn open(
        &mut self,
        filters: &[ChannelFilter],
        positions: &Positions,
        latest: bool,
    ) -> Result<Opened, ClientError> {
        for filter in filters {
            self.app.access().may_read(self.identity(), filter)?;
        }
        let node = self.app.node().clone();
        let session = self.session().clone();
        let mut subscriber = Subscriber::new(&node, &session, positions, latest);
        let mut opened = Opened { channels: Vec::new(), replay: Vec::new() };
        for filter in filters {
            let subscription = subscriber.subscribe(filter, &mut self.tracker).await?;
            if let (ChannelFilter::Exact(channel), Some(start)) = (filter, subscription.exact) {
                opened.channels.push((channel.clone(), start));
            }
            // A pattern's channel that failed to recover is left out: the stream still starts,
            // and the client's next cursor names it again.
            opened
                .channels
                .extend(subscription.channels.into_iter().filter_map(|(c, s)| s.ok().map(|s| (c, s))));
            opened.replay.extend(subscription.replay);
        }
        Ok(opened)
    }

    async fn subscribe<T: Transport>(
        &mut self,
        id: Option<u64>,
        cmd: Subscribe,
        transport: &mut T,
    ) -> Result<(), T::Error> {
        let node = self.app.node().clone();
        let session = self.session().clone();
        let limits = node.config().channel_limits;
        let positions: Positions = cmd
            .recover
            .iter()
            .filter_map(|(name, p)| Some((ChannelName::with_limits(name, &limits).ok()?, p.clone())))
            .collect();
        let mut subscriber = Subscriber::new(&node, &session, &positions, cmd.latest);
        for name in &cmd.channels {
            let subscribed = async {
                let filter = ChannelFilter::with_limits(name, &limits)?;
                self.app.access().may_read(self.identity(), &filter)?;
                Ok::<_, ClientError>(subscriber.subscribe(&filter, &mut self.tracker).await?)
            }
            .await;
            let mut subscription = match subscribed {
                Ok(subscription) => subscription,
                Err(e) => {
                    self.app.access().count_limit(e.code());
                    transport.write(&Reply::error(id, Some(name), &e, self.id())).await?;
                    continue;
                }
            };
            let reply = Reply::Subscribed {
                id,
                channel: name,
                exact: subscription.exact.as_ref(),
                channels: &subscription.channels,
            };
            transport.write(&reply).await?;
            transport.write_many(&mut subscription.replay, &mut self.tracker).await?;
        }
        Ok(())
    }

    async fn unsubscribe<T: Transport>(
        &mut self,
        id: Option<u64>,
        cmd: Unsubscribe,
        transport: &mut T,
    ) -> Result<(), T::Error> {
        let mut failed = false;
        for name in &cmd.channels {
            let limits = &self.app.node().config().channel_limits;
            let result = ChannelFilter::with_limits(name, limits)
                .and_then(|filter| self.app.node().unsubscribe(self.receiver.session(), &filter));
            if let Err(e) = result {
                failed = true;
                transport.write(&Reply::error(id, Some(name), &e.into(), self.id())).await?;
            }
        }
        match (id, failed) {
            (Some(id), false) => transport.write(&Reply::Ack { id }).await,
            _ => Ok(()),
        }
    }

    async fn publish<T: Transport>(
        &mut self,
        id: Option<u64>,
        cmd: Publish,
        transport: &mut T,
    ) -> Result<(), T::Error> {
        let result = super::publish(
            &self.app,
            self.identity(),
            self.peer(),
            &cmd.channel,
            cmd.data,
            cmd.key.as_deref(),
        )
        .await;
        match (result, id) {
            (Ok((channel, published)), Some(id)) => {
                let reply = Reply::Published {
                    id,
                    channel: &channel,
                    position: &published.position,
                    duplicate: published.duplicate,
                };
                transport.write(&reply).await
            }
            (Ok(_), None) => Ok(()),
            (Err(e), _) => {
                self.app.access().count_limit(e.code());
                transport.write(&Reply::error(id, Some(&cmd.channel), &e, self.id())).await
            }
        }
    }

    async fn history<T: Transport>(
        &mut self,
        id: Option<u64>,
        cmd: HistoryRequest,
        transport: &mut T,
    ) -> Result<(), T::Error> {
        let (since, epoch) = cmd.since.as_ref().map(|s| (s.offset, s.epoch.as_str())).unzip();
        match super::read_history(&self.app, self.identity(), &cmd.channel, since, epoch, cmd.limit).await {
            Ok((channel, history)) => {
                let reply = Reply::History {
                    id,
                    channel: &channel,
                    position: &history.position,
                    publications: &history.publications,
                };
                transport.write(&reply).await
            }
            Err(e) => transport.write(&Reply::error(id, Some(&cmd.channel), &e, self.id())).await,
        }
    }

    /// `refresh`: replaces the connection's token before it expires. The new token must name the
    /// same subject; subscriptions it no longer allows are dropped, each with an `error`.
    async fn refresh<T: Transport>(
        &mut self,
        id: Option<u64>,
        cmd: Refresh,
        transport: &mut T,
    ) -> Result<(), T::Error> {
        let verified = (|| {
            let identity = self.app.access().refresh(&cmd.token, self.peer())?;
            // Only a token can be refreshed: an anonymous or API-key connection taking on a user
            // would be a login, not a refresh.
            let user =
                matches!(self.identity().kind(), IdentityKind::User) && self.identity().subject().is_some();
            if !user || identity.subject() != self.identity().subject() {
                return Err(ClientError::SubjectChanged);
            }
            Ok(identity)
        })();
        let identity = match verified {
            Ok(identity) => identity,
            Err(e) => return transport.write(&Reply::error(id, None, &e, self.id())).await,
        };
        self.expiry = expiry(&identity);
        self.admission.identity = identity;
        let session = self.session().clone();
        for filter in session.filters() {
            if let Err(e) = self.identity().may_subscribe(&filter) {
                let _ = self.app.node().unsubscribe(&session, &filter);
                let name = filter.to_string();
                // No `id`: these are notices about subscriptions, and the `ack` is the answer.
                let notice = Reply::Error {
                    id: None,
                    channel: Some(&name),
                    code: e.code(),
                    message: "unsubscribed: the refreshed token does not allow this channel".into(),
                };
                transport.write(&notice).await?;
            }
        }
        let expires = self.identity().expires_at().map(unix_millis);
        transport.write(&Reply::Refreshed { id, expires }).await
    }
}

/// A timer for when `identity`'s token expires, if it does.
fn expiry(identity: &Identity) -> Option<Pin<Box<Sleep>>> {
    access::time_left(identity).map(|left| Box::pin(tokio::time::sleep(left)))
}

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
