//! One connection's state as the hub sees it: an id, a bounded outbound queue and a way to be
//! told to disconnect.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use std::task::{Context, Poll, Wake, Waker};

use tokio::sync::Notify;

use crate::channel::{ChannelFilter, ChannelName};
use crate::disconnect::Disconnect;
use crate::hub::Hub;
use crate::publication::{Epoch, Publication};

/// Identifies one connection, unique within a node's lifetime (and, with its random start,
/// practically unique across nodes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

impl ClientId {
    pub(crate) fn next() -> Self {
        static NEXT: OnceLock<AtomicU64> = OnceLock::new();
        let next = NEXT.get_or_init(|| AtomicU64::new(u64::from(rand::random::<u32>()) << 24));
        Self(next.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({self})")
    }
}

/// A cheap-clone handle to one connection, held by the hub for fan-out.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    id: ClientId,
    transport: &'static str,
    in_presence: bool,
    /// Whether the session is parked (its connection went away; see `detached.rs`): it is not
    /// counted as a connection then. Written under the hub's connection-count lock.
    parked: AtomicBool,
    /// The outbound queue. A std mutex around a deque rather than a tokio channel: fan-out
    /// takes it once per subscriber for a push, the connection once per batch, never across an
    /// await; an idle connection's empty deque allocates nothing, where a channel allocates its
    /// first block of slots up front.
    queue: Mutex<Queue>,
    queue_capacity: usize,
    disconnect: OnceLock<Disconnect>,
    disconnected: Notify,
    // A std mutex: held only for set operations, never across an await.
    filters: Mutex<HashSet<ChannelFilter>>,
}

impl Session {
    /// A new session and the receiving half its connection task reads from.
    pub(crate) fn open(transport: &'static str, queue_capacity: usize, in_presence: bool) -> SessionReceiver {
        let session = Session {
            inner: Arc::new(SessionInner {
                id: ClientId::next(),
                transport,
                in_presence,
                parked: AtomicBool::new(false),
                // Set at first, so that the task's first look polls its sources once and they
                // register the source waker.
                queue: Mutex::new(Queue { sourced: true, ..Queue::default() }),
                queue_capacity,
                disconnect: OnceLock::new(),
                disconnected: Notify::new(),
                filters: Mutex::new(HashSet::new()),
            }),
        };
        SessionReceiver { session, hub: None }
    }

    /// This connection's id.
    pub fn id(&self) -> ClientId {
        self.inner.id
    }

    /// The transport's name (`websocket`, `sse`, ...).
    pub fn transport(&self) -> &'static str {
        self.inner.transport
    }

    /// Whether this session counts in presence (stateless polling requests do not).
    pub fn in_presence(&self) -> bool {
        self.inner.in_presence
    }

    /// Whether the session is parked, waiting for a connection to resume it.
    pub fn is_parked(&self) -> bool {
        self.inner.parked.load(Ordering::Relaxed)
    }

    pub(crate) fn set_parked(&self, parked: bool) {
        self.inner.parked.store(parked, Ordering::Relaxed);
    }

    /// Why the server asked this session to disconnect, if it did.
    pub fn disconnect_reason(&self) -> Option<Disconnect> {
        self.inner.disconnect.get().cloned()
    }

    /// Queues a publication for this connection without ever waiting. A full queue means the
    /// connection cannot keep up: it is told to disconnect (and may recover from history when it
    /// returns) rather than slow down the publisher or anyone else.
    pub(crate) fn offer(&self, publication: &Arc<Publication>) {
        let mut queue = self.inner.queue.lock();
        if queue.items.len() >= self.inner.queue_capacity {
            drop(queue);
            self.disconnect(Disconnect::SLOW_CONSUMER);
            return;
        }
        queue.items.push_back(publication.clone());
        let waker = queue.waker.take();
        // Wake after unlocking, so the woken task does not find the lock taken.
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Asks the connection to close with `reason`. The first reason wins.
    pub fn disconnect(&self, reason: Disconnect) {
        if self.inner.disconnect.set(reason).is_ok() {
            self.inner.disconnected.notify_one();
        }
    }

    /// Resolves when the server asked this connection to disconnect. Cancel-safe.
    pub async fn disconnected(&self) -> Disconnect {
        loop {
            if let Some(reason) = self.inner.disconnect.get() {
                return reason.clone();
            }
            self.inner.disconnected.notified().await;
        }
    }

    /// A waker for the connection task's other wake-up sources: its socket, timers and signals.
    /// Waking it records that a source fired and wakes the task the way a publication does.
    ///
    /// The record sits next to the queue, so a task woken for publications learns that nothing
    /// else needs polling from the memory it reads for the queue anyway. One task, with one group
    /// of sources, per session.
    pub fn source_waker(&self) -> Waker {
        Waker::from(self.inner.clone())
    }

    /// Whether a source woke the task (through [`source_waker`](Self::source_waker)) since the
    /// record was last cleared; clears it if `clear`. Either way the next wake, from a source or
    /// a publication, goes to `cx`'s task.
    pub fn poll_sources_woken(&self, cx: &Context<'_>, clear: bool) -> bool {
        let mut queue = self.inner.queue.lock();
        register(&mut queue.waker, cx);
        let woken = queue.sourced;
        if clear {
            queue.sourced = false;
        }
        woken
    }

    /// The channels and patterns this session is subscribed to now.
    pub fn filters(&self) -> Vec<ChannelFilter> {
        self.with_filters(|filters| filters.iter().cloned().collect())
    }

    pub(crate) fn with_filters<R>(&self, f: impl FnOnce(&mut HashSet<ChannelFilter>) -> R) -> R {
        let mut filters = self.inner.filters.lock();
        f(&mut filters)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({}, {})", self.inner.id, self.inner.transport)
    }
}

impl Wake for SessionInner {
    /// One of the connection task's other sources fired: see [`Session::source_waker`].
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut queue = self.queue.lock();
        queue.sourced = true;
        let waker = queue.waker.take();
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Publications waiting for a connection, and the connection task to wake for them.
#[derive(Default)]
struct Queue {
    items: VecDeque<Arc<Publication>>,
    /// The connection task, waiting for publications or for one of its other sources.
    waker: Option<Waker>,
    /// Whether one of the task's other sources woke since the task last cleared this.
    sourced: bool,
}

/// Makes `slot` hold `cx`'s waker, cloning only when it holds another.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// The receiving side of a session, owned by its connection task.
pub struct SessionReceiver {
    session: Session,
    hub: Option<Arc<Hub>>,
}

impl Drop for SessionReceiver {
    /// The connection is gone: remove its subscriptions so fan-out stops at once.
    fn drop(&mut self) {
        if let Some(hub) = &self.hub {
            hub.disconnect(&self.session);
        }
    }
}

impl SessionReceiver {
    pub(crate) fn with_hub(mut self, hub: Arc<Hub>) -> Self {
        self.hub = Some(hub);
        self
    }

    /// Its connection went away and the session waits to be resumed: no longer a connection in
    /// presence, still subscribed.
    pub(crate) fn park(&self) {
        if let Some(hub) = &self.hub {
            hub.park(&self.session, true);
        }
    }

    /// A new connection took the session over.
    pub(crate) fn unpark(&self) {
        if let Some(hub) = &self.hub {
            hub.park(&self.session, false);
        }
    }

    /// The session handle (to subscribe with).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Waits for queued publications and moves up to `limit` of them into `buf`; returns how many
    /// (at least one). Cancel-safe: nothing is taken from the queue unless it returns.
    pub async fn recv_many(&mut self, buf: &mut Vec<Arc<Publication>>, limit: usize) -> usize {
        poll_fn(|cx| self.poll_recv_many(cx, buf, limit)).await
    }

    /// [`recv_many`](Self::recv_many) as a poll, for connection loops that poll their wake-up
    /// sources by hand.
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<Arc<Publication>>,
        limit: usize,
    ) -> Poll<usize> {
        let limit = limit.max(1);
        let mut queue = self.session.inner.queue.lock();
        if queue.items.is_empty() {
            register(&mut queue.waker, cx);
            return Poll::Pending;
        }
        let n = queue.items.len().min(limit);
        buf.extend(queue.items.drain(..n));
        Poll::Ready(n)
    }

    /// Takes queued publications without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Publication>> {
        self.session.inner.queue.lock().items.pop_front()
    }
}

/// Remembers the last offset delivered per channel so that a publication reaching a connection
/// twice (recovered from history and also live, or through two overlapping subscriptions) is sent
/// once, and never out of order.
#[derive(Default, Debug)]
pub struct DeliveryTracker {
    /// Most connections follow a handful of channels, and every publication is checked here for
    /// every subscriber: a short list compared by pointer first (publications of one channel
    /// share its name) beats hashing the name. A pattern subscription may reach many channels,
    /// so past [`FEW_CHANNELS`] the list becomes a map.
    last: Positions,
}

/// Channels a [`DeliveryTracker`] keeps in a list before it switches to a map.
const FEW_CHANNELS: usize = 8;

/// One channel's last delivered position.
type Entry = (ChannelName, u64, Epoch);

#[derive(Debug)]
enum Positions {
    /// The first channel sits in the connection's own state, the others in a list. Most
    /// connections follow one channel, and a wake-up for publications then reads no memory the
    /// connection's task was not already touching.
    Few {
        first: Option<Entry>,
        more: Vec<Entry>,
    },
    Many(HashMap<ChannelName, (u64, Epoch)>),
}

impl Default for Positions {
    fn default() -> Self {
        Self::Few { first: None, more: Vec::new() }
    }
}

impl Positions {
    /// The position of `channel`. The short list also takes `channel`'s allocation of the name:
    /// a name recorded from the client's subscribe is another allocation than the
    /// publications', and after the first publication the comparisons stop at the pointer.
    fn get_mut(&mut self, channel: &ChannelName) -> Option<(&mut u64, &mut Epoch)> {
        match self {
            Self::Few { first, more } => {
                first.iter_mut().chain(more.iter_mut()).find(|(c, ..)| c == channel).map(|(c, o, e)| {
                    if !c.same(channel) {
                        *c = channel.clone();
                    }
                    (o, e)
                })
            }
            Self::Many(map) => map.get_mut(channel).map(|(o, e)| (o, e)),
        }
    }

    fn insert(&mut self, channel: &ChannelName, offset: u64, epoch: &Epoch) {
        if let Some((o, e)) = self.get_mut(channel) {
            (*o, *e) = (offset, epoch.clone());
            return;
        }
        let entry = (channel.clone(), offset, epoch.clone());
        match self {
            Self::Few { first: first @ None, .. } => *first = Some(entry),
            Self::Few { more, .. } if more.len() + 1 < FEW_CHANNELS => more.push(entry),
            Self::Few { first, more } => {
                let mut map: HashMap<_, _> =
                    first.take().into_iter().chain(more.drain(..)).map(|(c, o, e)| (c, (o, e))).collect();
                map.insert(entry.0, (entry.1, entry.2));
                *self = Self::Many(map);
            }
            Self::Many(map) => {
                map.insert(entry.0, (entry.1, entry.2));
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Few { first, more } => usize::from(first.is_some()) + more.len(),
            Self::Many(map) => map.len(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&ChannelName, u64, &Epoch)> {
        // One of the two is empty; chaining them iterates without boxing.
        let (first, more, many) = match self {
            Self::Few { first, more } => (first.as_ref(), more.as_slice(), None),
            Self::Many(map) => (None, &[][..], Some(map)),
        };
        first
            .into_iter()
            .chain(more)
            .map(|(c, o, e)| (c, *o, e))
            .chain(many.into_iter().flat_map(|map| map.iter().map(|(c, (o, e))| (c, *o, e))))
    }
}

impl DeliveryTracker {
    /// Whether `publication` is new for this connection; records it if so.
    pub fn admit(&mut self, publication: &Publication) -> bool {
        let position = &publication.position;
        match self.last.get_mut(&publication.channel) {
            Some((offset, epoch)) if *epoch == position.epoch => {
                if position.offset <= *offset {
                    return false;
                }
                *offset = position.offset;
            }
            Some((offset, epoch)) => (*offset, *epoch) = (position.offset, position.epoch.clone()),
            None => self.last.insert(&publication.channel, position.offset, &position.epoch),
        }
        true
    }

    /// Records that the connection is caught up to `offset` (from a `subscribed` reply), so live
    /// publications at or before it are not sent again. Never moves backwards within an epoch.
    pub fn mark(&mut self, channel: &ChannelName, offset: u64, epoch: &Epoch) {
        match self.last.get_mut(channel) {
            Some((last, e)) if e == epoch => *last = (*last).max(offset),
            _ => self.last.insert(channel, offset, epoch),
        }
    }

    /// How many channels it has positions for.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether it has no positions yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Last delivered position per channel.
    pub fn positions(&self) -> impl Iterator<Item = (&ChannelName, u64, &Epoch)> {
        self.last.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publication::{Payload, StreamPosition};

    fn publication(channel: &str, offset: u64, epoch: &Epoch) -> Publication {
        Publication::new(
            ChannelName::new(channel).expect("valid"),
            Payload::json("1").expect("valid"),
            StreamPosition { offset, epoch: epoch.clone() },
        )
    }

    #[test]
    fn tracker_drops_duplicates_and_accepts_new_epochs() {
        let e1 = Epoch::random();
        let e2 = Epoch::from_client("other");
        let mut t = DeliveryTracker::default();
        assert!(t.admit(&publication("a", 1, &e1)));
        assert!(t.admit(&publication("a", 2, &e1)));
        assert!(!t.admit(&publication("a", 2, &e1)));
        assert!(!t.admit(&publication("a", 1, &e1)));
        assert!(t.admit(&publication("b", 1, &e1)));
        assert!(t.admit(&publication("a", 1, &e2)));
    }

    #[test]
    fn tracker_takes_the_publications_name_so_later_comparisons_stop_at_the_pointer() {
        let e = Epoch::random();
        let mut t = DeliveryTracker::default();
        t.mark(&ChannelName::new("a").expect("valid"), 0, &e);
        let p = publication("a", 1, &e);
        assert!(!t.positions().any(|(c, ..)| c.same(&p.channel)));
        assert!(t.admit(&p));
        assert!(t.positions().all(|(c, ..)| c.same(&p.channel)));
    }

    #[test]
    fn tracker_keeps_every_channel_past_the_short_list() {
        let e = Epoch::random();
        let mut t = DeliveryTracker::default();
        let names: Vec<String> = (0..3 * FEW_CHANNELS).map(|n| format!("c{n}")).collect();
        for name in &names {
            assert!(t.admit(&publication(name, 5, &e)), "{name} first seen");
        }
        // Past the switch to a map: still deduplicated, and marks still never move backwards.
        for name in &names {
            assert!(!t.admit(&publication(name, 5, &e)), "{name} again");
            t.mark(&ChannelName::new(name).expect("valid"), 3, &e);
            assert!(t.admit(&publication(name, 6, &e)), "{name} next");
        }
        let mut seen: Vec<(String, u64)> = t.positions().map(|(c, o, _)| (c.to_string(), o)).collect();
        seen.sort();
        let mut want: Vec<(String, u64)> = names.iter().map(|n| (n.clone(), 6)).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[tokio::test]
    async fn full_queue_disconnects_as_slow_consumer() {
        let rx = Session::open("test", 2, true);
        let e = Epoch::random();
        for n in 1..=3 {
            rx.session().offer(&Arc::new(publication("a", n, &e)));
        }
        assert_eq!(rx.session().disconnected().await, Disconnect::SLOW_CONSUMER);
    }
}
