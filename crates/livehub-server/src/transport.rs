//! The transport seam: the write side of one connection, whatever carries it.
//!
//! The command layer ([`engine::Client`](crate::engine::Client)) decides what a connection is
//! sent; a [`Transport`] only turns it into bytes on its wire: a WebSocket frame, an SSE event, a
//! long-poll body (and a SignalR invocation or an MQTT PUBLISH, as those transports arrive).
//! Reading is not part of the seam: each transport reads in its own way, decodes commands with
//! [`Request::decode`](crate::engine::Request::decode) and hands them to the client.

use std::future::Future;
use std::sync::Arc;

use livehub_core::{DeliveryTracker, Disconnect, Publication};

use crate::engine::Reply;

/// The write side of one connection.
///
/// Implementations batch as their wire allows: replies written with [`write`](Self::write) may
/// wait in a buffer until [`flush`](Self::flush) or [`write_many`](Self::write_many).
pub(crate) trait Transport: Send {
    /// Why a write failed: the connection is gone.
    type Error: Send;

    /// Queues one server message.
    fn write(&mut self, reply: &Reply<'_>) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Writes, in order, each of `publications` that `tracker` admits (see
    /// [`DeliveryTracker::admit`]), together with anything queued, in as few writes as the wire
    /// allows. It may leave `publications` changed; the caller clears it. Admitting here rather than before lets a transport that carries positions (SSE's
    /// `id:` cursor) write each publication with the positions as of that publication.
    fn write_many(
        &mut self,
        publications: &mut Vec<Arc<Publication>>,
        tracker: &mut DeliveryTracker,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Sends what is queued.
    fn flush(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Ends the connection, telling the client `reason` the way the wire can (a close frame, a
    /// last event). Bounded in time: the client may not be reading.
    fn close(&mut self, reason: &Disconnect) -> impl Future<Output = ()> + Send;
}
