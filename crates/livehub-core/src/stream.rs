//! One channel's stream: its sequencing (offsets, epoch, timestamps, idempotency keys) and the
//! hot window of its history. [`MemoryBroker`](crate::MemoryBroker) keeps one per channel behind
//! a std mutex; this file knows nothing of locks, stores or sinks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::broker::{History, HistoryQuery};
use crate::channel::ChannelName;
use crate::history::HistoryPolicy;
use crate::history_store::{StoredEntry, StoredStream};
use crate::publication::{Epoch, Payload, Publication, StreamPosition};

/// How many idempotency keys each channel remembers. A client retries an unacknowledged publish
/// right after it reconnects, so a short window suffices.
pub const IDEMPOTENCY_WINDOW: usize = 1024;

/// One channel's stream.
pub(crate) struct Stream {
    /// The name every publication of the stream shares: one allocation, and equal by pointer,
    /// which is what each subscriber's [`DeliveryTracker`](crate::DeliveryTracker) compares.
    pub(crate) name: ChannelName,
    epoch: Epoch,
    /// Offset of the newest publication assigned, committed or not.
    offset: u64,
    /// Offset of the newest committed publication: delivered and readable. Equal to `offset`
    /// except while a durable store writes.
    committed: u64,
    /// The newest timestamp given out, so that timestamps never decrease.
    last_ts: u64,
    /// Committed publications still within the history policy, oldest first; consecutive offsets
    /// and non-decreasing timestamps, which reads rely on to find their start by arithmetic or
    /// binary search.
    window: VecDeque<Arc<Publication>>,
    latest: Option<Arc<Publication>>,
    keys: HashMap<Box<str>, StreamPosition>,
    key_order: VecDeque<Box<str>>,
    /// Clock time of the last publish (or of creation): the idle TTL counts from here.
    pub(crate) touched_ms: u64,
    /// The durable part, absent for the in-memory broker; boxed so that it costs in-memory
    /// streams one word, not a cache line's worth of fields they never read.
    pub(crate) durable: Option<Box<Durable>>,
}

/// What a stream backed by a durable store keeps besides the in-memory state.
pub(crate) struct Durable {
    /// The oldest offset history still retains as far as the broker knows: older ones may sit in
    /// the store until the next sweep, but reads no longer return them.
    pub(crate) retained_from: u64,
    /// Publications assigned an offset but not yet stored, in offset order.
    pub(crate) pending: Vec<StoredEntry>,
    /// Held by the one task writing this stream's pending publications to the store.
    pub(crate) turn: Arc<tokio::sync::Mutex<()>>,
    /// Most publications the hot window keeps in memory; older retained ones are read from the
    /// store.
    pub(crate) hot: usize,
}

impl Stream {
    /// A stream with nothing published, in `epoch`.
    pub(crate) fn new(name: ChannelName, epoch: Epoch, now_ms: u64) -> Self {
        Self {
            name,
            epoch,
            offset: 0,
            committed: 0,
            last_ts: 0,
            window: VecDeque::new(),
            latest: None,
            keys: HashMap::new(),
            key_order: VecDeque::new(),
            touched_ms: now_ms,
            durable: None,
        }
    }

    /// A stream backed by a durable store, resumed from what the store holds of it (in `epoch`
    /// when the store holds nothing).
    pub(crate) fn restore(
        name: ChannelName,
        stored: Option<StoredStream>,
        epoch: Epoch,
        now_ms: u64,
        hot: usize,
    ) -> Self {
        let mut stream = Self::new(name, epoch, now_ms);
        let mut retained_from = 1;
        if let Some(stored) = stored {
            stream.epoch = stored.epoch;
            stream.offset = stored.offset;
            stream.committed = stored.offset;
            stream.last_ts = stored.latest.as_ref().map_or(0, |p| p.ts);
            stream.latest = stored.latest;
            let skip = stored.keys.len().saturating_sub(IDEMPOTENCY_WINDOW);
            for (key, offset) in stored.keys.into_iter().skip(skip) {
                let position = StreamPosition { offset, epoch: stream.epoch.clone() };
                stream.remember_key(&key, position);
            }
            retained_from = stored.oldest;
        }
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        stream.durable = Some(Box::new(Durable { retained_from, pending: Vec::new(), turn, hot }));
        stream
    }

    /// The committed position: what readers and subscribers see.
    pub(crate) fn position(&self) -> StreamPosition {
        StreamPosition { offset: self.committed, epoch: self.epoch.clone() }
    }

    /// The epoch.
    pub(crate) fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// Offset of the newest committed publication.
    pub(crate) fn committed(&self) -> u64 {
        self.committed
    }

    /// Whether every assigned publication is committed (nothing is being written).
    pub(crate) fn is_settled(&self) -> bool {
        self.offset == self.committed
    }

    /// Whether nothing was ever assigned in this epoch: the stream holds no state worth keeping.
    pub(crate) fn is_empty(&self) -> bool {
        self.offset == 0 && self.latest.is_none()
    }

    /// The newest publication.
    pub(crate) fn latest(&self) -> Option<&Arc<Publication>> {
        self.latest.as_ref()
    }

    /// Where an earlier publish with `key` was stored.
    pub(crate) fn duplicate(&self, key: &str) -> Option<&StreamPosition> {
        self.keys.get(key)
    }

    /// Assigns the next offset to `data`, timestamped `now_ms` (or the previous timestamp, if
    /// the clock stepped back), and remembers `key` for it.
    pub(crate) fn next(&mut self, data: Payload, key: Option<&str>, now_ms: u64) -> Arc<Publication> {
        self.offset += 1;
        self.last_ts = self.last_ts.max(now_ms);
        self.touched_ms = now_ms;
        let position = StreamPosition { offset: self.offset, epoch: self.epoch.clone() };
        if let Some(key) = key {
            self.remember_key(key, position.clone());
        }
        Arc::new(Publication::with_ts(self.name.clone(), data, position, self.last_ts))
    }

    /// Makes `publication`, the next one after the committed offset, readable and the latest,
    /// evicting what `policy` no longer keeps.
    pub(crate) fn commit(&mut self, publication: &Arc<Publication>, policy: HistoryPolicy) {
        self.committed = publication.position.offset;
        if policy.size > 0 {
            self.window.push_back(publication.clone());
        }
        self.evict(policy, publication.ts);
        self.latest = Some(publication.clone());
    }

    /// Drops what `policy` no longer keeps at `now_ms`.
    pub(crate) fn evict(&mut self, policy: HistoryPolicy, now_ms: u64) {
        let min_ts = min_ts(policy, now_ms);
        // A durable stream's window may be smaller than its history (the rest is in the store).
        let hot = self.durable.as_ref().map_or(policy.size, |d| d.hot.min(policy.size));
        // Offset after the newest publication dropped for its age: history lost it, not just
        // the window.
        let mut aged_out = 0;
        while self.window.len() > hot || self.window.front().is_some_and(|p| p.ts < min_ts) {
            if let Some(p) = self.window.pop_front() {
                if p.ts < min_ts {
                    aged_out = p.position.offset + 1;
                }
            }
        }
        if let Some(durable) = &mut self.durable {
            // History is the newest `size` publications not older than `max_age`, and timestamps
            // never decrease in offset order, so whatever precedes an aged-out one is gone too.
            let retained_from = (self.committed + 1).saturating_sub(policy.size as u64).max(aged_out);
            durable.retained_from = durable.retained_from.max(retained_from);
        }
    }

    /// Offset of the oldest publication history retains (`committed + 1` when none is).
    pub(crate) fn oldest(&self) -> u64 {
        let first = self.window.front().map_or(self.committed + 1, |p| p.position.offset);
        // A durable stream's window may lack what the store still holds from before a restart.
        self.durable.as_ref().map_or(first, |durable| first.min(durable.retained_from))
    }

    /// Whether the hot window alone answers `query` exactly as the whole history would.
    pub(crate) fn covers(&self, query: &HistoryQuery) -> bool {
        let Some(durable) = &self.durable else { return true };
        let first = self.window.front().map_or(self.committed + 1, |p| p.position.offset);
        if query.limit == 0 || first <= durable.retained_from {
            return true;
        }
        if query.is_forward() {
            // Older publications have offsets below `first` and timestamps no later than the
            // window's first one, so either bound excludes them all.
            query.after.is_some_and(|after| after.saturating_add(1) >= first)
                || query.from_ms.is_some_and(|from| self.window.front().is_some_and(|p| from > p.ts))
        } else {
            end(&self.window, query) >= query.limit
        }
    }

    /// What `query` selects from the hot window.
    pub(crate) fn read(&self, query: &HistoryQuery) -> Vec<Arc<Publication>> {
        select(&self.window, query)
    }

    /// What `query` selects from the hot window, with the stream's position.
    pub(crate) fn history(&self, query: &HistoryQuery) -> History {
        History {
            publications: self.read(query),
            position: self.position(),
            oldest: self.oldest(),
            latest: self.latest.clone(),
        }
    }

    /// The commit turn of a durable stream.
    pub(crate) fn turn(&self) -> Option<Arc<tokio::sync::Mutex<()>>> {
        self.durable.as_ref().map(|d| d.turn.clone())
    }

    /// Queues a sequenced publication for the store.
    pub(crate) fn push_pending(&mut self, entry: StoredEntry) {
        if let Some(durable) = &mut self.durable {
            durable.pending.push(entry);
        }
    }

    /// Every queued publication, to be written as one batch.
    pub(crate) fn take_pending(&mut self) -> Vec<StoredEntry> {
        self.durable.as_mut().map(|d| std::mem::take(&mut d.pending)).unwrap_or_default()
    }

    /// Notes that the store evicted everything before `oldest`.
    pub(crate) fn retain_from(&mut self, oldest: u64) {
        if let Some(durable) = &mut self.durable {
            durable.retained_from = durable.retained_from.max(oldest.min(self.committed + 1));
        }
    }

    /// Remembers that a publish with `key` was stored at `position`.
    fn remember_key(&mut self, key: &str, position: StreamPosition) {
        if self.key_order.len() == IDEMPOTENCY_WINDOW {
            if let Some(old) = self.key_order.pop_front() {
                self.keys.remove(&old);
            }
        }
        self.key_order.push_back(key.into());
        self.keys.insert(key.into(), position);
    }

    /// Starts a new epoch after a failed store write: every uncommitted publication (the failed
    /// `batch` and whatever is still pending) is dropped with its idempotency key, and history
    /// starts over, since the store may hold any prefix of what failed.
    pub(crate) fn restart_epoch(&mut self, batch: &[StoredEntry]) {
        let pending = self.durable.as_mut().map(|d| std::mem::take(&mut d.pending)).unwrap_or_default();
        for entry in batch.iter().chain(&pending) {
            if let Some(key) = &entry.key {
                self.keys.remove(key);
            }
        }
        let keys = &self.keys;
        self.key_order.retain(|k| keys.contains_key(k));
        self.epoch = Epoch::random();
        self.offset = 0;
        self.committed = 0;
        self.window.clear();
        self.latest = None;
        if let Some(durable) = &mut self.durable {
            durable.retained_from = 1;
        }
    }
}

/// The oldest timestamp `policy` keeps at `now_ms`.
pub(crate) fn min_ts(policy: HistoryPolicy, now_ms: u64) -> u64 {
    now_ms.saturating_sub(policy.max_age.as_millis() as u64)
}

/// What `query` selects from `window` (consecutive offsets, non-decreasing timestamps).
pub(crate) fn select(window: &VecDeque<Arc<Publication>>, query: &HistoryQuery) -> Vec<Arc<Publication>> {
    let Some(front) = window.front() else { return Vec::new() };
    // Offsets are consecutive, so the start after an offset is arithmetic.
    let mut start = query.after.map_or(0, |after| {
        usize::try_from(after.saturating_add(1).saturating_sub(front.position.offset))
            .map_or(window.len(), |skip| skip.min(window.len()))
    });
    if let Some(from) = query.from_ms {
        start = start.max(window.partition_point(|p| p.ts < from));
    }
    let end = end(window, query);
    if start >= end {
        return Vec::new();
    }
    let (start, end) = if query.is_forward() {
        (start, end.min(start.saturating_add(query.limit)))
    } else {
        (start.max(end.saturating_sub(query.limit)), end)
    };
    window.range(start..end).cloned().collect()
}

/// Index just past the last publication of `window` before `query.to_ms`.
fn end(window: &VecDeque<Arc<Publication>>, query: &HistoryQuery) -> usize {
    query.to_ms.map_or(window.len(), |to| window.partition_point(|p| p.ts < to))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stream_with(ts: &[u64]) -> Stream {
        let mut stream = Stream::new(ChannelName::new("a").expect("valid"), Epoch::random(), 0);
        let policy = HistoryPolicy { size: 100, max_age: Duration::from_secs(3600) };
        for &t in ts {
            let p = stream.next(Payload::json("1").expect("valid"), None, t);
            stream.commit(&p, policy);
        }
        stream
    }

    fn offsets(stream: &Stream, query: HistoryQuery) -> Vec<u64> {
        stream.read(&query).iter().map(|p| p.position.offset).collect()
    }

    #[test]
    fn selects_by_offset_and_time() {
        let stream = stream_with(&[1000, 2000, 2000, 3000, 4000]);
        assert_eq!(offsets(&stream, HistoryQuery::newest(2)), vec![4, 5]);
        assert_eq!(offsets(&stream, HistoryQuery::after(1, 2)), vec![2, 3]);
        assert_eq!(offsets(&stream, HistoryQuery::after(9, 2)), Vec::<u64>::new());
        assert_eq!(offsets(&stream, HistoryQuery::after(u64::MAX, 2)), Vec::<u64>::new());
        assert_eq!(offsets(&stream, HistoryQuery::newest(10).from_ms(2000).to_ms(4000)), vec![2, 3, 4]);
        assert_eq!(offsets(&stream, HistoryQuery::newest(2).from_ms(2000)), vec![2, 3]);
        assert_eq!(offsets(&stream, HistoryQuery::after(2, 2).from_ms(2000)), vec![3, 4]);
        assert_eq!(offsets(&stream, HistoryQuery::newest(2).to_ms(3000)), vec![2, 3]);
        assert_eq!(offsets(&stream, HistoryQuery::newest(2).from_ms(5000)), Vec::<u64>::new());
    }

    #[test]
    fn timestamps_never_decrease() {
        let stream = stream_with(&[2000, 1000, 3000]);
        let ts: Vec<u64> = stream.read(&HistoryQuery::newest(10)).iter().map(|p| p.ts).collect();
        assert_eq!(ts, vec![2000, 2000, 3000]);
    }
}
