//! The broker of a single node: it sequences every channel in this process and fans out in offset
//! order. Alone it keeps history in memory, lost on restart (and the epoch changes, so clients are
//! told); with a durable [`HistoryStore`] history also goes to the store and survives restarts.
//! How the two share one sequencing path without a lock across I/O is in
//! [`history_store`](crate::HistoryStore)'s documentation.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::broker::{Broker, ChannelSummary, History, HistoryQuery, PublicationSink, Published};
use crate::channel::ChannelName;
use crate::clock::Clock;
use crate::error::Error;
use crate::history::{HistoryConfig, HistoryPolicy};
use crate::history_store::{HistoryStore, NullStore, StoredEntry};
use crate::publication::{Epoch, Payload, StreamPosition};
#[cfg(test)]
use crate::stream::IDEMPOTENCY_WINDOW;
use crate::stream::{min_ts, Stream};

/// Number of independently locked parts of the channel map; spreads contention between
/// publishers of different channels without costing memory per channel.
const SHARDS: usize = 32;

/// A channel with no publication for this long loses its in-memory state (latest value and
/// position); bounds the memory of channels nobody uses any more. Without a store the channel
/// then starts over with a new epoch; with one it is loaded again from the store. A channel that
/// holds nothing (no latest value, no history) goes at the next sweep instead.
pub const CHANNEL_IDLE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Sequences every channel in this process, keeps recent history in memory and hands
/// publications to the sink; `S` is where history is also stored ([`NullStore`]: nowhere).
pub struct MemoryBroker<S: HistoryStore = NullStore> {
    shards: Box<[Mutex<Shard>]>,
    /// Mixed into every unborn epoch (see [`Shard::generation`]), so that two brokers never
    /// give a channel the same one.
    seed: u64,
    history: HistoryConfig,
    sink: Arc<dyn PublicationSink>,
    clock: Clock,
    store: S,
    /// Most publications of a channel kept in memory when a store keeps the rest.
    hot_window: usize,
}

/// Part of the channel map; each stream has its own lock so that fan-out on one channel does not
/// hold up publishers of the others in the same shard.
#[derive(Default)]
struct Shard {
    streams: HashMap<ChannelName, Arc<Mutex<Stream>>>,
    /// Counts the sweeps that dropped a stream of this shard. A channel without a stream has an
    /// *unborn* epoch derived from the broker's seed, its name and this count: reads answer it
    /// without creating state, and the stream a publish creates takes it, so a client that read
    /// or subscribed at offset 0 recovers from there. Dropping a stream bumps the count under the
    /// shard's lock, so a channel never gets the epoch of a stream it lost.
    generation: u64,
}

impl MemoryBroker {
    /// A broker that keeps history in memory per `history`, timestamps by `clock` and hands
    /// publications to `sink`.
    pub fn new(history: HistoryConfig, clock: Clock, sink: Arc<dyn PublicationSink>) -> Self {
        Self::with_store(history, clock, NullStore, sink)
    }
}

impl<S: HistoryStore> MemoryBroker<S> {
    /// A broker that also keeps history in `store`.
    pub fn with_store(
        history: HistoryConfig,
        clock: Clock,
        store: S,
        sink: Arc<dyn PublicationSink>,
    ) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self { shards, seed: rand::random(), history, sink, clock, store, hot_window: usize::MAX }
    }

    /// Keeps at most `size` publications of each channel in memory (the hot window); with a
    /// durable store, history older than that is read from the store, so a channel can keep a
    /// day on disk and minutes in memory. Without a store, history is the hot window, and this
    /// has no effect.
    pub fn with_hot_window(mut self, size: usize) -> Self {
        self.hot_window = size;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn shard(&self, channel: &ChannelName) -> &Mutex<Shard> {
        let mut hasher = DefaultHasher::new();
        channel.hash(&mut hasher);
        &self.shards[hasher.finish() as usize % SHARDS]
    }

    fn policy(&self, channel: &ChannelName) -> HistoryPolicy {
        self.history.policy_for(channel.as_str())
    }

    /// The epoch `channel` gets when a stream is made for it while `shard` is in its current
    /// generation; called under the shard's lock.
    fn unborn_epoch(&self, channel: &ChannelName, shard: &Shard) -> Epoch {
        let mut hasher = DefaultHasher::new();
        (self.seed, shard.generation, channel).hash(&mut hasher);
        // Truncated to the width of a random epoch, which is as unlikely to collide.
        Epoch::from_client(&format!("{:08x}", hasher.finish() as u32))
    }

    /// What a read of `channel` answers while it has no stream: nothing, at offset 0 of its
    /// unborn epoch.
    fn unborn(&self, channel: &ChannelName, shard: &Shard) -> History {
        let position = StreamPosition { offset: 0, epoch: self.unborn_epoch(channel, shard) };
        History { publications: Vec::new(), position, oldest: 1, latest: None }
    }

    /// The in-memory stream of `channel`, made on first publish.
    fn stream(&self, channel: &ChannelName) -> Arc<Mutex<Stream>> {
        let mut shard = self.shard(channel).lock();
        if let Some(stream) = shard.streams.get(channel) {
            return stream.clone();
        }
        let stream =
            Stream::new(channel.clone(), self.unborn_epoch(channel, &shard), self.clock.now_millis());
        let stream = Arc::new(Mutex::new(stream));
        shard.streams.insert(channel.clone(), stream.clone());
        stream
    }

    /// The stream of `channel`, loaded from the store on first use; for a read (`create`
    /// false) of a channel the store does not know either, its unborn history instead.
    async fn loaded(
        &self,
        channel: &ChannelName,
        create: bool,
    ) -> Result<Result<Arc<Mutex<Stream>>, History>, Error> {
        if let Some(stream) = self.shard(channel).lock().streams.get(channel).cloned() {
            return Ok(Ok(stream));
        }
        // Loaded with no lock held. A racing load reads the same state, because nothing is
        // appended to a channel before its stream is in the map; the first one in wins.
        let stored = self.store.load(channel).await?;
        let now = self.clock.now_millis();
        let mut shard = self.shard(channel).lock();
        if let Some(stream) = shard.streams.get(channel) {
            return Ok(Ok(stream.clone()));
        }
        if stored.is_none() && !create {
            return Ok(Err(self.unborn(channel, &shard)));
        }
        let epoch = self.unborn_epoch(channel, &shard);
        let hot = self.hot_window;
        let stream = Arc::new(Mutex::new(Stream::restore(channel.clone(), stored, epoch, now, hot)));
        shard.streams.insert(channel.clone(), stream.clone());
        Ok(Ok(stream))
    }

    /// Drops history older than each channel's age limit, the in-memory state of channels
    /// idle for longer than [`CHANNEL_IDLE_TTL`] and of channels that hold nothing; tells the
    /// store to evict likewise. Called periodically by the node.
    pub async fn sweep(&self) {
        let now = self.clock.now_millis();
        let ttl = CHANNEL_IDLE_TTL.as_millis() as u64;
        let durable = self.store.is_durable();
        let mut stored = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let before = shard.streams.len();
            shard.streams.retain(|channel, stream| {
                // Streams are handed out under the shard lock, which this holds: a stream nobody
                // else holds cannot be picked up by a publisher while it is dropped.
                let held = Arc::strong_count(stream) > 1;
                let mut stream = stream.lock();
                let policy = self.policy(channel);
                stream.evict(policy, now);
                if durable {
                    stored.push((channel.clone(), policy));
                }
                let idle = stream.is_empty() || now.saturating_sub(stream.touched_ms) >= ttl;
                held || !stream.is_settled() || !idle
            });
            if shard.streams.len() < before {
                shard.generation += 1;
            }
        }
        for (channel, policy) in stored {
            match self.store.evict(&channel, policy.size, min_ts(policy, now)).await {
                Ok(oldest) => {
                    if let Some(stream) = self.shard(&channel).lock().streams.get(&channel) {
                        stream.lock().retain_from(oldest);
                    }
                }
                Err(e) => tracing::warn!(channel = %channel, error = %e, "could not evict stored history"),
            }
        }
    }

    /// Publishes through the store: sequenced under the stream's lock, written in a batch with
    /// no lock held, delivered in offset order once written (see [`HistoryStore`]).
    async fn publish_stored(
        &self,
        channel: &ChannelName,
        data: Payload,
        key: Option<&str>,
    ) -> Result<Published, Error> {
        let policy = self.policy(channel);
        self.store.admit(channel)?;
        let Ok(stream) = self.loaded(channel, true).await? else {
            return Err(Error::Broker("channel state without its store".into()));
        };
        let (position, duplicate, turn) = {
            let mut s = stream.lock();
            let Some(turn) = s.turn() else {
                return Err(Error::Broker("channel state without its store".into()));
            };
            match key.and_then(|k| s.duplicate(k)).cloned() {
                // Committed, possibly in an earlier epoch: the original's position stands.
                Some(position) if position.epoch != *s.epoch() || position.offset <= s.committed() => {
                    return Ok(Published { position, duplicate: true });
                }
                // Still being written: its outcome is this publish's too.
                Some(position) => (position, true, turn),
                None => {
                    let publication = s.next(data, key, self.clock.now_millis());
                    let position = publication.position.clone();
                    s.push_pending(StoredEntry { publication, key: key.map(Into::into) });
                    (position, false, turn)
                }
            }
        };
        let _turn = turn.lock().await;
        let batch = {
            let mut s = stream.lock();
            if *s.epoch() != position.epoch {
                return Err(Error::Broker("storing history failed; publish again".into()));
            }
            if s.committed() >= position.offset {
                return Ok(Published { position, duplicate });
            }
            s.take_pending()
        };
        let written = self.store.append(channel, &batch).await;
        let mut s = stream.lock();
        match written {
            Ok(()) => {
                for entry in &batch {
                    s.commit(&entry.publication, policy);
                    // Delivered under the stream's lock and the commit turn, batch after batch:
                    // offset order, as in the in-memory path.
                    self.sink.deliver(&entry.publication);
                }
                Ok(Published { position, duplicate })
            }
            Err(e) => {
                tracing::error!(channel = %channel, error = %e, "storing history failed; new epoch");
                s.restart_epoch(&batch);
                Err(e)
            }
        }
    }

    /// Reads history through the store when the hot window does not hold all of the answer.
    async fn history_stored(&self, channel: &ChannelName, query: HistoryQuery) -> Result<History, Error> {
        let policy = self.policy(channel);
        let stream = match self.loaded(channel, false).await? {
            Ok(stream) => stream,
            Err(unborn) => return Ok(unborn),
        };
        let now = self.clock.now_millis();
        let (oldest, min_ts) = {
            let mut s = stream.lock();
            s.evict(policy, now);
            if s.covers(&query) {
                return Ok(s.history(&query));
            }
            (s.oldest(), min_ts(policy, now))
        };
        let mut bounded = query;
        if query.is_forward() {
            // Start within what history retains, so that the store's `limit` counts only that.
            bounded.after = Some(query.after.unwrap_or(0).max(oldest.saturating_sub(1)));
            bounded.from_ms = Some(query.from_ms.unwrap_or(0).max(min_ts));
        }
        let stored = self.store.read(channel, bounded).await?;
        let s = stream.lock();
        let position = s.position();
        let publications = stored
            .publications
            .into_iter()
            .filter(|p| {
                p.position.epoch == position.epoch
                    && (oldest..=position.offset).contains(&p.position.offset)
                    && p.ts >= min_ts
            })
            .collect();
        Ok(History { publications, position, oldest, latest: s.latest().cloned() })
    }
}

#[async_trait]
impl<S: HistoryStore> Broker for MemoryBroker<S> {
    async fn publish(
        &self,
        channel: &ChannelName,
        data: Payload,
        idempotency_key: Option<&str>,
    ) -> Result<Published, Error> {
        if self.store.is_durable() {
            // Boxed so that the in-memory path's future stays as small as it was.
            return Box::pin(self.publish_stored(channel, data, idempotency_key)).await;
        }
        let policy = self.policy(channel);
        let stream = self.stream(channel);
        let mut stream = stream.lock();
        if let Some(position) = idempotency_key.and_then(|k| stream.duplicate(k)) {
            return Ok(Published { position: position.clone(), duplicate: true });
        }
        let publication = stream.next(data, idempotency_key, self.clock.now_millis());
        stream.commit(&publication, policy);
        // Fan out while the stream is locked: this is what keeps every subscriber's view of a
        // channel in offset order when several publishers race. Delivery only enqueues.
        self.sink.deliver(&publication);
        Ok(Published { position: publication.position.clone(), duplicate: false })
    }

    async fn history(&self, channel: &ChannelName, query: HistoryQuery) -> Result<History, Error> {
        if self.store.is_durable() {
            return Box::pin(self.history_stored(channel, query)).await;
        }
        let policy = self.policy(channel);
        let stream = {
            let shard = self.shard(channel).lock();
            match shard.streams.get(channel) {
                Some(stream) => stream.clone(),
                // A read creates no state: unknown names cost nothing however many are read.
                None => return Ok(self.unborn(channel, &shard)),
            }
        };
        let mut stream = stream.lock();
        stream.evict(policy, self.clock.now_millis());
        Ok(stream.history(&query))
    }

    async fn channels(
        &self,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<ChannelSummary>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The `limit` first names after `after`, kept in a max-heap so that a page costs memory
        // for its own entries only, however many channels there are.
        let mut page: BinaryHeap<PageEntry> = BinaryHeap::with_capacity(limit.min(PAGE_RESERVE) + 1);
        for shard in self.shards.iter() {
            for (channel, stream) in shard.lock().streams.iter() {
                if after.is_some_and(|after| channel <= after)
                    || (page.len() == limit && page.peek().is_some_and(|last| channel >= &last.0.channel))
                {
                    continue;
                }
                let stream = stream.lock();
                page.push(PageEntry(ChannelSummary {
                    channel: channel.clone(),
                    position: stream.position(),
                    last_ts: stream.latest().map(|p| p.ts),
                }));
                if page.len() > limit {
                    page.pop();
                }
            }
        }
        Ok(page.into_sorted_vec().into_iter().map(|entry| entry.0).collect())
    }
}

/// Most entries a page reserves up front: a caller's `limit` is not trusted with an allocation.
const PAGE_RESERVE: usize = 1024;

/// A channel in a page being gathered, ordered by name.
struct PageEntry(ChannelSummary);

impl PartialEq for PageEntry {
    fn eq(&self, other: &Self) -> bool {
        self.0.channel == other.0.channel
    }
}

impl Eq for PageEntry {}

impl PartialOrd for PageEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PageEntry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.channel.cmp(&other.0.channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::publication::Publication;

    #[derive(Default)]
    struct Collect(Mutex<Vec<u64>>);

    impl PublicationSink for Collect {
        fn deliver(&self, publication: &Arc<Publication>) {
            self.0.lock().push(publication.position.offset);
        }
    }

    fn broker(size: usize, max_age: Duration) -> (MemoryBroker, Arc<Collect>, ManualClock) {
        let sink = Arc::new(Collect::default());
        let clock = ManualClock::new(1_000_000);
        let history = HistoryConfig { default: HistoryPolicy { size, max_age }, rules: vec![] };
        (MemoryBroker::new(history, clock.clock(), sink.clone()), sink, clock)
    }

    fn ch(s: &str) -> ChannelName {
        ChannelName::new(s).expect("valid")
    }

    fn data(n: u64) -> Payload {
        Payload::json(n.to_string()).expect("valid")
    }

    #[tokio::test]
    async fn offsets_increase_and_history_is_bounded() {
        let (broker, sink, _) = broker(3, Duration::from_secs(60));
        for n in 1..=5 {
            let published = broker.publish(&ch("a"), data(n), None).await.expect("publish");
            assert_eq!(published.position.offset, n);
        }
        assert_eq!(*sink.0.lock(), vec![1, 2, 3, 4, 5]);
        let h = broker.history(&ch("a"), HistoryQuery::newest(10)).await.expect("history");
        let offsets: Vec<u64> = h.publications.iter().map(|p| p.position.offset).collect();
        assert_eq!(offsets, vec![3, 4, 5]);
        assert_eq!(h.oldest, 3);
        assert_eq!(h.position.offset, 5);
        let after = broker.history(&ch("a"), HistoryQuery::after(3, 1)).await.expect("history");
        assert_eq!(after.publications[0].position.offset, 4);
        assert_eq!(after.publications.len(), 1);
    }

    #[tokio::test]
    async fn old_entries_expire() {
        let (broker, _, clock) = broker(100, Duration::from_millis(20));
        broker.publish(&ch("a"), data(1), None).await.expect("publish");
        clock.advance(Duration::from_millis(40));
        broker.publish(&ch("a"), data(2), None).await.expect("publish");
        let h = broker.history(&ch("a"), HistoryQuery::after(0, 10)).await.expect("history");
        assert_eq!(h.publications.len(), 1);
        assert_eq!(h.oldest, 2);
    }

    #[tokio::test]
    async fn idle_channels_start_over_in_a_new_epoch() {
        let (broker, _, clock) = broker(100, Duration::from_secs(60));
        let first = broker.publish(&ch("a"), data(1), None).await.expect("publish");
        clock.advance(CHANNEL_IDLE_TTL - Duration::from_millis(1));
        broker.sweep().await;
        let kept = broker.history(&ch("a"), HistoryQuery::newest(0)).await.expect("history");
        assert_eq!(kept.position, first.position, "not idle for the whole TTL yet");
        clock.advance(Duration::from_millis(1));
        broker.sweep().await;
        let fresh = broker.history(&ch("a"), HistoryQuery::newest(0)).await.expect("history");
        assert_eq!(fresh.position.offset, 0);
        assert_ne!(fresh.position.epoch, first.position.epoch, "history was lost, so the epoch changed");
        assert!(fresh.latest.is_none());
    }

    async fn listed(broker: &MemoryBroker<impl HistoryStore>) -> Vec<String> {
        let page = broker.channels(None, usize::MAX).await.expect("channels");
        page.into_iter().map(|c| c.channel.as_str().to_owned()).collect()
    }

    #[tokio::test]
    async fn reads_of_unknown_channels_keep_nothing() {
        let (broker, _, _) = broker(100, Duration::from_secs(60));
        let mut read = Vec::new();
        for n in 0..1000 {
            let channel = ch(&format!("unknown/{n}"));
            read.push(broker.history(&channel, HistoryQuery::newest(0)).await.expect("history").position);
            broker.history(&channel, HistoryQuery::after(0, 10)).await.expect("history");
        }
        assert!(listed(&broker).await.is_empty(), "reads created no channel");
        assert!(read.iter().all(|p| p.offset == 0));
        let again = broker.history(&ch("unknown/7"), HistoryQuery::newest(0)).await.expect("history");
        assert_eq!(again.position, read[7], "an unread channel's epoch is stable");
        let first = broker.publish(&ch("unknown/7"), data(1), None).await.expect("publish");
        assert_eq!(first.position.epoch, read[7].epoch, "the first publication takes the epoch read");
        assert_eq!(listed(&broker).await, vec!["unknown/7"]);
    }

    #[tokio::test]
    async fn a_channel_gets_a_new_epoch_after_its_stream_is_dropped() {
        let (broker, _, clock) = broker(100, Duration::from_secs(60));
        let first = broker.publish(&ch("a"), data(1), None).await.expect("publish");
        let unborn = broker.history(&ch("b"), HistoryQuery::newest(0)).await.expect("history");
        clock.advance(CHANNEL_IDLE_TTL);
        broker.sweep().await;
        let read = broker.history(&ch("a"), HistoryQuery::newest(0)).await.expect("history");
        assert_eq!(read.position.offset, 0);
        assert_ne!(read.position.epoch, first.position.epoch, "never the epoch of the stream it lost");
        let again = broker.publish(&ch("a"), data(1), None).await.expect("publish");
        assert_eq!(again.position.epoch, read.position.epoch);
        // Unrelated channels may move to a new unborn epoch too: safe, since recovery from
        // offset 0 of another epoch still sends the new epoch's whole history.
        let b = broker.history(&ch("b"), HistoryQuery::newest(0)).await.expect("history");
        assert_eq!(b.position.offset, unborn.position.offset);
    }

    #[tokio::test]
    async fn the_sweep_drops_channels_that_hold_nothing_at_once() {
        let store = crate::conformance::TestStore::default();
        let history = HistoryConfig {
            default: HistoryPolicy { size: 10, max_age: Duration::from_secs(60) },
            rules: vec![],
        };
        let clock = ManualClock::new(1_000_000);
        let broker = MemoryBroker::with_store(history, clock.clock(), store, Arc::new(Collect::default()));
        broker.store().fail_appends(true);
        broker.publish(&ch("failed"), data(1), None).await.expect_err("the store fails");
        assert_eq!(listed(&broker).await, vec!["failed"], "a failed first write leaves an empty stream");
        broker.sweep().await;
        assert!(listed(&broker).await.is_empty(), "dropped without waiting for the idle TTL");
        broker.store().fail_appends(false);
        broker.publish(&ch("kept"), data(1), None).await.expect("publish");
        broker.sweep().await;
        assert_eq!(listed(&broker).await, vec!["kept"], "a channel with a latest value stays");
    }

    #[tokio::test]
    async fn channels_come_a_page_at_a_time() {
        let (broker, _, _) = broker(10, Duration::from_secs(60));
        let mut names: Vec<String> = (0..250).map(|n| format!("c/{n}")).collect();
        for name in &names {
            broker.publish(&ch(name), data(1), None).await.expect("publish");
        }
        names.sort();
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = broker.channels(after.as_ref(), 7).await.expect("channels");
            assert!(page.len() <= 7);
            let Some(last) = page.last() else { break };
            after = Some(last.channel.clone());
            paged.extend(page.into_iter().map(|c| c.channel.as_str().to_owned()));
        }
        assert_eq!(paged, names);
        assert_eq!(listed(&broker).await, names);
    }

    #[tokio::test]
    async fn keys_beyond_the_window_are_forgotten() {
        let (broker, sink, _) = broker(10, Duration::from_secs(60));
        broker.publish(&ch("a"), data(0), Some("k0")).await.expect("publish");
        for n in 1..=IDEMPOTENCY_WINDOW as u64 {
            broker.publish(&ch("a"), data(n), Some(&format!("k{n}"))).await.expect("publish");
        }
        let again = broker.publish(&ch("a"), data(0), Some("k0")).await.expect("publish");
        assert!(!again.duplicate, "the window is {IDEMPOTENCY_WINDOW} keys");
        assert_eq!(sink.0.lock().len(), IDEMPOTENCY_WINDOW + 2);
    }

    #[tokio::test]
    async fn epochs_differ_between_brokers() {
        let (a, _, _) = broker(10, Duration::from_secs(60));
        let (b, _, _) = broker(10, Duration::from_secs(60));
        let pa = a.publish(&ch("x"), data(1), None).await.expect("publish");
        let pb = b.publish(&ch("x"), data(1), None).await.expect("publish");
        assert_ne!(pa.position.epoch, pb.position.epoch);
    }
}
