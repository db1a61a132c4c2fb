//! [`Durability`]: which channels wait for the disk. Channels under a `durable` prefix
//! acknowledge a publish only once it is committed (the store's group commit shares one fsync
//! between the publishers waiting together); every other channel writes behind: its batches are
//! queued and written together every [`FLUSH_INTERVAL`], and a publish is acknowledged at once.
//!
//! The queue is bounded. When it holds [`DurabilitySettings::max_queued`] publications, further
//! write-behind publishes are refused with [`Error::StoreFull`] before they get an offset, so
//! nothing is acknowledged and then dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use livehub_core::{
    ChannelName, Error, HistoryQuery, HistoryStore, StoredEntry, StoredHistory, StoredStream,
};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::WriteBehind;

/// How often queued write-behind publications are written: the most a process crash can lose
/// is what was published in about this long (plus one write's duration).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// What [`Durability`] is told.
#[derive(Clone, Debug)]
pub struct DurabilitySettings {
    /// Channel-name prefixes whose publishes wait for the commit; `""` makes every channel
    /// durable.
    pub durable: Vec<String>,
    /// Most write-behind publications queued before publishes are refused with `store_full`.
    pub max_queued: usize,
}

impl Default for DurabilitySettings {
    fn default() -> Self {
        // 100,000: two seconds of a 50,000/s burst, a few tens of MiB of small JSON.
        Self { durable: Vec::new(), max_queued: 100_000 }
    }
}

impl DurabilitySettings {
    /// Whether publishes on `channel` wait for the commit.
    pub fn is_durable(&self, channel: &str) -> bool {
        self.durable.iter().any(|prefix| channel.starts_with(prefix.as_str()))
    }
}

/// A [`HistoryStore`] over `S` that writes durable channels through and the others behind.
pub struct Durability<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    store: S,
    settings: DurabilitySettings,
    queue: Mutex<HashMap<ChannelName, Vec<StoredEntry>>>,
    /// Publications queued or being written.
    queued: AtomicUsize,
    /// Serialises flushes, so that a channel's batches reach the store in order.
    flushing: tokio::sync::Mutex<()>,
    wake: Arc<Notify>,
    closed: AtomicBool,
    /// Write-behind flushes that failed (logged); their publications were delivered but are lost.
    failed_flushes: AtomicUsize,
}

/// What `/health` shows of the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueStatus {
    /// Write-behind publications not yet written.
    pub queued: usize,
    /// The bound past which publishes are refused.
    pub max_queued: usize,
    /// Write-behind flushes that failed since start.
    pub failed_flushes: usize,
}

impl<S: WriteBehind> Durability<S> {
    /// Wraps `store`, spawning the task that flushes the write-behind queue (so call it inside
    /// a Tokio runtime); the task ends with [`close`](Self::close) or when this is dropped.
    pub fn new(store: S, settings: DurabilitySettings) -> Self {
        let inner = Arc::new(Inner {
            store,
            settings,
            queue: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
            flushing: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
            closed: AtomicBool::new(false),
            failed_flushes: AtomicUsize::new(0),
        });
        tokio::spawn(flush_loop(Arc::downgrade(&inner), inner.wake.clone()));
        Self { inner }
    }

    /// The store underneath.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The settings.
    pub fn settings(&self) -> &DurabilitySettings {
        &self.inner.settings
    }

    /// The write-behind queue's state.
    pub fn queue_status(&self) -> QueueStatus {
        QueueStatus {
            queued: self.inner.queued.load(Ordering::Relaxed),
            max_queued: self.inner.settings.max_queued,
            failed_flushes: self.inner.failed_flushes.load(Ordering::Relaxed),
        }
    }

    /// Writes everything queued so far, and waits for it.
    pub async fn flush(&self) -> Result<(), Error> {
        flush(&self.inner).await
    }

    /// Refuses further publishes and writes what is queued; close the store after it.
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        flush(&self.inner).await
    }

    /// Flushes first when `channel` has queued publications, so that a read sees them.
    async fn settle(&self, channel: &ChannelName) -> Result<(), Error> {
        if self.inner.queue.lock().contains_key(channel) {
            flush(&self.inner).await?;
        }
        Ok(())
    }
}

async fn flush<S: WriteBehind>(inner: &Inner<S>) -> Result<(), Error> {
    let _turn = inner.flushing.lock().await;
    let batches: Vec<_> = std::mem::take(&mut *inner.queue.lock()).into_iter().collect();
    if batches.is_empty() {
        return Ok(());
    }
    let count: usize = batches.iter().map(|(_, entries)| entries.len()).sum();
    let result = inner.store.append_behind(batches).await;
    inner.queued.fetch_sub(count, Ordering::Relaxed);
    if let Err(e) = &result {
        inner.failed_flushes.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, publications = count, "write-behind flush failed; these publications are not stored");
    }
    result
}

/// Flushes every [`FLUSH_INTERVAL`], and early when woken. Holds the store only while it
/// flushes, so that dropping the last [`Durability`] stops it.
async fn flush_loop<S: WriteBehind>(inner: Weak<Inner<S>>, wake: Arc<Notify>) {
    let mut every = tokio::time::interval(FLUSH_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Woken early when a quarter of the bound is queued, so that a burst is written in
        // large batches before it fills the queue.
        tokio::select! {
            _ = every.tick() => {}
            _ = wake.notified() => {}
        }
        let Some(strong) = inner.upgrade() else { return };
        if strong.closed.load(Ordering::SeqCst) {
            return;
        }
        let _ = flush(&strong).await;
    }
}

#[async_trait]
impl<S: WriteBehind> HistoryStore for Durability<S> {
    fn admit(&self, channel: &ChannelName) -> Result<(), Error> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(Error::Broker("the store is closed".into()));
        }
        if self.inner.settings.is_durable(channel.as_str()) {
            return self.inner.store.admit(channel);
        }
        let queued = self.inner.queued.load(Ordering::Relaxed);
        if queued >= self.inner.settings.max_queued {
            return Err(Error::StoreFull(format!(
                "{queued} publications are waiting to be written (storage.max_queued); retry shortly"
            )));
        }
        Ok(())
    }

    async fn load(&self, channel: &ChannelName) -> Result<Option<StoredStream>, Error> {
        self.settle(channel).await?;
        self.inner.store.load(channel).await
    }

    async fn append(&self, channel: &ChannelName, entries: &[StoredEntry]) -> Result<(), Error> {
        if self.inner.settings.is_durable(channel.as_str()) {
            return self.inner.store.append(channel, entries).await;
        }
        let queued = self.inner.queued.fetch_add(entries.len(), Ordering::Relaxed) + entries.len();
        self.inner.queue.lock().entry(channel.clone()).or_default().extend_from_slice(entries);
        if queued >= self.inner.settings.max_queued / 4 {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<StoredHistory, Error> {
        self.settle(channel).await?;
        self.inner.store.read(channel, query).await
    }

    async fn evict(&self, channel: &ChannelName, size: usize, min_ts: u64) -> Result<u64, Error> {
        self.settle(channel).await?;
        self.inner.store.evict(channel, size, min_ts).await
    }
}
