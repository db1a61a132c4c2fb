//! The in-memory broker over a durable store: group commit, delivery only once stored, a new
//! epoch after a failed write, and resuming from the store after a restart. The contracts every
//! broker shares are in `conformance.rs`.

use std::sync::Arc;
use std::time::Duration;

use livehub_core::conformance::{Recorder, TestStore, START_MS};
use livehub_core::{
    Broker, ChannelName, HistoryConfig, HistoryPolicy, HistoryQuery, ManualClock, MemoryBroker, Payload,
};

type Durable = MemoryBroker<Arc<TestStore>>;

fn broker(store: &Arc<TestStore>, size: usize) -> (Arc<Durable>, Arc<Recorder>) {
    let sink = Arc::new(Recorder::default());
    let history =
        HistoryConfig { default: HistoryPolicy { size, max_age: Duration::from_secs(600) }, rules: vec![] };
    let clock = ManualClock::new(START_MS).clock();
    (Arc::new(MemoryBroker::with_store(history, clock, store.clone(), sink.clone())), sink)
}

fn ch(s: &str) -> ChannelName {
    ChannelName::new(s).expect("valid channel")
}

fn n(v: u64) -> Payload {
    Payload::json(v.to_string()).expect("valid json")
}

fn offsets(publications: &[Arc<livehub_core::Publication>]) -> Vec<u64> {
    publications.iter().map(|p| p.position.offset).collect()
}

/// Lets every spawned task run until it waits: on the current-thread runtime, tasks spawned
/// before a yield run before the yielding task resumes.
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn publications_wait_for_the_store_and_are_written_in_batches() {
    let store = Arc::new(TestStore::default());
    let (broker, sink) = broker(&store, 100);
    let a = ch("a");
    broker.history(&a, HistoryQuery::newest(0)).await.expect("history");
    let held = store.hold().await;
    let first = tokio::spawn({
        let (broker, a) = (broker.clone(), a.clone());
        async move { broker.publish(&a, n(1), None).await }
    });
    store.wait_for_attempts(1).await;
    let racing: Vec<_> = (2..=4)
        .map(|v| {
            let (broker, a) = (broker.clone(), a.clone());
            tokio::spawn(async move { broker.publish(&a, n(v), None).await })
        })
        .collect();
    settle().await;

    let during = broker.history(&a, HistoryQuery::after(0, 10)).await.expect("history");
    assert_eq!(during.position.offset, 0, "nothing is readable before it is stored");
    assert!(during.publications.is_empty() && during.latest.is_none());
    assert!(sink.offsets(&a).is_empty(), "nothing is delivered before it is stored");

    drop(held);
    assert_eq!(first.await.expect("task").expect("publish").position.offset, 1);
    let mut returned = Vec::new();
    for task in racing {
        returned.push(task.await.expect("task").expect("publish").position.offset);
    }
    returned.sort_unstable();
    assert_eq!(returned, vec![2, 3, 4]);
    assert_eq!(sink.offsets(&a), vec![1, 2, 3, 4], "delivered in offset order");
    assert_eq!(store.appends(), 2, "the three that waited were written as one batch");
    assert_eq!(store.offsets(&a), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn a_failed_write_fails_every_waiting_publish_and_starts_a_new_epoch() {
    let store = Arc::new(TestStore::default());
    let (broker, sink) = broker(&store, 100);
    let a = ch("a");
    let before = broker.publish(&a, n(1), Some("k1")).await.expect("publish");
    let held = store.hold().await;
    let failing = tokio::spawn({
        let (broker, a) = (broker.clone(), a.clone());
        async move { broker.publish(&a, n(2), Some("k2")).await }
    });
    store.wait_for_attempts(2).await;
    let waiting: Vec<_> = [Some("k3"), Some("k2")]
        .into_iter()
        .map(|key| {
            let (broker, a) = (broker.clone(), a.clone());
            tokio::spawn(async move { broker.publish(&a, n(3), key).await })
        })
        .collect();
    settle().await;
    store.fail_appends(true);
    drop(held);
    assert!(failing.await.expect("task").is_err());
    for task in waiting {
        assert!(task.await.expect("task").is_err(), "the pending publish and the duplicate fail too");
    }
    store.fail_appends(false);

    let after = broker.history(&a, HistoryQuery::after(0, 10)).await.expect("history");
    assert_ne!(after.position.epoch, before.position.epoch, "the store may hold part of it: new epoch");
    assert_eq!(after.position.offset, 0);
    assert!(after.publications.is_empty() && after.latest.is_none());
    assert_eq!(sink.offsets(&a), vec![1], "nothing of the failed batch was delivered");

    let retried = broker.publish(&a, n(2), Some("k2")).await.expect("publish");
    assert!(!retried.duplicate, "a failed publish's key is forgotten, so its retry is stored");
    assert_eq!((retried.position.offset, &retried.position.epoch), (1, &after.position.epoch));
    let old = broker.publish(&a, n(1), Some("k1")).await.expect("publish");
    assert!(old.duplicate, "a stored publish's key is still remembered");
    assert_eq!(old.position, before.position);
    assert_eq!(store.offsets(&a), vec![1], "the store started the new epoch over");
}

#[tokio::test]
async fn a_duplicate_of_a_publish_being_written_shares_its_outcome() {
    let store = Arc::new(TestStore::default());
    let (broker, sink) = broker(&store, 100);
    let a = ch("a");
    broker.history(&a, HistoryQuery::newest(0)).await.expect("history");
    let held = store.hold().await;
    let original = tokio::spawn({
        let (broker, a) = (broker.clone(), a.clone());
        async move { broker.publish(&a, n(1), Some("k")).await }
    });
    store.wait_for_attempts(1).await;
    let retry = tokio::spawn({
        let (broker, a) = (broker.clone(), a.clone());
        async move { broker.publish(&a, n(1), Some("k")).await }
    });
    settle().await;
    drop(held);
    let original = original.await.expect("task").expect("publish");
    let retry = retry.await.expect("task").expect("publish");
    assert!(!original.duplicate && retry.duplicate);
    assert_eq!(retry.position, original.position);
    assert_eq!(sink.offsets(&a), vec![1]);
}

#[tokio::test]
async fn a_restarted_broker_resumes_from_the_store() {
    let store = Arc::new(TestStore::default());
    let a = ch("a");
    let (first, _) = broker(&store, 3);
    let mut published = Vec::new();
    for v in 1..=5 {
        published.push(first.publish(&a, n(v), Some(&format!("k{v}"))).await.expect("publish"));
    }
    drop(first);

    let (second, sink) = broker(&store, 3);
    let history = second.history(&a, HistoryQuery::newest(10)).await.expect("history");
    assert_eq!(history.position, published[4].position, "same epoch, same position");
    assert_eq!(offsets(&history.publications), vec![3, 4, 5], "read from the store, within the policy");
    assert_eq!(history.oldest, 3);
    assert_eq!(history.latest.map(|p| p.data.clone()), Some(n(5)));
    let after = second.history(&a, HistoryQuery::after(3, 10)).await.expect("history");
    assert_eq!(offsets(&after.publications), vec![4, 5]);

    let retry = second.publish(&a, n(4), Some("k4")).await.expect("publish");
    assert!(retry.duplicate, "idempotency keys survive the restart");
    assert_eq!(retry.position, published[3].position);
    let next = second.publish(&a, n(6), None).await.expect("publish");
    assert_eq!(next.position.offset, 6);
    assert_eq!(next.position.epoch, published[0].position.epoch);
    assert_eq!(sink.offsets(&a), vec![6]);
}

#[tokio::test]
async fn the_sweep_evicts_from_the_store() {
    let store = Arc::new(TestStore::default());
    let (broker, _) = broker(&store, 2);
    let a = ch("a");
    for v in 1..=5 {
        broker.publish(&a, n(v), None).await.expect("publish");
    }
    assert_eq!(store.offsets(&a), vec![1, 2, 3, 4, 5], "the store is evicted lazily");
    broker.sweep().await;
    assert_eq!(store.offsets(&a), vec![4, 5]);
}
