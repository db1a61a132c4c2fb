//! The timer loop every source runs in: produce samples, publish them, wait, until shut down.

use std::future::Future;
use std::time::Duration;

use livehub_core::{now_millis, Node, Payload};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::Sample;

/// Shortest period a source runs at, whatever the config says: a zero period would spin, and
/// below a millisecond the timer cannot keep up anyway.
pub(crate) const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Something that produces samples when asked, once per period.
pub(crate) trait Source: Send + 'static {
    /// Names the source in logs.
    fn name(&self) -> &'static str;

    /// The samples to publish now.
    fn produce(&mut self) -> impl Future<Output = Vec<Sample>> + Send;
}

/// A pure, clock-driven generator: given the time, says what to publish.
pub(crate) trait Generator: Send + 'static {
    /// Names the generator in logs.
    const NAME: &'static str;

    /// The samples due at `now_ms` (milliseconds since the Unix epoch).
    fn tick(&mut self, now_ms: u64) -> Vec<Sample>;
}

/// Runs a [`Generator`] on the wall clock.
pub(crate) struct Simulated<G>(pub(crate) G);

impl<G: Generator> Source for Simulated<G> {
    fn name(&self) -> &'static str {
        G::NAME
    }

    fn produce(&mut self) -> impl Future<Output = Vec<Sample>> + Send {
        std::future::ready(self.0.tick(now_millis()))
    }
}

/// Publishes what `source` produces every `period` until `shutdown` is cancelled.
pub(crate) async fn run(node: Node, mut source: impl Source, period: Duration, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(period.max(MIN_PERIOD));
    // After a stall (a suspended laptop, a starved runtime) carry on at the normal pace rather
    // than publishing a burst of stale rounds.
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut failing = false;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let samples = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            samples = source.produce() => samples,
        };
        for sample in samples {
            let payload = Payload::from_value(&sample.data);
            match node.publish_internal(&sample.channel, payload, None).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!(source = source.name(), "source publishes again");
                }
                Ok(_) => {}
                // Only the first failure of a run is logged: a broker that is down would
                // otherwise fill the log at the publication rate.
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(source = source.name(), channel = %sample.channel, error = %e,
                        "source could not publish; further failures are not logged until it recovers");
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use livehub_core::{ChannelName, HistoryQuery, NodeConfig};

    use super::*;

    struct Counter(u64, ChannelName);

    impl Generator for Counter {
        const NAME: &'static str = "counter";

        fn tick(&mut self, now_ms: u64) -> Vec<Sample> {
            self.0 += 1;
            vec![Sample { channel: self.1.clone(), data: serde_json::json!({ "ts": now_ms, "n": self.0 }) }]
        }
    }

    #[tokio::test]
    async fn publishes_until_cancelled() {
        let node = Node::new(NodeConfig::default());
        let channel = ChannelName::new("test/counter").expect("valid name");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            node.clone(),
            Simulated(Counter(0, channel.clone())),
            Duration::from_millis(5),
            shutdown.clone(),
        ));
        let mut published = 0;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let history = node.history(&channel, HistoryQuery::newest(0)).await.expect("history");
            published = history.position.offset;
            if published >= 3 {
                break;
            }
        }
        assert!(published >= 3, "only {published} publications");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("no panic");
    }

    #[tokio::test]
    async fn zero_period_does_not_panic() {
        let node = Node::new(NodeConfig::default());
        let channel = ChannelName::new("test/zero").expect("valid name");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(node, Simulated(Counter(0, channel)), Duration::ZERO, shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("no panic");
    }
}
