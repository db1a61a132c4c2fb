//! A small MQTT load generator, for `bench/mqtt.sh`: the same run against livehub and Mosquitto.
//!
//!     mqtt_bench fanout ADDR SUBSCRIBERS RATE SECS   QoS 0, one publisher, SUBSCRIBERS on one topic
//!     mqtt_bench qos1 ADDR WINDOW SECS               QoS 1 publishes acknowledged per second, the
//!                                                    window's free room sent in one write
//!     mqtt_bench connect ADDR COUNT PID              connections per second (200 in flight), then
//!                                                    RSS per idle one
//!
//! It runs on one thread (pin it with taskset), counts packets by their fixed headers without
//! decoding payloads, and only ever connects to 127.0.0.0/8. Each run ends by itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livehub_mqtt::{
    decode, encode, Connect, Packet, Properties, Publish, QoS, Subscribe, SubscriptionOptions, Version,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOPIC: &str = "bench/fanout";

fn packet(p: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    encode(p, Version::V311, &mut out);
    out
}

async fn connect(addr: SocketAddr, id: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let connect = Connect {
        version: Version::V311,
        client_id: id.to_owned(),
        clean_start: true,
        keep_alive: 0,
        properties: Properties::default(),
        will: None,
        username: None,
        password: None,
    };
    tcp.write_all(&packet(&Packet::Connect(Box::new(connect)))).await.expect("write");
    let mut ack = [0u8; 4];
    tcp.read_exact(&mut ack).await.expect("connack");
    assert_eq!(ack, [0x20, 2, 0, 0], "CONNACK accepted");
    tcp
}

/// Reads whole packets, calling `each` with each packet's first byte and body; returns at EOF.
async fn read_packets(tcp: &mut TcpStream, mut each: impl FnMut(u8, &[u8]) -> bool) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            let (mut len, mut i, mut shift) = (0usize, 1, 0);
            let complete = loop {
                let Some(&b) = rest.get(i) else { break false };
                len |= usize::from(b & 0x7F) << shift;
                shift += 7;
                i += 1;
                if b & 0x80 == 0 {
                    break true;
                }
            };
            if !complete || rest.len() < i + len {
                break;
            }
            if !each(rest[0], &rest[i..i + len]) {
                return;
            }
            at += i + len;
        }
        buf.drain(..at);
    }
}

/// Latencies in microseconds, by power-of-two bucket.
struct Latencies([AtomicU64; 40]);

impl Default for Latencies {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl Latencies {
    fn record(&self, micros: u64) {
        let bucket = (64 - micros.max(1).leading_zeros()) as usize;
        self.0[bucket.min(39)].fetch_add(1, Ordering::Relaxed);
    }

    fn percentile(&self, p: f64) -> u64 {
        let total: u64 = self.0.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        let want = (total as f64 * p).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.0.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= want {
                return 1 << i;
            }
        }
        0
    }
}

async fn fanout(addr: SocketAddr, subscribers: usize, rate: u64, secs: u64) {
    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Latencies::default());
    let mut ready = Vec::new();
    for i in 0..subscribers {
        let mut tcp = connect(addr, &format!("sub-{i}")).await;
        let options = SubscriptionOptions { qos: Some(QoS::AtMostOnce), ..Default::default() };
        let subscribe = Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![(TOPIC.into(), options)],
        };
        tcp.write_all(&packet(&Packet::Subscribe(subscribe))).await.expect("subscribe");
        let mut suback = [0u8; 5];
        tcp.read_exact(&mut suback).await.expect("suback");
        ready.push(tcp);
    }
    let connected_in = start.elapsed();
    let mut tasks = Vec::new();
    for mut tcp in ready {
        let (received, latencies) = (received.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            read_packets(&mut tcp, |first, body| {
                if first >> 4 == 3 {
                    received.fetch_add(1, Ordering::Relaxed);
                    // The payload's last 8 bytes: nanoseconds since the run started.
                    if let Some(ts) = body.len().checked_sub(8).map(|at| &body[at..]) {
                        let sent = u64::from_be_bytes(ts.try_into().unwrap_or_default());
                        let now = start.elapsed().as_nanos() as u64;
                        latencies.record(now.saturating_sub(sent) / 1000);
                    }
                }
                true
            })
            .await;
        }));
    }
    let mut publisher = connect(addr, "publisher").await;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut next = tokio::time::Instant::now();
    let mut sent = 0u64;
    let until = Instant::now() + Duration::from_secs(secs);
    let measured_from = Instant::now();
    while Instant::now() < until {
        let mut payload = vec![b'x'; 64];
        payload.extend_from_slice(&(start.elapsed().as_nanos() as u64).to_be_bytes());
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: TOPIC.into(),
            packet_id: None,
            properties: Properties::default(),
            payload: payload.into(),
        };
        publisher.write_all(&packet(&Packet::Publish(publish))).await.expect("publish");
        sent += 1;
        next += interval;
        tokio::time::sleep_until(next).await;
    }
    // Let the last ones arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let elapsed = measured_from.elapsed().as_secs_f64() - 0.5;
    let got = received.load(Ordering::Relaxed);
    let expected = sent * subscribers as u64;
    println!(
        "fanout subscribers={subscribers} published={sent} delivered={got} expected={expected} \
         deliveries_per_sec={:.0} p50_us<={} p99_us<={} connect_secs={:.2}",
        got as f64 / elapsed,
        latencies.percentile(0.5),
        latencies.percentile(0.99),
        connected_in.as_secs_f64()
    );
    for task in tasks {
        task.abort();
    }
}

async fn qos1(addr: SocketAddr, window: u16, secs: u64) {
    let tcp = connect(addr, "qos1-publisher").await;
    let (mut rx, mut tx) = tcp.into_split();
    let acked = Arc::new(AtomicU64::new(0));
    let acks = acked.clone();
    let (room_tx, mut room_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending = Vec::new();
        loop {
            let n = match rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            while let Ok(Some(d)) = decode(&pending, Some(Version::V311), usize::MAX) {
                if matches!(d.packet, Packet::Ack(_)) {
                    acks.fetch_add(1, Ordering::Relaxed);
                    let _ = room_tx.send(());
                }
                pending.drain(..d.len);
            }
        }
    });
    let payload = bytes::Bytes::from(vec![b'q'; 64]);
    let mut in_flight = 0u16;
    let mut id = 0u16;
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut batch = Vec::new();
    while Instant::now() < until {
        // The window's free room in one write, as a client library with a send buffer would.
        batch.clear();
        while in_flight < window {
            id = id.checked_add(1).unwrap_or(1);
            let publish = Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: "bench/qos1".into(),
                packet_id: Some(id),
                properties: Properties::default(),
                payload: payload.clone(),
            };
            encode(&Packet::Publish(publish), Version::V311, &mut batch);
            in_flight += 1;
        }
        tx.write_all(&batch).await.expect("publish");
        if tokio::time::timeout(Duration::from_secs(5), room_rx.recv()).await.is_err() {
            break;
        }
        in_flight -= 1;
        while room_rx.try_recv().is_ok() {
            in_flight -= 1;
        }
    }
    let got = acked.load(Ordering::Relaxed);
    println!(
        "qos1 window={window} acked={got} acked_per_sec={:.0}",
        got as f64 / start.elapsed().as_secs_f64()
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Connection attempts in flight at once, as `livehub bench connect` keeps them: one at a time
/// would measure the round trip through two schedulers rather than the server.
const CONNECT_IN_FLIGHT: usize = 200;

async fn connections(addr: SocketAddr, count: usize, pid: u32) {
    let before = rss_kib(pid);
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONNECT_IN_FLIGHT.min(count) {
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let (mut open, mut times) = (Vec::new(), Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count as u64 {
                    return (open, times);
                }
                let began = Instant::now();
                open.push(connect(addr, &format!("idle-{i}")).await);
                times.push(began.elapsed());
            }
        }));
    }
    let (mut open, mut times) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for worker in workers {
        let (o, t) = worker.await.expect("connecting");
        open.extend(o);
        times.extend(t);
    }
    let secs = start.elapsed().as_secs_f64();
    times.sort_unstable();
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)].as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid);
    println!(
        "connect count={count} in_flight={} connections_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} \
         max_ms={:.2} rss_kib_before={before} rss_kib_after={after} kib_per_connection={:.2}",
        CONNECT_IN_FLIGHT.min(count),
        count as f64 / secs,
        at(0.5),
        at(0.99),
        at(1.0),
        after.saturating_sub(before) as f64 / count as f64
    );
    drop(open);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let addr: SocketAddr = arg(2).parse().expect("ADDR as 127.0.0.1:PORT");
    assert!(addr.ip().is_loopback(), "the bench only connects to loopback");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let num = |i: usize| arg(i).parse::<u64>().expect("a number");
    runtime.block_on(async {
        match arg(1).as_str() {
            "fanout" => fanout(addr, num(3) as usize, num(4), num(5)).await,
            "qos1" => qos1(addr, num(3) as u16, num(4)).await,
            "connect" => connections(addr, num(3) as usize, num(4) as u32).await,
            other => panic!("unknown scenario {other:?}: fanout, qos1 or connect"),
        }
    });
}
