//! The REST API over real HTTP: publishing (single, batch, idempotent, binary, form-encoded as
//! `curl -d` sends it) and its errors, the channel read endpoints (list, latest, history and its
//! bounds), presence, health with shutdown, and the switch for the read endpoints.

mod common;

use common::{Sse, TestServer, WAIT};
use livehub_server::Config;
use serde_json::{json, Value};

/// `POST /api/publish` with `body` and `content_type`; returns the status and the body (JSON if
/// it parses, else `Null`).
async fn post(server: &TestServer, path_and_query: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url(path_and_query))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("publish request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("answer body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Publishes a JSON body to `/api/publish`.
async fn publish_json(server: &TestServer, body: &Value) -> (u16, Value) {
    post(server, "/api/publish", "application/json", body.to_string().into_bytes()).await
}

/// `GET path`: status and JSON body.
async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let response = reqwest::get(server.url(path)).await.expect("get request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// `GET path`, which must answer 200.
async fn get_ok(server: &TestServer, path: &str) -> Value {
    let (status, body) = get(server, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The `(status, error.code)` of an answer, checking the error body's shape.
fn error_code(answer: &(u16, Value)) -> (u16, &str) {
    let (status, body) = answer;
    assert!(body["error"]["message"].is_string(), "not an error body: {body}");
    (*status, body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}")))
}

/// Offsets of the publications in a history answer.
fn offsets(history: &Value) -> Vec<u64> {
    let publications = history["publications"].as_array().unwrap_or_else(|| panic!("{history}"));
    publications.iter().map(|p| p["offset"].as_u64().expect("offset")).collect()
}

#[tokio::test]
async fn publish_without_json_content_type_works_like_curl_d() {
    let server = TestServer::start().await;
    let mut epoch = None;
    for n in 1..=3 {
        let body = format!(r#"{{"channel":"a","data":{{"n":{n}}}}}"#).into_bytes();
        let (status, answer) = post(&server, "/api/publish", "application/x-www-form-urlencoded", body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["channel"], "a");
        assert_eq!(answer["offset"], n);
        assert_eq!(answer["duplicate"], false);
        let e = answer["epoch"].as_str().expect("epoch").to_owned();
        assert_eq!(epoch.get_or_insert_with(|| e.clone()), &e, "one epoch");
    }
    let history = get_ok(&server, "/api/channels/a/history").await;
    assert_eq!(history["publications"][2]["data"], json!({"n": 3}));
}

#[tokio::test]
async fn batch_publish_answers_one_result_per_item() {
    let server = TestServer::start().await;
    let batch =
        json!([{"channel": "a", "data": 1}, {"channel": "b", "data": 2}, {"channel": "a", "data": 3}]);
    let (status, answer) = publish_json(&server, &batch).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap_or_else(|| panic!("{answer}"));
    let got: Vec<(&str, u64)> = results
        .iter()
        .map(|r| (r["channel"].as_str().unwrap_or(""), r["offset"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(got, vec![("a", 1), ("b", 1), ("a", 2)]);
    assert!(results.iter().all(|r| r["duplicate"] == false && r["epoch"].is_string()), "{answer}");
}

#[tokio::test]
async fn batch_with_an_invalid_channel_publishes_nothing() {
    let server = TestServer::start().await;
    let batch = json!([{"channel": "good", "data": 1}, {"channel": "a/+", "data": 2}]);
    let answer = publish_json(&server, &batch).await;
    assert_eq!(error_code(&answer), (400, "invalid_channel"));
    let history = get_ok(&server, "/api/channels/good/history").await;
    assert_eq!(offsets(&history), Vec::<u64>::new(), "{history}");
    assert_eq!(history["position"]["offset"], 0, "{history}");
}

#[tokio::test]
async fn same_idempotency_key_is_stored_once() {
    let server = TestServer::start().await;
    let body = json!({"channel": "a", "data": {"v": 1}, "key": "k1"});
    let (_, first) = publish_json(&server, &body).await;
    let (status, again) = publish_json(&server, &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(first["duplicate"], false);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["offset"], first["offset"]);
    assert_eq!(again["epoch"], first["epoch"]);
    assert_eq!(offsets(&get_ok(&server, "/api/channels/a/history").await), vec![1]);
}

#[tokio::test]
async fn binary_publish_reaches_json_websocket_as_base64() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(&["bin/x"]).await;
    let (status, answer) =
        post(&server, "/api/publish?channel=bin/x", "application/octet-stream", vec![0, 255, 1]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["channel"].as_str(), answer["offset"].as_u64()), (Some("bin/x"), Some(1)));
    let message = ws.recv_type("message").await;
    assert_eq!(message["channel"], "bin/x");
    assert_eq!(message["data"], "AP8B");
    assert_eq!(message["encoding"], "base64");
    assert_eq!(message["offset"], 1);
}

#[tokio::test]
async fn binary_publish_needs_a_channel() {
    let server = TestServer::start().await;
    let answer = post(&server, "/api/publish", "application/octet-stream", vec![1]).await;
    assert_eq!(error_code(&answer), (400, "bad_request"));
}

#[tokio::test]
async fn publish_errors_have_documented_codes() {
    let mut config = Config::default();
    config.limits.max_data_size = 64;
    let server = TestServer::with(config).await;
    let cases: [(&str, u16, &str); 5] = [
        (r#"{"channel": "a", "data": "#, 400, "invalid_json"),
        (r#"{"channel": "a"}"#, 400, "bad_request"),
        (r#"{"channel": "$sys/presence", "data": 1}"#, 403, "read_only_channel"),
        (r#"{"channel": "a/+", "data": 1}"#, 400, "invalid_channel"),
        (r#"{"channel": "a", "data": 1, "extra": "#, 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let answer = post(&server, "/api/publish", "application/json", body.as_bytes().to_vec()).await;
        assert_eq!(error_code(&answer), (status, code), "{body}");
    }
    let big = json!({"channel": "a", "data": "x".repeat(100)});
    assert_eq!(error_code(&publish_json(&server, &big).await), (413, "too_large"));
    let fits = json!({"channel": "a", "data": "x".repeat(10)});
    assert_eq!(publish_json(&server, &fits).await.0, 200);
}

#[tokio::test]
async fn body_over_the_limit_is_refused_with_413() {
    let mut config = Config::default();
    config.limits.max_body_size = 1024;
    let server = TestServer::with(config).await;
    let big = json!({"channel": "a", "data": "x".repeat(4096)});
    let (status, _) = publish_json(&server, &big).await;
    assert_eq!(status, 413);
    let (status, _) =
        post(&server, "/api/publish?channel=a", "application/octet-stream", vec![7; 4096]).await;
    assert_eq!(status, 413);
    let history = get_ok(&server, "/api/channels/a/history").await;
    assert_eq!(offsets(&history), Vec::<u64>::new());
}

#[tokio::test]
async fn unknown_endpoint_is_404_not_found_json() {
    let server = TestServer::start().await;
    assert_eq!(error_code(&get(&server, "/nope").await), (404, "not_found"));
    assert_eq!(error_code(&get(&server, "/api/nope/deeper").await), (404, "not_found"));
}

#[tokio::test]
async fn channel_list_shows_positions_and_subscribers() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(&["a"]).await;
    server.publish("a", json!(1)).await;
    server.publish("a", json!(2)).await;
    let b = server.publish("b/c", json!(3)).await;
    let list = get_ok(&server, "/api/channels").await;
    let channels = list["channels"].as_array().unwrap_or_else(|| panic!("{list}"));
    let find = |name: &str| {
        channels
            .iter()
            .find(|c| c["channel"] == name)
            .unwrap_or_else(|| panic!("{name} not in {list}"))
            .clone()
    };
    let a = find("a");
    assert_eq!((a["position"]["offset"].as_u64(), a["subscribers"].as_u64()), (Some(2), Some(1)), "{a}");
    let bc = find("b/c");
    assert_eq!((bc["position"]["offset"].as_u64(), bc["subscribers"].as_u64()), (Some(1), Some(0)), "{bc}");
    assert_eq!(bc["position"]["epoch"], b["epoch"]);
    assert!(bc["last_ts"].as_u64().is_some(), "{bc}");
}

#[tokio::test]
async fn channel_endpoint_gives_position_latest_and_subscribers() {
    let server = TestServer::start().await;
    let mut exact = server.ws().await;
    exact.subscribe(&["demo/ticks"]).await;
    let mut pattern = server.ws().await;
    pattern.subscribe(&["demo/+"]).await;
    server.publish("demo/ticks", json!({"v": 1})).await;
    let published = server.publish("demo/ticks", json!({"v": 2})).await;
    let channel = get_ok(&server, "/api/channels/demo/ticks").await;
    assert_eq!(channel["channel"], "demo/ticks");
    assert_eq!(channel["position"]["offset"], 2, "{channel}");
    assert_eq!(channel["position"]["epoch"], published["epoch"]);
    assert_eq!(channel["subscribers"], 2, "an exact and a pattern subscriber: {channel}");
    let latest = &channel["latest"];
    assert_eq!((latest["type"].as_str(), latest["offset"].as_u64()), (Some("message"), Some(2)), "{channel}");
    assert_eq!(latest["data"], json!({"v": 2}));
}

#[tokio::test]
async fn history_reads_after_an_offset_and_checks_the_epoch() {
    let server = TestServer::start().await;
    let mut epoch = Value::Null;
    for n in 1..=4 {
        epoch = server.publish("h", json!(n)).await["epoch"].clone();
    }
    let epoch = epoch.as_str().expect("epoch").to_owned();
    let history = get_ok(&server, "/api/channels/h/history?since=1&limit=2").await;
    assert_eq!(offsets(&history), vec![2, 3], "{history}");
    assert_eq!(history["publications"][0]["data"], 2);
    assert_eq!(history["position"]["offset"], 4);
    let same = get_ok(&server, &format!("/api/channels/h/history?since=1&limit=2&epoch={epoch}")).await;
    assert_eq!(offsets(&same), vec![2, 3]);
    let answer = get(&server, "/api/channels/h/history?since=1&epoch=not-the-epoch").await;
    assert_eq!(error_code(&answer), (409, "epoch_mismatch"));
    assert_eq!(error_code(&get(&server, "/api/channels/h/history?since=abc").await), (400, "bad_request"));
}

#[tokio::test]
async fn history_is_bounded_by_the_configured_size() {
    let mut config = Config::default();
    config.history.size = 3;
    let server = TestServer::with(config).await;
    for n in 1..=5 {
        server.publish("h", json!(n)).await;
    }
    let history = get_ok(&server, "/api/channels/h/history").await;
    assert_eq!(offsets(&history), vec![3, 4, 5], "{history}");
    assert_eq!(history["oldest"], 3);
    assert_eq!(history["position"]["offset"], 5);
}

#[tokio::test]
async fn presence_counts_connections_per_transport() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(&["a"]).await;
    let _sse = Sse::open(&server.url("/sse?channel=b"), None).await;
    let presence = get_ok(&server, "/api/presence").await;
    assert_eq!(presence["connections"], 2, "{presence}");
    assert_eq!(presence["transports"], json!({"websocket": 1, "sse": 1}), "{presence}");
    assert_eq!(presence["channels"]["a"], 1, "{presence}");
    assert_eq!(presence["channels"]["b"], 1, "{presence}");
}

#[tokio::test]
async fn presence_changes_are_published_on_sys_presence() {
    let server = TestServer::start().await;
    let mut watcher = server.ws().await;
    watcher.subscribe(&["$sys/presence"]).await;
    let _other = server.ws().await;
    let _sse = Sse::open(&server.url("/sse?channel=a"), None).await;
    let seen = tokio::time::timeout(WAIT, async {
        loop {
            let message = watcher.recv().await;
            assert_eq!(message["type"], "message", "{message}");
            assert_eq!(message["channel"], "$sys/presence", "{message}");
            let data = &message["data"];
            if data["transports"] == json!({"websocket": 2, "sse": 1}) {
                return data.clone();
            }
        }
    })
    .await
    .expect("a presence publication showing both new connections");
    assert_eq!(seen["connections"], 3, "{seen}");
}

#[tokio::test]
async fn health_is_ok_and_the_server_stops_when_shutdown_is_cancelled() {
    // Long enough that only a graceful stop lets the server task finish within the test's wait.
    let config = Config { shutdown_grace_secs: 60, ..Config::default() };
    let server = TestServer::with(config).await;
    let health = get_ok(&server, "/health").await;
    assert_eq!(health["status"], "ok", "{health}");
    server.shutdown.cancel();
    let result = tokio::time::timeout(WAIT, server.handle).await.expect("server task ends in time");
    result.expect("server task did not panic").expect("server returned Ok");
}

#[tokio::test]
async fn disabled_read_endpoints_answer_404_while_publish_works() {
    let mut config = Config::default();
    config.api.polling_enabled = false;
    let server = TestServer::with(config).await;
    for path in ["/api/channels", "/api/channels/a", "/api/channels/a/history"] {
        assert_eq!(error_code(&get(&server, path).await), (404, "transport_disabled"), "{path}");
    }
    let answer = server.publish("a", json!(1)).await;
    assert_eq!(answer["offset"], 1, "{answer}");
}

/// The names in a `GET /api/channels` page that start with `prefix`.
fn listed(page: &Value, prefix: &str) -> Vec<String> {
    let channels = page["channels"].as_array().unwrap_or_else(|| panic!("{page}"));
    let names = channels.iter().filter_map(|c| c["channel"].as_str());
    names.filter(|n| n.starts_with(prefix)).map(str::to_owned).collect()
}

#[tokio::test]
async fn reads_of_unknown_channels_leave_nothing_behind() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    for n in 0..2000 {
        let path = if n % 2 == 0 {
            format!("/api/channels/unique/{n}")
        } else {
            format!("/api/channels/unique/{n}/history")
        };
        let answer: Value =
            client.get(server.url(&path)).send().await.expect("get").json().await.expect("json");
        assert_eq!(answer["position"]["offset"], 0, "{answer}");
    }
    let mut ws = server.ws().await;
    ws.subscribe(&["unique/subscribed"]).await;
    let page = get_ok(&server, "/api/channels").await;
    assert_eq!(listed(&page, "unique/"), Vec::<String>::new(), "reads and subscriptions created no channel");
}

#[tokio::test]
async fn the_channel_list_comes_a_page_at_a_time() {
    let server = TestServer::start().await;
    let mut names: Vec<String> = (0..25).map(|n| format!("paged/{n}")).collect();
    for name in &names {
        server.publish(name, json!(1)).await;
    }
    names.sort();
    let mut seen = Vec::new();
    let mut path = "/api/channels?limit=10&after=paged".to_owned();
    loop {
        let page = get_ok(&server, &path).await;
        let got = listed(&page, "paged/");
        assert!(got.len() <= 10, "{page}");
        seen.extend(got);
        match page["next"].as_str() {
            Some(next) => path = format!("/api/channels?limit=10&after={}", next.replace('/', "%2F")),
            None => break,
        }
    }
    assert_eq!(seen, names);
    let first = get_ok(&server, "/api/channels?limit=10&after=paged").await;
    assert_eq!(first["next"], "paged/17", "ten names after `paged`, sorted: {first}");
    assert_eq!(error_code(&get(&server, "/api/channels?limit=x").await), (400, "bad_request"));
}

#[tokio::test]
async fn reads_past_the_address_budget_answer_429() {
    let mut config = Config::default();
    // Effectively no refill during the test: the burst is all there is.
    config.rate_limits.reads_per_sec_per_ip = 0.001;
    config.rate_limits.read_burst_per_ip = 3;
    let server = TestServer::with(config).await;
    for path in ["/api/channels", "/api/channels/a", "/api/channels/a/history"] {
        get_ok(&server, path).await;
    }
    for path in ["/api/channels", "/api/channels/a", "/poll?channel=a&timeout=0", "/sse?channel=a"] {
        let response = reqwest::get(server.url(path)).await.expect("get request");
        assert_eq!(response.status().as_u16(), 429, "{path}");
        assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"), "{path}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["error"]["code"], "rate_limited", "{path}: {body}");
    }
    // Publishing has its own budget.
    let answer = server.publish("a", json!(1)).await;
    assert_eq!(answer["offset"], 1, "{answer}");
}
