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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Read the publications after this offset, oldest first; `None` reads the newest ones.
    pub after: Option<u64>,
    /// Most publications returned.
    pub limit: usize,
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
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes `data` on `channel`. With an `idempotency_key` seen recently on this channel the
    /// publication is not stored again and the original position is returned.
    async fn publish(
        &self,
        channel: &ChannelName,
        data: Payload,
        idempotency_key: Option<&str>,
    ) -> Result<Published, Error>;

    /// Reads part of `channel`'s history.
    async fn history(&self, channel: &ChannelName, query: HistoryQuery) -> Result<History, Error>;

    /// The channels that currently have a position (published to, or read, recently).
    async fn channels(&self) -> Result<Vec<ChannelSummary>, Error>;

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
