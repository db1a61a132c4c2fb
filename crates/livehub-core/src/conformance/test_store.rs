//! A [`HistoryStore`] in memory, for tests: what a durable store must do, without a database.

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use async_trait::async_trait;
use tokio::sync::{Notify, Semaphore};

use crate::broker::HistoryQuery;
use crate::channel::ChannelName;
use crate::error::Error;
use crate::history_store::{HistoryStore, StoredEntry, StoredHistory, StoredStream};
use crate::publication::{Epoch, Publication};
use crate::stream::{select, IDEMPOTENCY_WINDOW};

/// Keeps channels' history in memory, outliving the brokers made over it (share it through an
/// `Arc`, as two processes share a database). Appends can be held back and made to fail, so
/// tests can watch a broker while a write is in flight or after it failed.
pub struct TestStore {
    channels: Mutex<HashMap<ChannelName, Stored>>,
    /// Appends take a permit first; [`hold`](Self::hold) takes them all.
    gate: Semaphore,
    fail: AtomicBool,
    attempts: AtomicUsize,
    attempted: Notify,
    appends: AtomicUsize,
}

/// Permits of the append gate: far more than there are concurrent appends in any test.
const GATE_PERMITS: usize = 1 << 20;

struct Stored {
    epoch: Epoch,
    offset: u64,
    entries: VecDeque<Arc<Publication>>,
    latest: Option<Arc<Publication>>,
    keys: VecDeque<(Box<str>, u64)>,
}

/// Holds every append of a [`TestStore`] back until dropped.
pub struct Held<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Default for TestStore {
    fn default() -> Self {
        Self {
            channels: Mutex::default(),
            gate: Semaphore::new(GATE_PERMITS),
            fail: AtomicBool::new(false),
            attempts: AtomicUsize::new(0),
            attempted: Notify::new(),
            appends: AtomicUsize::new(0),
        }
    }
}

impl TestStore {
    /// Holds appends back until the returned guard is dropped.
    pub async fn hold(&self) -> Held<'_> {
        match self.gate.acquire_many(GATE_PERMITS as u32).await {
            Ok(permit) => Held { _permit: permit },
            Err(_) => unreachable!("the gate is never closed"),
        }
    }

    /// Makes appends fail (as a lost connection would) until called with `false`.
    pub fn fail_appends(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    /// Waits until `count` appends have been called (held back or not).
    pub async fn wait_for_attempts(&self, count: usize) {
        loop {
            let mut attempted = pin!(self.attempted.notified());
            attempted.as_mut().enable();
            if self.attempts.load(Ordering::SeqCst) >= count {
                return;
            }
            attempted.await;
        }
    }

    /// How many appends succeeded: how many batches were written.
    pub fn appends(&self) -> usize {
        self.appends.load(Ordering::SeqCst)
    }

    /// Offsets stored for `channel`, oldest first.
    pub fn offsets(&self, channel: &ChannelName) -> Vec<u64> {
        self.channels
            .lock()
            .get(channel)
            .map(|s| s.entries.iter().map(|p| p.position.offset).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl HistoryStore for TestStore {
    async fn load(&self, channel: &ChannelName) -> Result<Option<StoredStream>, Error> {
        Ok(self.channels.lock().get(channel).map(|s| StoredStream {
            epoch: s.epoch.clone(),
            offset: s.offset,
            oldest: s.entries.front().map_or(s.offset + 1, |p| p.position.offset),
            latest: s.latest.clone(),
            keys: s.keys.iter().cloned().collect(),
        }))
    }

    async fn append(&self, channel: &ChannelName, entries: &[StoredEntry]) -> Result<(), Error> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.attempted.notify_waiters();
        let _permit = self.gate.acquire().await.map_err(|e| Error::Broker(e.to_string()))?;
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::Broker("test store: append failed".into()));
        }
        let Some(first) = entries.first() else { return Ok(()) };
        let mut channels = self.channels.lock();
        let epoch = &first.publication.position.epoch;
        let stored = channels.entry(channel.clone()).or_insert_with(|| Stored {
            epoch: epoch.clone(),
            offset: 0,
            entries: VecDeque::new(),
            latest: None,
            keys: VecDeque::new(),
        });
        if stored.epoch != *epoch {
            *stored = Stored {
                epoch: epoch.clone(),
                offset: 0,
                entries: VecDeque::new(),
                latest: None,
                keys: VecDeque::new(),
            };
        }
        for entry in entries {
            let position = &entry.publication.position;
            // A real store would enforce this with a key on (channel, offset).
            if position.epoch != stored.epoch || position.offset != stored.offset + 1 {
                return Err(Error::Broker(format!(
                    "test store: {channel} offset {} after {} in {}",
                    position.offset, stored.offset, stored.epoch
                )));
            }
            stored.offset = position.offset;
            stored.entries.push_back(entry.publication.clone());
            stored.latest = Some(entry.publication.clone());
            if let Some(key) = &entry.key {
                stored.keys.push_back((key.clone(), position.offset));
                if stored.keys.len() > IDEMPOTENCY_WINDOW {
                    stored.keys.pop_front();
                }
            }
        }
        self.appends.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<StoredHistory, Error> {
        Ok(self.channels.lock().get(channel).map_or_else(StoredHistory::default, |s| StoredHistory {
            publications: select(&s.entries, &query),
            oldest: s.entries.front().map_or(s.offset + 1, |p| p.position.offset),
        }))
    }

    async fn evict(&self, channel: &ChannelName, size: usize, min_ts: u64) -> Result<u64, Error> {
        let mut channels = self.channels.lock();
        let Some(s) = channels.get_mut(channel) else { return Ok(1) };
        while s.entries.len() > size || s.entries.front().is_some_and(|p| p.ts < min_ts) {
            s.entries.pop_front();
        }
        Ok(s.entries.front().map_or(s.offset + 1, |p| p.position.offset))
    }
}
