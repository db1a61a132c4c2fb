//! Runs a scenario: open the subscribers, publish (or wait), measure, and report.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::marker;
use crate::proc;
use crate::publisher::Publisher;
use crate::report::{ConnectStats, LatencyStats, MemoryStats, Report};
use crate::subscriber::{channel_name, pattern_name, wildcard_channel, Subscriber};
use crate::tally::Tally;
use crate::{BenchConfig, Scenario, Target};

/// A closed loop that makes no progress for this long has lost a publication: the run fails.
const STALL: Duration = Duration::from_secs(5);

/// Longest wait for one connection to open and subscribe.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Pause between the last subscriber being ready and the first publication, so that servers
/// which register a subscriber just after answering its handshake have done so.
const SETTLE: Duration = Duration::from_millis(200);

pub(crate) async fn run(config: BenchConfig) -> Report {
    let tally = Arc::new(Tally::new());
    let mut report = empty_report(&config);

    let server_pids = match config.server_pid {
        Some(pid) => vec![pid],
        None => proc::listeners(config.addr.port()),
    };
    let server_base = rss_sum(&server_pids);
    let client_base = proc::own_rss_kib();

    let opened = Arc::new(AtomicUsize::new(0));
    let progress =
        config.progress.then(|| tokio::spawn(progress(config.clone(), tally.clone(), opened.clone())));

    let mut running = JoinSet::new();
    let connect = open_all(&config, &tally, &opened, &mut running).await;
    report.connect = connect;
    if !tally.has_failed() {
        report.connections = config.connections;
        match config.scenario {
            Scenario::Fanout | Scenario::Channels | Scenario::Wildcards => {
                publish_and_measure(&config, &tally, &mut report).await
            }
            Scenario::Connect => {}
            Scenario::Idle => {
                wait_or_fail(&tally, config.warmup + config.duration).await;
                report.duration_secs = config.duration.as_secs_f64();
                report.memory = memory(&config, &server_pids, server_base, client_base, &tally);
            }
        }
    }
    tally.stop();
    if let Some(progress) = progress {
        progress.abort();
    }
    running.shutdown().await;

    let mut errors = tally.errors();
    errors.append(&mut report.errors);
    report.errors = errors;
    report.ok = report.errors.is_empty();
    report
}

fn empty_report(config: &BenchConfig) -> Report {
    Report {
        scenario: config.scenario.to_string(),
        target: config.target.to_string(),
        transport: config.transport.to_string(),
        url: format!("http://{}", config.addr),
        command: config.command.clone(),
        connections: 0,
        channels: config.channels,
        payload_bytes: config.payload,
        rate: config.rate,
        window: config.window,
        duration_secs: 0.0,
        published: 0,
        published_per_sec: 0.0,
        delivered: 0,
        delivered_per_sec: 0.0,
        latency_ms: None,
        connect: None,
        memory: None,
        errors: Vec::new(),
        ok: false,
    }
}

/// Opens every subscriber, `concurrency` at a time, and starts its reading task in `running`.
async fn open_all(
    config: &BenchConfig,
    tally: &Arc<Tally>,
    opened: &Arc<AtomicUsize>,
    running: &mut JoinSet<()>,
) -> Option<ConnectStats> {
    let permits = Arc::new(Semaphore::new(config.concurrency));
    // Bounds and precision are constants that hdrhistogram accepts.
    #[allow(clippy::unwrap_used)]
    let times = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap()));
    let mut opening = JoinSet::new();
    let started = Instant::now();
    for i in 0..config.connections {
        let (target, transport, addr) = (config.target, config.transport, config.addr);
        let source = config.source_addrs[i % config.source_addrs.len()];
        let channel = match config.scenario {
            Scenario::Wildcards => pattern_name(i),
            _ => channel_name(target, i % config.channels),
        };
        let (permits, times, tally, opened) = (permits.clone(), times.clone(), tally.clone(), opened.clone());
        opening.spawn(async move {
            let Ok(_permit) = permits.acquire().await else { return None };
            if tally.has_failed() {
                return None;
            }
            let t = Instant::now();
            let open = Subscriber::open(target, transport, addr, source, &channel);
            match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
                Ok(Ok(subscriber)) => {
                    if let Ok(mut h) = times.lock() {
                        h.saturating_record(t.elapsed().as_micros() as u64);
                    }
                    opened.fetch_add(1, Ordering::Relaxed);
                    Some(subscriber)
                }
                Ok(Err(e)) => {
                    tally.fail(format!("connecting from {source}: {}", io_text(&e)));
                    None
                }
                Err(_) => {
                    tally
                        .fail(format!("connecting from {source}: not subscribed within {CONNECT_TIMEOUT:?}"));
                    None
                }
            }
        });
    }
    while let Some(result) = opening.join_next().await {
        if let Ok(Some(subscriber)) = result {
            let tally = tally.clone();
            running.spawn(async move {
                let end = subscriber.run(tally.clone()).await;
                tally.fail(format!("a subscriber's connection ended: {end}"));
            });
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let h = times.lock().ok()?;
    if h.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Some(ConnectStats {
        per_sec: h.len() as f64 / elapsed.max(1e-9),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    })
}

/// Publishes through the warm-up and the measured time, and fills in the delivery figures.
async fn publish_and_measure(config: &BenchConfig, tally: &Arc<Tally>, report: &mut Report) {
    let publisher = match Publisher::open(config.target, config.addr, config.source_addrs[0]).await {
        Ok(publisher) => publisher,
        Err(e) => {
            tally.fail(format!("the publisher could not connect: {}", io_text(&e)));
            return;
        }
    };
    tokio::time::sleep(SETTLE).await;
    let self_publishing = publisher.is_none();
    let publishing = publisher.map(|p| tokio::spawn(publish(config.clone(), p, tally.clone())));

    wait_or_fail(tally, config.warmup).await;
    tally.start_measuring();
    let started = Instant::now();
    wait_or_fail(tally, config.duration).await;
    tally.stop_measuring();
    let elapsed = started.elapsed().as_secs_f64();
    tally.stop();
    if let Some(publishing) = publishing {
        let _ = publishing.await;
    }

    report.duration_secs = elapsed;
    // A server that publishes by itself is credited with the sequence numbers that arrived.
    report.published = if self_publishing { tally.seen_published() } else { tally.published() };
    report.published_per_sec = report.published as f64 / elapsed.max(1e-9);
    report.delivered = tally.delivered();
    report.delivered_per_sec = report.delivered as f64 / elapsed.max(1e-9);
    report.latency_ms = tally.latency().and_then(|h| LatencyStats::from_micros(&h));
    if report.delivered == 0 && !tally.has_failed() {
        // Not `tally.fail`: the run is over and stopping, which mutes failures.
        report.errors.push("nothing was delivered while measuring".into());
    }
}

/// The publishing loop: closed (`rate` 0, at most `window` outstanding) or at a fixed rate.
async fn publish(config: BenchConfig, mut publisher: Publisher, tally: Arc<Tally>) {
    let (per_channel, names): (Vec<usize>, Vec<String>) = match config.scenario {
        // Each channel reaches the one subscriber whose pattern matches it; the others' patterns
        // are there for the server to route past.
        Scenario::Wildcards => (0..config.channels).map(|c| (1, wildcard_channel(c))).unzip(),
        _ => {
            let mut per_channel = vec![0usize; config.channels];
            for i in 0..config.connections {
                per_channel[i % config.channels] += 1;
            }
            (per_channel, (0..config.channels).map(|c| channel_name(config.target, c)).collect())
        }
    };
    // The window is per channel: publication k waits for k - window × channels, the one before
    // it on the same channel, so spreading over channels does not starve each of them.
    let window = u64::from(config.window) * config.channels as u64;
    let mut ticks = (config.rate > 0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(config.rate)));
        // A publisher that fell behind catches up at once, so the rate asked for is the rate sent.
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let mut seq = 0u64;
    while !tally.is_stopping() {
        match &mut ticks {
            Some(ticks) => {
                ticks.tick().await;
            }
            None if seq >= window => {
                let waiting_for = seq + 1 - window;
                if !tally.wait_complete(waiting_for, STALL).await {
                    let (got, expected) = tally.progress_of(waiting_for);
                    tally.fail(format!(
                        "stalled: publication {waiting_for} reached {got} of {expected} subscribers in {STALL:?}"
                    ));
                    return;
                }
            }
            None => {}
        }
        if tally.is_stopping() {
            return;
        }
        seq += 1;
        let channel = (seq as usize) % config.channels;
        tally.expect(seq, per_channel[channel]);
        let data = marker::publication(seq, config.payload);
        if let Err(e) = publisher.publish(&names[channel], &data).await {
            tally.fail(format!("publishing failed: {e}"));
            return;
        }
    }
}

/// Sleeps for `d`, returning early once the run has failed.
async fn wait_or_fail(tally: &Tally, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !tally.has_failed() {
        tokio::time::sleep(end.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)))
            .await;
    }
}

fn rss_sum(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|pid| proc::rss_kib(*pid)).sum()
}

fn memory(
    config: &BenchConfig,
    pids: &[u32],
    server_base: Option<u64>,
    client_base: Option<u64>,
    tally: &Tally,
) -> Option<MemoryStats> {
    let (Some(base), Some(now)) = (server_base, rss_sum(pids)) else {
        tally.fail(format!(
            "no process found listening on port {}: pass --server-pid to measure its memory",
            config.addr.port()
        ));
        return None;
    };
    let n = config.connections as f64;
    let client_now = proc::own_rss_kib();
    Some(MemoryStats {
        server_pid: pids.to_vec(),
        server_rss_base_kib: base,
        server_rss_kib: now,
        server_kib_per_connection: round2((now as f64 - base as f64) / n),
        client_kib_per_connection: match (client_base, client_now) {
            (Some(b), Some(c)) => round2((c as f64 - b as f64) / n),
            _ => 0.0,
        },
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A line a second on stderr while the run goes.
async fn progress(config: BenchConfig, tally: Arc<Tally>, opened: Arc<AtomicUsize>) {
    let started = Instant::now();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    loop {
        every.tick().await;
        let received = tally.take_recent();
        let open = opened.load(Ordering::Relaxed);
        let what = if open < config.connections {
            format!("connecting {open}/{}", config.connections)
        } else if received > 0 {
            format!("{} connections, {received} msg/s received", config.connections)
        } else {
            format!("{} connections open", config.connections)
        };
        let target =
            if config.target == Target::Livehub { String::new() } else { format!(" {}", config.target) };
        eprintln!("[{:>5.1}s]{target} {}: {what}", started.elapsed().as_secs_f64(), config.scenario);
    }
}

/// An I/O error in words: an error from the OS by its kind (`connection refused`), without the
/// OS's wording and number (`Connection refused (os error 111)`); any other by its message.
fn io_text(error: &std::io::Error) -> String {
    if error.raw_os_error().is_some() {
        error.kind().to_string()
    } else {
        error.to_string()
    }
}
