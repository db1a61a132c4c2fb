//! Long polling over real HTTP: held polls answered by a publication or a `204` with the next
//! cursor, cursor chaining without loss or duplicates, short polls, epochs, the timeout cap, bad
//! input and the disabled transport.

mod common;

use common::{TestServer, WAIT};
use livehub_core::{ChannelName, Epoch};
use livehub_server::{Config, Cursor, CURSOR_HEADER};
use serde_json::{json, Value};

/// A poll's answer: status, the cursor header, `cache-control` and the JSON body (if any).
struct Answer {
    status: u16,
    cursor: String,
    cache_control: String,
    body: Option<Value>,
}

impl Answer {
    /// The `data.n` of each message in a `200` answer, after checking their shape.
    fn numbers(&self, channel: &str) -> Vec<i64> {
        assert_eq!(self.status, 200, "expected messages");
        let body = self.body.as_ref().expect("a 200 has a body");
        let messages = body["messages"].as_array().unwrap_or_else(|| panic!("no messages in {body}"));
        messages
            .iter()
            .map(|m| {
                assert_eq!(m["type"], "message", "{m}");
                assert_eq!(m["channel"], channel, "{m}");
                m["data"]["n"].as_i64().unwrap_or_else(|| panic!("no data.n in {m}"))
            })
            .collect()
    }
}

/// `GET /poll?{query}`, bounded by [`WAIT`].
async fn poll(server: &TestServer, query: &str) -> Answer {
    let request = reqwest::Client::new().get(server.url(&format!("/poll?{query}"))).send();
    let response = tokio::time::timeout(WAIT, request).await.expect("poll answered in time").expect("poll");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned).unwrap_or_default()
    };
    let cursor = header(CURSOR_HEADER);
    let cache_control = header("cache-control");
    let bytes = response.bytes().await.expect("poll body");
    let body = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).expect("poll body is JSON"));
    Answer { status, cursor, cache_control, body }
}

/// A poll that must answer `204`; returns its cursor.
async fn empty_poll(server: &TestServer, query: &str) -> String {
    let answer = poll(server, query).await;
    assert_eq!(answer.status, 204, "expected nothing new for {query}: {:?}", answer.body);
    assert!(answer.body.is_none());
    assert!(!answer.cursor.is_empty(), "a 204 carries the cursor header");
    answer.cursor
}

/// Publishes `{"n": n}` on `channel`.
async fn publish_n(server: &TestServer, channel: &str, n: i64) -> Value {
    server.publish(channel, json!({ "n": n })).await
}

/// Status and `error.code` of a poll that must fail.
async fn error_of(server: &TestServer, query: &str) -> (u16, String) {
    let answer = poll(server, query).await;
    let body = answer.body.unwrap_or_else(|| panic!("no error body for {query}"));
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}"));
    (answer.status, code.to_owned())
}

#[tokio::test]
async fn poll_with_nothing_new_holds_then_answers_204_with_cursor_and_no_store() {
    let server = TestServer::start().await;
    publish_n(&server, "a", 1).await;
    let answer = poll(&server, "channel=a&timeout=1").await;
    assert_eq!(answer.status, 204, "{:?}", answer.body);
    assert!(answer.body.is_none());
    assert_eq!(answer.cache_control, "no-store");
    let cursor = Cursor::decode(&answer.cursor).expect("the cursor header is a cursor");
    let a = ChannelName::new("a").expect("valid channel");
    assert_eq!(cursor.positions.get(&a).map(|p| p.offset), Some(1), "{cursor:?}");
}

#[tokio::test]
async fn held_poll_is_answered_when_a_publication_arrives() {
    let server = TestServer::start().await;
    publish_n(&server, "a", 1).await;
    // A cursor at the current position: nothing follows it, so no replay can answer the poll.
    let cursor = empty_poll(&server, "channel=a&timeout=0").await;
    let url = server.url(&format!("/poll?channel=a&timeout=10&cursor={cursor}"));
    let held = tokio::spawn(async move { reqwest::get(url).await });
    server.wait_for_held_polls(1).await;
    assert!(!held.is_finished(), "a held poll has not answered yet");
    // Published only now that the poll is held: the answer can only come from the live queue.
    let published = publish_n(&server, "a", 2).await;
    let response = tokio::time::timeout(WAIT, held)
        .await
        .expect("poll answered in time")
        .expect("poll task")
        .expect("poll request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
    let header = response.headers()[CURSOR_HEADER].to_str().expect("ascii").to_owned();
    let body: Value = response.json().await.expect("json body");
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{body}");
    let m = &messages[0];
    assert_eq!((m["type"].as_str(), m["channel"].as_str()), (Some("message"), Some("a")), "{m}");
    assert_eq!(m["data"], json!({"n": 2}));
    assert_eq!(m["offset"], published["offset"]);
    assert_eq!(m["epoch"], published["epoch"]);
    assert!(m["ts"].as_u64().is_some(), "{m}");
    assert_eq!(body["cursor"], header.as_str(), "body and header carry the same cursor");
    assert!(body["channels"]["a"]["position"]["epoch"].is_string(), "{body}");
    assert_eq!(body["channels"]["a"]["recovered"], true, "{body}");
    server.wait_for_held_polls(0).await;
}

#[tokio::test]
async fn cursor_chaining_delivers_each_publication_exactly_once() {
    let server = TestServer::start().await;
    let cursor = empty_poll(&server, "channel=a&timeout=1").await;
    for n in 1..=3 {
        publish_n(&server, "a", n).await;
    }
    let answer = poll(&server, &format!("channel=a&timeout=10&cursor={cursor}")).await;
    assert_eq!(answer.numbers("a"), vec![1, 2, 3]);
    let body = answer.body.as_ref().expect("body");
    let offsets: Vec<u64> =
        body["messages"].as_array().expect("messages").iter().filter_map(|m| m["offset"].as_u64()).collect();
    assert_eq!(offsets, vec![1, 2, 3]);
    assert_eq!(body["cursor"], answer.cursor.as_str());
    empty_poll(&server, &format!("channel=a&timeout=0&cursor={}", answer.cursor)).await;
    publish_n(&server, "a", 4).await;
    let next = poll(&server, &format!("channel=a&timeout=10&cursor={}", answer.cursor)).await;
    assert_eq!(next.numbers("a"), vec![4]);
}

#[tokio::test]
async fn cursor_over_several_channels_resumes_each_of_them() {
    let server = TestServer::start().await;
    let cursor = empty_poll(&server, "channel=a&channel=b&timeout=0").await;
    publish_n(&server, "b", 1).await;
    publish_n(&server, "a", 1).await;
    publish_n(&server, "b", 2).await;
    let answer = poll(&server, &format!("channel=a&channel=b&timeout=10&cursor={cursor}")).await;
    let body = answer.body.expect("messages");
    let got: Vec<(String, i64)> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (m["channel"].as_str().unwrap_or("").to_owned(), m["data"]["n"].as_i64().unwrap_or(0)))
        .collect();
    let of = |c: &str| -> Vec<i64> { got.iter().filter(|(ch, _)| ch == c).map(|(_, n)| *n).collect() };
    assert_eq!((of("a"), of("b")), (vec![1], vec![1, 2]), "{got:?}");
    assert_eq!(got.len(), 3, "{got:?}");
    empty_poll(&server, &format!("channel=a&channel=b&timeout=0&cursor={}", answer.cursor)).await;
}

#[tokio::test]
async fn cursor_with_an_exact_channel_and_a_matching_pattern_returns_each_message_once() {
    let server = TestServer::start().await;
    // The pattern first; the SSE test names the exact channel first.
    let query = "channel=stocks/%2B&channel=stocks/AAPL";
    let cursor = empty_poll(&server, &format!("{query}&timeout=0")).await;
    publish_n(&server, "stocks/AAPL", 1).await;
    publish_n(&server, "stocks/AAPL", 2).await;
    let answer = poll(&server, &format!("{query}&timeout=10&cursor={cursor}")).await;
    assert_eq!(answer.numbers("stocks/AAPL"), vec![1, 2]);
}

#[tokio::test]
async fn timeout_zero_answers_at_once() {
    let mut config = Config::default();
    // Were `timeout=0` ignored, the poll would be held longer than the test waits.
    config.long_polling.default_timeout_secs = 60;
    config.long_polling.max_timeout_secs = 120;
    let server = TestServer::with(config).await;
    let cursor = empty_poll(&server, "channel=a&timeout=0").await;
    publish_n(&server, "a", 1).await;
    let answer = poll(&server, &format!("channel=a&timeout=0&cursor={cursor}")).await;
    assert_eq!(answer.numbers("a"), vec![1], "a short poll still returns what follows the cursor");
}

#[tokio::test]
async fn cursor_from_another_epoch_is_not_recovered_and_gets_the_latest() {
    // With a history of one, the new epoch is no longer complete: only the latest value comes.
    let mut config = Config::default();
    config.history.size = 1;
    let server = TestServer::with(config).await;
    publish_n(&server, "a", 1).await;
    let latest = publish_n(&server, "a", 2).await;
    let channel = ChannelName::new("a").expect("valid channel");
    let cursor = Cursor::encode([(&channel, 1, &Epoch::from_client("other"))].into_iter());
    let answer = poll(&server, &format!("channel=a&timeout=0&cursor={cursor}")).await;
    assert_eq!(answer.numbers("a"), vec![2]);
    let body = answer.body.as_ref().expect("body");
    assert_eq!(body["channels"]["a"]["recovered"], false, "{body}");
    assert_eq!(body["channels"]["a"]["position"]["offset"], 2, "{body}");
    assert_eq!(body["messages"][0]["epoch"], latest["epoch"], "{body}");
    // The new cursor is in the current epoch: nothing is repeated.
    empty_poll(&server, &format!("channel=a&timeout=0&cursor={}", answer.cursor)).await;
}

#[tokio::test]
async fn latest_true_without_cursor_returns_the_latest_message() {
    let server = TestServer::start().await;
    publish_n(&server, "a", 1).await;
    publish_n(&server, "a", 2).await;
    let answer = poll(&server, "channel=a&latest=true&timeout=0").await;
    assert_eq!(answer.numbers("a"), vec![2]);
}

#[tokio::test]
async fn bad_input_is_answered_400() {
    let server = TestServer::start().await;
    let cases = [
        ("channel=a&cursor=%21%21%21", "bad_cursor"),
        ("channel=a&timeout=abc", "bad_request"),
        ("channel=a&timeout=-1", "bad_request"),
        ("channel=a%2Bb", "invalid_channel"),
    ];
    for (query, want) in cases {
        assert_eq!(error_of(&server, query).await, (400, want.to_owned()), "{query}");
    }
}

#[tokio::test]
async fn too_many_channels_are_refused() {
    let mut config = Config::default();
    config.limits.max_stream_channels = 2;
    let server = TestServer::with(config).await;
    empty_poll(&server, "channel=a&channel=b&timeout=0").await;
    assert_eq!(error_of(&server, "channel=a&channel=b&channel=c&timeout=0").await.0, 400);
    assert_eq!(error_of(&server, "channel=a,b,c&timeout=0").await.0, 400);
}

#[tokio::test]
async fn disabled_long_polling_answers_404_transport_disabled() {
    let mut config = Config::default();
    config.long_polling.enabled = false;
    let server = TestServer::with(config).await;
    assert_eq!(error_of(&server, "channel=a&timeout=0").await, (404, "transport_disabled".to_owned()));
}

#[tokio::test]
async fn timeout_above_the_maximum_is_capped() {
    let mut config = Config::default();
    config.long_polling.max_timeout_secs = 1;
    let server = TestServer::with(config).await;
    // Held for at most a second, well within the test's bounded wait.
    let answer = poll(&server, "channel=a&timeout=100").await;
    assert_eq!(answer.status, 204, "{:?}", answer.body);
}

#[tokio::test]
async fn a_cursor_from_before_a_restart_gets_the_whole_new_epoch() {
    let server = TestServer::start().await;
    for v in 1..=3 {
        server.publish("restart/a", serde_json::json!(v)).await;
    }
    let channel = livehub_core::ChannelName::new("restart/a").expect("valid");
    let old = livehub_core::Epoch::from_client("before-restart");
    let cursor = livehub_server::Cursor::encode([(&channel, 57, &old)].into_iter());
    let url = server.url(&format!("/poll?channel=restart/a&cursor={cursor}&timeout=0"));
    let body: serde_json::Value = reqwest::get(url).await.expect("poll").json().await.expect("json");
    assert_eq!(body["channels"]["restart/a"]["recovered"], false);
    let offsets: Vec<u64> =
        body["messages"].as_array().expect("messages").iter().filter_map(|m| m["offset"].as_u64()).collect();
    assert_eq!(offsets, vec![1, 2, 3], "{body}");
}

#[tokio::test]
async fn a_poll_without_channels_waits_out_its_timeout() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.url("/poll?timeout=1")).await.expect("poll");
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn a_polling_client_is_one_connection_announced_once() {
    // Issue 19: pollers were missing from presence (the dashboard said 0 clients). And a
    // regression before that: every long poll counted as a connection coming and going.
    let server = TestServer::start().await;
    let mut watcher = server.ws().await;
    watcher.subscribe(&["$sys/presence"]).await;
    // The watcher's own arrival and subscription are announced; wait for that announcement.
    loop {
        let presence = presence_message(&mut watcher).await;
        if presence["subscriptions"] == 1 {
            break;
        }
    }
    let mut cursor = empty_poll(&server, "channel=p/x&timeout=0").await;
    let arrived = presence_message(&mut watcher).await;
    assert_eq!(arrived["transports"], json!({"websocket": 1, "long-polling": 1}), "{arrived}");
    assert_eq!(arrived["connections"], 2, "{arrived}");
    for _ in 0..5 {
        cursor = empty_poll(&server, &format!("channel=p/x&timeout=0&cursor={cursor}")).await;
    }
    let held = tokio::spawn({
        let url = server.url(&format!("/poll?channel=p/x&timeout=10&cursor={cursor}"));
        async move { reqwest::get(url).await.expect("poll").status() }
    });
    server.wait_for_held_polls(1).await;
    // A change of our own, made while the poll is held: its announcement must be the next one.
    // Had the later polls changed presence, their announcement would come first.
    let _second = server.ws().await;
    let next = presence_message(&mut watcher).await;
    assert_eq!(next["transports"], json!({"websocket": 2, "long-polling": 1}), "{next}");
    assert_eq!(next["connections"], 3, "{next}");
    let presence = server.presence().await;
    assert!(presence["channels"].get("p/x").is_none(), "a held poll is not a subscriber: {presence}");
    server.publish("p/x", json!(1)).await;
    assert_eq!(held.await.expect("poll task"), 200);
}

#[tokio::test]
async fn pollers_are_told_apart_by_client_id_or_user_agent() {
    let server = TestServer::start().await;
    let get = |query: &str, agent: &str| {
        let url = server.url(&format!("/poll?channel=p/y&timeout=0{query}"));
        let agent = agent.to_owned();
        async move {
            let response =
                reqwest::Client::new().get(url).header("user-agent", agent).send().await.expect("poll");
            assert_eq!(response.status(), 204);
        }
    };
    get("", "browser-a").await;
    get("", "browser-a").await;
    assert_eq!(server.presence().await["transports"], json!({"long-polling": 1}));
    get("", "browser-b").await;
    assert_eq!(server.presence().await["transports"], json!({"long-polling": 2}));
    // Two tabs of one browser, each naming its own id.
    get("&client=tab-1", "browser-a").await;
    get("&client=tab-2", "browser-a").await;
    get("&client=tab-2", "browser-a").await;
    assert_eq!(server.presence().await["transports"], json!({"long-polling": 4}));
}

#[tokio::test]
async fn short_polling_counts_readers_that_read_on_from_a_position() {
    let server = TestServer::start().await;
    server.publish("s/x", json!(1)).await;
    let get = |path: &str| {
        let url = server.url(path);
        async move { assert_eq!(reqwest::get(url).await.expect("read").status(), 200) }
    };
    // A chart opening with the newest history, or a latest-value read: not a client.
    get("/api/channels/s/x/history?limit=10").await;
    get("/api/channels/s/x").await;
    assert_eq!(server.presence().await["connections"], 0);
    // Reading on after a position, as a polling client does every tick.
    get("/api/channels/s/x/history?since=1").await;
    get("/api/channels/s/x/history?since=1").await;
    let presence = server.presence().await;
    assert_eq!(presence["transports"], json!({"polling": 1}), "{presence}");
    assert_eq!(presence["connections"], 1, "{presence}");
}

/// The data of the next `$sys/presence` publication.
async fn presence_message(watcher: &mut common::Ws) -> Value {
    let message = watcher.recv_type("message").await;
    assert_eq!(message["channel"], "$sys/presence", "{message}");
    message["data"].clone()
}
