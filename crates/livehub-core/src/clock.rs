//! The clock the core reads: the system's by default, a manual one or tokio's in tests.
//!
//! Every time read in the core (publication timestamps, eviction by age, the idle TTL of
//! channels) goes through a [`Clock`] handed in by [`NodeConfig`](crate::NodeConfig), so a test
//! moves time forward instead of sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now, by the system clock.
///
/// Only [`Clock::system`] reads it inside the core; everything else asks its [`Clock`].
pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A source of wall-clock time in milliseconds since the Unix epoch. Cheap to clone.
#[derive(Clone, Default)]
pub struct Clock(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    Manual(Arc<AtomicU64>),
    Tokio {
        origin_ms: u64,
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock that follows tokio's time, starting at `origin_ms`: under `tokio::time::pause()`
    /// it stands still until the test calls `tokio::time::advance`. Read it inside a runtime.
    pub fn tokio(origin_ms: u64) -> Self {
        Self(Source::Tokio { origin_ms, start: tokio::time::Instant::now() })
    }

    /// Milliseconds since the Unix epoch, now.
    pub fn now_millis(&self) -> u64 {
        match &self.0 {
            Source::System => now_millis(),
            Source::Manual(ms) => ms.load(Ordering::Relaxed),
            Source::Tokio { origin_ms, start } => origin_ms + start.elapsed().as_millis() as u64,
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::system"),
            Source::Manual(ms) => write!(f, "Clock::manual({})", ms.load(Ordering::Relaxed)),
            Source::Tokio { origin_ms, .. } => write!(f, "Clock::tokio({origin_ms})"),
        }
    }
}

/// A clock that moves only when told: tests hand [`ManualClock::clock`] to the code under test
/// and call [`advance`](Self::advance). Cheap to clone; clones share the time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `start_ms` milliseconds since the Unix epoch.
    pub fn new(start_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start_ms)))
    }

    /// The [`Clock`] to hand to the code under test; it reads this clock's time.
    pub fn clock(&self) -> Clock {
        Clock(Source::Manual(self.0.clone()))
    }

    /// The time now.
    pub fn now_millis(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }

    /// Sets the time, forward or back (a system clock can step back too).
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        manual.clock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let manual = ManualClock::new(1_000);
        let clock = manual.clock();
        assert_eq!(clock.now_millis(), 1_000);
        manual.advance(Duration::from_millis(250));
        assert_eq!(clock.clone().now_millis(), 1_250);
        manual.set(10);
        assert_eq!(clock.now_millis(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = Clock::tokio(5_000);
        assert_eq!(clock.now_millis(), 5_000);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(clock.now_millis(), 7_000);
    }

    #[test]
    fn system_clock_is_the_default() {
        let before = now_millis();
        let read = Clock::default().now_millis();
        assert!(read >= before);
    }
}
