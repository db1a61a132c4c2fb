//! Retention on disk for every stored channel, including those no client touched since the
//! start (the broker's sweep only evicts the channels it holds in memory).

use std::time::Duration;

use livehub_core::{ChannelName, Error, HistoryConfig, HistoryStore};

use crate::Store;

/// Channels read per page while sweeping.
const PAGE: usize = 1000;

/// How often [`Retention`] sweeps the whole store.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// Enforces `history`'s bounds on what `store` keeps on disk, one channel at a time.
pub struct Retention<'a> {
    /// The store to sweep.
    pub store: &'a Store,
    /// Bounds per channel-name prefix.
    pub history: &'a HistoryConfig,
}

impl Retention<'_> {
    /// Evicts, from every stored channel, the entries beyond its policy's `size` or older than
    /// its `max_age` at `now_ms`; returns how many channels it went through. Each eviction is
    /// its own bounded write, so publishes are never held up for the whole sweep.
    pub async fn sweep(&self, now_ms: u64) -> Result<usize, Error> {
        let mut after: Option<String> = None;
        let mut swept = 0;
        loop {
            let names = self.store.store().channel_names(after.clone(), PAGE).await?;
            for name in &names {
                let Ok(channel) = ChannelName::new(name) else { continue };
                let policy = self.history.policy_for(name);
                let min_ts = now_ms.saturating_sub(policy.max_age.as_millis() as u64);
                self.store.evict(&channel, policy.size, min_ts).await?;
                swept += 1;
            }
            if names.len() < PAGE {
                return Ok(swept);
            }
            after = names.last().cloned();
        }
    }
}
