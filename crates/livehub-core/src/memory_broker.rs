//! The in-memory broker: single node, nothing to install, history lost on restart (and the epoch
//! changes, so clients are told).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::broker::{Broker, ChannelSummary, History, HistoryQuery, PublicationSink, Published};
use crate::channel::ChannelName;
use crate::error::Error;
use crate::history::HistoryConfig;
use crate::publication::{now_millis, Epoch, Payload, Publication, StreamPosition};
use crate::sync::lock;

/// Number of independently locked parts of the channel map; spreads contention between
/// publishers of different channels without costing memory per channel.
const SHARDS: usize = 32;

/// How many idempotency keys each channel remembers. A client retries an unacknowledged publish
/// right after it reconnects, so a short window suffices.
const IDEMPOTENCY_WINDOW: usize = 1024;

/// A channel with no publication for this long loses its state (latest value and position) and
/// starts over with a new epoch; bounds the memory of channels nobody uses any more.
pub const CHANNEL_IDLE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Keeps every channel's history in this process.
pub struct MemoryBroker {
    shards: Box<[Mutex<Shard>]>,
    history: HistoryConfig,
    sink: Arc<dyn PublicationSink>,
}

/// Part of the channel map; each stream has its own lock so that fan-out on one channel does not
/// hold up publishers of the others in the same shard.
type Shard = HashMap<ChannelName, Arc<Mutex<Stream>>>;

/// One channel's stream.
struct Stream {
    /// The name every publication of the stream shares: one allocation, and equal by pointer,
    /// which is what each subscriber's [`DeliveryTracker`](crate::DeliveryTracker) compares.
    name: ChannelName,
    epoch: Epoch,
    offset: u64,
    history: VecDeque<Arc<Publication>>,
    latest: Option<Arc<Publication>>,
    keys: HashMap<Box<str>, StreamPosition>,
    key_order: VecDeque<Box<str>>,
    touched_ms: u64,
}

impl Stream {
    fn new(name: ChannelName) -> Self {
        Self {
            name,
            epoch: Epoch::random(),
            offset: 0,
            history: VecDeque::new(),
            latest: None,
            keys: HashMap::new(),
            key_order: VecDeque::new(),
            touched_ms: now_millis(),
        }
    }

    fn position(&self) -> StreamPosition {
        StreamPosition { offset: self.offset, epoch: self.epoch.clone() }
    }

    fn evict(&mut self, size: usize, max_age: Duration, now_ms: u64) {
        let min_ts = now_ms.saturating_sub(max_age.as_millis() as u64);
        while self.history.len() > size || self.history.front().is_some_and(|p| p.ts < min_ts) {
            self.history.pop_front();
        }
    }

    fn remember_key(&mut self, key: &str, position: StreamPosition) {
        if self.key_order.len() == IDEMPOTENCY_WINDOW {
            if let Some(old) = self.key_order.pop_front() {
                self.keys.remove(&old);
            }
        }
        self.key_order.push_back(key.into());
        self.keys.insert(key.into(), position);
    }
}

impl MemoryBroker {
    /// A broker that keeps history per `history` and hands publications to `sink`.
    pub fn new(history: HistoryConfig, sink: Arc<dyn PublicationSink>) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        Self { shards, history, sink }
    }

    fn shard(&self, channel: &ChannelName) -> &Mutex<Shard> {
        let mut hasher = DefaultHasher::new();
        channel.hash(&mut hasher);
        &self.shards[hasher.finish() as usize % SHARDS]
    }

    fn stream(&self, channel: &ChannelName) -> Arc<Mutex<Stream>> {
        let mut shard = lock(self.shard(channel));
        shard
            .entry(channel.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Stream::new(channel.clone()))))
            .clone()
    }

    /// Drops the state of channels idle for longer than [`CHANNEL_IDLE_TTL`] and history older
    /// than each channel's age limit. Called periodically by the node.
    pub fn sweep(&self) {
        let now = now_millis();
        let ttl = CHANNEL_IDLE_TTL.as_millis() as u64;
        for shard in self.shards.iter() {
            lock(shard).retain(|channel, stream| {
                let mut stream = lock(stream);
                let policy = self.history.policy_for(channel.as_str());
                stream.evict(policy.size, policy.max_age, now);
                now.saturating_sub(stream.touched_ms) < ttl
            });
        }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(
        &self,
        channel: &ChannelName,
        data: Payload,
        idempotency_key: Option<&str>,
    ) -> Result<Published, Error> {
        let policy = self.history.policy_for(channel.as_str());
        let stream = self.stream(channel);
        let mut stream = lock(&stream);
        if let Some(position) = idempotency_key.and_then(|k| stream.keys.get(k)) {
            return Ok(Published { position: position.clone(), duplicate: true });
        }
        stream.offset += 1;
        let position = stream.position();
        let publication = Arc::new(Publication::new(stream.name.clone(), data, position.clone()));
        stream.touched_ms = publication.ts;
        if policy.size > 0 {
            stream.history.push_back(publication.clone());
        }
        stream.evict(policy.size, policy.max_age, publication.ts);
        stream.latest = Some(publication.clone());
        if let Some(key) = idempotency_key {
            stream.remember_key(key, position.clone());
        }
        // Fan out while the stream is locked: this is what keeps every subscriber's view of a
        // channel in offset order when several publishers race. Delivery only enqueues.
        self.sink.deliver(&publication);
        Ok(Published { position, duplicate: false })
    }

    async fn history(&self, channel: &ChannelName, query: HistoryQuery) -> Result<History, Error> {
        let policy = self.history.policy_for(channel.as_str());
        let stream = self.stream(channel);
        let mut stream = lock(&stream);
        stream.evict(policy.size, policy.max_age, now_millis());
        let oldest = stream.history.front().map_or(stream.offset + 1, |p| p.position.offset);
        let publications = match query.after {
            Some(after) => {
                // Offsets in history are consecutive, so the start index is arithmetic.
                let skip = (after + 1).saturating_sub(oldest) as usize;
                stream.history.iter().skip(skip).take(query.limit).cloned().collect()
            }
            None => {
                let skip = stream.history.len().saturating_sub(query.limit);
                stream.history.iter().skip(skip).cloned().collect()
            }
        };
        Ok(History { publications, position: stream.position(), oldest, latest: stream.latest.clone() })
    }

    async fn channels(&self) -> Result<Vec<ChannelSummary>, Error> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            for (channel, stream) in lock(shard).iter() {
                let stream = lock(stream);
                out.push(ChannelSummary {
                    channel: channel.clone(),
                    position: stream.position(),
                    last_ts: stream.latest.as_ref().map(|p| p.ts),
                });
            }
        }
        out.sort_by(|a, b| a.channel.cmp(&b.channel));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryPolicy;

    #[derive(Default)]
    struct Collect(Mutex<Vec<u64>>);

    impl PublicationSink for Collect {
        fn deliver(&self, publication: &Arc<Publication>) {
            lock(&self.0).push(publication.position.offset);
        }
    }

    fn broker(size: usize, max_age: Duration) -> (MemoryBroker, Arc<Collect>) {
        let sink = Arc::new(Collect::default());
        let history = HistoryConfig { default: HistoryPolicy { size, max_age }, rules: vec![] };
        (MemoryBroker::new(history, sink.clone()), sink)
    }

    fn ch(s: &str) -> ChannelName {
        ChannelName::new(s).expect("valid")
    }

    fn data(n: u64) -> Payload {
        Payload::json(n.to_string()).expect("valid")
    }

    #[tokio::test]
    async fn offsets_increase_and_history_is_bounded() {
        let (broker, sink) = broker(3, Duration::from_secs(60));
        for n in 1..=5 {
            let published = broker.publish(&ch("a"), data(n), None).await.expect("publish");
            assert_eq!(published.position.offset, n);
        }
        assert_eq!(*lock(&sink.0), vec![1, 2, 3, 4, 5]);
        let h = broker.history(&ch("a"), HistoryQuery { after: None, limit: 10 }).await.expect("history");
        let offsets: Vec<u64> = h.publications.iter().map(|p| p.position.offset).collect();
        assert_eq!(offsets, vec![3, 4, 5]);
        assert_eq!(h.oldest, 3);
        assert_eq!(h.position.offset, 5);
        let after =
            broker.history(&ch("a"), HistoryQuery { after: Some(3), limit: 1 }).await.expect("history");
        assert_eq!(after.publications[0].position.offset, 4);
        assert_eq!(after.publications.len(), 1);
    }

    #[tokio::test]
    async fn size_zero_keeps_latest_only() {
        let (broker, _) = broker(0, Duration::from_secs(60));
        broker.publish(&ch("a"), data(1), None).await.expect("publish");
        let h = broker.history(&ch("a"), HistoryQuery { after: Some(0), limit: 10 }).await.expect("history");
        assert!(h.publications.is_empty());
        assert_eq!(h.oldest, 2);
        assert_eq!(h.latest.expect("latest").position.offset, 1);
    }

    #[tokio::test]
    async fn old_entries_expire() {
        let (broker, _) = broker(100, Duration::from_millis(20));
        broker.publish(&ch("a"), data(1), None).await.expect("publish");
        tokio::time::sleep(Duration::from_millis(40)).await;
        broker.publish(&ch("a"), data(2), None).await.expect("publish");
        let h = broker.history(&ch("a"), HistoryQuery { after: Some(0), limit: 10 }).await.expect("history");
        assert_eq!(h.publications.len(), 1);
        assert_eq!(h.oldest, 2);
    }

    #[tokio::test]
    async fn idempotency_key_stores_once() {
        let (broker, sink) = broker(10, Duration::from_secs(60));
        let first = broker.publish(&ch("a"), data(1), Some("k1")).await.expect("publish");
        let again = broker.publish(&ch("a"), data(1), Some("k1")).await.expect("publish");
        assert!(!first.duplicate);
        assert!(again.duplicate);
        assert_eq!(first.position, again.position);
        assert_eq!(lock(&sink.0).len(), 1);
    }

    #[tokio::test]
    async fn epochs_differ_between_brokers() {
        let (a, _) = broker(10, Duration::from_secs(60));
        let (b, _) = broker(10, Duration::from_secs(60));
        let pa = a.publish(&ch("x"), data(1), None).await.expect("publish");
        let pb = b.publish(&ch("x"), data(1), None).await.expect("publish");
        assert_ne!(pa.position.epoch, pb.position.epoch);
    }
}
