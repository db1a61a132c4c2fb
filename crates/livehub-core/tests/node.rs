//! The node's contracts: recovery without loss or duplicates, explicit `recovered: false`,
//! wildcard fan-out, slow-consumer isolation and presence.

use std::sync::Arc;
use std::time::Duration;

use livehub_core::{
    ChannelFilter, ChannelName, DeliveryTracker, Disconnect, Epoch, HistoryConfig, HistoryPolicy,
    HistoryQuery, ManualClock, Node, NodeConfig, Payload, Presence, PresenceBackend, PresenceCounts,
    Publication, StreamPosition, SubscribeOptions, PRESENCE_CHANNEL,
};

fn ch(s: &str) -> ChannelName {
    ChannelName::new(s).expect("valid channel")
}

fn filter(s: &str) -> ChannelFilter {
    ChannelFilter::new(s).expect("valid filter")
}

fn n(v: u64) -> Payload {
    Payload::json(v.to_string()).expect("valid json")
}

fn node_with(size: usize, queue: usize) -> Node {
    Node::new(NodeConfig {
        history: HistoryConfig {
            default: HistoryPolicy { size, max_age: Duration::from_secs(60) },
            rules: vec![],
        },
        queue_capacity: queue,
        ..NodeConfig::default()
    })
}

async fn drain(rx: &mut livehub_core::SessionReceiver) -> Vec<Arc<Publication>> {
    let mut out = Vec::new();
    while let Some(p) = rx.try_recv() {
        out.push(p);
    }
    out
}

#[tokio::test]
async fn recovery_returns_exactly_what_was_missed() {
    let node = node_with(100, 1024);
    for v in 1..=3 {
        node.publish(&ch("a"), n(v), None).await.expect("publish");
    }
    let rx = node.connect("test");
    let first =
        node.subscribe(rx.session(), &filter("a"), SubscribeOptions::default()).await.expect("subscribe");
    let seen = first.position.expect("exact channel has a position");
    assert_eq!(seen.offset, 3);
    drop(rx);

    for v in 4..=6 {
        node.publish(&ch("a"), n(v), None).await.expect("publish");
    }
    let rx = node.connect("test");
    let back = node
        .subscribe(rx.session(), &filter("a"), SubscribeOptions { recover: Some(seen), latest: false })
        .await
        .expect("subscribe");
    assert!(back.recovered);
    let offsets: Vec<u64> = back.publications.iter().map(|p| p.position.offset).collect();
    assert_eq!(offsets, vec![4, 5, 6]);
}

#[tokio::test]
async fn recovery_fails_explicitly_on_other_epoch_or_lost_history() {
    let node = node_with(2, 1024);
    for v in 1..=5 {
        node.publish(&ch("a"), n(v), None).await.expect("publish");
    }
    let epoch =
        node.recover(&ch("a"), &StreamPosition { offset: 0, epoch: Epoch::random() }).await.expect("recover");
    let current = epoch.position.epoch.clone();

    let other_epoch = node
        .recover(&ch("a"), &StreamPosition { offset: 5, epoch: Epoch::from_client("nope") })
        .await
        .expect("recover");
    assert!(!other_epoch.recovered);
    assert_eq!(other_epoch.publications.len(), 1, "latest value is sent instead");
    assert_eq!(other_epoch.publications[0].position.offset, 5);

    let too_old =
        node.recover(&ch("a"), &StreamPosition { offset: 1, epoch: current.clone() }).await.expect("recover");
    assert!(!too_old.recovered, "offsets 2 and 3 are gone");

    let future =
        node.recover(&ch("a"), &StreamPosition { offset: 9, epoch: current.clone() }).await.expect("recover");
    assert!(!future.recovered);

    let ok = node.recover(&ch("a"), &StreamPosition { offset: 3, epoch: current }).await.expect("recover");
    assert!(ok.recovered);
    assert_eq!(ok.publications.len(), 2);
}

#[tokio::test]
async fn a_new_epoch_that_is_still_complete_is_sent_whole() {
    let node = node_with(10, 1024);
    for v in 1..=3 {
        node.publish(&ch("a"), n(v), None).await.expect("publish");
    }
    let other = StreamPosition { offset: 40, epoch: Epoch::from_client("before-restart") };
    let r = node.recover(&ch("a"), &other).await.expect("recover");
    assert!(!r.recovered, "the old epoch's tail is lost");
    let offsets: Vec<u64> = r.publications.iter().map(|p| p.position.offset).collect();
    assert_eq!(offsets, vec![1, 2, 3], "but nothing of the new epoch is skipped");
}

#[tokio::test]
async fn wildcard_and_exact_overlap_is_delivered_once() {
    let node = node_with(10, 1024);
    let mut rx = node.connect("test");
    node.subscribe(rx.session(), &filter("stocks/+"), SubscribeOptions::default()).await.expect("subscribe");
    node.subscribe(rx.session(), &filter("stocks/AAPL"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    node.publish(&ch("stocks/AAPL"), n(1), None).await.expect("publish");
    node.publish(&ch("stocks/MSFT"), n(2), None).await.expect("publish");
    node.publish(&ch("bonds/X"), n(3), None).await.expect("publish");
    let mut tracker = DeliveryTracker::default();
    let delivered: Vec<String> =
        drain(&mut rx).await.iter().filter(|p| tracker.admit(p)).map(|p| p.channel.to_string()).collect();
    assert_eq!(delivered, vec!["stocks/AAPL", "stocks/MSFT"]);
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_others_are_not_delayed() {
    let node = node_with(100, 4);
    let slow = node.connect("test");
    let mut fast = node.connect("test");
    node.subscribe(slow.session(), &filter("a"), SubscribeOptions::default()).await.expect("subscribe");
    node.subscribe(fast.session(), &filter("a"), SubscribeOptions::default()).await.expect("subscribe");
    for v in 1..=10 {
        node.publish(&ch("a"), n(v), None).await.expect("publish never waits for a full queue");
        assert_eq!(fast.try_recv().expect("fast subscriber gets it at once").position.offset, v);
    }
    assert_eq!(slow.session().disconnected().await, Disconnect::SLOW_CONSUMER);
}

#[tokio::test]
async fn unsubscribe_and_drop_stop_delivery() {
    let node = node_with(10, 16);
    let mut rx = node.connect("test");
    node.subscribe(rx.session(), &filter("a"), SubscribeOptions::default()).await.expect("subscribe");
    assert!(node.subscribe(rx.session(), &filter("a"), SubscribeOptions::default()).await.is_err());
    node.unsubscribe(rx.session(), &filter("a")).expect("unsubscribe");
    assert!(node.unsubscribe(rx.session(), &filter("a")).is_err());
    node.publish(&ch("a"), n(1), None).await.expect("publish");
    assert!(rx.try_recv().is_none());
}

#[tokio::test]
async fn subscription_limit_is_enforced() {
    let node = Node::new(NodeConfig { max_subscriptions: 2, ..NodeConfig::default() });
    let rx = node.connect("test");
    for c in ["a", "b"] {
        node.subscribe(rx.session(), &filter(c), SubscribeOptions::default()).await.expect("subscribe");
    }
    let err =
        node.subscribe(rx.session(), &filter("c"), SubscribeOptions::default()).await.expect_err("limit");
    assert_eq!(err.code(), "too_many_subscriptions");
}

#[tokio::test]
async fn clients_cannot_publish_to_system_channels() {
    let node = node_with(10, 16);
    let err = node.publish(&ch("$sys/presence"), n(1), None).await.expect_err("read-only");
    assert_eq!(err.code(), "read_only_channel");
}

// Paused: the presence task's debounce sleep passes as soon as every task waits.
#[tokio::test(start_paused = true)]
async fn presence_is_counted_and_published() {
    let node = node_with(10, 64);
    let mut watcher = node.connect("websocket");
    node.subscribe(watcher.session(), &filter(PRESENCE_CHANNEL), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let other = node.connect("sse");
    node.subscribe(other.session(), &filter("metrics/system"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let _poll = node.connect_ephemeral("long-polling");

    let presence = node.presence();
    assert_eq!(presence.connections, 2, "ephemeral requests are not counted");
    assert_eq!(presence.transports.get("sse"), Some(&1));
    assert_eq!(presence.channels.get("metrics/system"), Some(&1));

    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), watcher.recv_many(&mut buf, 10))
        .await
        .expect("presence published");
    let Payload::Json(json) = &buf[0].data else { panic!("presence is JSON") };
    let value: serde_json::Value = serde_json::from_slice(json).expect("json");
    assert_eq!(value["connections"], 2);

    drop(other);
    assert_eq!(node.presence().connections, 1);
    assert_eq!(node.presence().channels.get("metrics/system"), None);
}

/// The data of each `$sys/presence` publication `watcher` has, waiting up to `wait` for one.
async fn presence_updates(
    watcher: &mut livehub_core::SessionReceiver,
    wait: Duration,
) -> Vec<serde_json::Value> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, watcher.recv_many(&mut buf, 10)).await;
    buf.iter()
        .map(|p| {
            let Payload::Json(json) = &p.data else { panic!("presence is JSON") };
            serde_json::from_slice(json).expect("json")
        })
        .collect()
}

// Paused: the poller's time to live passes without waiting for it.
#[tokio::test(start_paused = true)]
async fn a_poller_counts_until_its_time_to_live_has_passed() {
    let node = node_with(10, 64);
    let mut watcher = node.connect("websocket");
    node.subscribe(watcher.session(), &filter(PRESENCE_CHANNEL), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let first = presence_updates(&mut watcher, Duration::from_secs(1)).await;
    assert_eq!(first.last().expect("announced")["connections"], 1);

    // One client polling three times is one poller, announced once.
    for _ in 0..3 {
        drop(node.poller("long-polling", 7));
    }
    let polled = presence_updates(&mut watcher, Duration::from_secs(1)).await;
    assert_eq!(polled.len(), 1, "{polled:?}");
    assert_eq!(polled[0]["transports"], serde_json::json!({"long-polling": 1, "websocket": 1}));
    assert_eq!(polled[0]["connections"], 2);
    assert_eq!(polled[0]["subscriptions"], 1, "a poller holds no subscription in presence");

    // Its time to live ends; nothing else happens, yet presence is announced without it.
    let expired = presence_updates(&mut watcher, livehub_core::POLLER_TTL + Duration::from_secs(1)).await;
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0]["transports"], serde_json::json!({"websocket": 1}));
    assert_eq!(node.presence().connections, 1);

    // A poll in progress never expires.
    let held = node.poller("polling", 8);
    tokio::time::sleep(livehub_core::POLLER_TTL * 3).await;
    assert_eq!(node.presence().transports.get("polling"), Some(&1));
    drop(held);
    assert_eq!(node.presence().transports.get("polling"), Some(&1), "until its time to live passes");
}

/// A backend that adds the counts of another, imaginary node.
#[derive(Debug)]
struct TwoNodes;

impl PresenceBackend for TwoNodes {
    fn snapshot(&self, mut local: PresenceCounts) -> Presence {
        *local.transports.entry("websocket").or_default() += 10;
        *local.filters.entry("metrics/system".into()).or_default() += 4;
        Presence::from_counts(local.filters, local.transports)
    }
}

#[tokio::test(start_paused = true)]
async fn presence_comes_from_the_backend() {
    let node = Node::new(NodeConfig { presence: Arc::new(TwoNodes), ..NodeConfig::default() });
    let mut watcher = node.connect("sse");
    node.subscribe(watcher.session(), &filter(PRESENCE_CHANNEL), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let presence = node.presence();
    assert_eq!(presence.connections, 11);
    assert_eq!(presence.transports.get("sse"), Some(&1), "this node's own counts go in");
    assert_eq!(presence.channels.get("metrics/system"), Some(&4));

    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), watcher.recv_many(&mut buf, 10))
        .await
        .expect("presence published");
    let Payload::Json(json) = &buf[0].data else { panic!("presence is JSON") };
    let value: serde_json::Value = serde_json::from_slice(json).expect("json");
    assert_eq!(value["connections"], 11, "what is published is the backend's view");
}

#[tokio::test]
async fn the_node_timestamps_and_ages_history_by_its_clock() {
    let clock = ManualClock::new(1_000_000);
    let node = Node::new(NodeConfig {
        history: HistoryConfig {
            default: HistoryPolicy { size: 10, max_age: Duration::from_secs(60) },
            rules: vec![],
        },
        clock: clock.clock(),
        ..NodeConfig::default()
    });
    node.publish(&ch("a"), n(1), None).await.expect("publish");
    clock.advance(Duration::from_secs(59));
    node.publish(&ch("a"), n(2), None).await.expect("publish");
    let history = node.history(&ch("a"), HistoryQuery::after(0, 10)).await.expect("history");
    let ts: Vec<u64> = history.publications.iter().map(|p| p.ts).collect();
    assert_eq!(ts, vec![1_000_000, 1_059_000]);
    clock.advance(Duration::from_secs(2));
    let history = node.history(&ch("a"), HistoryQuery::after(0, 10)).await.expect("history");
    assert_eq!(history.publications.len(), 1, "the first is now older than a minute");
}
