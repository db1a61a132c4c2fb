//! Reading history by time and the series endpoint over real HTTP, on a server whose clock the
//! test moves: paging across equal timestamps, RFC 3339 and Unix-millisecond bounds, buckets
//! for a known input (empty buckets and non-numeric values included) and every refusal's code.

mod common;

use std::time::Duration;

use livehub_core::{ManualClock, Node, NodeConfig};
use livehub_server::{Config, StorageSettings, StoreKind};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// 2024-12-05T09:13:20Z.
const T0: u64 = 1_733_390_000_000;

struct Server {
    url: String,
    clock: ManualClock,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Server {
    let storage = StorageSettings { store: StoreKind::Memory, ..StorageSettings::default() };
    let mut config =
        Config { sources: livehub_server::SourcesConfig::disabled(), storage, ..Config::default() };
    // MQTT's default port is fixed (1883): tests running side by side must not fight over it.
    config.mqtt.listen = None;
    let clock = ManualClock::new(T0);
    let node = Node::new(NodeConfig { clock: clock.clock(), ..config.node_config() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    tokio::spawn(livehub_server::serve_node(node, config, listener, shutdown.clone()));
    Server { url, clock, shutdown }
}

impl Server {
    async fn publish(&self, channel: &str, data: Value) {
        let body = json!({ "channel": channel, "data": data });
        let response = reqwest::Client::new()
            .post(format!("{}/api/publish", self.url))
            .json(&body)
            .send()
            .await
            .expect("publish");
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Publishes `data` at `T0 + at_ms` (the clock only moves forward).
    async fn publish_at(&self, at_ms: u64, channel: &str, data: Value) {
        let now = self.clock.clock().now_millis();
        self.clock.advance(Duration::from_millis((T0 + at_ms).saturating_sub(now)));
        self.publish(channel, data).await;
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(format!("{}{path}", self.url)).await.expect("get");
        (response.status().as_u16(), response.json().await.expect("JSON"))
    }
}

fn offsets(body: &Value) -> Vec<u64> {
    body["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect()
}

#[tokio::test]
async fn history_by_time_pages_across_equal_timestamps() {
    let server = start().await;
    for second in 0..3 {
        for _ in 0..5 {
            server.publish_at(second * 1000, "t/a", json!(second)).await;
        }
    }
    // Offsets 6..=10 share the timestamp T0 + 1 s.
    let (from, to) = (T0 + 1000, T0 + 2000);
    let mut pages = Vec::new();
    let mut since = String::new();
    loop {
        let (status, body) =
            server.get(&format!("/api/channels/t/a/history?from={from}&to={to}&limit=2{since}")).await;
        assert_eq!(status, 200, "{body}");
        pages.push(offsets(&body));
        match body["next"].as_u64() {
            Some(next) => since = format!("&since={next}"),
            None => break,
        }
    }
    assert_eq!(pages, vec![vec![6, 7], vec![8, 9], vec![10]], "every entry once, in order");

    let (_, rfc) = server.get("/api/channels/t/a/history?from=2024-12-05T09:13:21Z&limit=100").await;
    assert_eq!(offsets(&rfc), (6..=15).collect::<Vec<_>>(), "RFC 3339 is the same instant");
    let (_, offset) =
        server.get("/api/channels/t/a/history?from=2024-12-05T10:13:21%2B01:00&to=1733390002000").await;
    assert_eq!(offsets(&offset), (6..=10).collect::<Vec<_>>(), "with an offset, mixed with Unix ms");
    let (_, before) = server.get(&format!("/api/channels/t/a/history?to={}&limit=3", T0 + 1000)).await;
    assert_eq!(offsets(&before), vec![3, 4, 5], "only `to`: the newest before it");
    assert_eq!(before["next"], Value::Null);

    for (query, code) in [
        ("from=yesterday", "invalid_time"),
        ("to=2024-12-05", "invalid_time"),
        ("from=1733390002000&to=1733390001000", "invalid_range"),
        ("from=1733390001000&to=1733390001000", "invalid_range"),
        ("limit=1001", "limit_too_large"),
    ] {
        let (status, body) = server.get(&format!("/api/channels/t/a/history?{query}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{query}: {body}");
    }
}

#[tokio::test]
async fn series_buckets_a_known_input() {
    let server = start().await;
    let cpu = |v: Value| json!({ "cpu": { "total": v }, "other": 1 });
    server.publish_at(0, "m/x", cpu(json!(10))).await;
    server.publish_at(10_000, "m/x", cpu(json!(20))).await;
    server.publish_at(70_000, "m/x", cpu(json!("n/a"))).await;
    server.publish_at(80_000, "m/x", cpu(json!(30.5))).await;
    server.publish_at(130_000, "m/x", json!({ "unrelated": true })).await;
    server.publish_at(190_000, "m/x", cpu(json!(5))).await;
    server.publish_at(200_000, "m/x", cpu(json!(7))).await;
    let to = T0 + 240_000;
    let (status, body) =
        server.get(&format!("/api/channels/m/x/series?field=cpu.total&from={T0}&to={to}&step=60s")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["step_ms"], 60_000);
    assert_eq!(body["non_numeric"], 1);
    let bucket = |t: u64, count: u64, min: Value, avg: Value, max: Value, last: Value| json!({ "t": T0 + t, "count": count, "min": min, "avg": avg, "max": max, "last": last });
    assert_eq!(
        body["buckets"],
        json!([
            bucket(0, 2, json!(10.0), json!(15.0), json!(20.0), json!(20.0)),
            bucket(60_000, 1, json!(30.5), json!(30.5), json!(30.5), json!(30.5)),
            bucket(120_000, 0, Value::Null, Value::Null, Value::Null, Value::Null),
            bucket(180_000, 2, json!(5.0), json!(6.0), json!(7.0), json!(7.0)),
        ]),
        "{body}"
    );
    // A range with nothing in it: every bucket empty, not an error.
    let (status, empty) = server
        .get(&format!("/api/channels/m/x/series?field=cpu.total&from={}&to={}&step=1m", to, to + 120_000))
        .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["buckets"].as_array().map(Vec::len), Some(2));
    assert!(empty["buckets"].as_array().expect("buckets").iter().all(|b| b["count"] == 0));

    let far = T0 + 32 * 24 * 3600 * 1000;
    for (query, code) in [
        (format!("field=cpu.nope&from={T0}&to={to}"), "unknown_field"),
        (format!("field=&from={T0}&to={to}"), "unknown_field"),
        (format!("field=cpu.total&from={T0}&to={to}&step=1ms"), "too_many_buckets"),
        (format!("field=cpu.total&from={T0}&to={far}&step=1d"), "range_too_large"),
        (format!("field=cpu.total&from={to}&to={T0}"), "invalid_range"),
        (format!("field=cpu.total&from={T0}&to={to}&step=0s"), "invalid_range"),
        ("field=cpu.total&from=noon".to_owned(), "invalid_time"),
    ] {
        let (status, body) = server.get(&format!("/api/channels/m/x/series?{query}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{query}: {body}");
    }
}
