//! The local registry of who is subscribed to what, and fan-out to them.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use tokio::sync::Notify;

use crate::broker::{Broker, PublicationSink};
use crate::channel::{ChannelFilter, ChannelName};
use crate::interest::Interest;
use crate::pollers::Pollers;
use crate::publication::Publication;
use crate::session::{ClientId, Session, SessionReceiver};
use crate::trie::TopicTrie;

/// Number of independently locked parts of the exact-channel map: publishers of different
/// channels rarely contend, subscribes rarely block fan-out.
const SHARDS: usize = 64;

/// The sessions subscribed through one filter.
#[derive(Default)]
struct Subscribers {
    sessions: HashMap<ClientId, Session>,
    /// How many of `sessions` count in presence (polling requests do not).
    counted: usize,
}

impl Subscribers {
    fn insert(&mut self, session: &Session) -> bool {
        let new = self.sessions.insert(session.id(), session.clone()).is_none();
        if new && session.in_presence() {
            self.counted += 1;
        }
        new
    }

    fn remove(&mut self, id: ClientId) {
        if let Some(session) = self.sessions.remove(&id) {
            if session.in_presence() {
                self.counted -= 1;
            }
        }
    }

    /// Offers `publication` to every session; returns how many it was offered to.
    fn offer(&self, publication: &Arc<Publication>) -> u64 {
        for session in self.sessions.values() {
            session.offer(publication);
        }
        self.sessions.len() as u64
    }
}

/// The sessions subscribed through one wildcard pattern.
struct Pattern {
    /// The pattern's text, for presence.
    text: Arc<str>,
    subscribers: Subscribers,
}

/// Running totals since the node started, read by the metrics source and the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Publications fanned out (every channel, `$sys` included).
    pub publications: u64,
    /// Publications offered to sessions: one per publication per matching subscriber.
    pub deliveries: u64,
}

/// Who is subscribed to what on this node; delivers each publication to every matching session.
pub struct Hub {
    exact: Box<[RwLock<HashMap<ChannelName, Subscribers>>]>,
    /// Wildcard patterns by level, so that routing a publication walks its channel's levels
    /// rather than testing every pattern: MQTT deployments hold thousands.
    wildcards: RwLock<TopicTrie<Pattern>>,
    /// How many patterns `wildcards` holds, written under its lock. Fan-out reads this instead
    /// of taking the lock, so a node without patterns pays one load of a rarely written word.
    patterns: AtomicUsize,
    /// Tells the broker when a filter gains its first subscriber here and loses its last.
    interest: Interest,
    connections: Mutex<BTreeMap<&'static str, usize>>,
    /// Polling clients, counted in presence beside the connections.
    pub(crate) pollers: Pollers,
    /// Signalled whenever a count in presence changes.
    pub(crate) changed: Notify,
    queue_capacity: usize,
    // Relaxed atomics: two adds per publication, not per subscriber, and readers only want totals.
    publications: AtomicU64,
    deliveries: AtomicU64,
}

impl Hub {
    pub(crate) fn new(queue_capacity: usize) -> Self {
        Self {
            exact: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            wildcards: RwLock::new(TopicTrie::default()),
            patterns: AtomicUsize::new(0),
            interest: Interest::default(),
            connections: Mutex::new(BTreeMap::new()),
            pollers: Pollers::default(),
            changed: Notify::new(),
            queue_capacity,
            publications: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
        }
    }

    /// Totals since the hub was made.
    pub fn stats(&self) -> HubStats {
        HubStats {
            publications: self.publications.load(Ordering::Relaxed),
            deliveries: self.deliveries.load(Ordering::Relaxed),
        }
    }

    /// Sets the broker told of changes of interest (see [`Broker::interest`]). Set once, before
    /// the first subscribe; Weak, because the broker holds the hub.
    pub(crate) fn set_broker(&self, broker: Weak<dyn Broker>) {
        self.interest.set_broker(broker);
    }

    fn shard(&self, channel: &ChannelName) -> &RwLock<HashMap<ChannelName, Subscribers>> {
        let mut hasher = DefaultHasher::new();
        channel.hash(&mut hasher);
        &self.exact[hasher.finish() as usize % SHARDS]
    }

    /// Registers a new connection. Dropping the receiver removes its subscriptions.
    pub(crate) fn connect(self: &Arc<Self>, transport: &'static str, in_presence: bool) -> SessionReceiver {
        let receiver = Session::open(transport, self.queue_capacity, in_presence);
        if in_presence {
            *self.connections.lock().entry(transport).or_default() += 1;
            self.changed.notify_one();
        }
        receiver.with_hub(self.clone())
    }

    /// Removes every subscription of `session` and its connection count.
    pub(crate) fn disconnect(&self, session: &Session) {
        for filter in session.with_filters(std::mem::take) {
            self.remove(&filter, session);
        }
        if session.in_presence() {
            let mut connections = self.connections.lock();
            // A parked session was no longer counted as a connection.
            if !session.is_parked() {
                uncount(&mut connections, session.transport());
            }
            drop(connections);
            self.changed.notify_one();
        }
    }

    /// Parks `session` (its connection is gone, its subscriptions stay) or takes it back: it
    /// counts as a connection only while it has one.
    pub(crate) fn park(&self, session: &Session, parked: bool) {
        if !session.in_presence() {
            session.set_parked(parked);
            return;
        }
        let mut connections = self.connections.lock();
        if session.is_parked() == parked {
            return;
        }
        session.set_parked(parked);
        if parked {
            uncount(&mut connections, session.transport());
        } else {
            *connections.entry(session.transport()).or_default() += 1;
        }
        drop(connections);
        self.changed.notify_one();
    }

    /// Adds `session` to the subscribers of `filter`.
    pub(crate) fn add(&self, filter: &ChannelFilter, session: &Session) {
        // Each arm decides under its lock whether this is the filter's first subscriber, and
        // records it there, so that a racing last-one-leaves is told in the order it happened.
        let (new, first) = match filter {
            ChannelFilter::Exact(channel) => {
                let mut shard = self.shard(channel).write();
                let subs = shard.entry(channel.clone()).or_default();
                let first = subs.sessions.is_empty();
                let new = subs.insert(session);
                (new, first && self.interest.record(filter, true))
            }
            ChannelFilter::Wildcard(pattern) => {
                let mut wildcards = self.wildcards.write();
                let (entry, made) = wildcards.get_or_insert_with(pattern, || Pattern {
                    text: pattern.clone(),
                    subscribers: Subscribers::default(),
                });
                let new = entry.subscribers.insert(session);
                if made {
                    self.patterns.store(wildcards.len(), Ordering::Relaxed);
                }
                (new, made && self.interest.record(filter, true))
            }
        };
        if first {
            self.interest.dispatch();
        }
        if new && session.in_presence() {
            self.changed.notify_one();
        }
    }

    /// Removes `session` from the subscribers of `filter`.
    pub(crate) fn remove(&self, filter: &ChannelFilter, session: &Session) {
        let id = session.id();
        let last = match filter {
            ChannelFilter::Exact(channel) => {
                let mut shard = self.shard(channel).write();
                let last = shard.get_mut(channel).is_some_and(|subs| {
                    subs.remove(id);
                    subs.sessions.is_empty()
                });
                if last {
                    shard.remove(channel);
                }
                last && self.interest.record(filter, false)
            }
            ChannelFilter::Wildcard(pattern) => {
                let mut wildcards = self.wildcards.write();
                let removed = wildcards.remove_if(pattern, |entry| {
                    entry.subscribers.remove(id);
                    entry.subscribers.sessions.is_empty()
                });
                let last = removed.is_some();
                if last {
                    self.patterns.store(wildcards.len(), Ordering::Relaxed);
                }
                last && self.interest.record(filter, false)
            }
        };
        if last {
            self.interest.dispatch();
        }
        if session.in_presence() {
            self.changed.notify_one();
        }
    }

    /// Subscribers counted in presence per filter (channels and patterns), and open connections
    /// per transport.
    pub fn counts(&self) -> (BTreeMap<String, usize>, BTreeMap<&'static str, usize>) {
        let mut filters = BTreeMap::new();
        for shard in self.exact.iter() {
            for (channel, subs) in shard.read().iter() {
                if subs.counted > 0 {
                    filters.insert(channel.to_string(), subs.counted);
                }
            }
        }
        self.wildcards.read().for_each(|entry| {
            if entry.subscribers.counted > 0 {
                filters.insert(entry.text.to_string(), entry.subscribers.counted);
            }
        });
        let mut transports = self.connections.lock().clone();
        self.pollers.count(&mut transports, tokio::time::Instant::now());
        (filters, transports)
    }

    /// Subscribers that receive publications on `channel`: exact ones plus matching patterns.
    pub fn subscribers(&self, channel: &ChannelName) -> usize {
        let exact = self.shard(channel).read().get(channel).map_or(0, |s| s.counted);
        let mut wild = 0;
        if self.patterns.load(Ordering::Relaxed) > 0 {
            self.wildcards.read().for_each_match(channel.as_str(), |entry| wild += entry.subscribers.counted);
        }
        exact + wild
    }
}

/// Takes one connection of `transport` off the counts.
fn uncount(connections: &mut BTreeMap<&'static str, usize>, transport: &'static str) {
    if let Some(n) = connections.get_mut(transport) {
        *n -= 1;
        if *n == 0 {
            connections.remove(transport);
        }
    }
}

impl PublicationSink for Hub {
    fn deliver(&self, publication: &Arc<Publication>) {
        let mut offered = 0;
        if let Some(subs) = self.shard(&publication.channel).read().get(&publication.channel) {
            offered += subs.offer(publication);
        }
        // Relaxed: the lock orders the patterns themselves; a pattern subscribed while this
        // publication is routed may see it or not, as it could when the lock decided.
        if self.patterns.load(Ordering::Relaxed) > 0 {
            self.wildcards.read().for_each_match(publication.channel.as_str(), |entry| {
                offered += entry.subscribers.offer(publication)
            });
        }
        self.publications.fetch_add(1, Ordering::Relaxed);
        self.deliveries.fetch_add(offered, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publication::{Epoch, Payload, StreamPosition};

    fn filter(s: &str) -> ChannelFilter {
        ChannelFilter::new(s).expect("valid filter")
    }

    fn publication(channel: &str) -> Arc<Publication> {
        let channel = ChannelName::new(channel).expect("valid channel");
        let position = StreamPosition { offset: 1, epoch: Epoch::random() };
        Arc::new(Publication::new(channel, Payload::json("1").expect("valid json"), position))
    }

    #[test]
    fn patterns_are_routed_counted_and_pruned() {
        let hub = Arc::new(Hub::new(16));
        let (a, b) = (hub.connect("t", true), hub.connect("t", false));
        let filters = [filter("x/+"), filter("x/#"), filter("x/y"), filter("+/y/#")];
        for f in &filters {
            hub.add(f, a.session());
        }
        // `b` is a long poll: delivered to, not counted.
        hub.add(&filters[0], b.session());
        assert_eq!(hub.patterns.load(Ordering::Relaxed), 3);

        let x_y = ChannelName::new("x/y").expect("valid");
        assert_eq!(hub.subscribers(&x_y), 4);
        assert_eq!(hub.subscribers(&ChannelName::new("x").expect("valid")), 1);
        let (counts, _) = hub.counts();
        let want: BTreeMap<String, usize> = ["x/+", "x/#", "x/y", "+/y/#"].map(|f| (f.to_string(), 1)).into();
        assert_eq!(counts, want);

        // `x/y` reaches `a` through all four filters and `b` through one; `q/y/z` reaches `a`
        // through `+/y/#`; no leading wildcard reaches `$x/y`.
        hub.deliver(&publication("x/y"));
        hub.deliver(&publication("q/y/z"));
        hub.deliver(&publication("$x/y"));
        assert_eq!(hub.stats(), HubStats { publications: 3, deliveries: 6 });

        for f in &filters {
            hub.remove(f, a.session());
        }
        assert_eq!(hub.subscribers(&x_y), 0);
        hub.remove(&filters[0], b.session());
        assert_eq!(hub.patterns.load(Ordering::Relaxed), 0);
        assert_eq!(hub.wildcards.read().len(), 0);
        assert!(hub.counts().0.is_empty());
    }
}
