//! Who is connected: counts per transport and per subscription, published on `$sys/presence`.

use std::collections::BTreeMap;
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
    /// Open connections, all transports (stateless polling requests are not counted).
    pub connections: usize,
    /// Open connections per transport.
    pub transports: BTreeMap<&'static str, usize>,
    /// Subscriptions held, all filters.
    pub subscriptions: usize,
    /// Subscribers per channel or pattern (at most [`PRESENCE_MAX_CHANNELS`], the busiest).
    pub channels: BTreeMap<String, usize>,
}

impl Presence {
    pub(crate) fn from_counts(
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
