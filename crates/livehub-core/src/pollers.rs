//! Clients that poll (long polling, short polling over the REST API) counted in presence.
//!
//! A poller has no connection between its requests, so it is counted while a request of it is
//! in progress and for [`POLLER_TTL`] after its last one ended. The transport says who a poller
//! is, as an opaque key (the server uses the client address with the `User-Agent`, or a client
//! id the request names).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// How long a poller counts as connected after its last request ended: longer than a polling
/// client's interval (1 s by default in the TypeScript client) and the gap between two long
/// polls, short enough that a closed tab leaves the count soon.
pub const POLLER_TTL: Duration = Duration::from_secs(10);

/// Most pollers tracked at once: a client that invents a new key per request cannot grow the
/// map past it; beyond it new pollers are not counted (presence is a gauge, not an account).
pub const MAX_POLLERS: usize = 65_536;

/// One poller.
#[derive(Debug)]
struct Entry {
    transport: &'static str,
    /// Requests in progress.
    active: usize,
    /// When its last request ended (or began, while one is active).
    seen: Instant,
}

/// The pollers of one node.
#[derive(Debug, Default)]
pub(crate) struct Pollers {
    entries: Mutex<HashMap<u64, Entry>>,
}

impl Pollers {
    /// Records that a request of poller `key` over `transport` began: `Some(true)` when the
    /// poller was not counted before (presence changed), `None` (nothing recorded) when the map
    /// is full and the poller is new.
    pub(crate) fn begin(&self, transport: &'static str, key: u64, now: Instant) -> Option<bool> {
        let mut entries = self.entries.lock();
        if let Some(entry) = entries.get_mut(&key) {
            // An expired entry not yet swept counts again: that is a change too.
            let new = entry.active == 0 && now.duration_since(entry.seen) >= POLLER_TTL;
            entry.active += 1;
            entry.seen = now;
            return Some(new);
        }
        if entries.len() >= MAX_POLLERS {
            return None;
        }
        entries.insert(key, Entry { transport, active: 1, seen: now });
        Some(true)
    }

    /// Records that a request of poller `key` ended at `now`.
    pub(crate) fn end(&self, key: u64, now: Instant) {
        if let Some(entry) = self.entries.lock().get_mut(&key) {
            entry.active = entry.active.saturating_sub(1);
            entry.seen = now;
        }
    }

    /// When the next poller whose requests have all ended expires, if any.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.entries.lock().values().filter(|e| e.active == 0).map(|e| e.seen + POLLER_TTL).min()
    }

    /// Adds the pollers live at `now` to `transports` (per transport), forgets the expired
    /// ones, and returns when the next one expires, if any.
    pub(crate) fn count(
        &self,
        transports: &mut BTreeMap<&'static str, usize>,
        now: Instant,
    ) -> Option<Instant> {
        let mut next = None::<Instant>;
        self.entries.lock().retain(|_, entry| {
            let expires = entry.seen + POLLER_TTL;
            let live = entry.active > 0 || expires > now;
            if live {
                *transports.entry(entry.transport).or_default() += 1;
                if entry.active == 0 {
                    next = Some(next.map_or(expires, |n| n.min(expires)));
                }
            }
            live
        });
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pollers: &Pollers, now: Instant) -> (BTreeMap<&'static str, usize>, Option<Instant>) {
        let mut transports = BTreeMap::new();
        let next = pollers.count(&mut transports, now);
        (transports, next)
    }

    #[test]
    fn a_poller_counts_while_it_polls_and_for_the_ttl_after() {
        let pollers = Pollers::default();
        let t0 = Instant::now();
        assert_eq!(pollers.begin("long-polling", 1, t0), Some(true));
        assert_eq!(pollers.begin("long-polling", 1, t0), Some(false), "the same poller again");
        assert_eq!(pollers.begin("polling", 2, t0), Some(true));
        let (now, next) = counts(&pollers, t0 + POLLER_TTL * 3);
        assert_eq!(now, BTreeMap::from([("long-polling", 1), ("polling", 1)]), "active ones never expire");
        assert_eq!(next, None);

        let ended = t0 + Duration::from_secs(1);
        pollers.end(1, ended);
        pollers.end(1, ended);
        pollers.end(2, ended);
        let (now, next) = counts(&pollers, ended + POLLER_TTL - Duration::from_millis(1));
        assert_eq!(now.values().sum::<usize>(), 2);
        assert_eq!(next, Some(ended + POLLER_TTL));
        assert_eq!(pollers.next_expiry(), next);
        let (now, next) = counts(&pollers, ended + POLLER_TTL);
        assert!(now.is_empty(), "{now:?}");
        assert_eq!(next, None);
        assert_eq!(pollers.begin("polling", 2, ended + POLLER_TTL), Some(true), "counted anew");
    }

    #[test]
    fn an_expired_poller_that_comes_back_before_the_sweep_is_a_change() {
        let pollers = Pollers::default();
        let t0 = Instant::now();
        pollers.begin("polling", 7, t0);
        pollers.end(7, t0);
        assert_eq!(pollers.begin("polling", 7, t0 + POLLER_TTL), Some(true));
    }

    #[test]
    fn the_map_is_bounded() {
        let pollers = Pollers::default();
        let t0 = Instant::now();
        for key in 0..MAX_POLLERS as u64 {
            pollers.begin("polling", key, t0);
        }
        assert_eq!(pollers.begin("polling", u64::MAX, t0), None);
        assert_eq!(pollers.begin("polling", 0, t0), Some(false), "known pollers still count");
        assert_eq!(counts(&pollers, t0).0["polling"], MAX_POLLERS);
    }
}
