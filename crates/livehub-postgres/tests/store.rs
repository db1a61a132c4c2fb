//! The PostgreSQL store on a real database: a second broker over the same database (as after a
//! restart) resumes where the first stopped, the schema is versioned, a batch that does not
//! follow is refused, eviction keeps what it should, and an unreachable database fails fast.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use livehub_core::conformance::{Recorder, START_MS};
use livehub_core::{
    Broker, ChannelName, Epoch, HistoryConfig, HistoryPolicy, HistoryQuery, HistoryStore, ManualClock,
    MemoryBroker, Payload, Publication, StoredEntry, StreamPosition,
};
use livehub_postgres::{PgSettings, PgStore, PgStoreError, SCHEMA_VERSION};

type Durable = MemoryBroker<PgStore>;

fn broker(store: PgStore, size: usize, clock: &ManualClock) -> (Arc<Durable>, Arc<Recorder>) {
    let sink = Arc::new(Recorder::default());
    let history =
        HistoryConfig { default: HistoryPolicy { size, max_age: Duration::from_secs(3600) }, rules: vec![] };
    (Arc::new(MemoryBroker::with_store(history, clock.clock(), store, sink.clone())), sink)
}

fn ch(s: &str) -> ChannelName {
    ChannelName::new(s).expect("valid channel")
}

fn n(v: u64) -> Payload {
    Payload::json(v.to_string()).expect("valid json")
}

fn offsets(publications: &[Arc<Publication>]) -> Vec<u64> {
    publications.iter().map(|p| p.position.offset).collect()
}

fn entry(channel: &ChannelName, epoch: &Epoch, offset: u64, ts: u64, key: Option<&str>) -> StoredEntry {
    let position = StreamPosition { offset, epoch: epoch.clone() };
    let publication = Publication::with_ts(channel.clone(), n(offset), position, ts);
    StoredEntry { publication: Arc::new(publication), key: key.map(Into::into) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_over_a_reopened_store_resumes_where_the_first_stopped() {
    let db = common::TestDb::new().await;
    let clock = ManualClock::new(START_MS);
    let a = ch("sensors/a");
    let (first, _) = broker(db.open().await, 3, &clock);
    let mut published = Vec::new();
    for v in 1..=6 {
        clock.advance(Duration::from_secs(1));
        published.push(first.publish(&a, n(v), Some(&format!("k{v}"))).await.expect("publish"));
    }
    first.publish(&ch("sensors/b"), Payload::Binary(vec![0, 1, 255].into()), None).await.expect("publish");
    drop(first);

    // A new pool and a new broker: what a restarted process has.
    let (second, sink) = broker(db.open().await, 3, &clock);
    let history = second.history(&a, HistoryQuery::newest(10)).await.expect("history");
    assert_eq!(history.position, published[5].position, "same epoch, same offset");
    assert_eq!(offsets(&history.publications), vec![4, 5, 6], "read from the database, within the policy");
    assert_eq!(history.oldest, 4);
    assert_eq!(history.latest.as_ref().map(|p| p.data.clone()), Some(n(6)));
    assert_eq!(history.publications[0].ts, START_MS + 4000, "timestamps survive");

    let after = second.history(&a, HistoryQuery::after(4, 10)).await.expect("history");
    assert_eq!(offsets(&after.publications), vec![5, 6]);
    let by_time = second
        .history(&a, HistoryQuery::newest(10).from_ms(START_MS + 5000).to_ms(START_MS + 6000))
        .await
        .expect("history");
    assert_eq!(offsets(&by_time.publications), vec![5], "from is inclusive, to exclusive");

    let binary = second.history(&ch("sensors/b"), HistoryQuery::newest(1)).await.expect("history");
    assert_eq!(binary.publications[0].data, Payload::Binary(vec![0, 1, 255].into()), "binary stays binary");

    let retry = second.publish(&a, n(5), Some("k5")).await.expect("publish");
    assert!(retry.duplicate, "idempotency keys survive the restart");
    assert_eq!(retry.position, published[4].position);
    let next = second.publish(&a, n(7), None).await.expect("publish");
    assert_eq!(next.position.offset, 7);
    assert_eq!(next.position.epoch, published[0].position.epoch);
    sink.wait_for(&a, 1).await;
    assert_eq!(sink.offsets(&a), vec![7], "only the new publication is delivered");

    let unknown = second.history(&ch("sensors/none"), HistoryQuery::newest(5)).await.expect("history");
    assert_eq!(unknown.position.offset, 0, "a channel never published to has no position");
    drop(second);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_does_not_follow_changes_nothing_and_a_new_epoch_replaces_the_old() {
    let db = common::TestDb::new().await;
    let store = db.open().await;
    let a = ch("a");
    let old = Epoch::random();
    let batch: Vec<_> = (1..=3).map(|o| entry(&a, &old, o, START_MS + o, Some(&format!("k{o}")))).collect();
    store.append(&a, &batch).await.expect("append");

    let gap =
        store.append(&a, &[entry(&a, &old, 5, START_MS + 5, None)]).await.expect_err("offset 4 is missing");
    assert_eq!(gap.code(), "unavailable");
    assert!(gap.to_string().contains("does not follow"), "{gap}");
    let again = store.append(&a, &batch[2..]).await.expect_err("offset 3 is stored");
    assert!(again.to_string().contains("does not follow"), "{again}");
    let loaded = store.load(&a).await.expect("load").expect("stored");
    assert_eq!((loaded.offset, loaded.oldest, loaded.keys.len()), (3, 1, 3), "nothing changed");
    assert_eq!(loaded.keys.last().map(|(k, o)| (&**k, *o)), Some(("k3", 3)));

    let new = Epoch::random();
    store.append(&a, &[entry(&a, &new, 1, START_MS + 10, None)]).await.expect("a new epoch starts at 1");
    let loaded = store.load(&a).await.expect("load").expect("stored");
    assert_eq!((loaded.epoch, loaded.offset, loaded.oldest), (new.clone(), 1, 1));
    assert!(loaded.keys.is_empty(), "the old epoch's keys are gone");
    let read = store.read(&a, HistoryQuery::after(0, 10)).await.expect("read");
    assert_eq!(offsets(&read.publications), vec![1]);
    assert_eq!(read.publications[0].position.epoch, new);

    // An epoch is abandoned when its write fails, even if the database never saw it; a late
    // write of it (received after livehub gave up) must not replace the epoch that followed.
    let failed = Epoch::random();
    store
        .append(&a, &[entry(&a, &failed, 2, START_MS + 20, None)])
        .await
        .expect_err("a new epoch starts at 1");
    let next = Epoch::random();
    store.append(&a, &[entry(&a, &next, 1, START_MS + 30, None)]).await.expect("the epoch after it");
    for late in [&failed, &old] {
        let error =
            store.append(&a, &[entry(&a, late, 1, START_MS + 40, None)]).await.expect_err("abandoned");
        assert!(error.to_string().contains("does not follow"), "{error}");
    }
    let reopened = db.open().await;
    let error =
        reopened.append(&a, &[entry(&a, &failed, 1, START_MS + 40, None)]).await.expect_err("abandoned");
    assert!(error.to_string().contains("does not follow"), "the database remembers: {error}");
    let loaded = reopened.load(&a).await.expect("load").expect("stored");
    assert_eq!((loaded.epoch, loaded.offset), (next, 1));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_written_together_commit_together_and_one_that_does_not_follow_stops_none() {
    let db = common::TestDb::new().await;
    let store = db.open().await;
    let epoch = Epoch::random();
    let (a, b, c) = (ch("a"), ch("b"), ch("c"));
    store.append(&b, &[entry(&b, &epoch, 1, START_MS, None)]).await.expect("append");
    let batches = vec![
        (a.clone(), vec![entry(&a, &epoch, 1, START_MS, Some("ka")), entry(&a, &epoch, 2, START_MS, None)]),
        (b.clone(), vec![entry(&b, &epoch, 3, START_MS, None)]),
        (c.clone(), vec![entry(&c, &epoch, 1, START_MS, None)]),
    ];
    let error = store.append_many(&batches).await.expect_err("b's offset 2 is missing");
    assert!(error.to_string().contains("b: offset 3 does not follow"), "{error}");
    let stored = |channel: ChannelName| {
        let store = store.clone();
        async move { offsets(&store.read(&channel, HistoryQuery::after(0, 10)).await.expect("read").publications) }
    };
    assert_eq!(stored(a.clone()).await, vec![1, 2]);
    assert_eq!(stored(b.clone()).await, vec![1], "b is unchanged");
    assert_eq!(stored(c.clone()).await, vec![1]);

    // Many channels appending at once go through the committers together.
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (store, channel, epoch) = (store.clone(), ch(&format!("many/{i}")), epoch.clone());
            tokio::spawn(async move {
                for o in 1..=5 {
                    store
                        .append(&channel, &[entry(&channel, &epoch, o, START_MS, None)])
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(store.stats().await.expect("stats").entries, 4 + 64 * 5);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_the_newest_the_recent_the_latest_and_the_key_window() {
    let db = common::TestDb::new().await;
    let store = db.open().await;
    let a = ch("a");
    let epoch = Epoch::random();
    let window = livehub_core::IDEMPOTENCY_WINDOW as u64;
    let count = window + 100;
    let batch: Vec<_> =
        (1..=count).map(|o| entry(&a, &epoch, o, START_MS + o * 1000, Some(&format!("k{o}")))).collect();
    store.append(&a, &batch).await.expect("append");

    assert_eq!(store.evict(&a, 50, 0).await.expect("evict"), count - 49, "the newest 50 stay");
    let min_ts = START_MS + (count - 10) * 1000;
    assert_eq!(store.evict(&a, 50, min_ts).await.expect("evict"), count - 10, "and only the recent ones");
    let read = store.read(&a, HistoryQuery::newest(100)).await.expect("read");
    assert_eq!(offsets(&read.publications), (count - 10..=count).collect::<Vec<_>>());
    assert_eq!(read.oldest, count - 10);

    let loaded = store.load(&a).await.expect("load").expect("stored");
    assert_eq!(loaded.keys.len() as u64, window, "the newest keys stay, beyond the publications kept");
    assert_eq!(loaded.keys.first().map(|(_, o)| *o), Some(count - window + 1));

    assert_eq!(store.evict(&a, 0, 0).await.expect("evict"), count + 1, "nothing kept");
    let loaded = store.load(&a).await.expect("load").expect("stored");
    assert_eq!((loaded.offset, loaded.oldest), (count, count + 1));
    assert_eq!(loaded.latest.map(|p| p.position.offset), Some(count), "the latest value stays");
    assert_eq!(store.evict(&ch("never"), 10, 0).await.expect("evict"), 1);

    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.schema_version, stats.channels, stats.entries), (SCHEMA_VERSION, 1, 0));
    assert_eq!((stats.oldest_ts, stats.newest_ts), (None, Some(START_MS + count * 1000)));
    assert!(stats.size_bytes > 0);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_select_by_offset_and_time_in_both_directions() {
    let db = common::TestDb::new().await;
    let store = db.open().await;
    let a = ch("a");
    let epoch = Epoch::random();
    // Two publications share each timestamp, as a burst within one millisecond does.
    let batch: Vec<_> =
        (1..=10).map(|o| entry(&a, &epoch, o, START_MS + o.div_ceil(2) * 1000, None)).collect();
    store.append(&a, &batch).await.expect("append");
    let read = async |query: HistoryQuery| offsets(&store.read(&a, query).await.expect("read").publications);
    assert_eq!(read(HistoryQuery::newest(3)).await, vec![8, 9, 10]);
    assert_eq!(read(HistoryQuery::after(2, 3)).await, vec![3, 4, 5]);
    assert_eq!(read(HistoryQuery::newest(0)).await, Vec::<u64>::new());
    let (from, to) = (START_MS + 2000, START_MS + 4000);
    assert_eq!(read(HistoryQuery::newest(10).from_ms(from).to_ms(to)).await, vec![3, 4, 5, 6]);
    // Paging a time range across equal timestamps: the next page starts after the last offset.
    assert_eq!(read(HistoryQuery::newest(3).from_ms(from).to_ms(to)).await, vec![3, 4, 5]);
    assert_eq!(read(HistoryQuery::after(5, 3).from_ms(from).to_ms(to)).await, vec![6]);
    assert_eq!(read(HistoryQuery::newest(2).to_ms(to)).await, vec![5, 6], "backward from to");
    assert_eq!(read(HistoryQuery::after(u64::MAX, 5)).await, Vec::<u64>::new());
    assert!(store.read(&ch("b"), HistoryQuery::newest(5)).await.expect("read").publications.is_empty());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_and_a_newer_schema_is_refused() {
    let db = common::TestDb::new().await;
    let opened = open_together(db.settings()).await;
    assert!(opened.iter().all(Result::is_ok), "stores opening together all open: {opened:?}");
    drop(opened);
    db.execute("INSERT INTO livehub_schema (version, livehub) VALUES (999, 'future')").await;
    let refused = PgStore::open(db.settings()).await.expect_err("a newer schema");
    assert!(
        matches!(refused, PgStoreError::SchemaTooNew { found: 999, supported: SCHEMA_VERSION }),
        "{refused}"
    );
    assert!(refused.to_string().contains("newer than this livehub supports"), "{refused}");
    db.execute("DELETE FROM livehub_schema WHERE version = 999").await;
    let store = db.open().await;
    assert_eq!(store.stats().await.expect("stats").schema_version, SCHEMA_VERSION);
    drop(store);
    db.drop_db().await;
}

/// Opens four stores over `settings` at once.
async fn open_together(settings: PgSettings) -> Vec<Result<PgStore, PgStoreError>> {
    let tasks: Vec<_> = (0..4).map(|_| tokio::spawn(PgStore::open(settings.clone()))).collect();
    let mut opened = Vec::new();
    for task in tasks {
        opened.push(task.await.expect("task"));
    }
    opened
}

#[tokio::test]
async fn an_unreachable_database_fails_to_open_within_the_connect_timeout() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut settings = PgSettings::new(format!("postgres://livehub@127.0.0.1:{port}/livehub"));
    settings.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let error = PgStore::open(settings).await.expect_err("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(3), "failed in {:?}", started.elapsed());
    assert!(matches!(error, PgStoreError::Connect(_)), "{error}");
    assert!(error.to_string().starts_with("cannot connect to PostgreSQL"), "{error}");

    let error =
        PgStore::open(PgSettings::new("postgres://livehub@127.0.0.1:notaport/x")).await.expect_err("bad URL");
    assert!(matches!(error, PgStoreError::InvalidUrl(_)), "{error}");
}
