//! The broker conformance suite: the contracts written on [`Broker`], checked against any
//! implementation (feature `conformance`).
//!
//! A broker's tests call [`run_all`] with a function that makes a broker from [`BrokerParts`]:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use livehub_core::conformance::{run_all, BrokerParts};
//! # use livehub_core::MemoryBroker;
//! # async fn conforms() {
//! run_all(async |parts: BrokerParts| Arc::new(MemoryBroker::new(parts.history, parts.clock, parts.sink)))
//!     .await;
//! # }
//! ```
//!
//! Run it on a multi-threaded runtime, so that racing publishers really race. Every check uses
//! channels under a fresh random prefix, so brokers that share a store (a durable store, a Redis
//! server) may keep what earlier checks left. Time is a [`ManualClock`] the checks move; nothing
//! sleeps. Deliveries are awaited (a Redis broker delivers from another task), and "nothing
//! more was delivered" is checked by publishing a marker after it and waiting for the marker:
//! deliveries come in offset order, so anything owed before it has arrived by then.

mod recorder;
mod test_store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use recorder::{Recorder, DELIVERY_WAIT};
pub use test_store::{Held, TestStore};

use crate::broker::{Broker, ChannelSummary, History, HistoryQuery, Published};
use crate::channel::ChannelName;
use crate::clock::{Clock, ManualClock};
use crate::history::{HistoryConfig, HistoryPolicy};
use crate::publication::Payload;
use crate::stream::IDEMPOTENCY_WINDOW;

/// What the suite gives the broker it makes: the broker must hand publications to `sink`,
/// timestamp and age history by `clock`, and keep history per `history`.
pub struct BrokerParts {
    /// Where publications go.
    pub sink: Arc<Recorder>,
    /// The time.
    pub clock: Clock,
    /// How much history each channel keeps.
    pub history: HistoryConfig,
}

/// A time to start the manual clock at: a plausible present, so that nothing underflows.
pub const START_MS: u64 = 1_700_000_000_000;

/// Makes a broker for a check: implemented by every `async` function or closure from
/// [`BrokerParts`] to an `Arc` of a [`Broker`].
pub trait MakeBroker {
    /// A broker built from `parts`.
    fn make(&self, parts: BrokerParts) -> impl Future<Output = Arc<dyn Broker>>;
}

impl<F, B> MakeBroker for F
where
    F: AsyncFn(BrokerParts) -> Arc<B>,
    B: Broker,
{
    async fn make(&self, parts: BrokerParts) -> Arc<dyn Broker> {
        self(parts).await
    }
}

/// Runs every check against brokers `make` builds.
pub async fn run_all(make: impl MakeBroker) {
    offsets_are_consecutive_from_one(&make).await;
    epochs_change_only_with_lost_history(&make).await;
    duplicates_return_the_original(&make).await;
    history_by_offset(&make).await;
    size_zero_keeps_the_latest_only(&make).await;
    history_by_time(&make).await;
    eviction_by_age(&make).await;
    timestamps_follow_the_clock(&make).await;
    delivery_follows_offsets_under_racing_publishers(&make).await;
    channels_are_listed(&make).await;
    reads_create_no_channels(&make).await;
}

/// One broker under test with its sink, clock and channel prefix.
struct Harness {
    broker: Arc<dyn Broker>,
    sink: Arc<Recorder>,
    clock: ManualClock,
    prefix: String,
}

impl Harness {
    async fn new(make: &impl MakeBroker, size: usize, max_age: Duration) -> Self {
        let prefix = format!("conformance/{:08x}", rand::random::<u32>());
        Self::with_prefix(make, size, max_age, prefix).await
    }

    /// Another broker over the same channels (and, for a durable broker, the same store).
    async fn with_prefix(make: &impl MakeBroker, size: usize, max_age: Duration, prefix: String) -> Self {
        let sink = Arc::new(Recorder::default());
        let clock = ManualClock::new(START_MS);
        let history = HistoryConfig { default: HistoryPolicy { size, max_age }, rules: Vec::new() };
        let broker = make.make(BrokerParts { sink: sink.clone(), clock: clock.clock(), history }).await;
        Self { broker, sink, clock, prefix }
    }

    fn ch(&self, name: &str) -> ChannelName {
        match ChannelName::new(&format!("{}/{name}", self.prefix)) {
            Ok(channel) => channel,
            Err(e) => panic!("the suite's channel names are valid: {e}"),
        }
    }

    async fn publish(&self, channel: &ChannelName, n: u64) -> Published {
        self.publish_keyed(channel, n, None).await
    }

    async fn publish_keyed(&self, channel: &ChannelName, n: u64, key: Option<&str>) -> Published {
        match self.broker.publish(channel, data(n), key).await {
            Ok(published) => published,
            Err(e) => panic!("publish {n} on {channel}: {e}"),
        }
    }

    async fn history(&self, channel: &ChannelName, query: HistoryQuery) -> History {
        match self.broker.history(channel, query).await {
            Ok(history) => history,
            Err(e) => panic!("history of {channel} ({query:?}): {e}"),
        }
    }

    async fn channels(&self, after: Option<&ChannelName>, limit: usize) -> Vec<ChannelSummary> {
        match self.broker.channels(after, limit).await {
            Ok(listed) => listed,
            Err(e) => panic!("channels after {after:?}: {e}"),
        }
    }

    async fn offsets(&self, channel: &ChannelName, query: HistoryQuery) -> Vec<u64> {
        offsets(&self.history(channel, query).await)
    }
}

fn data(n: u64) -> Payload {
    match Payload::json(n.to_string()) {
        Ok(payload) => payload,
        Err(e) => panic!("a number is JSON: {e}"),
    }
}

fn offsets(history: &History) -> Vec<u64> {
    history.publications.iter().map(|p| p.position.offset).collect()
}

const MINUTE: Duration = Duration::from_secs(60);

/// Offsets are consecutive from 1 in one epoch; a read of a new channel gives it offset 0 in
/// the epoch its first publication then has.
pub async fn offsets_are_consecutive_from_one(make: &impl MakeBroker) {
    let h = Harness::new(make, 100, MINUTE).await;
    let (a, b) = (h.ch("a"), h.ch("b"));
    let before = h.history(&b, HistoryQuery::newest(10)).await;
    assert_eq!(before.position.offset, 0, "a new channel is at offset 0");
    assert!(before.publications.is_empty() && before.latest.is_none());
    assert_eq!(before.oldest, 1);
    let mut epoch = None;
    for n in 1..=5 {
        let published = h.publish(&a, n).await;
        assert!(!published.duplicate);
        assert_eq!(published.position.offset, n, "offsets are consecutive from 1");
        let epoch = epoch.get_or_insert_with(|| published.position.epoch.clone());
        assert_eq!(published.position.epoch, *epoch, "the epoch stays while history is whole");
    }
    let history = h.history(&a, HistoryQuery::newest(10)).await;
    assert_eq!(Some(&history.position.epoch), epoch.as_ref());
    assert_eq!(history.position.offset, 5);
    assert_eq!(offsets(&history), vec![1, 2, 3, 4, 5]);
    let first_b = h.publish(&b, 1).await;
    assert_eq!(first_b.position.offset, 1, "channels are numbered independently");
    assert_eq!(first_b.position.epoch, before.position.epoch, "the read answered the epoch to come");
    h.sink.wait_for(&a, 5).await;
    assert_eq!(h.sink.offsets(&a), vec![1, 2, 3, 4, 5]);
}

/// A second broker over the same channels either still has their whole history in the same
/// epoch (a shared store) or reports a different epoch (history lost): never the same epoch
/// with other contents.
pub async fn epochs_change_only_with_lost_history(make: &impl MakeBroker) {
    let first = Harness::new(make, 100, MINUTE).await;
    let a = first.ch("a");
    for n in 1..=3 {
        first.publish(&a, n).await;
    }
    let before = first.history(&a, HistoryQuery::after(0, 10)).await;
    let second = Harness::with_prefix(make, 100, MINUTE, first.prefix.clone()).await;
    let after = second.history(&a, HistoryQuery::after(0, 10)).await;
    if after.position.epoch == before.position.epoch {
        assert_eq!(after.position.offset, 3, "same epoch, same position");
        assert_eq!(offsets(&after), vec![1, 2, 3], "same epoch, same history");
        let contents: Vec<_> = after.publications.iter().map(|p| p.data.clone()).collect();
        assert_eq!(contents, vec![data(1), data(2), data(3)]);
        let ts: Vec<_> = after.publications.iter().map(|p| p.ts).collect();
        let ts_before: Vec<_> = before.publications.iter().map(|p| p.ts).collect();
        assert_eq!(ts, ts_before);
    }
    let other = second.ch("other");
    let published = second.publish(&other, 1).await;
    assert_ne!(published.position.epoch, after.position.epoch, "each channel has its own epoch");
}

/// A repeated idempotency key stores and delivers nothing and returns the original position,
/// for at least [`IDEMPOTENCY_WINDOW`] keyed publications; keys are per channel.
pub async fn duplicates_return_the_original(make: &impl MakeBroker) {
    let h = Harness::new(make, 100, MINUTE).await;
    let (a, b) = (h.ch("a"), h.ch("b"));
    let first = h.publish_keyed(&a, 1, Some("k1")).await;
    let again = h.publish_keyed(&a, 99, Some("k1")).await;
    assert!(!first.duplicate);
    assert!(again.duplicate, "the same key again is a duplicate, whatever its data");
    assert_eq!(again.position, first.position);
    let next = h.publish_keyed(&a, 2, Some("k2")).await;
    assert_eq!(next.position.offset, 2, "a duplicate takes no offset");
    let elsewhere = h.publish_keyed(&b, 1, Some("k1")).await;
    assert!(!elsewhere.duplicate, "keys are per channel");
    h.publish(&a, 3).await;
    h.sink.wait_for(&a, 3).await;
    assert_eq!(h.sink.offsets(&a), vec![1, 2, 3], "a duplicate is not delivered");
    let history = h.history(&a, HistoryQuery::after(0, 10)).await;
    assert_eq!(offsets(&history), vec![1, 2, 3]);
    assert_eq!(history.publications[0].data, data(1), "the original is kept");

    // The window: the oldest of the newest IDEMPOTENCY_WINDOW keys is still remembered.
    let w = h.ch("window");
    let original = h.publish_keyed(&w, 0, Some("key-0")).await;
    for n in 1..IDEMPOTENCY_WINDOW as u64 {
        h.publish_keyed(&w, n, Some(&format!("key-{n}"))).await;
    }
    let retry = h.publish_keyed(&w, 0, Some("key-0")).await;
    assert!(retry.duplicate, "a key among the last {IDEMPOTENCY_WINDOW} is remembered");
    assert_eq!(retry.position, original.position);
}

/// History bounded by count: the newest `size` kept, read after an offset or the newest N,
/// with `oldest` and `latest`.
pub async fn history_by_offset(make: &impl MakeBroker) {
    let h = Harness::new(make, 3, MINUTE).await;
    let a = h.ch("a");
    for n in 1..=5 {
        h.publish(&a, n).await;
    }
    let newest = h.history(&a, HistoryQuery::newest(10)).await;
    assert_eq!(offsets(&newest), vec![3, 4, 5], "the newest `size` are kept, oldest first");
    assert_eq!(newest.oldest, 3);
    assert_eq!(newest.position.offset, 5);
    assert_eq!(newest.latest.as_ref().map(|p| p.position.offset), Some(5));
    assert_eq!(h.offsets(&a, HistoryQuery::newest(2)).await, vec![4, 5]);
    assert_eq!(h.offsets(&a, HistoryQuery::after(0, 10)).await, vec![3, 4, 5]);
    assert_eq!(h.offsets(&a, HistoryQuery::after(3, 1)).await, vec![4]);
    assert_eq!(h.offsets(&a, HistoryQuery::after(3, 10)).await, vec![4, 5]);
    assert_eq!(h.offsets(&a, HistoryQuery::after(5, 10)).await, Vec::<u64>::new());
    assert_eq!(h.offsets(&a, HistoryQuery::after(9, 10)).await, Vec::<u64>::new());
    let none = h.history(&a, HistoryQuery::newest(0)).await;
    assert!(none.publications.is_empty(), "limit 0 reads only the position and the latest");
    assert_eq!(none.position.offset, 5);
    assert_eq!(none.latest.map(|p| p.data.clone()), Some(data(5)));
}

/// With size 0 only the latest value is kept.
pub async fn size_zero_keeps_the_latest_only(make: &impl MakeBroker) {
    let h = Harness::new(make, 0, MINUTE).await;
    let a = h.ch("a");
    h.publish(&a, 1).await;
    h.publish(&a, 2).await;
    let history = h.history(&a, HistoryQuery::after(0, 10)).await;
    assert!(history.publications.is_empty());
    assert_eq!(history.oldest, 3, "nothing kept: oldest is past the position");
    assert_eq!(history.position.offset, 2);
    assert_eq!(history.latest.map(|p| p.position.offset), Some(2));
    assert!(h.history(&a, HistoryQuery::newest(10)).await.publications.is_empty());
    let keyed = h.publish_keyed(&a, 3, Some("k")).await;
    assert!(h.publish_keyed(&a, 3, Some("k")).await.duplicate, "keys outlive history");
    assert_eq!(keyed.position.offset, 3);
}

/// History read by time range, paged by offset.
pub async fn history_by_time(make: &impl MakeBroker) {
    let h = Harness::new(make, 100, Duration::from_secs(3600)).await;
    let a = h.ch("a");
    // Offsets 1..=6 at START + 0, 1, 2, 2, 3, 4 seconds.
    for (n, at) in [0u64, 1, 2, 2, 3, 4].into_iter().enumerate() {
        h.clock.set(START_MS + at * 1000);
        h.publish(&a, n as u64 + 1).await;
    }
    let s = |secs: u64| START_MS + secs * 1000;
    let range = HistoryQuery::newest(10).from_ms(s(1)).to_ms(s(3));
    assert_eq!(h.offsets(&a, range).await, vec![2, 3, 4], "from inclusive, to exclusive");
    let first_page = HistoryQuery::newest(2).from_ms(s(1)).to_ms(s(4));
    assert_eq!(h.offsets(&a, first_page).await, vec![2, 3], "a time range reads forward");
    let next_page = HistoryQuery { after: Some(3), ..first_page };
    assert_eq!(h.offsets(&a, next_page).await, vec![4, 5], "paged by offset");
    let last_page = HistoryQuery { after: Some(5), ..first_page };
    assert_eq!(h.offsets(&a, last_page).await, Vec::<u64>::new());
    assert_eq!(h.offsets(&a, HistoryQuery::newest(2).to_ms(s(3))).await, vec![3, 4], "the newest before");
    assert_eq!(h.offsets(&a, HistoryQuery::newest(10).from_ms(s(4))).await, vec![6]);
    assert_eq!(h.offsets(&a, HistoryQuery::newest(10).from_ms(s(5))).await, Vec::<u64>::new());
    assert_eq!(h.offsets(&a, HistoryQuery::newest(10).to_ms(s(0))).await, Vec::<u64>::new());
}

/// History older than `max_age` by the broker's clock is evicted, on read as on publish; the
/// latest value stays.
pub async fn eviction_by_age(make: &impl MakeBroker) {
    let h = Harness::new(make, 100, Duration::from_secs(10)).await;
    let a = h.ch("a");
    h.publish(&a, 1).await;
    h.clock.advance(Duration::from_secs(5));
    h.publish(&a, 2).await;
    h.clock.advance(Duration::from_secs(6));
    let history = h.history(&a, HistoryQuery::after(0, 10)).await;
    assert_eq!(offsets(&history), vec![2], "older than max_age is gone");
    assert_eq!(history.oldest, 2);
    h.publish(&a, 3).await;
    assert_eq!(h.offsets(&a, HistoryQuery::after(0, 10)).await, vec![2, 3]);
    h.clock.advance(Duration::from_secs(11));
    let history = h.history(&a, HistoryQuery::newest(10)).await;
    assert!(history.publications.is_empty());
    assert_eq!(history.oldest, 4);
    assert_eq!(history.position.offset, 3, "eviction keeps the position");
    assert_eq!(history.latest.map(|p| p.position.offset), Some(3), "and the latest value");
    assert_eq!(h.publish(&a, 4).await.position.offset, 4);
}

/// Timestamps are the broker's clock, and never go back in offset order.
pub async fn timestamps_follow_the_clock(make: &impl MakeBroker) {
    let h = Harness::new(make, 100, MINUTE).await;
    let a = h.ch("a");
    h.publish(&a, 1).await;
    h.clock.advance(Duration::from_millis(1500));
    h.publish(&a, 2).await;
    h.clock.set(START_MS + 500);
    h.publish(&a, 3).await;
    let ts: Vec<u64> =
        h.history(&a, HistoryQuery::after(0, 10)).await.publications.iter().map(|p| p.ts).collect();
    assert_eq!(ts, vec![START_MS, START_MS + 1500, START_MS + 1500], "a clock stepping back does not");
}

/// Publishers racing on one channel: every offset once, delivered in offset order.
pub async fn delivery_follows_offsets_under_racing_publishers(make: &impl MakeBroker) {
    const PUBLISHERS: u64 = 8;
    const EACH: u64 = 50;
    let h = Harness::new(make, 1000, MINUTE).await;
    let a = h.ch("a");
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (broker, a) = (h.broker.clone(), a.clone());
            tokio::spawn(async move {
                let mut offsets = Vec::new();
                for n in 0..EACH {
                    match broker.publish(&a, data(p * EACH + n), None).await {
                        Ok(published) => offsets.push(published.position.offset),
                        Err(e) => panic!("publish: {e}"),
                    }
                }
                offsets
            })
        })
        .collect();
    let mut returned = Vec::new();
    for task in tasks {
        match task.await {
            Ok(offsets) => {
                assert!(offsets.windows(2).all(|w| w[0] < w[1]), "one publisher's offsets increase");
                returned.extend(offsets);
            }
            Err(e) => panic!("publisher task: {e}"),
        }
    }
    returned.sort_unstable();
    let all: Vec<u64> = (1..=PUBLISHERS * EACH).collect();
    assert_eq!(returned, all, "every offset given out once");
    h.sink.wait_for(&a, all.len()).await;
    assert_eq!(h.sink.offsets(&a), all, "delivered once each, in offset order");
    assert_eq!(h.offsets(&a, HistoryQuery::after(0, 1000)).await, all);
}

/// Channels published to are listed, sorted by name, with their position and last timestamp.
pub async fn channels_are_listed(make: &impl MakeBroker) {
    let h = Harness::new(make, 100, MINUTE).await;
    let (a, b) = (h.ch("a"), h.ch("b"));
    h.publish(&b, 1).await;
    h.clock.advance(Duration::from_secs(1));
    h.publish(&a, 1).await;
    let second = h.publish(&a, 2).await;
    let listed = h.channels(None, usize::MAX).await;
    let ours: Vec<_> = listed.iter().filter(|c| c.channel.as_str().starts_with(&h.prefix)).collect();
    let names: Vec<&ChannelName> = ours.iter().map(|c| &c.channel).collect();
    assert_eq!(names, vec![&a, &b], "sorted by name");
    assert_eq!(ours[0].position, second.position);
    assert_eq!(ours[0].last_ts, Some(START_MS + 1000));
    assert_eq!(ours[1].position.offset, 1);
    assert_eq!(ours[1].last_ts, Some(START_MS));
    let sorted = listed.windows(2).all(|w| w[0].channel <= w[1].channel);
    assert!(sorted, "the whole listing is sorted");
    let start = match ChannelName::new(&h.prefix) {
        Ok(start) => start,
        Err(e) => panic!("the prefix is a valid name: {e}"),
    };
    let first = h.channels(Some(&start), 1).await;
    assert_eq!(first.iter().map(|c| &c.channel).collect::<Vec<_>>(), vec![&a], "a page of one");
    let next = h.channels(Some(&a), 1).await;
    assert_eq!(next.iter().map(|c| &c.channel).collect::<Vec<_>>(), vec![&b], "the page after it");
    assert_eq!(next[0].position.offset, 1);
    assert!(h.channels(Some(&start), 0).await.is_empty(), "a page of none");
}

/// Reading channels nobody published to, their history or their latest value, stores nothing:
/// they are not listed, and the reads answer offset 0.
pub async fn reads_create_no_channels(make: &impl MakeBroker) {
    let h = Harness::new(make, 100, MINUTE).await;
    for n in 0..100 {
        let channel = h.ch(&format!("unread/{n}"));
        let newest = h.history(&channel, HistoryQuery::newest(0)).await;
        let forward = h.history(&channel, HistoryQuery::after(0, 10).from_ms(START_MS)).await;
        for read in [newest, forward] {
            assert_eq!(read.position.offset, 0);
            assert!(read.publications.is_empty() && read.latest.is_none());
        }
    }
    let listed = h.channels(None, usize::MAX).await;
    assert!(!listed.iter().any(|c| c.channel.as_str().starts_with(&h.prefix)), "reads left no channel");
}
