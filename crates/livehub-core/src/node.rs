//! The node: the facade every transport talks to.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::broker::{Broker, ChannelSummary, History, HistoryQuery, PublicationSink, Published};
use crate::channel::{ChannelFilter, ChannelLimits, ChannelName};
use crate::clock::Clock;
use crate::detached::{DetachedSessions, ResumeToken, Resumed};
use crate::error::Error;
use crate::history::HistoryConfig;
use crate::history_store::{HistoryStore, NullStore};
use crate::hub::{Hub, HubStats};
use crate::memory_broker::MemoryBroker;
use crate::presence::{
    LocalPresence, Presence, PresenceBackend, PresenceCounts, PRESENCE_CHANNEL, PRESENCE_MIN_INTERVAL,
};
use crate::publication::{Payload, Publication, StreamPosition};
use crate::session::{DeliveryTracker, Session, SessionReceiver};

/// Most publications replayed by one recovery; a client that missed more is told
/// `recovered: false` and reloads its state instead.
pub const MAX_RECOVERY: usize = 10_000;

/// Most sessions a node keeps parked for resumption; past it, a session whose connection goes
/// away ends at once. Bounds what clients that never come back can hold.
pub const MAX_DETACHED_SESSIONS: usize = 10_000;

/// How often the in-memory broker drops expired history and idle channels.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Settings of the channel model.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// History limits per channel prefix.
    pub history: HistoryConfig,
    /// Publications a connection may have queued before it is disconnected as a slow consumer.
    pub queue_capacity: usize,
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// Largest publication data accepted, in bytes.
    pub max_data_size: usize,
    /// The wall clock that timestamps publications and ages history (tests move it by hand).
    pub clock: Clock,
    /// Where presence comes from: this node's counts, or (scaled out) every node's.
    pub presence: Arc<dyn PresenceBackend>,
    /// How long and deep the channel names and patterns that transports parse may be.
    pub channel_limits: ChannelLimits,
    /// With a durable store, the most publications of a channel kept in memory (the rest of its
    /// history is read from the store); `None` keeps all of its history in memory too.
    pub memory_size: Option<usize>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            history: HistoryConfig::default(),
            // 1024 queued publications: about ten seconds of a 100 msg/s feed, so a congested
            // link rides out a hiccup, while a dead one is cut before it pins much memory.
            queue_capacity: 1024,
            max_subscriptions: 512,
            max_data_size: 64 * 1024,
            clock: Clock::system(),
            presence: Arc::new(LocalPresence),
            channel_limits: ChannelLimits::default(),
            memory_size: None,
        }
    }
}

/// What to do when subscribing.
#[derive(Clone, Debug, Default)]
pub struct SubscribeOptions {
    /// Replay what was published after this position (exact channels only).
    pub recover: Option<StreamPosition>,
    /// Send the latest publication right away (when not recovering).
    pub latest: bool,
}

/// The outcome of a subscribe.
#[derive(Clone, Debug)]
pub struct Subscribed {
    /// The channel's position at subscribe time (`None` for a wildcard pattern).
    pub position: Option<StreamPosition>,
    /// Whether the requested recovery succeeded: `publications` is then exactly what was missed.
    pub recovered: bool,
    /// Publications to deliver before any live one: the missed ones, or the latest.
    pub publications: Vec<Arc<Publication>>,
}

/// The outcome of a recovery without subscribing (SSE resume, long polling).
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The channel's position now.
    pub position: StreamPosition,
    /// Whether `publications` is exactly what came after the requested position.
    pub recovered: bool,
    /// The missed publications, or the latest one when recovery was impossible.
    pub publications: Vec<Arc<Publication>>,
}

/// A channel and its subscribers.
#[derive(Clone, Debug)]
pub struct ChannelInfo {
    /// What the broker knows of it.
    pub summary: ChannelSummary,
    /// Subscribers on this node (exact and by matching pattern).
    pub subscribers: usize,
}

/// Owns the hub and the broker; every transport goes through it. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

struct NodeInner {
    config: NodeConfig,
    hub: Arc<Hub>,
    broker: Arc<dyn Broker>,
    detached: Arc<DetachedSessions>,
}

impl Node {
    /// A node with the in-memory broker. Spawns its housekeeping tasks, so call it inside a
    /// Tokio runtime; they end when the last clone of the node is dropped.
    pub fn new(config: NodeConfig) -> Self {
        Self::with_store(config, NullStore)
    }

    /// A node with the in-memory broker over `store`, which keeps history across restarts
    /// ([`NullStore`]: nowhere). Spawns its housekeeping tasks, as [`new`](Self::new) does.
    pub fn with_store<S: HistoryStore>(config: NodeConfig, store: S) -> Self {
        let (history, clock) = (config.history.clone(), config.clock.clone());
        let hot = config.memory_size.unwrap_or(usize::MAX);
        let mut memory = None;
        let node = Self::with_broker(config, |sink| {
            let broker = Arc::new(MemoryBroker::with_store(history, clock, store, sink).with_hot_window(hot));
            memory = Some(Arc::downgrade(&broker));
            broker
        });
        if let Some(memory) = memory {
            tokio::spawn(sweep(memory));
        }
        node
    }

    /// A node with the broker `make` builds around the hub's [`PublicationSink`].
    pub fn with_broker(
        config: NodeConfig,
        make: impl FnOnce(Arc<dyn PublicationSink>) -> Arc<dyn Broker>,
    ) -> Self {
        let hub = Arc::new(Hub::new(config.queue_capacity));
        let broker = make(hub.clone());
        hub.set_broker(Arc::downgrade(&broker));
        let detached = DetachedSessions::new(MAX_DETACHED_SESSIONS);
        let node = Self { inner: Arc::new(NodeInner { config, hub, broker, detached }) };
        tokio::spawn(announce_presence(Arc::downgrade(&node.inner)));
        node
    }

    /// The settings.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// Registers a long-lived connection over `transport`; it counts in presence until the
    /// receiver is dropped.
    pub fn connect(&self, transport: &'static str) -> SessionReceiver {
        self.inner.hub.connect(transport, true)
    }

    /// Registers a short-lived request (a long poll) that subscribes without counting in presence.
    pub fn connect_ephemeral(&self, transport: &'static str) -> SessionReceiver {
        self.inner.hub.connect(transport, false)
    }

    /// Counts a polling client in presence, as a connection of `transport`, while the guard
    /// lives and for [`POLLER_TTL`](crate::POLLER_TTL) after: long polls and short polls have
    /// no connection between requests. `key` says which client this is (equal keys are one
    /// client); the transport derives it from what identifies a poller.
    pub fn poller(&self, transport: &'static str, key: u64) -> PollerGuard {
        let hub = &self.inner.hub;
        let begun = hub.pollers.begin(transport, key, tokio::time::Instant::now());
        if begun == Some(true) {
            hub.changed.notify_one();
        }
        PollerGuard { hub: hub.clone(), key, tracked: begun.is_some() }
    }

    /// Keeps the session of a connection that went away for `ttl`: its subscriptions stay and
    /// publications queue up (to the queue's capacity), until a connection of the same `owner`
    /// resumes it with `token`, or it expires. False when the node holds
    /// [`MAX_DETACHED_SESSIONS`] already (or `token` is in use); the session then ends at once.
    pub fn detach(
        &self,
        token: ResumeToken,
        receiver: SessionReceiver,
        tracker: DeliveryTracker,
        owner: Option<&str>,
        ttl: Duration,
    ) -> bool {
        self.inner.detached.park(token, receiver, tracker, owner, ttl)
    }

    /// Takes over the session parked under `token` for a connection of `owner`.
    pub fn resume(&self, token: &str, owner: Option<&str>) -> Result<Resumed, Error> {
        self.inner.detached.resume(token, owner)
    }

    /// How many sessions are parked, waiting to be resumed.
    pub fn detached_sessions(&self) -> usize {
        self.inner.detached.len()
    }

    /// Subscribes `session` to `filter`, recovering or fetching the latest value as asked.
    ///
    /// The session is registered before history is read, so nothing published meanwhile is
    /// missed; the transport drops the overlap with a [`DeliveryTracker`](crate::DeliveryTracker).
    pub async fn subscribe(
        &self,
        session: &Session,
        filter: &ChannelFilter,
        options: SubscribeOptions,
    ) -> Result<Subscribed, Error> {
        let max = self.inner.config.max_subscriptions;
        session.with_filters(|filters| {
            if filters.contains(filter) {
                return Err(Error::AlreadySubscribed(filter.to_string()));
            }
            if filters.len() >= max {
                return Err(Error::TooManySubscriptions(max));
            }
            filters.insert(filter.clone());
            Ok(())
        })?;
        self.inner.hub.add(filter, session);
        let ChannelFilter::Exact(channel) = filter else {
            return Ok(Subscribed { position: None, recovered: false, publications: Vec::new() });
        };
        let result = match &options.recover {
            Some(since) => self.recover(channel, since).await.map(|r| Subscribed {
                position: Some(r.position),
                recovered: r.recovered,
                publications: r.publications,
            }),
            None => self.history(channel, HistoryQuery::newest(0)).await.map(|h| Subscribed {
                position: Some(h.position),
                recovered: false,
                publications: if options.latest { h.latest.into_iter().collect() } else { Vec::new() },
            }),
        };
        if result.is_err() {
            // Leave no half-made subscription behind.
            let _ = self.unsubscribe(session, filter);
        }
        result
    }

    /// Removes the subscription of `session` to `filter`.
    pub fn unsubscribe(&self, session: &Session, filter: &ChannelFilter) -> Result<(), Error> {
        if !session.with_filters(|filters| filters.remove(filter)) {
            return Err(Error::NotSubscribed(filter.to_string()));
        }
        self.inner.hub.remove(filter, session);
        Ok(())
    }

    /// Publishes on behalf of a client or the HTTP API: `$` system channels are refused.
    pub async fn publish(
        &self,
        channel: &ChannelName,
        data: Payload,
        key: Option<&str>,
    ) -> Result<Published, Error> {
        if channel.is_system() {
            return Err(Error::ReadOnlyChannel(channel.to_string()));
        }
        self.publish_internal(channel, data, key).await
    }

    /// Publishes from inside the server (sources, presence); any channel is allowed.
    pub async fn publish_internal(
        &self,
        channel: &ChannelName,
        data: Payload,
        key: Option<&str>,
    ) -> Result<Published, Error> {
        let max = self.inner.config.max_data_size;
        if data.len() > max {
            return Err(Error::TooLarge { size: data.len(), max });
        }
        self.inner.broker.publish(channel, data, key).await
    }

    /// Reads part of a channel's history.
    pub async fn history(&self, channel: &ChannelName, query: HistoryQuery) -> Result<History, Error> {
        self.inner.broker.history(channel, query).await
    }

    /// What `channel` published after `since`, if history still holds all of it; otherwise
    /// `recovered: false` and the latest publication.
    ///
    /// When the epoch changed (the server restarted, history was lost) and the new epoch's history
    /// is still complete from offset 1, all of it is sent: still `recovered: false`, because the
    /// old epoch's tail is gone, but nothing of the new epoch is skipped.
    pub async fn recover(&self, channel: &ChannelName, since: &StreamPosition) -> Result<Recovery, Error> {
        let history = self.history(channel, HistoryQuery::after(since.offset, MAX_RECOVERY)).await?;
        if since.epoch != history.position.epoch {
            let all = self.history(channel, HistoryQuery::after(0, MAX_RECOVERY)).await?;
            let complete = all.publications.len() as u64 == all.position.offset;
            let publications = if complete && !all.publications.is_empty() {
                all.publications
            } else {
                all.latest.into_iter().collect()
            };
            return Ok(Recovery { position: all.position, recovered: false, publications });
        }
        let missed = history.position.offset.saturating_sub(since.offset) as usize;
        // Offsets are consecutive, so "all of it" is a count: fewer means history lost some.
        let recovered = since.offset <= history.position.offset && history.publications.len() == missed;
        let publications =
            if recovered { history.publications } else { history.latest.into_iter().collect() };
        Ok(Recovery { position: history.position, recovered, publications })
    }

    /// Presence now, as the presence backend sees it (this node's alone by default).
    pub fn presence(&self) -> Presence {
        let (filters, transports) = self.inner.hub.counts();
        self.inner.config.presence.snapshot(PresenceCounts { transports, filters })
    }

    /// Publications and deliveries on this node since it started.
    pub fn stats(&self) -> HubStats {
        self.inner.hub.stats()
    }

    /// Subscribers on this node that receive `channel` (exact and by matching pattern).
    pub fn subscribers(&self, channel: &ChannelName) -> usize {
        self.inner.hub.subscribers(channel)
    }

    /// Up to `limit` channels the broker knows, by name after `after`, with their subscribers
    /// on this node.
    pub async fn channels(
        &self,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<ChannelInfo>, Error> {
        let summaries = self.inner.broker.channels(after, limit).await?;
        Ok(summaries
            .into_iter()
            .map(|summary| {
                let subscribers = self.inner.hub.subscribers(&summary.channel);
                ChannelInfo { summary, subscribers }
            })
            .collect())
    }
}

impl Drop for NodeInner {
    fn drop(&mut self) {
        // Wakes the presence task so that it sees the node is gone and ends.
        self.hub.changed.notify_one();
    }
}

/// One request of a polling client, from [`Node::poller`]; the poller's time to live starts
/// when it is dropped.
#[must_use = "the poller counts as polling only while the guard lives"]
pub struct PollerGuard {
    hub: Arc<Hub>,
    key: u64,
    /// False when the node tracked no more pollers and left this one out.
    tracked: bool,
}

impl fmt::Debug for PollerGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollerGuard").field("key", &self.key).field("tracked", &self.tracked).finish()
    }
}

impl Drop for PollerGuard {
    fn drop(&mut self) {
        if self.tracked {
            self.hub.pollers.end(self.key, tokio::time::Instant::now());
            // The presence task learns when this poller will expire.
            self.hub.changed.notify_one();
        }
    }
}

/// Publishes presence on [`PRESENCE_CHANNEL`] after each change, at most every
/// [`PRESENCE_MIN_INTERVAL`].
async fn announce_presence(node: Weak<NodeInner>) {
    // A valid literal; checked by the presence test.
    let Ok(channel) = ChannelName::new(PRESENCE_CHANNEL) else { return };
    let mut last = None;
    loop {
        let Some(hub) = node.upgrade().map(|n| n.hub.clone()) else { return };
        // A poller leaves presence by expiring, which nothing signals: wake for that too.
        match hub.pollers.next_expiry() {
            Some(at) => {
                tokio::select! {
                    _ = hub.changed.notified() => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => hub.changed.notified().await,
        }
        drop(hub);
        tokio::time::sleep(PRESENCE_MIN_INTERVAL).await;
        let Some(inner) = node.upgrade() else { return };
        let live = Node { inner };
        let presence = live.presence();
        // A connect followed by a disconnect within the interval changes nothing worth sending.
        if last.as_ref() == Some(&presence) {
            continue;
        }
        match serde_json::to_value(&presence) {
            Ok(value) => {
                if let Err(e) = live.publish_internal(&channel, Payload::from_value(&value), None).await {
                    tracing::warn!(error = %e, "could not publish presence");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not encode presence"),
        }
        last = Some(presence);
    }
}

async fn sweep<S: HistoryStore>(broker: Weak<MemoryBroker<S>>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        match broker.upgrade() {
            Some(broker) => broker.sweep().await,
            None => return,
        }
    }
}
