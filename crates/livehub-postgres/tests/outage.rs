//! The database goes away mid-run: publishes fail with a clear error within the timeouts (never
//! hang), the store says it is degraded, and once the database is back publishing recovers, in
//! a new epoch (the failed batch may or may not have been written).
//!
//! The test owns its cluster (started by `tests/postgres/cluster.sh`, whatever `DATABASE_URL`
//! says), because it stops and freezes it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use livehub_core::conformance::{Recorder, START_MS};
use livehub_core::{
    Broker, ChannelName, HistoryConfig, HistoryPolicy, HistoryQuery, ManualClock, MemoryBroker, Payload,
    Published,
};
use livehub_postgres::{PgSettings, PgStore};

const CONNECT: Duration = Duration::from_secs(1);
const STATEMENT: Duration = Duration::from_secs(2);

fn n(v: u64) -> Payload {
    Payload::json(v.to_string()).expect("valid json")
}

async fn cluster(args: Vec<String>) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::cluster(&args)
    })
    .await
    .expect("cluster.sh");
}

/// Sends `signal` to the cluster's server processes: the postmaster and its children.
fn signal_server(dir: &str, signal: &str) {
    let pid_file = common::root().join(dir).join("data/postmaster.pid");
    let text = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
    let postmaster = text.lines().next().expect("the pid is the first line").trim().to_owned();
    let children = std::process::Command::new("pgrep").args(["-P", &postmaster]).output().expect("pgrep");
    let mut pids = vec![postmaster];
    pids.extend(String::from_utf8_lossy(&children.stdout).split_whitespace().map(str::to_owned));
    let status =
        std::process::Command::new("kill").arg(format!("-{signal}")).args(&pids).status().expect("kill");
    assert!(status.success(), "kill -{signal} {pids:?}");
}

async fn publish_fails_quickly(
    broker: &MemoryBroker<PgStore>,
    channel: &ChannelName,
    v: u64,
    within: Duration,
) {
    let started = Instant::now();
    let error = broker.publish(channel, n(v), None).await.expect_err("the database is unreachable");
    let took = started.elapsed();
    assert!(took < within, "failed after {took:?}, more than {within:?}");
    assert_eq!(error.code(), "unavailable", "{error}");
    assert!(error.to_string().contains("PostgreSQL store: append failed"), "{error}");
}

/// Publishes until the store accepts again (stale connections of the pool fail once each).
async fn publish_until_accepted(broker: &MemoryBroker<PgStore>, channel: &ChannelName, v: u64) -> Published {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match broker.publish(channel, n(v), None).await {
            Ok(published) => return published,
            // Each stale connection of the pool fails one publish; the database may also still be
            // starting.
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("the store did not recover: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_fail_fast_while_the_database_is_away_and_recover_after() {
    let (dir, url) = tokio::task::spawn_blocking(|| common::own_cluster("outage")).await.expect("cluster");
    let settings = PgSettings {
        pool_size: 4,
        connect_timeout: CONNECT,
        statement_timeout: STATEMENT,
        ..PgSettings::new(url)
    };
    let store = PgStore::open(settings.clone()).await.expect("open");
    let clock = ManualClock::new(START_MS);
    let history = HistoryConfig {
        default: HistoryPolicy { size: 100, max_age: Duration::from_secs(3600) },
        rules: vec![],
    };
    let sink = Arc::new(Recorder::default());
    let broker = MemoryBroker::with_store(history, clock.clock(), store.clone(), sink.clone());
    let a = ChannelName::new("durable/a").expect("valid");
    let before = broker.publish(&a, n(1), None).await.expect("publish");
    assert!(!store.status().degraded);

    // Stopped: the server closes its connections and refuses new ones.
    cluster(vec!["down".into(), dir.clone()]).await;
    publish_fails_quickly(&broker, &a, 2, CONNECT + Duration::from_secs(1)).await;
    publish_fails_quickly(&broker, &a, 3, CONNECT + Duration::from_secs(1)).await;
    let status = store.status();
    assert!(status.degraded, "{status:?}");
    assert!(status.error.as_deref().is_some_and(|e| e.contains("PostgreSQL store")), "{status:?}");
    assert!(store.check().await.degraded, "a health check finds it still away");

    cluster(vec!["up".into(), dir.clone()]).await;
    let recovered = publish_until_accepted(&broker, &a, 4).await;
    assert_ne!(recovered.position.epoch, before.position.epoch, "a failed write starts a new epoch");
    assert_eq!(recovered.position.offset, 1);
    assert!(!store.status().degraded, "{:?}", store.status());
    assert!(!store.check().await.degraded);

    // Frozen: connections stay open but nothing answers, as behind a network partition. The
    // client's own timeout ends the wait and drops the connection.
    signal_server(&dir, "STOP");
    let frozen = Instant::now();
    let error = broker.publish(&a, n(5), None).await.expect_err("the database does not answer");
    let took = frozen.elapsed();
    signal_server(&dir, "CONT");
    assert!(
        took >= STATEMENT && took < STATEMENT + CONNECT + Duration::from_secs(2),
        "failed after {took:?}"
    );
    assert!(error.to_string().contains("PostgreSQL store"), "{error}");
    assert!(store.status().degraded);
    let thawed = publish_until_accepted(&broker, &a, 6).await;
    assert!(!store.status().degraded);

    // What was acknowledged after the outage is what a restarted broker finds.
    let again = PgStore::open(settings).await.expect("reopen");
    let sink = Arc::new(Recorder::default());
    let history = HistoryConfig {
        default: HistoryPolicy { size: 100, max_age: Duration::from_secs(3600) },
        rules: vec![],
    };
    let restarted = MemoryBroker::with_store(history, clock.clock(), again, sink);
    let found = restarted.history(&a, HistoryQuery::after(0, 10)).await.expect("history");
    assert_eq!(found.position, thawed.position);
    let data: Vec<_> = found.publications.iter().map(|p| p.data.clone()).collect();
    assert_eq!(data.last(), Some(&n(6)));
    assert!(!data.contains(&n(2)) && !data.contains(&n(3)), "refused publications are not stored");
    cluster(vec!["stop".into(), dir]).await;
}
