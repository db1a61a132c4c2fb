//! Counts receipts: per publication (to close the publishing loop), in total while measuring, and
//! as a latency histogram. Shared by every subscriber task and the publisher.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Notify;

/// Publications tracked at once, by sequence number modulo this. The closed loop keeps at most
/// `window` outstanding, far below it.
pub(crate) const SLOTS: usize = 1 << 16;

/// Distinct failures a report lists; the rest are summed up in one line.
const MAX_DISTINCT_ERRORS: usize = 20;

/// Largest latency recorded exactly, in microseconds; anything above is clamped to it.
const MAX_LATENCY_US: u64 = 600_000_000;

struct Slot {
    /// The publication this slot tracks now.
    seq: AtomicU64,
    received: AtomicU32,
    expected: AtomicU32,
}

/// Receipts of one run.
pub(crate) struct Tally {
    slots: Box<[Slot]>,
    /// Signalled when a publication has reached every subscriber of its channel.
    complete: Notify,
    measuring: AtomicBool,
    stopping: AtomicBool,
    delivered: AtomicU64,
    published: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    /// Each distinct failure once, with how many times it happened, in the order first seen.
    errors: Mutex<Vec<(String, u64)>>,
    /// Receipts since the last progress line.
    recent: AtomicU64,
    /// Highest sequence number received, and what it was when measuring started.
    max_seq: AtomicU64,
    first_seq: AtomicU64,
    /// Publications a self-publishing server made while measuring.
    seen_published: AtomicU64,
}

impl Tally {
    pub(crate) fn new() -> Self {
        let slots = (0..SLOTS)
            .map(|_| Slot {
                seq: AtomicU64::new(0),
                received: AtomicU32::new(0),
                expected: AtomicU32::new(0),
            })
            .collect();
        // Bounds and precision are constants that hdrhistogram accepts (3 significant digits).
        #[allow(clippy::unwrap_used)]
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap();
        Self {
            slots,
            complete: Notify::new(),
            measuring: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            published: AtomicU64::new(0),
            latency: Mutex::new(histogram),
            errors: Mutex::new(Vec::new()),
            recent: AtomicU64::new(0),
            max_seq: AtomicU64::new(0),
            first_seq: AtomicU64::new(0),
            seen_published: AtomicU64::new(0),
        }
    }

    fn slot(&self, seq: u64) -> &Slot {
        &self.slots[seq as usize % SLOTS]
    }

    /// The publisher is about to send `seq`, which `expected` subscribers should receive.
    pub(crate) fn expect(&self, seq: u64, expected: usize) {
        let slot = self.slot(seq);
        slot.received.store(0, Ordering::Relaxed);
        slot.expected.store(expected as u32, Ordering::Relaxed);
        slot.seq.store(seq, Ordering::Release);
        if self.measuring.load(Ordering::Relaxed) {
            self.published.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A subscriber received `seq`, published at `sent_us`; `now_us` is when the read returned.
    pub(crate) fn receive(&self, seq: u64, sent_us: u64, now_us: u64) {
        let slot = self.slot(seq);
        if slot.seq.load(Ordering::Acquire) == seq {
            let received = slot.received.fetch_add(1, Ordering::AcqRel) + 1;
            if received == slot.expected.load(Ordering::Relaxed) {
                self.complete.notify_one();
            }
        }
        self.recent.fetch_add(1, Ordering::Relaxed);
        self.max_seq.fetch_max(seq, Ordering::Relaxed);
        if self.measuring.load(Ordering::Relaxed) {
            self.delivered.fetch_add(1, Ordering::Relaxed);
            let latency = now_us.saturating_sub(sent_us).clamp(1, MAX_LATENCY_US);
            // Poisoning would need a panic while recording, which saturating input rules out.
            if let Ok(mut h) = self.latency.lock() {
                h.saturating_record(latency);
            }
        }
    }

    /// Whether `seq` has reached every subscriber it was expected at.
    pub(crate) fn is_complete(&self, seq: u64) -> bool {
        let slot = self.slot(seq);
        slot.seq.load(Ordering::Acquire) != seq
            || slot.received.load(Ordering::Acquire) >= slot.expected.load(Ordering::Relaxed)
    }

    /// Receipts of `seq` so far, and how many were expected.
    pub(crate) fn progress_of(&self, seq: u64) -> (u32, u32) {
        let slot = self.slot(seq);
        (slot.received.load(Ordering::Acquire), slot.expected.load(Ordering::Relaxed))
    }

    /// Waits until `seq` is complete; `false` when `stall` passes first.
    pub(crate) async fn wait_complete(&self, seq: u64, stall: Duration) -> bool {
        let deadline = Instant::now() + stall;
        loop {
            if self.is_complete(seq) || self.is_stopping() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Notify keeps one permit, so a completion between the check and here is not lost.
            let _ = tokio::time::timeout(left, self.complete.notified()).await;
        }
    }

    pub(crate) fn start_measuring(&self) {
        self.delivered.store(0, Ordering::Relaxed);
        self.published.store(0, Ordering::Relaxed);
        if let Ok(mut h) = self.latency.lock() {
            h.reset();
        }
        self.first_seq.store(self.max_seq.load(Ordering::Relaxed), Ordering::Relaxed);
        self.measuring.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stop_measuring(&self) {
        self.measuring.store(false, Ordering::Relaxed);
        let seen =
            self.max_seq.load(Ordering::Relaxed).saturating_sub(self.first_seq.load(Ordering::Relaxed));
        self.seen_published.store(seen, Ordering::Relaxed);
    }

    /// From now on, connections ending is expected, not an error.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.complete.notify_waiters();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Records a failure of the run (ignored once stopping).
    pub(crate) fn fail(&self, error: String) {
        if self.is_stopping() {
            return;
        }
        if let Ok(mut errors) = self.errors.lock() {
            // A dead server fails every connection the same way: one line says it, with a count.
            if let Some((_, count)) = errors.iter_mut().find(|(text, _)| *text == error) {
                *count += 1;
            } else if errors.len() < MAX_DISTINCT_ERRORS {
                errors.push((error, 1));
            } else if errors.len() == MAX_DISTINCT_ERRORS {
                errors.push(("more errors left out".into(), 1));
            }
        }
    }

    pub(crate) fn has_failed(&self) -> bool {
        self.errors.lock().map(|e| !e.is_empty()).unwrap_or(true)
    }

    /// Each distinct failure once; one that happened more than once says how often.
    pub(crate) fn errors(&self) -> Vec<String> {
        let errors = self.errors.lock().map(|e| e.clone()).unwrap_or_default();
        errors
            .into_iter()
            .map(|(text, count)| if count > 1 { format!("{text} ({count} times)") } else { text })
            .collect()
    }

    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub(crate) fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Publications a self-publishing server made while measuring, from the sequence numbers
    /// that arrived.
    pub(crate) fn seen_published(&self) -> u64 {
        self.seen_published.load(Ordering::Relaxed)
    }

    /// Receipts since the last call.
    pub(crate) fn take_recent(&self) -> u64 {
        self.recent.swap(0, Ordering::Relaxed)
    }

    /// The latency distribution, in microseconds.
    pub(crate) fn latency(&self) -> Option<Histogram<u64>> {
        self.latency.lock().ok().map(|h| h.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_publication_completes_when_every_subscriber_has_it() {
        let t = Tally::new();
        t.expect(5, 2);
        assert!(!t.is_complete(5));
        t.receive(5, 1, 2);
        assert!(!t.wait_complete(5, Duration::from_millis(10)).await);
        t.receive(5, 1, 2);
        assert!(t.wait_complete(5, Duration::from_millis(10)).await);
        // A stale receipt of a reused slot does not count for the new publication.
        t.expect(5 + SLOTS as u64, 1);
        t.receive(5, 1, 2);
        assert!(!t.is_complete(5 + SLOTS as u64));
    }

    #[test]
    fn a_failure_repeated_by_many_connections_is_one_line_with_a_count() {
        let t = Tally::new();
        for _ in 0..200 {
            t.fail("connecting from 127.0.0.1: connection refused".into());
        }
        t.fail("the publisher could not connect: connection refused".into());
        assert_eq!(
            t.errors(),
            [
                "connecting from 127.0.0.1: connection refused (200 times)",
                "the publisher could not connect: connection refused",
            ]
        );
        for i in 0..100 {
            t.fail(format!("distinct {i}"));
        }
        let errors = t.errors();
        assert_eq!(errors.len(), MAX_DISTINCT_ERRORS + 1);
        assert_eq!(errors.last().map(String::as_str), Some("more errors left out"));
    }

    #[test]
    fn only_measured_receipts_count() {
        let t = Tally::new();
        t.receive(1, 100, 300);
        t.start_measuring();
        t.receive(2, 100, 1100);
        t.stop_measuring();
        t.receive(3, 100, 300);
        assert_eq!(t.delivered(), 1);
        let h = t.latency().expect("histogram");
        assert_eq!(h.len(), 1);
        assert_eq!(h.max(), h.highest_equivalent(1000));
    }

    #[test]
    fn errors_after_stop_are_expected() {
        let t = Tally::new();
        t.stop();
        t.fail("closed".into());
        assert!(!t.has_failed());
    }
}
