//! The SQLite store under the broker: restarts keep positions, epochs, history and idempotency
//! keys; a crash renews the epochs of write-behind channels only; retention; schema versions;
//! the write-behind bound.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use livehub_core::conformance::{Recorder, START_MS};
use livehub_core::{
    Broker, ChannelName, Error, HistoryConfig, HistoryPolicy, HistoryQuery, HistoryStore, ManualClock,
    MemoryBroker, Payload,
};
use livehub_store::{Durability, DurabilitySettings, Retention, SqliteStore, StoreError};

type Stored = MemoryBroker<Arc<Durability<SqliteStore>>>;

struct Opened {
    sqlite: SqliteStore,
    store: Arc<Durability<SqliteStore>>,
    broker: Stored,
    clock: ManualClock,
}

fn settings() -> DurabilitySettings {
    DurabilitySettings { durable: vec!["orders/".into()], ..DurabilitySettings::default() }
}

fn open(dir: &Path, size: usize) -> Opened {
    let settings = settings();
    let durable = settings.clone();
    let sqlite = SqliteStore::open(dir, move |name| durable.is_durable(name)).expect("open");
    let store = Arc::new(Durability::new(sqlite.clone(), settings));
    let clock = ManualClock::new(START_MS);
    let history =
        HistoryConfig { default: HistoryPolicy { size, max_age: Duration::from_secs(3600) }, rules: vec![] };
    let broker =
        MemoryBroker::with_store(history, clock.clock(), store.clone(), Arc::new(Recorder::default()));
    Opened { sqlite, store, broker, clock }
}

impl Opened {
    async fn close(self) {
        self.store.close().await.expect("flush");
        self.sqlite.close().await.expect("close");
    }
}

fn ch(s: &str) -> ChannelName {
    ChannelName::new(s).expect("valid channel")
}

fn n(v: u64) -> Payload {
    Payload::json(v.to_string()).expect("valid json")
}

fn values(history: &livehub_core::History) -> Vec<String> {
    history
        .publications
        .iter()
        .map(|p| match &p.data {
            Payload::Json(b) => String::from_utf8_lossy(b).into_owned(),
            Payload::Binary(_) => "binary".into(),
        })
        .collect()
}

#[tokio::test]
async fn a_clean_restart_keeps_positions_epochs_history_and_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (orders, metrics) = (ch("orders/1"), ch("metrics/cpu"));
    let first = open(dir.path(), 100);
    let mut epochs = Vec::new();
    for channel in [&orders, &metrics] {
        for v in 1..=5 {
            let key = format!("k{v}");
            first.broker.publish(channel, n(v), Some(&key)).await.expect("publish");
        }
        epochs
            .push(first.broker.history(channel, HistoryQuery::newest(0)).await.expect("read").position.epoch);
    }
    first.close().await;

    let second = open(dir.path(), 100);
    assert!(!second.sqlite.was_unclean());
    for (channel, epoch) in [&orders, &metrics].into_iter().zip(&epochs) {
        let history = second.broker.history(channel, HistoryQuery::after(2, 10)).await.expect("read");
        assert_eq!(history.position.offset, 5, "{channel}");
        assert_eq!(&history.position.epoch, epoch, "{channel}: same epoch after a clean restart");
        assert_eq!(values(&history), vec!["3", "4", "5"]);
        assert_eq!(history.latest.as_ref().map(|p| p.position.offset), Some(5));
        let again = second.broker.publish(channel, n(99), Some("k3")).await.expect("publish");
        assert!(again.duplicate, "{channel}: keys survive the restart");
        assert_eq!(again.position.offset, 3);
        let next = second.broker.publish(channel, n(6), None).await.expect("publish");
        assert_eq!((next.position.offset, &next.position.epoch), (6, epoch), "offsets continue");
    }
    second.close().await;
}

#[tokio::test]
async fn a_crash_renews_write_behind_epochs_and_keeps_durable_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (orders, metrics) = (ch("orders/1"), ch("metrics/cpu"));
    let first = open(dir.path(), 100);
    let mut epochs = Vec::new();
    for channel in [&orders, &metrics] {
        for v in 1..=3 {
            first.broker.publish(channel, n(v), None).await.expect("publish");
        }
        epochs
            .push(first.broker.history(channel, HistoryQuery::newest(0)).await.expect("read").position.epoch);
    }
    first.store.flush().await.expect("flush");
    // Published after the last flush, and never written: what a crash loses.
    first.broker.publish(&metrics, n(4), None).await.expect("publish");
    // A crash: nothing flushed or closed; dropping releases the lock as the OS would.
    drop(first);

    let second = open(dir.path(), 100);
    assert!(second.sqlite.was_unclean(), "the crash is noticed");
    let durable = second.broker.history(&orders, HistoryQuery::after(0, 10)).await.expect("read");
    assert_eq!(durable.position.epoch, epochs[0], "a durable channel lost nothing: same epoch");
    assert_eq!(values(&durable), vec!["1", "2", "3"]);
    let behind = second.broker.history(&metrics, HistoryQuery::newest(10)).await.expect("read");
    assert_ne!(behind.position.epoch, epochs[1], "a write-behind channel may have lost its tail");
    assert_eq!(behind.position.offset, 3, "what was written stays, under the new epoch");
    assert_eq!(values(&behind), vec!["1", "2", "3"]);
    second.close().await;
}

#[tokio::test]
async fn retention_evicts_by_count_and_age_on_disk_and_keeps_the_latest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = open(dir.path(), 100);
    let (a, b) = (ch("orders/count"), ch("orders/age"));
    for v in 1..=10 {
        opened.broker.publish(&a, n(v), None).await.expect("publish");
    }
    for v in 1..=4 {
        opened.broker.publish(&b, n(v), None).await.expect("publish");
        opened.clock.advance(Duration::from_secs(60));
    }
    // b's entries are at START, +60 s, +120 s and +180 s; the clock is at +240 s.
    let store = opened.store.clone();
    assert_eq!(store.evict(&a, 3, 0).await.expect("evict"), 8, "keeps the newest three");
    assert_eq!(store.evict(&b, 100, START_MS + 100_000).await.expect("evict"), 3, "drops those before");
    assert_eq!(store.evict(&b, 100, START_MS + 100_000).await.expect("evict"), 3, "and nothing more");
    let read = store.read(&a, HistoryQuery::after(0, 100)).await.expect("read");
    let offsets: Vec<u64> = read.publications.iter().map(|p| p.position.offset).collect();
    assert_eq!(offsets, vec![8, 9, 10]);
    assert_eq!(store.evict(&a, 0, 0).await.expect("evict"), 11, "size 0 keeps no entry");
    let loaded = store.load(&a).await.expect("load").expect("stored");
    assert_eq!(loaded.latest.map(|p| p.position.offset), Some(10), "but the latest value stays");
    assert_eq!((loaded.offset, loaded.oldest), (10, 11));
    opened.close().await;
}

#[tokio::test]
async fn a_store_from_a_newer_livehub_is_refused_and_a_second_process_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = open(dir.path(), 10);
    let again = SqliteStore::open(dir.path(), |_| true).expect_err("locked");
    assert!(matches!(again, StoreError::Locked(_)), "{again}");
    assert!(again.to_string().contains("in use by another livehub process"), "{again}");
    opened.close().await;

    let db = rusqlite::Connection::open(dir.path().join(livehub_store::DB_FILE)).expect("open");
    db.execute("UPDATE schema_version SET version = 99", []).expect("bump");
    drop(db);
    let newer = SqliteStore::open(dir.path(), |_| true).expect_err("too new");
    assert!(matches!(newer, StoreError::SchemaTooNew { found: 99, .. }), "{newer}");
    assert!(newer.to_string().contains("newer than this livehub supports"), "{newer}");
}

#[tokio::test(start_paused = true)]
async fn a_full_write_behind_queue_refuses_before_sequencing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(dir.path(), |_| false).expect("open");
    let settings = DurabilitySettings { durable: vec!["orders/".into()], max_queued: 3 };
    let store = Durability::new(sqlite.clone(), settings);
    let history = HistoryConfig::default();
    let clock = ManualClock::new(START_MS);
    let store = Arc::new(store);
    let broker =
        MemoryBroker::with_store(history, clock.clock(), store.clone(), Arc::new(Recorder::default()));
    let metrics = ch("metrics/cpu");
    // Paused time and a current-thread runtime: the flush task cannot run while this does not
    // yield, as a disk that stalled would not drain the queue.
    for v in 1..=3 {
        broker.publish(&metrics, n(v), None).await.expect("publish");
    }
    assert_eq!(store.queue_status().queued, 3);
    let refused = broker.publish(&metrics, n(4), None).await.expect_err("full");
    assert!(matches!(refused, Error::StoreFull(_)), "{refused}");
    assert_eq!(refused.code(), "store_full");
    let position = broker.history(&metrics, HistoryQuery::newest(0)).await.expect("read").position;
    assert_eq!(position.offset, 3, "the refused publish took no offset");
    assert!(broker.publish(&ch("orders/1"), n(1), None).await.is_ok(), "durable channels still publish");
    store.flush().await.expect("flush");
    let next = broker.publish(&metrics, n(4), None).await.expect("room again");
    assert_eq!((next.position.offset, next.position.epoch), (4, position.epoch), "same epoch, no gap");
    store.close().await.expect("flush");
    sqlite.close().await.expect("close");
}

#[tokio::test]
async fn a_small_hot_window_reads_older_history_from_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opened = open(dir.path(), 100);
    opened.broker = opened.broker.with_hot_window(3);
    for channel in [ch("orders/hot"), ch("metrics/hot")] {
        for v in 1..=10 {
            opened.broker.publish(&channel, n(v), None).await.expect("publish");
        }
        let all = opened.broker.history(&channel, HistoryQuery::after(0, 100)).await.expect("read");
        assert_eq!(values(&all), (1..=10).map(|v| v.to_string()).collect::<Vec<_>>(), "{channel}");
        assert_eq!(all.oldest, 1, "history is what is on disk, not the hot window");
        let newest = opened.broker.history(&channel, HistoryQuery::newest(5)).await.expect("read");
        assert_eq!(values(&newest), vec!["6", "7", "8", "9", "10"], "{channel}");
    }
    opened.close().await;
}

#[tokio::test]
async fn retention_sweeps_channels_no_broker_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = open(dir.path(), 100);
    let (a, b) = (ch("metrics/a"), ch("orders/b"));
    for v in 1..=10 {
        opened.broker.publish(&a, n(v), None).await.expect("publish");
        opened.broker.publish(&b, n(v), None).await.expect("publish");
    }
    opened.close().await;

    // After a restart, with a stricter rule for metrics/: nothing touches the channels.
    let opened = open(dir.path(), 100);
    let rule = HistoryPolicy { size: 3, max_age: Duration::from_secs(3600) };
    let history = HistoryConfig {
        default: HistoryPolicy { size: 100, max_age: Duration::from_secs(3600) },
        rules: vec![("metrics/".into(), rule)],
    };
    let swept = Retention { store: &opened.store, history: &history }.sweep(START_MS).await.expect("sweep");
    assert_eq!(swept, 2);
    let offsets =
        |h: livehub_core::StoredHistory| h.publications.iter().map(|p| p.position.offset).collect::<Vec<_>>();
    let kept = opened.store.read(&a, HistoryQuery::after(0, 100)).await.expect("read");
    assert_eq!(offsets(kept), vec![8, 9, 10], "metrics/ keeps 3");
    let kept = opened.store.read(&b, HistoryQuery::after(0, 100)).await.expect("read");
    assert_eq!(offsets(kept).len(), 10, "the others keep everything");
    // By age: an hour later nothing is young enough, but the latest values stay.
    let later = START_MS + 3_600_001;
    Retention { store: &opened.store, history: &history }.sweep(later).await.expect("sweep");
    assert!(opened.store.read(&b, HistoryQuery::after(0, 100)).await.expect("read").publications.is_empty());
    let loaded = opened.store.load(&b).await.expect("load").expect("stored");
    assert_eq!((loaded.offset, loaded.latest.map(|p| p.position.offset)), (10, Some(10)));
    opened.close().await;
}
