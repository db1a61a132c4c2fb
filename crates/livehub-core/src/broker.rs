//! The broker seam: where publications get their position, are stored, and come back to the hub.
//!
//! [`MemoryBroker`](crate::MemoryBroker) is the single-node default; a Redis broker will implement
//! the same trait, so no transport changes when a deployment scales out.

use std::sync::Arc;

use async_trait::async_trait;

use crate::channel::{ChannelFilter, ChannelName};
use crate::error::Error;
use crate::publication::{Payload, Publication, StreamPosition};

/// Receives every publication, in per-channel offset order, for fan-out to local subscribers.
pub trait PublicationSink: Send + Sync + 'static {
    /// Called once per publication; must not block.
    fn deliver(&self, publication: &Arc<Publication>);
}

/// The outcome of a publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// Where the publication was stored.
    pub position: StreamPosition,
    /// True when the idempotency key was seen before: nothing new was stored and `position` is
    /// that of the original publication.
    pub duplicate: bool,
}

/// Which part of a channel's history to read.
///
/// The query selects the retained publications with an offset above `after` and a timestamp in
/// `from_ms..to_ms` (each bound only when set). A *forward* read (`after` or `from_ms` set)
/// returns the oldest `limit` of them; otherwise the newest `limit`. Either way they come oldest
/// first, so the next page of a forward read is the same query with `after` set to the last
/// offset returned.
///
/// Build one with [`newest`](Self::newest), [`after`](Self::after) or [`new`](Self::new), and
/// bound it in time with [`from_ms`](Self::from_ms) and [`to_ms`](Self::to_ms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Read the publications after this offset, oldest first; `None` reads the newest ones
    /// (unless `from_ms` is set).
    pub after: Option<u64>,
    /// Most publications returned.
    pub limit: usize,
    /// Only publications at or after this server time (milliseconds since the Unix epoch).
    pub from_ms: Option<u64>,
    /// Only publications before this server time (exclusive, so adjacent ranges do not overlap).
    pub to_ms: Option<u64>,
}

impl HistoryQuery {
    /// The newest `limit` publications (zero reads only the position and the latest value).
    pub fn newest(limit: usize) -> Self {
        Self { limit, ..Self::default() }
    }

    /// Up to `limit` publications after `offset`, oldest first.
    pub fn after(offset: u64, limit: usize) -> Self {
        Self { after: Some(offset), limit, ..Self::default() }
    }

    /// After `after` when given, else the newest: the shape of a client's history request.
    pub fn new(after: Option<u64>, limit: usize) -> Self {
        Self { after, limit, ..Self::default() }
    }

    /// Only publications at or after `ms`; makes the read forward.
    pub fn from_ms(self, ms: u64) -> Self {
        Self { from_ms: Some(ms), ..self }
    }

    /// Only publications before `ms`.
    pub fn to_ms(self, ms: u64) -> Self {
        Self { to_ms: Some(ms), ..self }
    }

    /// Whether the read returns the oldest matches rather than the newest.
    pub fn is_forward(&self) -> bool {
        self.after.is_some() || self.from_ms.is_some()
    }
}

/// A slice of a channel's history.
#[derive(Clone, Debug)]
pub struct History {
    /// The requested publications, oldest first.
    pub publications: Vec<Arc<Publication>>,
    /// The channel's current position (offset of its newest publication).
    pub position: StreamPosition,
    /// Offset of the oldest publication still retained (`position.offset + 1` when none is).
    pub oldest: u64,
    /// The newest publication, even when history keeps nothing else.
    pub latest: Option<Arc<Publication>>,
}

/// A channel seen by the broker.
#[derive(Clone, Debug)]
pub struct ChannelSummary {
    /// Its name.
    pub channel: ChannelName,
    /// Its current position.
    pub position: StreamPosition,
    /// Server time of its newest publication, if any is retained.
    pub last_ts: Option<u64>,
}

/// Assigns positions, keeps history and hands every publication to the [`PublicationSink`].
///
/// # Contracts
///
/// Every implementation passes `livehub_core::conformance::run_all` (feature `conformance`),
/// which checks each of these.
///
/// - **Positions.** A channel's offsets are consecutive within an epoch, starting at 1: the
///   publication after offset `n` has offset `n + 1`, with no gaps and no repeats. Recovery
///   relies on this, since "everything after `n`" is then a count. Offset 0 means "before the
///   first publication".
/// - **Epochs.** An epoch names one unbroken history of a channel. It stays the same for as long
///   as every publication of the epoch can still be accounted for, and changes whenever history
///   may have lost entries: the in-memory broker restarted, a channel's state expired
///   ([`CHANNEL_IDLE_TTL`](crate::CHANNEL_IDLE_TTL)), a store write failed. A client at
///   `(offset, epoch)` with a different epoch than the channel's cannot recover.
///   Two brokers over the same durable store see the same epochs; two in-memory brokers never do.
///   Each channel has its own epoch, fixed when the channel is first published to.
/// - **Reads create nothing.** Reading a channel the broker keeps no state for answers offset 0,
///   no publications, no latest value, and an epoch; it stores nothing, so the channel is not
///   listed. That epoch should be the one the channel's first publication gets, so that a client
///   that read or subscribed at offset 0 recovers from there; a broker that cannot promise it
///   must give one no stream will ever have (recovery then reports `recovered: false`).
/// - **Idempotency.** A publish with an idempotency key seen on the same channel among its last
///   [`IDEMPOTENCY_WINDOW`](crate::IDEMPOTENCY_WINDOW) keyed publications (at least) stores and
///   delivers nothing, and returns the original position with `duplicate: true`, whatever its
///   data. Keys are per channel. A publish that returned an error was neither delivered nor made
///   readable, and its key is forgotten, so a retry with the same key publishes it once.
/// - **Delivery.** [`PublicationSink::deliver`] is called once per stored publication, never for
///   a duplicate, and in offset order per channel, even when publishers race. A publish returns
///   only after its publication was handed to the sink (an in-process broker) or stored (one
///   whose deliveries come back from elsewhere).
/// - **Timestamps.** `Publication::ts` is the broker's clock at publish time, raised where needed
///   so that timestamps never decrease in offset order within an epoch.
/// - **History.** History keeps, per [`HistoryPolicy`](crate::HistoryPolicy), the newest `size`
///   publications not older than `max_age` by the broker's clock (checked on every read), evicting
///   the oldest first: it is always a suffix of the epoch's publications. [`History::oldest`] is the offset of the oldest one
///   kept (`position.offset + 1` when none is), and [`History::latest`] the newest publication
///   even when history keeps nothing else (size 0). A read never returns publications of
///   another epoch than [`History::position`]'s; see [`HistoryQuery`] for what it selects.
/// - **Channels.** [`channels`](Broker::channels) lists, sorted by name and a page at a time,
///   every channel published to recently, with its position and the time of its newest
///   publication.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes `data` on `channel` at the channel's next offset. With an `idempotency_key` seen
    /// recently on this channel the publication is not stored again and the original position is
    /// returned.
    async fn publish(
        &self,
        channel: &ChannelName,
        data: Payload,
        idempotency_key: Option<&str>,
    ) -> Result<Published, Error>;

    /// Reads part of `channel`'s history, as `query` selects. Reading a channel nobody published
    /// to answers offset 0 and keeps nothing.
    async fn history(&self, channel: &ChannelName, query: HistoryQuery) -> Result<History, Error>;

    /// Up to `limit` of the channels that currently have a position (published to recently),
    /// the first ones by name after `after` (from the start without it), sorted by name. The
    /// next page starts after the last name returned.
    async fn channels(&self, after: Option<&ChannelName>, limit: usize)
        -> Result<Vec<ChannelSummary>, Error>;

    /// Called when this node's first session subscribes to `filter` (`true`) and when its last
    /// one leaves (`false`), so that a broker shared between nodes receives only what this node
    /// needs. Must not block; calls for one filter alternate `true`/`false`, in order.
    ///
    /// It is called after the hub has registered (or dropped) the session, outside the hub's
    /// locks. When two changes race, the thread already telling the broker tells it of both, so
    /// a call may come from another subscribe's thread, just after the one that caused it
    /// returned. The in-memory broker has every channel already and ignores it.
    fn interest(&self, filter: &ChannelFilter, interested: bool) {
        let _ = (filter, interested);
    }
}
