//! Rate limits: a token bucket, and a map of buckets keyed by client (IP) for limits shared by
//! all of a client's connections.
//!
//! Time is always passed in, so that tests run on synthetic instants and never sleep.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::AuthError;
use crate::sync::lock;

/// Shards of a [`KeyedLimiter`]; enough that the per-shard lock is rarely contended on a
/// many-core server, few enough that a sweep stays cheap.
const SHARDS: usize = 16;

/// A token bucket: up to `burst` tokens, refilled at `rate_per_sec`; each event takes one.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBucket {
    rate_per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A `burst` of 0 is treated as 1, so that the bucket can ever let an event
    /// through; a rate that is not positive and finite never refills.
    pub fn new(rate_per_sec: f64, burst: u32, now: Instant) -> Self {
        let rate_per_sec = if rate_per_sec.is_finite() && rate_per_sec > 0.0 { rate_per_sec } else { 0.0 };
        let burst = f64::from(burst.max(1));
        Self { rate_per_sec, burst, tokens: burst, last: now }
    }

    /// Takes a token if there is one at `now`. An instant before the last one adds nothing.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.try_take_n(1, now)
    }

    /// Takes `n` tokens at once if all are there at `now`, otherwise none: a batch is allowed
    /// whole or not at all.
    pub fn try_take_n(&mut self, n: u32, now: Instant) -> bool {
        self.refill(now);
        let n = f64::from(n);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// How long after `now` the next token will be available (zero if one is); `None` if the
    /// bucket never refills. Useful for a `Retry-After` header.
    pub fn wait_time(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            return Some(Duration::ZERO);
        }
        (self.rate_per_sec > 0.0).then(|| Duration::from_secs_f64((1.0 - self.tokens) / self.rate_per_sec))
    }

    /// Whether the bucket would be full at `now`, so that forgetting it changes nothing.
    fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate_per_sec >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.burst);
        self.last = self.last.max(now);
    }
}

/// One token bucket per key (a client IP, say), in sharded maps.
///
/// Buckets are created full on first use and removed by [`KeyedLimiter::sweep`] once they have
/// refilled, which is exactly when forgetting them is unobservable.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    rate_per_sec: f64,
    burst: u32,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<K, TokenBucket>>]>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter whose buckets refill at `rate_per_sec` up to `burst`. A rate of 0 means no
    /// limit: every event is allowed and nothing is stored.
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        Self {
            rate_per_sec,
            burst,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Whether the limiter limits anything.
    pub fn is_enabled(&self) -> bool {
        self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0
    }

    /// Takes a token from `key`'s bucket at `now`.
    pub fn try_take(&self, key: &K, now: Instant) -> bool {
        self.try_take_n(key, 1, now)
    }

    /// Takes `n` tokens from `key`'s bucket at `now`, all or none.
    pub fn try_take_n(&self, key: &K, n: u32, now: Instant) -> bool {
        if !self.is_enabled() {
            return true;
        }
        let mut shard = lock(self.shard(key));
        match shard.get_mut(key) {
            Some(bucket) => bucket.try_take_n(n, now),
            None => {
                let mut bucket = TokenBucket::new(self.rate_per_sec, self.burst, now);
                let taken = bucket.try_take_n(n, now);
                shard.insert(key.clone(), bucket);
                taken
            }
        }
    }

    /// Whether `key` has a token at `now`, without taking it or creating a bucket: for a budget
    /// that is spent only when something fails (a wrong credential), but that must refuse
    /// before the attempt once it is empty.
    pub fn has_token(&self, key: &K, now: Instant) -> bool {
        if !self.is_enabled() {
            return true;
        }
        lock(self.shard(key)).get_mut(key).is_none_or(|bucket| bucket.wait_time(now) == Some(Duration::ZERO))
    }

    /// [`KeyedLimiter::try_take`] as a result carrying [`AuthError::RateLimited`].
    pub fn check(&self, key: &K, now: Instant) -> Result<(), AuthError> {
        self.check_n(key, 1, now)
    }

    /// [`KeyedLimiter::try_take_n`] as a result carrying [`AuthError::RateLimited`].
    pub fn check_n(&self, key: &K, n: u32, now: Instant) -> Result<(), AuthError> {
        if self.try_take_n(key, n, now) {
            Ok(())
        } else {
            Err(AuthError::RateLimited)
        }
    }

    /// Forgets the buckets that are full again at `now`; returns how many remain. Call it
    /// periodically (every minute, say) so that one-off clients do not accumulate.
    pub fn sweep(&self, now: Instant) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = lock(shard);
                shard.retain(|_, bucket| !bucket.is_full_at(now));
                shard.len()
            })
            .sum()
    }

    /// How many keys currently have a bucket.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &K) -> &Mutex<HashMap<K, TokenBucket>> {
        // The remainder is below SHARDS, so it fits in usize on every platform.
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        &self.shards[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bucket_allows_a_burst_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3, t0);
        assert!((0..3).all(|_| bucket.try_take(t0)));
        assert!(!bucket.try_take(t0));
        // 10 per second: one token every 100 ms.
        assert!(!bucket.try_take(t0 + ms(99)));
        assert!(bucket.try_take(t0 + ms(100)));
        assert!(!bucket.try_take(t0 + ms(150)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take(later)));
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn a_batch_takes_all_its_tokens_or_none() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1.0, 3, t0);
        assert!(!bucket.try_take_n(4, t0), "more than the burst never fits");
        assert!(bucket.try_take_n(2, t0));
        assert!(!bucket.try_take_n(2, t0), "one left: a batch of two takes nothing");
        assert!(bucket.try_take(t0), "the one token is still there");
        let limiter = KeyedLimiter::new(1.0, 2);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(limiter.check_n(&ip, 3, t0).is_err());
        assert!(limiter.check_n(&ip, 2, t0).is_ok());
        assert!(limiter.check(&ip, t0).is_err());
    }

    #[test]
    fn bucket_ignores_time_going_backwards() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(1.0, 1, t0);
        assert!(bucket.try_take(t0));
        assert!(!bucket.try_take(t0 - Duration::from_secs(5)));
        assert!(!bucket.try_take(t0 + ms(999)));
        assert!(bucket.try_take(t0 + ms(1000)));
    }

    #[test]
    fn bucket_reports_the_wait() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(4.0, 1, t0);
        assert_eq!(bucket.wait_time(t0), Some(Duration::ZERO));
        assert!(bucket.try_take(t0));
        assert_eq!(bucket.wait_time(t0), Some(ms(250)));
        assert_eq!(bucket.wait_time(t0 + ms(100)), Some(ms(150)));
        let mut dry = TokenBucket::new(0.0, 1, t0);
        assert!(dry.try_take(t0));
        assert!(!dry.try_take(t0 + Duration::from_secs(3600)));
        assert_eq!(dry.wait_time(t0), None);
    }

    #[test]
    fn keyed_limiter_keeps_one_bucket_per_key() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(1.0, 2);
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        assert!(limiter.try_take(&a, t0) && limiter.try_take(&a, t0));
        assert_eq!(limiter.check(&a, t0), Err(AuthError::RateLimited));
        assert!(limiter.try_take(&b, t0));
        assert!(limiter.try_take(&a, t0 + Duration::from_secs(1)));
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn sweep_forgets_only_refilled_buckets() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(1.0, 2);
        limiter.try_take(&"idle", t0);
        limiter.try_take(&"busy", t0 + Duration::from_secs(5));
        limiter.try_take(&"busy", t0 + Duration::from_secs(5));
        // At t0+5 s "idle" has long refilled; "busy" is empty.
        assert_eq!(limiter.sweep(t0 + Duration::from_secs(5)), 1);
        assert!(!limiter.try_take(&"busy", t0 + Duration::from_secs(5)));
        // Two seconds later "busy" is full too.
        assert_eq!(limiter.sweep(t0 + Duration::from_secs(7)), 0);
        assert!(limiter.is_empty());
    }

    #[test]
    fn peeking_takes_nothing_and_creates_nothing() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(1.0, 2);
        assert!(limiter.has_token(&"a", t0));
        assert!(limiter.is_empty(), "a peek stores no bucket");
        assert!(limiter.try_take(&"a", t0) && limiter.has_token(&"a", t0));
        assert!(limiter.try_take(&"a", t0));
        assert!(!limiter.has_token(&"a", t0));
        assert!(!limiter.has_token(&"a", t0 + ms(999)));
        assert!(limiter.has_token(&"a", t0 + ms(1000)));
        assert!(KeyedLimiter::new(0.0, 0).has_token(&"a", t0), "an unlimited limiter always has one");
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let limiter = KeyedLimiter::new(0.0, 0);
        let t0 = Instant::now();
        assert!(!limiter.is_enabled());
        assert!((0..10_000).all(|_| limiter.try_take(&1u8, t0)));
        assert!(limiter.is_empty());
    }
}
