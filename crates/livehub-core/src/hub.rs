//! The local registry of who is subscribed to what, and fan-out to them.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;

use crate::broker::PublicationSink;
use crate::channel::{ChannelFilter, ChannelName};
use crate::publication::Publication;
use crate::session::{ClientId, Session, SessionReceiver};
use crate::sync::{lock, read, write};

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
    // Wildcard filters are scanned on every publication; fine for the tens of patterns dashboards
    // use. A topic trie replaces this when MQTT brings thousands.
    wildcards: RwLock<HashMap<Arc<str>, (ChannelFilter, Subscribers)>>,
    connections: Mutex<BTreeMap<&'static str, usize>>,
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
            wildcards: RwLock::new(HashMap::new()),
            connections: Mutex::new(BTreeMap::new()),
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

    fn shard(&self, channel: &ChannelName) -> &RwLock<HashMap<ChannelName, Subscribers>> {
        let mut hasher = DefaultHasher::new();
        channel.hash(&mut hasher);
        &self.exact[hasher.finish() as usize % SHARDS]
    }

    /// Registers a new connection. Dropping the receiver removes its subscriptions.
    pub(crate) fn connect(self: &Arc<Self>, transport: &'static str, in_presence: bool) -> SessionReceiver {
        let receiver = Session::open(transport, self.queue_capacity, in_presence);
        if in_presence {
            *lock(&self.connections).entry(transport).or_default() += 1;
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
            let mut connections = lock(&self.connections);
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
        let mut connections = lock(&self.connections);
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
        let new = match filter {
            ChannelFilter::Exact(channel) => {
                write(self.shard(channel)).entry(channel.clone()).or_default().insert(session)
            }
            ChannelFilter::Wildcard(pattern) => write(&self.wildcards)
                .entry(pattern.clone())
                .or_insert_with(|| (filter.clone(), Subscribers::default()))
                .1
                .insert(session),
        };
        if new && session.in_presence() {
            self.changed.notify_one();
        }
    }

    /// Removes `session` from the subscribers of `filter`.
    pub(crate) fn remove(&self, filter: &ChannelFilter, session: &Session) {
        let id = session.id();
        match filter {
            ChannelFilter::Exact(channel) => {
                let mut shard = write(self.shard(channel));
                if let Some(subs) = shard.get_mut(channel) {
                    subs.remove(id);
                    if subs.sessions.is_empty() {
                        shard.remove(channel);
                    }
                }
            }
            ChannelFilter::Wildcard(pattern) => {
                let mut wildcards = write(&self.wildcards);
                if let Some((_, subs)) = wildcards.get_mut(pattern) {
                    subs.remove(id);
                    if subs.sessions.is_empty() {
                        wildcards.remove(pattern);
                    }
                }
            }
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
            for (channel, subs) in read(shard).iter() {
                if subs.counted > 0 {
                    filters.insert(channel.to_string(), subs.counted);
                }
            }
        }
        for (pattern, (_, subs)) in read(&self.wildcards).iter() {
            if subs.counted > 0 {
                filters.insert(pattern.to_string(), subs.counted);
            }
        }
        (filters, lock(&self.connections).clone())
    }

    /// Subscribers that receive publications on `channel`: exact ones plus matching patterns.
    pub fn subscribers(&self, channel: &ChannelName) -> usize {
        let exact = read(self.shard(channel)).get(channel).map_or(0, |s| s.counted);
        let wild: usize =
            read(&self.wildcards).values().filter(|(f, _)| f.matches(channel)).map(|(_, s)| s.counted).sum();
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
        if let Some(subs) = read(self.shard(&publication.channel)).get(&publication.channel) {
            offered += subs.offer(publication);
        }
        for (filter, subs) in read(&self.wildcards).values() {
            if filter.matches(&publication.channel) {
                offered += subs.offer(publication);
            }
        }
        self.publications.fetch_add(1, Ordering::Relaxed);
        self.deliveries.fetch_add(offered, Ordering::Relaxed);
    }
}
