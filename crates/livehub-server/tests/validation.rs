//! Publications are validated once, at the edge, for everything every encoder and store needs:
//! data nesting deeper than `MAX_DATA_DEPTH` and MessagePack NaN or ±Infinity are refused with
//! `invalid_data` on every publishing path, and data at the limit reaches every reader (JSON and
//! MessagePack WebSockets, `history`, `latest`, long polling) as the same value, never `null`.

mod common;

use common::{field, recv_msgpack, send_msgpack};

use common::{TestServer, Ws};
use livehub_core::MAX_DATA_DEPTH;
use livehub_server::CURSOR_HEADER;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// `depth` nested arrays around `1`.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// Data exactly at the depth limit, mixing objects and arrays, with brackets and escaped quotes
/// inside strings (which do not count) and numbers near the edges of a float.
fn at_the_limit() -> String {
    let half = MAX_DATA_DEPTH / 2;
    let inner = r#"{"s":"]]}}[[{{ \"quoted\" \\","n":[1.5,-0.0,1e308,18446744073709551615]}"#;
    format!("{}{}{}", r#"{"a":["#.repeat(half - 1), inner, "]}".repeat(half - 1))
}

/// `POST /api/publish` with a raw JSON body: the status and the answer.
async fn post(server: &TestServer, body: String) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/api/publish"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("publish request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

async fn get(server: &TestServer, path: &str) -> Value {
    let response = reqwest::get(server.url(path)).await.expect("GET");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.expect("JSON answer")
}

async fn msgpack_ws(server: &TestServer) -> Ws {
    let mut ws = Ws::connect(&server.ws_url(), Some("livehub.msgpack")).await;
    assert_eq!(field(&recv_msgpack(&mut ws).await, "type"), Some(&"connected".into()));
    ws
}

fn msgpack_publish(id: u64, channel: &str, data: rmpv::Value) -> rmpv::Value {
    rmpv::Value::Map(vec![
        ("id".into(), id.into()),
        ("action".into(), "publish".into()),
        ("channel".into(), channel.into()),
        ("data".into(), data),
    ])
}

fn msgpack_nested(depth: usize) -> rmpv::Value {
    (0..depth).fold(rmpv::Value::from(1), |inner, _| rmpv::Value::Array(vec![inner]))
}

/// The `(id, code)` of a MessagePack error reply.
fn msgpack_error(reply: &rmpv::Value) -> (Option<u64>, Option<&str>) {
    assert_eq!(field(reply, "type").and_then(rmpv::Value::as_str), Some("error"), "{reply}");
    (field(reply, "id").and_then(rmpv::Value::as_u64), field(reply, "code").and_then(rmpv::Value::as_str))
}

/// The offsets in a channel's REST history.
async fn history_offsets(server: &TestServer, channel: &str) -> Vec<u64> {
    let history = get(server, &format!("/api/channels/{channel}/history")).await;
    history["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .filter_map(|p| p["offset"].as_u64())
        .collect()
}

#[tokio::test]
async fn too_deep_data_is_refused_on_every_publishing_path() {
    let server = TestServer::start().await;
    server.publish("v/a", json!("first")).await;
    // One level over the limit, and far beyond serde_json's own recursion limit of 128.
    for depth in [MAX_DATA_DEPTH + 1, 200] {
        let mut ws = server.ws().await;
        let command = format!(r#"{{"id":1,"action":"publish","channel":"v/a","data":{}}}"#, nested(depth));
        ws.send_raw(Message::text(command)).await;
        let reply = ws.recv_type("error").await;
        assert_eq!(
            (reply["id"].as_u64(), reply["code"].as_str()),
            (Some(1), Some("invalid_data")),
            "{reply}"
        );
        assert!(reply["message"].as_str().is_some_and(|m| m.contains("deeper than 64")), "{reply}");

        let mut mp = msgpack_ws(&server).await;
        send_msgpack(&mut mp, msgpack_publish(2, "v/a", msgpack_nested(depth))).await;
        // Nesting past what the decoder descends is refused before the id is read.
        let id = (depth < 2 * MAX_DATA_DEPTH).then_some(2);
        assert_eq!(msgpack_error(&recv_msgpack(&mut mp).await), (id, Some("invalid_data")), "{depth}");

        let (status, answer) =
            post(&server, format!(r#"{{"channel":"v/a","data":{}}}"#, nested(depth))).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_data")), "{answer}");

        // A batch with one bad item publishes none of it, not even the good item before it.
        let batch = format!(r#"[{{"channel":"v/a","data":2}},{{"channel":"v/b","data":{}}}]"#, nested(depth));
        let (status, answer) = post(&server, batch).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_data")), "{answer}");
    }
    assert_eq!(history_offsets(&server, "v/a").await, vec![1], "only the first publication was stored");
    assert_eq!(get(&server, "/api/channels/v/a").await["position"]["offset"], 1);
}

#[tokio::test]
async fn messagepack_nan_and_infinity_are_refused_and_the_connection_stays_up() {
    let server = TestServer::start().await;
    let mut mp = msgpack_ws(&server).await;
    let table = [
        rmpv::Value::F64(f64::NAN),
        rmpv::Value::F64(f64::INFINITY),
        rmpv::Value::F32(f32::NEG_INFINITY),
        rmpv::Value::Map(vec![("price".into(), rmpv::Value::Array(vec![1.into(), f64::NAN.into()]))]),
    ];
    for (id, data) in (1u64..).zip(table) {
        send_msgpack(&mut mp, msgpack_publish(id, "v/nan", data.clone())).await;
        let reply = recv_msgpack(&mut mp).await;
        assert_eq!(msgpack_error(&reply), (Some(id), Some("invalid_data")), "{data}");
        let message = field(&reply, "message").and_then(rmpv::Value::as_str).unwrap_or_default();
        assert!(message.contains("JSON cannot represent"), "{message}");
    }
    send_msgpack(&mut mp, msgpack_publish(9, "v/nan", rmpv::Value::F64(2.5))).await;
    let ack = recv_msgpack(&mut mp).await;
    assert_eq!(field(&ack, "type").and_then(rmpv::Value::as_str), Some("ack"), "{ack}");
    assert_eq!(field(&ack, "offset").and_then(rmpv::Value::as_u64), Some(1), "nothing refused was stored");
}

#[tokio::test]
async fn data_at_the_limit_reaches_every_reader_identically() {
    let server = TestServer::start().await;
    let text = at_the_limit();
    let expected: Value = serde_json::from_str(&text).expect("valid JSON");
    // The channel exists before any reader looks, so the long poll's cursor below is of its epoch.
    server.publish("v/deep", json!("seed")).await;

    let mut json_sub = server.ws().await;
    json_sub.subscribe(&["v/deep"]).await;
    let mut mp_sub = msgpack_ws(&server).await;
    send_msgpack(
        &mut mp_sub,
        rmpv::Value::Map(vec![
            ("id".into(), 1.into()),
            ("action".into(), "subscribe".into()),
            ("channels".into(), rmpv::Value::Array(vec!["v/deep".into()])),
        ]),
    )
    .await;
    assert_eq!(field(&recv_msgpack(&mut mp_sub).await, "type"), Some(&"subscribed".into()));
    // A long poll's cursor from before the publication, so that its answer replays it.
    let response = reqwest::get(server.url("/poll?channel=v/deep&timeout=0")).await.expect("poll");
    let cursor = response.headers()[CURSOR_HEADER].to_str().expect("ascii").to_owned();

    let (status, ack) = post(&server, format!(r#"{{"channel":"v/deep","data":{text}}}"#)).await;
    assert_eq!((status, ack["offset"].as_u64()), (200, Some(2)), "{ack}");

    assert_eq!(json_sub.recv_type("message").await["data"], expected, "JSON WebSocket");
    let message = recv_msgpack(&mut mp_sub).await;
    // Compared as JSON values: MessagePack maps keep the publisher's key order, as the JSON
    // readers' bytes do, where `expected` has serde_json's sorted keys.
    let data = field(&message, "data").cloned().expect("data");
    let got: Value = rmpv::ext::from_value(data).expect("MessagePack data reads as JSON");
    assert_eq!(got, expected, "MessagePack WebSocket");
    let want = rmpv::ext::to_value(expected.clone()).expect("converts");

    json_sub.send(json!({"id": 2, "action": "history", "channel": "v/deep"})).await;
    let history = json_sub.recv_type("history").await;
    assert_eq!(history["publications"][1]["data"], expected, "history command: {history}");
    let rest = get(&server, "/api/channels/v/deep/history").await;
    assert_eq!(rest["publications"][1]["data"], expected, "REST history: {rest}");
    assert_eq!(get(&server, "/api/channels/v/deep").await["latest"]["data"], expected, "latest");
    let url = server.url(&format!("/poll?channel=v/deep&timeout=0&cursor={cursor}"));
    let polled: Value = reqwest::get(url).await.expect("poll").json().await.expect("poll JSON");
    assert_eq!(polled["messages"][0]["data"], expected, "long poll");

    // The same data published over MessagePack is accepted too, and reads back the same.
    let mut publisher = msgpack_ws(&server).await;
    send_msgpack(&mut publisher, msgpack_publish(3, "v/deep", want.clone())).await;
    let ack = recv_msgpack(&mut publisher).await;
    assert_eq!(field(&ack, "offset").and_then(rmpv::Value::as_u64), Some(3), "{ack}");
    assert_eq!(json_sub.recv_type("message").await["data"], expected, "MessagePack publish, JSON reader");
}

#[tokio::test]
async fn history_holds_no_null_entry_for_any_accepted_publication() {
    // The dashboard maps history entries without a null check: every publication the server
    // acknowledged must come back as a message with the data that was sent.
    let server = TestServer::start().await;
    let table = [
        "null".to_owned(),
        "0".to_owned(),
        "-0.0".to_owned(),
        "1e308".to_owned(),
        "-1.7976931348623157e308".to_owned(),
        "18446744073709551615".to_owned(),
        "-9223372036854775808".to_owned(),
        r#""]]]}}}\"\\""#.to_owned(),
        r#"{"émoji":"🦀","":[]}"#.to_owned(),
        nested(MAX_DATA_DEPTH),
        at_the_limit(),
    ];
    for data in &table {
        let (status, answer) = post(&server, format!(r#"{{"channel":"v/dash","data":{data}}}"#)).await;
        assert_eq!(status, 200, "{data}: {answer}");
    }
    let history = get(&server, "/api/channels/v/dash/history").await;
    let entries = history["publications"].as_array().expect("publications");
    assert_eq!(entries.len(), table.len(), "{history}");
    for (entry, data) in entries.iter().zip(&table) {
        assert_eq!(entry["type"], "message", "{entry}");
        let sent: Value = serde_json::from_str(data).expect("valid JSON");
        assert_eq!(entry["data"], sent, "{data}");
    }
}

#[tokio::test]
async fn messagepack_nesting_far_past_the_limit_is_refused_without_harm() {
    // Built as bytes (a one-element array is one byte, 0x91), so the test itself never holds
    // such a value: far deeper than the limit and than rmp_serde's own depth limit of 1024.
    let server = TestServer::start().await;
    let mut mp = msgpack_ws(&server).await;
    for depth in [1000, 100_000] {
        let mut command = Vec::new();
        rmpv::encode::write_value(
            &mut command,
            &rmpv::Value::Map(vec![
                ("id".into(), 6.into()),
                ("action".into(), "publish".into()),
                ("channel".into(), "v/deep".into()),
            ]),
        )
        .expect("encode");
        // One more entry in the map: the key "data", then the nested arrays.
        command[0] += 1;
        rmpv::encode::write_value(&mut command, &"data".into()).expect("encode");
        command.extend(std::iter::repeat_n(0x91, depth));
        command.push(0x01);
        mp.send_raw(Message::binary(command)).await;
        // Refused while decoding, before the command's id is read.
        assert_eq!(msgpack_error(&recv_msgpack(&mut mp).await), (None, Some("invalid_data")), "{depth}");
    }
    send_msgpack(&mut mp, msgpack_publish(7, "v/deep", msgpack_nested(MAX_DATA_DEPTH))).await;
    assert_eq!(field(&recv_msgpack(&mut mp).await, "offset").and_then(rmpv::Value::as_u64), Some(1));
}
