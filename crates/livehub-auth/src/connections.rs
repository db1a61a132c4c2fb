//! Counting open connections per client address, with a guard that gives the slot back when the
//! connection ends.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::error::AuthError;
use crate::sync::lock;

/// Shards of the count maps; see `limits.rs` for the trade-off.
const SHARDS: usize = 16;

/// Open connections per key (by default a client IP), at most `max` each. Cheap to clone.
#[derive(Debug)]
pub struct ConnectionLimiter<K = IpAddr> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for ConnectionLimiter<K> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

#[derive(Debug)]
struct Shared<K> {
    max: u32,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<K, u32>>]>,
}

/// One open connection's slot; dropping it frees the slot.
#[derive(Debug)]
#[must_use = "the slot is freed as soon as the guard is dropped"]
pub struct ConnectionGuard<K: Hash + Eq = IpAddr> {
    shared: Arc<Shared<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> ConnectionLimiter<K> {
    /// A limiter allowing `max` connections per key; 0 means no limit (connections are still
    /// counted).
    pub fn new(max: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                max,
                hasher: RandomState::new(),
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            }),
        }
    }

    /// Takes a slot for `key`, or fails with [`AuthError::TooManyConnections`] when it has `max`.
    pub fn try_acquire(&self, key: K) -> Result<ConnectionGuard<K>, AuthError> {
        let mut shard = lock(self.shared.shard(&key));
        let count = shard.entry(key.clone()).or_insert(0);
        if self.shared.max != 0 && *count >= self.shared.max {
            return Err(AuthError::TooManyConnections);
        }
        *count += 1;
        drop(shard);
        Ok(ConnectionGuard { shared: Arc::clone(&self.shared), key })
    }

    /// How many connections `key` holds.
    pub fn count(&self, key: &K) -> u32 {
        lock(self.shared.shard(key)).get(key).copied().unwrap_or(0)
    }

    /// How many keys hold at least one connection.
    pub fn keys(&self) -> usize {
        self.shared.shards.iter().map(|s| lock(s).len()).sum()
    }
}

impl<K: Hash + Eq> Shared<K> {
    fn shard(&self, key: &K) -> &Mutex<HashMap<K, u32>> {
        // The remainder is below SHARDS, so it fits in usize on every platform.
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        &self.shards[index]
    }
}

impl<K: Hash + Eq> ConnectionGuard<K> {
    /// The key this slot is counted under.
    pub fn key(&self) -> &K {
        &self.key
    }
}

impl<K: Hash + Eq> Drop for ConnectionGuard<K> {
    fn drop(&mut self) {
        let mut shard = lock(self.shared.shard(&self.key));
        // Removing the entry at zero keeps the map as small as the set of connected clients.
        if let Some(count) = shard.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn limits_per_address_and_frees_on_drop() {
        let limiter = ConnectionLimiter::new(2);
        let first = limiter.try_acquire(A).expect("first");
        let second = limiter.try_acquire(A).expect("second");
        assert_eq!(limiter.try_acquire(A).err(), Some(AuthError::TooManyConnections));
        let other = limiter.try_acquire(B).expect("another address");
        assert_eq!((limiter.count(&A), limiter.count(&B)), (2, 1));
        drop(first);
        assert_eq!(limiter.count(&A), 1);
        let third = limiter.try_acquire(A).expect("a slot was freed");
        assert_eq!(third.key(), &A);
        drop((second, third, other));
        assert_eq!(limiter.count(&A), 0);
        assert_eq!(limiter.keys(), 0, "empty entries are removed");
    }

    #[test]
    fn zero_means_unlimited_but_counted() {
        let limiter = ConnectionLimiter::new(0);
        let guards: Vec<_> = (0..100).map(|_| limiter.try_acquire(A).expect("unlimited")).collect();
        assert_eq!(limiter.count(&A), 100);
        drop(guards);
        assert_eq!(limiter.count(&A), 0);
    }

    #[test]
    fn guards_outlive_a_dropped_limiter_handle() {
        let limiter = ConnectionLimiter::<&str>::new(1);
        let clone = limiter.clone();
        let guard = limiter.try_acquire("k").expect("slot");
        drop(limiter);
        assert!(clone.try_acquire("k").is_err());
        drop(guard);
        assert!(clone.try_acquire("k").is_ok());
    }
}
