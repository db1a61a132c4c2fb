//! Who is connected: counts per transport and per subscription, published on `$sys/presence`.
//!
//! The hub counts this node's connections and subscriptions; a [`PresenceBackend`] turns those
//! counts into the presence transports show. [`LocalPresence`] shows this node's alone; a shared
//! backend (Redis, when scale-out lands) records each node's counts and answers with the sum.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// The system channel on which presence is published whenever it changes.
pub const PRESENCE_CHANNEL: &str = "$sys/presence";

/// Least time between two presence publications: a burst of connects (a dashboard reloaded by a
/// hundred people) becomes one update, not a hundred.
pub const PRESENCE_MIN_INTERVAL: Duration = Duration::from_millis(250);

/// Most filters listed by name in a presence publication; a node with more subscriptions reports
/// the busiest ones so the message stays small.
pub const PRESENCE_MAX_CHANNELS: usize = 256;

/// A snapshot of presence on this node.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Presence {
    /// Open connections, all transports, polling clients included (see `Node::poller`).
    pub connections: usize,
    /// Open connections per transport.
    pub transports: BTreeMap<&'static str, usize>,
    /// Subscriptions held, all filters.
    pub subscriptions: usize,
    /// Subscribers per channel or pattern (at most [`PRESENCE_MAX_CHANNELS`], the busiest).
    pub channels: BTreeMap<String, usize>,
}

impl Presence {
    /// Presence made of `filters` (subscribers per channel or pattern) and `transports` (open
    /// connections per transport), keeping the [`PRESENCE_MAX_CHANNELS`] busiest filters.
    pub fn from_counts(
        mut filters: BTreeMap<String, usize>,
        transports: BTreeMap<&'static str, usize>,
    ) -> Self {
        let subscriptions = filters.values().sum();
        if filters.len() > PRESENCE_MAX_CHANNELS {
            let mut busiest: Vec<(String, usize)> = filters.into_iter().collect();
            busiest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            busiest.truncate(PRESENCE_MAX_CHANNELS);
            filters = busiest.into_iter().collect();
        }
        Self { connections: transports.values().sum(), transports, subscriptions, channels: filters }
    }
}

/// One node's own counts, as its hub keeps them (connections and polling clients, and the
/// subscriptions of connections; a poll's channels are not subscriptions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceCounts {
    /// Open connections per transport.
    pub transports: BTreeMap<&'static str, usize>,
    /// Subscribers per filter (channel or pattern), every filter, not only the busiest.
    pub filters: BTreeMap<String, usize>,
}

/// Where presence comes from: this node's counts alone, or every node's.
///
/// The node hands the backend its hub's counts rather than each connect, disconnect, subscribe
/// and unsubscribe: the hub already keeps them exactly (a session's subscriptions end with it,
/// wherever it is dropped), and a shared backend that stores each node's counts under the
/// node's name with an expiry forgets a crashed node by itself, where shared counters fed by
/// events would keep its connections forever.
pub trait PresenceBackend: fmt::Debug + Send + Sync + 'static {
    /// Presence now, given `local`, this node's counts read just before from its hub. Called on
    /// every presence change (at most every [`PRESENCE_MIN_INTERVAL`]) and whenever a transport
    /// or a metrics source asks, so it must not block: a shared backend records `local` for the
    /// other nodes in the background and answers from the aggregate it last fetched.
    fn snapshot(&self, local: PresenceCounts) -> Presence;
}

/// Presence of this node alone: the single-node backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalPresence;

impl PresenceBackend for LocalPresence {
    fn snapshot(&self, local: PresenceCounts) -> Presence {
        Presence::from_counts(local.filters, local.transports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_presence_sums_this_nodes_counts_and_keeps_the_busiest() {
        let mut counts = PresenceCounts::default();
        counts.transports.insert("ws", 3);
        counts.transports.insert("sse", 2);
        for n in 0..PRESENCE_MAX_CHANNELS + 1 {
            counts.filters.insert(format!("c/{n:04}"), n + 1);
        }
        let presence = LocalPresence.snapshot(counts);
        assert_eq!(presence.connections, 5);
        assert_eq!(presence.channels.len(), PRESENCE_MAX_CHANNELS);
        assert!(!presence.channels.contains_key("c/0000"), "the quietest filter is left out");
        let total: usize = (1..=PRESENCE_MAX_CHANNELS + 1).sum();
        assert_eq!(presence.subscriptions, total);
    }
}
