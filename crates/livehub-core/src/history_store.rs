//! The history store seam: where a durable broker keeps what outlives the process.
//!
//! [`MemoryBroker`](crate::MemoryBroker) owns the per-channel sequencing (offsets, epochs, the
//! idempotency window, the hot window of recent publications, eviction) and the fan-out in offset
//! order. A [`HistoryStore`] only persists: it loads a channel's state once, appends batches of
//! publications the broker has sequenced, reads older history the hot window no longer holds, and
//! evicts. A SQLite or PostgreSQL store therefore implements four plain operations and inherits
//! the epochs, idempotency, eviction policy and ordering the conformance suite checks.
//!
//! # Ordering without a lock across I/O
//!
//! With [`NullStore`] (the default) nothing is awaited: the broker assigns the offset and hands
//! the publication to the sink under the stream's std mutex, exactly as an in-memory broker must.
//!
//! With a durable store the broker runs a per-stream *group commit*:
//!
//! 1. Under the stream's std mutex it checks the idempotency key, assigns the next offset, and
//!    queues the publication as pending. Pending publications are neither delivered nor readable.
//! 2. It then waits for the stream's commit turn, a tokio mutex held only by the task that is
//!    writing to the store. Whoever takes the turn and finds its publication still pending takes
//!    **every** pending publication of the stream as one batch (so a burst costs one write, not
//!    one per publication), and appends it with no std lock held.
//! 3. When the append succeeds, it takes the std mutex again, moves the batch into the hot window
//!    and delivers it in offset order, then releases the turn. The next task finds its
//!    publication either committed by that batch (and returns) or still pending (and writes the
//!    next batch). Deliveries therefore happen in offset order, one batch after the other.
//! 4. When the append fails, the stream starts a new epoch: the store's write may or may not have
//!    landed, so the old epoch's tail is unknowable. Every pending publication of the old epoch
//!    fails with [`Error::Broker`], its idempotency key is forgotten (a retry is a new publish),
//!    and nothing of it was ever delivered or readable.
//!
//! A channel's state is loaded from the store the first time the broker touches the channel,
//! with no lock held; two tasks racing to load it keep whichever finishes first, which is the
//! same state, because nothing is appended before the stream is in the map.

use std::sync::Arc;

use async_trait::async_trait;

use crate::broker::HistoryQuery;
use crate::channel::ChannelName;
use crate::error::Error;
use crate::publication::{Epoch, Publication};

/// What a store holds of one channel, loaded when the broker first touches the channel.
#[derive(Clone, Debug)]
pub struct StoredStream {
    /// The epoch of the stored history.
    pub epoch: Epoch,
    /// Offset of the newest stored publication.
    pub offset: u64,
    /// Offset of the oldest stored publication (`offset + 1` when none is kept).
    pub oldest: u64,
    /// The newest publication, kept even when history keeps nothing else.
    pub latest: Option<Arc<Publication>>,
    /// The newest idempotency keys with the offsets they were stored at, oldest first (at most
    /// [`IDEMPOTENCY_WINDOW`](crate::IDEMPOTENCY_WINDOW) are used).
    pub keys: Vec<(Box<str>, u64)>,
}

/// One publication to store, with the idempotency key it was published with.
#[derive(Clone, Debug)]
pub struct StoredEntry {
    /// The publication, with its position and timestamp already assigned.
    pub publication: Arc<Publication>,
    /// Its idempotency key, if it had one.
    pub key: Option<Box<str>>,
}

/// Publications a store read for a query, with the offset of its oldest stored one.
#[derive(Clone, Debug, Default)]
pub struct StoredHistory {
    /// The selected publications, oldest first.
    pub publications: Vec<Arc<Publication>>,
    /// Offset of the oldest stored publication of the channel.
    pub oldest: u64,
}

/// Persists channels' positions, epochs, latest values, history and idempotency keys for
/// [`MemoryBroker`](crate::MemoryBroker); see the module documentation for who calls what when.
///
/// The broker calls a store for one channel from one task at a time for `append`, so a store
/// needs no ordering of its own; `read` and `evict` may run beside an `append`.
#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// Whether anything is stored. `false` (only [`NullStore`]) means the broker never awaits the
    /// store: publishing stays a synchronous enqueue under the stream's lock.
    fn is_durable(&self) -> bool {
        true
    }

    /// Called before a publication of `channel` is given an offset: an error (such as
    /// [`Error::StoreFull`] when writes are queued beyond a bound) refuses the publish before
    /// anything is sequenced, so no epoch is lost to it.
    fn admit(&self, channel: &ChannelName) -> Result<(), Error> {
        let _ = channel;
        Ok(())
    }

    /// The stored state of `channel`, or `None` when nothing is stored for it.
    async fn load(&self, channel: &ChannelName) -> Result<Option<StoredStream>, Error>;

    /// Stores `entries`: publications of `channel` with consecutive offsets, one epoch, following
    /// the last stored one. When their epoch differs from the stored one, the channel's old
    /// history, latest value and keys are replaced by the new epoch's (which starts at offset 1).
    /// An error leaves it unknown whether the entries were stored; the broker then starts a new
    /// epoch.
    async fn append(&self, channel: &ChannelName, entries: &[StoredEntry]) -> Result<(), Error>;

    /// The stored publications of `channel` that `query` selects (see [`HistoryQuery`]).
    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<StoredHistory, Error>;

    /// Drops all but the newest `size` publications of `channel` and those before `min_ts`
    /// (keeping the latest value); returns the offset of the oldest one still stored.
    async fn evict(&self, channel: &ChannelName, size: usize, min_ts: u64) -> Result<u64, Error>;
}

/// Stores nothing: the in-memory broker. Its publishes never await.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullStore;

#[async_trait]
impl HistoryStore for NullStore {
    fn is_durable(&self) -> bool {
        false
    }

    async fn load(&self, _channel: &ChannelName) -> Result<Option<StoredStream>, Error> {
        Ok(None)
    }

    async fn append(&self, _channel: &ChannelName, _entries: &[StoredEntry]) -> Result<(), Error> {
        Ok(())
    }

    async fn read(&self, _channel: &ChannelName, _query: HistoryQuery) -> Result<StoredHistory, Error> {
        Ok(StoredHistory::default())
    }

    async fn evict(&self, _channel: &ChannelName, _size: usize, _min_ts: u64) -> Result<u64, Error> {
        Ok(0)
    }
}

/// A shared store: brokers made one after another over the same store see the same history,
/// as two processes over the same database would.
#[async_trait]
impl<T: HistoryStore + ?Sized> HistoryStore for Arc<T> {
    fn is_durable(&self) -> bool {
        (**self).is_durable()
    }

    fn admit(&self, channel: &ChannelName) -> Result<(), Error> {
        (**self).admit(channel)
    }

    async fn load(&self, channel: &ChannelName) -> Result<Option<StoredStream>, Error> {
        (**self).load(channel).await
    }

    async fn append(&self, channel: &ChannelName, entries: &[StoredEntry]) -> Result<(), Error> {
        (**self).append(channel, entries).await
    }

    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<StoredHistory, Error> {
        (**self).read(channel, query).await
    }

    async fn evict(&self, channel: &ChannelName, size: usize, min_ts: u64) -> Result<u64, Error> {
        (**self).evict(channel, size, min_ts).await
    }
}
