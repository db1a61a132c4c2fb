//! The node tells its broker which channels and patterns it needs: a filter's first local
//! subscriber (`true`) and its last one leaving (`false`), alternating and in order, whether the
//! last one unsubscribes or its connection goes away.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use livehub_core::{
    Broker, ChannelFilter, ChannelName, ChannelSummary, Clock, Error, History, HistoryConfig, HistoryQuery,
    MemoryBroker, Node, NodeConfig, Payload, Published, SubscribeOptions,
};

/// Interest calls as the broker received them: the filter's text and whether it is needed.
type Calls = Arc<Mutex<Vec<(String, bool)>>>;

/// The in-memory broker, plus a record of every interest call in the order they came.
struct Recording {
    inner: MemoryBroker,
    calls: Calls,
}

#[async_trait]
impl Broker for Recording {
    async fn publish(
        &self,
        channel: &ChannelName,
        data: Payload,
        idempotency_key: Option<&str>,
    ) -> Result<Published, Error> {
        self.inner.publish(channel, data, idempotency_key).await
    }

    async fn history(&self, channel: &ChannelName, query: HistoryQuery) -> Result<History, Error> {
        self.inner.history(channel, query).await
    }

    async fn channels(
        &self,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<ChannelSummary>, Error> {
        self.inner.channels(after, limit).await
    }

    fn interest(&self, filter: &ChannelFilter, interested: bool) {
        self.calls.lock().expect("unpoisoned").push((filter.to_string(), interested));
    }
}

/// A node on a recording broker, and the record.
fn node() -> (Node, Calls) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let record = calls.clone();
    let node = Node::with_broker(NodeConfig::default(), move |sink| {
        Arc::new(Recording {
            inner: MemoryBroker::new(HistoryConfig::default(), Clock::system(), sink),
            calls: record,
        })
    });
    (node, calls)
}

/// The calls recorded since the last look.
fn take(calls: &Mutex<Vec<(String, bool)>>) -> Vec<(String, bool)> {
    std::mem::take(&mut *calls.lock().expect("unpoisoned"))
}

fn told(pairs: &[(&str, bool)]) -> Vec<(String, bool)> {
    pairs.iter().map(|(f, i)| (f.to_string(), *i)).collect()
}

fn filter(s: &str) -> ChannelFilter {
    ChannelFilter::new(s).expect("valid filter")
}

#[tokio::test]
async fn first_subscriber_and_last_one_leaving_are_told_once_each() {
    for name in ["news/today", "news/+", "news/#"] {
        let (node, calls) = node();
        let f = filter(name);
        let first = node.connect("test");
        let second = node.connect_ephemeral("test");

        node.subscribe(first.session(), &f, SubscribeOptions::default()).await.expect("subscribe");
        assert_eq!(take(&calls), told(&[(name, true)]), "{name}: the first subscriber");
        // A long poll needs the publications as much as a connection does.
        node.subscribe(second.session(), &f, SubscribeOptions::default()).await.expect("subscribe");
        assert_eq!(take(&calls), told(&[]), "{name}: a second subscriber changes nothing");

        node.unsubscribe(first.session(), &f).expect("unsubscribe");
        assert_eq!(take(&calls), told(&[]), "{name}: one subscriber is left");
        node.unsubscribe(second.session(), &f).expect("unsubscribe");
        assert_eq!(take(&calls), told(&[(name, false)]), "{name}: the last one left");

        node.subscribe(second.session(), &f, SubscribeOptions::default()).await.expect("subscribe");
        assert_eq!(take(&calls), told(&[(name, true)]), "{name}: interest again");
        drop(second);
        assert_eq!(take(&calls), told(&[(name, false)]), "{name}: the receiver was dropped");
        drop(first);
        assert_eq!(take(&calls), told(&[]), "{name}: it had unsubscribed already");
    }
}

#[tokio::test]
async fn a_dropped_connection_ends_the_interest_of_each_filter_it_held_alone() {
    let (node, calls) = node();
    let alone = node.connect("test");
    let shared = node.connect("test");
    for f in ["a", "a/+", "#", "$sys/#"] {
        node.subscribe(alone.session(), &filter(f), SubscribeOptions::default()).await.expect("subscribe");
    }
    node.subscribe(shared.session(), &filter("a/+"), SubscribeOptions::default()).await.expect("subscribe");
    let mut first = take(&calls);
    first.sort();
    assert_eq!(first, told(&[("#", true), ("$sys/#", true), ("a", true), ("a/+", true)]));

    drop(alone);
    let mut last = take(&calls);
    last.sort();
    assert_eq!(last, told(&[("#", false), ("$sys/#", false), ("a", false)]), "a/+ still has a subscriber");
    drop(shared);
    assert_eq!(take(&calls), told(&[("a/+", false)]));
}

#[test]
fn racing_subscribers_leave_the_calls_alternating_and_ending_in_the_truth() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 2000;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (node, calls) = runtime.block_on(async { node() });
    let filters = [filter("race"), filter("race/+")];
    // Threads rather than tasks, so that subscribes and leaves truly overlap.
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for round in 0..ROUNDS {
                    let rx = node.connect("test");
                    for f in &filters {
                        let subscribed =
                            runtime.block_on(node.subscribe(rx.session(), f, SubscribeOptions::default()));
                        subscribed.expect("subscribe");
                    }
                    // Half the rounds unsubscribe one filter first; all of them drop the receiver.
                    if round % 2 == 0 {
                        node.unsubscribe(rx.session(), &filters[0]).expect("unsubscribe");
                    }
                    drop(rx);
                }
            });
        }
    });
    let calls = take(&calls);
    for f in &filters {
        let mine: Vec<bool> = calls.iter().filter(|(name, _)| name == f.as_str()).map(|(_, i)| *i).collect();
        assert!(!mine.is_empty(), "{f}: never told");
        for (i, interested) in mine.iter().enumerate() {
            assert_eq!(*interested, i % 2 == 0, "{f}: call {i} of {mine:?} does not alternate");
        }
        assert_eq!(mine.last(), Some(&false), "{f}: nobody is subscribed any more");
    }
}
