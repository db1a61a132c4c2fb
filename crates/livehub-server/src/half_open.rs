//! Connections that have not become a request yet: counted per address and in all, and shed
//! oldest first, so that clients who connect and say nothing (or drip a request head a byte at a
//! time) cannot take the file descriptors and memory that real clients need.
//!
//! A connection is half-open from its accept (for TLS, from the start of its handshake) until its
//! first request head (and body) is complete, and again whenever it waits for its next request
//! (idle keep-alive). Past the per-address limit a new one is closed at once; past
//! the global limit the oldest half-open connection is closed to make room, so the server keeps
//! accepting while under a flood, and `/health` and real clients still get in.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// The half-open connections of one listener.
#[derive(Debug)]
pub(crate) struct HalfOpen {
    per_address: usize,
    total: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    per_address: HashMap<IpAddr, usize>,
    /// Every half-open connection by arrival, oldest first: its address and what closes it.
    by_age: BTreeMap<u64, (IpAddr, CancellationToken)>,
    next: u64,
    /// Connections shed to make room, since start (for `/api/metrics`).
    shed: u64,
    /// Connections refused for their address's limit, since start.
    refused: u64,
}

/// One half-open connection's place; dropping it (the request head is complete, or the
/// connection ended) frees it.
#[derive(Debug)]
pub(crate) struct Slot {
    registry: Arc<HalfOpen>,
    id: u64,
    address: IpAddr,
    shed: CancellationToken,
}

impl HalfOpen {
    /// At most `per_address` half-open connections from one address and `total` in all; 0 turns
    /// a limit off.
    pub(crate) fn new(per_address: usize, total: usize) -> Arc<Self> {
        Arc::new(Self { per_address, total, state: Mutex::new(State::default()) })
    }

    /// A place for a new connection from `address`, or `None` when its address has too many
    /// half-open already. Past the global limit, the oldest half-open connection is shed.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        self.admit_with(address, CancellationToken::new())
    }

    /// [`admit`](Self::admit) for a connection that is half-open again (idle between two
    /// requests): being shed cancels `close`, the connection's own token.
    pub(crate) fn admit_with(self: &Arc<Self>, address: IpAddr, close: CancellationToken) -> Option<Slot> {
        let mut state = self.state.lock();
        let from_address = state.per_address.get(&address).copied().unwrap_or(0);
        if self.per_address > 0 && from_address >= self.per_address {
            state.refused += 1;
            return None;
        }
        if self.total > 0 && state.by_age.len() >= self.total {
            if let Some((_, (oldest_address, shed))) = state.by_age.pop_first() {
                shed.cancel();
                state.shed += 1;
                release(&mut state.per_address, oldest_address);
            }
        }
        let id = state.next;
        state.next += 1;
        let shed = close;
        state.by_age.insert(id, (address, shed.clone()));
        *state.per_address.entry(address).or_default() += 1;
        Some(Slot { registry: self.clone(), id, address, shed })
    }

    /// Half-open connections now, shed since start, and refused since start.
    pub(crate) fn figures(&self) -> (usize, u64, u64) {
        let state = self.state.lock();
        (state.by_age.len(), state.shed, state.refused)
    }
}

impl Slot {
    /// Resolves when the connection was shed to make room for newer ones: close it.
    pub(crate) fn shed(&self) -> WaitForCancellationFuture<'_> {
        self.shed.cancelled()
    }

    /// What [`shed`](Self::shed) waits for, for a task that gives the slot away.
    pub(crate) fn shed_token(&self) -> CancellationToken {
        self.shed.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.registry.state.lock();
        // A shed slot was taken off already.
        if state.by_age.remove(&self.id).is_some() {
            release(&mut state.per_address, self.address);
        }
    }
}

fn release(per_address: &mut HashMap<IpAddr, usize>, address: IpAddr) {
    if let Some(n) = per_address.get_mut(&address) {
        *n -= 1;
        if *n == 0 {
            per_address.remove(&address);
        }
    }
}

/// The global limit when none is configured: a quarter of the soft limit on open files (read
/// from `/proc/self/limits`; 1024 assumed where it cannot be read), and at least 256. The rest
/// stays for real connections, `/health`, files and sockets of our own.
pub(crate) fn default_total() -> usize {
    total_for(std::fs::read_to_string("/proc/self/limits").ok().as_deref())
}

/// [`default_total`] from the text of `/proc/self/limits`, if it could be read.
fn total_for(limits: Option<&str>) -> usize {
    let open_files = limits
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            // "Max open files  <soft>  <hard>  files": the soft limit is what `accept` hits.
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(1024);
    (open_files / 4).max(256)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn an_address_over_its_limit_is_refused_until_one_of_its_connections_completes() {
        let half_open = HalfOpen::new(2, 0);
        let first = half_open.admit(ip(1)).expect("first");
        let _second = half_open.admit(ip(1)).expect("second");
        assert!(half_open.admit(ip(1)).is_none(), "a third from the same address");
        assert!(half_open.admit(ip(2)).is_some(), "another address is not affected");
        drop(first);
        assert!(half_open.admit(ip(1)).is_some(), "room again once one completed");
        assert_eq!(half_open.figures().2, 1);
    }

    #[test]
    fn the_default_total_is_a_quarter_of_the_soft_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max cpu time              unlimited            unlimited            seconds\n\
                      Max open files            20000                65536                files\n";
        assert_eq!(total_for(Some(limits)), 5000);
        assert_eq!(total_for(Some("Max open files 400 400 files")), 256, "never below 256");
        assert_eq!(total_for(Some("no such line")), 256, "1024 assumed");
        assert_eq!(total_for(None), 256);
    }

    #[test]
    fn past_the_global_limit_the_oldest_is_shed() {
        let half_open = HalfOpen::new(0, 2);
        let oldest = half_open.admit(ip(1)).expect("oldest");
        let middle = half_open.admit(ip(2)).expect("middle");
        assert!(!oldest.shed.is_cancelled());
        let newest = half_open.admit(ip(3)).expect("newest");
        assert!(oldest.shed.is_cancelled(), "the oldest makes room");
        assert!(!middle.shed.is_cancelled() && !newest.shed.is_cancelled());
        assert_eq!(half_open.figures(), (2, 1, 0));
        // Dropping the shed slot frees nothing twice.
        drop(oldest);
        assert_eq!(half_open.figures().0, 2);
        drop((middle, newest));
        assert_eq!(half_open.figures().0, 0);
        assert!(half_open.state.lock().per_address.is_empty());
    }
}
