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
    start_with(Config::default()).await
}

/// A server for `config`, in memory and without sources.
async fn start_with(config: Config) -> Server {
    let storage = StorageSettings { store: StoreKind::Memory, ..StorageSettings::default() };
    let mut config = Config { sources: livehub_server::SourcesConfig::disabled(), storage, ..config };
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

#[tokio::test]
async fn series_reads_several_fields_in_one_request() {
    let server = start().await;
    let sample = |total: Value, core: Value, memory: Value| json!({ "cpu": { "total": total, "cores": [0, core] }, "memory": { "percent": memory }, "host": "h" });
    server.publish_at(0, "m/y", sample(json!(10), json!(5), json!(40))).await;
    server.publish_at(30_000, "m/y", sample(json!(20), json!(15), json!("n/a"))).await;
    server.publish_at(70_000, "m/y", sample(json!(30), json!(25), json!(42))).await;
    let to = T0 + 180_000;
    let fields = "field=cpu.total&field=cpu.cores.1&field=memory.percent&field=cpu.total&field=swap.percent";
    let (status, body) =
        server.get(&format!("/api/channels/m/y/series?{fields}&from={T0}&to={to}&step=1m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["fields"],
        json!(["cpu.total", "cpu.cores.1", "memory.percent", "swap.percent"]),
        "each once"
    );
    assert!(body.get("buckets").is_none(), "several fields answer in `series`: {body}");
    let series = body["series"].as_array().expect("series");
    let avgs = |i: usize| -> Vec<Value> {
        series[i]["buckets"].as_array().expect("buckets").iter().map(|b| b["avg"].clone()).collect()
    };
    assert_eq!(series[0]["field"], "cpu.total");
    assert_eq!(avgs(0), vec![json!(15.0), json!(30.0), Value::Null]);
    assert_eq!(avgs(1), vec![json!(10.0), json!(25.0), Value::Null]);
    assert_eq!(avgs(2), vec![json!(40.0), json!(42.0), Value::Null]);
    assert_eq!(series[2]["non_numeric"], 1);
    assert_eq!(avgs(3), vec![Value::Null, Value::Null, Value::Null], "a field no publication has is empty");
    assert_eq!(body["series"][0]["buckets"][0]["t"], T0);
    assert_eq!(body["series"][0]["buckets"][2]["t"], T0 + 120_000);
    assert_eq!(body["store"], "memory");
    assert_eq!(body["oldest_ts"], T0, "everything published is held");

    let (status, body) =
        server.get(&format!("/api/channels/m/y/series?field=nope&field=no.such&from={T0}&to={to}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("unknown_field")), "{body}");
    let many: String = (0..129).map(|i| format!("field=f{i}&")).collect();
    let (status, body) = server.get(&format!("/api/channels/m/y/series?{many}from={T0}&to={to}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("too_many_fields")), "{body}");
    let eleven: String = (0..11).map(|i| format!("field=f{i}&")).collect();
    let day = T0 + 10_000 * 1000;
    let (status, body) =
        server.get(&format!("/api/channels/m/y/series?{eleven}from={T0}&to={day}&step=1s")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("too_many_buckets")), "{body}");
}

#[tokio::test]
async fn series_says_where_the_history_held_starts() {
    let mut config = Config::default();
    config.history.rules.push(livehub_server::HistoryRule {
        prefix: "small/".into(),
        size: 3,
        max_age_secs: 3600,
    });
    let server = start_with(config).await;
    for minute in 0..6 {
        server.publish_at(minute * 60_000, "small/c", json!({ "v": minute })).await;
    }
    let to = T0 + 360_000;
    let (status, body) =
        server.get(&format!("/api/channels/small/c/series?field=v&from={T0}&to={to}&step=1m")).await;
    assert_eq!(status, 200, "{body}");
    let counts: Vec<u64> = body["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["count"].as_u64().expect("count"))
        .collect();
    assert_eq!(counts, vec![0, 0, 0, 1, 1, 1], "only the three publications held");
    assert_eq!(body["oldest_ts"], T0 + 180_000);
    assert_eq!(body["retention"], json!({ "size": 3, "max_age_secs": 3600 }));
    assert_eq!(body["store"], "memory");

    // A range after the oldest held: `oldest_ts` still says where history starts.
    let from = T0 + 240_000;
    let (_, later) =
        server.get(&format!("/api/channels/small/c/series?field=v&from={from}&to={to}&step=1m")).await;
    assert_eq!(later["oldest_ts"], T0 + 180_000, "{later}");
    // A channel nothing was published on holds nothing.
    let (status, none) =
        server.get(&format!("/api/channels/small/none/series?field=v&from={T0}&to={to}")).await;
    assert_eq!((status, &none["oldest_ts"]), (200, &Value::Null), "{none}");
}
