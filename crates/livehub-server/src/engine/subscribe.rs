//! Subscribing with recovery: the one implementation behind WebSocket `subscribe` commands and
//! the SSE and long-poll requests that name their channels in the URL.
//!
//! The rules (also in `docs/protocol.md`):
//!
//! - The session joins the hub before history is read, so nothing published meanwhile is lost;
//!   what arrives both live and in the replay is delivered once, by the tracker.
//! - An exact channel recovers from its position when one is given, or replays its latest
//!   publication when asked to, or starts at its current position.
//! - A pattern recovers each concrete channel it matches that the client gives a position for.
//! - Each concrete channel is recovered once per request, however many filters select it.
//! - The tracker starts each resumed channel just before the first publication to replay (or at
//!   its position when there is none), so the replay passes it and nothing older does.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use livehub_core::{
    ChannelFilter, ChannelName, DeliveryTracker, Node, Publication, Session, StreamPosition, SubscribeOptions,
};

use super::reply::ChannelStart;

/// Positions the client says it has seen, per concrete channel.
pub(crate) type Positions = BTreeMap<ChannelName, StreamPosition>;

/// One filter's subscribe, done.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// For an exact channel, where its stream starts.
    pub(crate) exact: Option<ChannelStart>,
    /// For a pattern, the concrete channels it resumed, each with its start or its error code.
    pub(crate) channels: Vec<(ChannelName, Result<ChannelStart, &'static str>)>,
    /// What to send before live publications, in order.
    pub(crate) replay: Vec<Arc<Publication>>,
}

/// One subscribe request's state: which concrete channels it has resumed already.
pub(crate) struct Subscriber<'a> {
    node: &'a Node,
    session: &'a Session,
    positions: &'a Positions,
    latest: bool,
    resumed: HashSet<ChannelName>,
}

impl<'a> Subscriber<'a> {
    /// A request on `session` that recovers from `positions` and, for channels it does not
    /// recover, replays the latest publication when `latest`.
    pub(crate) fn new(node: &'a Node, session: &'a Session, positions: &'a Positions, latest: bool) -> Self {
        Self { node, session, positions, latest, resumed: HashSet::new() }
    }

    /// Subscribes to `filter` and sets where each of its channels starts in `tracker`.
    pub(crate) async fn subscribe(
        &mut self,
        filter: &ChannelFilter,
        tracker: &mut DeliveryTracker,
    ) -> Result<Subscription, livehub_core::Error> {
        let since = match filter {
            ChannelFilter::Exact(channel) => self.positions.get(channel).cloned(),
            ChannelFilter::Wildcard(_) => None,
        };
        let options = SubscribeOptions { recover: since.clone(), latest: self.latest };
        let subscribed = self.node.subscribe(self.session, filter, options).await?;
        let mut done = Subscription { exact: None, channels: Vec::new(), replay: Vec::new() };
        if let (ChannelFilter::Exact(channel), Some(position)) = (filter, subscribed.position) {
            let start = ChannelStart { position, recovered: since.map(|_| subscribed.recovered) };
            if self.resumed.insert(channel.clone()) {
                start_at(tracker, channel, &start.position, &subscribed.publications);
                done.replay = subscribed.publications;
            }
            done.exact = Some(start);
            return Ok(done);
        }
        for (channel, since) in self.positions.iter().filter(|(c, _)| filter.matches(c)) {
            if !self.resumed.insert(channel.clone()) {
                continue;
            }
            match self.node.recover(channel, since).await {
                Ok(recovery) => {
                    start_at(tracker, channel, &recovery.position, &recovery.publications);
                    let start =
                        ChannelStart { position: recovery.position, recovered: Some(recovery.recovered) };
                    done.channels.push((channel.clone(), Ok(start)));
                    done.replay.extend(recovery.publications);
                }
                Err(e) => done.channels.push((channel.clone(), Err(e.code()))),
            }
        }
        Ok(done)
    }
}

/// Sets where a channel's stream starts: just before the first publication to replay (missed
/// ones, a new epoch's whole history, or the latest value), or at `position` when there is none.
/// The tracker never moves back within an epoch, so a publication the connection already got
/// through another subscription is not sent again.
fn start_at(
    tracker: &mut DeliveryTracker,
    channel: &ChannelName,
    position: &StreamPosition,
    replay: &[Arc<Publication>],
) {
    match replay.first() {
        Some(first) => tracker.mark(channel, first.position.offset.saturating_sub(1), &first.position.epoch),
        None => tracker.mark(channel, position.offset, &position.epoch),
    }
}
