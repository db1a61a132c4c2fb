//! How much history each channel keeps.

use std::time::Duration;

/// Bounds of one channel's history: whichever limit is reached first evicts the oldest entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// Most publications kept. Zero keeps only the latest value (recovery then always fails
    /// explicitly, with `recovered: false`).
    pub size: usize,
    /// Oldest publication kept.
    pub max_age: Duration,
}

impl Default for HistoryPolicy {
    /// 256 publications or 10 minutes: enough to bridge a reconnect of a dashboard fed at 10 Hz
    /// for 25 seconds, and a slow channel for ten minutes, at a few hundred KiB per busy channel.
    fn default() -> Self {
        Self { size: 256, max_age: Duration::from_secs(600) }
    }
}

/// The history policy for every channel: a default plus overrides by channel-name prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Applies to channels no rule matches.
    pub default: HistoryPolicy,
    /// `(prefix, policy)` pairs; the longest matching prefix wins.
    pub rules: Vec<(String, HistoryPolicy)>,
}

impl HistoryConfig {
    /// The policy for `channel`.
    pub fn policy_for(&self, channel: &str) -> HistoryPolicy {
        self.rules
            .iter()
            .filter(|(prefix, _)| channel.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default, |(_, policy)| *policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let small = HistoryPolicy { size: 1, max_age: Duration::from_secs(1) };
        let big = HistoryPolicy { size: 1000, max_age: Duration::from_secs(60) };
        let config = HistoryConfig {
            default: HistoryPolicy::default(),
            rules: vec![("metrics/".into(), big), ("metrics/cpu/".into(), small)],
        };
        assert_eq!(config.policy_for("metrics/system"), big);
        assert_eq!(config.policy_for("metrics/cpu/0"), small);
        assert_eq!(config.policy_for("stocks/AAPL"), HistoryPolicy::default());
    }
}
