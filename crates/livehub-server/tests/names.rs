//! Channel names with awkward characters over real sockets: published over HTTP and WebSocket,
//! delivered over WebSocket, SSE (a comma-escaped list, repeated parameters, the path form,
//! patterns) and long polling, resumed from cursors, read back over the REST paths; and the
//! configured name limits.

mod common;

use common::{Sse, TestServer, Ws};
use livehub_server::Config;
use serde_json::{json, Value};

/// Names that broke, or could break, a wire format: commas, non-ASCII, empty levels, spaces,
/// quotes, line breaks, backslashes, URL syntax, and a name that ends like the history path.
const AWKWARD: [&str; 11] = [
    "a/b,c",
    "é/ü",
    "a//b",
    "x y",
    "q\"uote",
    "line\nbreak",
    "back\\slash",
    "100%/?&=;",
    "/lead",
    "trail/",
    "x/history",
];

/// Percent-encodes all but the unreserved characters: one path segment, `/` included.
fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One `channel=` value naming `names`, with `\` and `,` escaped.
fn channel_list(names: &[&str]) -> String {
    let escaped: Vec<String> = names.iter().map(|n| n.replace('\\', "\\\\").replace(',', "\\,")).collect();
    escaped.join(",")
}

/// The query naming the first half of `names` in one list and the rest as repeated parameters.
fn stream_query(names: &[&str], extra: &[(&str, &str)]) -> String {
    let (listed, repeated) = names.split_at(names.len() / 2);
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("channel", &channel_list(listed));
    for name in repeated {
        query.append_pair("channel", &channel_list(&[name]));
    }
    for (k, v) in extra {
        query.append_pair(k, v);
    }
    query.finish()
}

/// The SSE event name of a publication on `name`.
fn event_name(name: &str) -> &str {
    if name.contains(['\n', '\r']) {
        "message"
    } else {
        name
    }
}

/// Reads the next publication of `sse`, which must be on `name` with `data.i == i`; returns its `id:`.
async fn sse_message(sse: &mut Sse, name: &str, i: usize) -> String {
    let event = sse.next_skipping_presence().await.expect("the stream is open");
    assert_eq!(event.event, event_name(name), "{event:?}");
    let data = event.json();
    assert_eq!((data["type"].as_str(), data["channel"].as_str()), (Some("message"), Some(name)), "{data}");
    assert_eq!(data["data"]["i"], i, "{data}");
    event.id.expect("a publication has an id")
}

/// `GET url` as JSON, which must answer 200.
async fn get_json(url: &str) -> Value {
    let response = reqwest::get(url).await.expect("request");
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn awkward_names_are_delivered_on_every_transport() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    for (reply, name) in ws.subscribe(&AWKWARD).await.iter().zip(AWKWARD) {
        assert_eq!(
            (reply["type"].as_str(), reply["channel"].as_str()),
            (Some("subscribed"), Some(name)),
            "{reply}"
        );
    }
    let mut listed = Sse::open(&server.url(&format!("/sse?{}", stream_query(&AWKWARD, &[]))), None).await;
    let connected = listed.connected().await;
    for name in AWKWARD {
        assert!(connected["channels"][name]["position"].is_object(), "{name:?}: {connected}");
    }
    let mut by_path = Vec::new();
    for name in AWKWARD {
        let mut sse = Sse::open(&server.url(&format!("/sse/{}", path_segment(name))), None).await;
        assert!(sse.connected().await["channels"][name].is_object(), "{name:?}");
        by_path.push(sse);
    }
    // Patterns in the path: `+` and `#` levels encoded like any other character.
    let mut accents = Sse::open(&server.url(&format!("/sse/{}", path_segment("é/+"))), None).await;
    accents.connected().await;
    let mut under_a = Sse::open(&server.url("/sse/a/%23"), None).await;
    under_a.connected().await;
    let poll_url = |query: &str| server.url(&format!("/poll?{query}"));
    let first_poll =
        reqwest::get(poll_url(&stream_query(&AWKWARD, &[("timeout", "0")]))).await.expect("poll");
    assert_eq!(first_poll.status(), 204);
    let cursor = first_poll.headers()["livehub-cursor"].to_str().expect("ASCII").to_owned();

    // Every other name is published over a WebSocket, the rest over HTTP.
    let mut publisher = Ws::connect(&server.ws_url(), None).await;
    for (i, name) in AWKWARD.iter().enumerate() {
        let answer = if i % 2 == 0 {
            server.publish(name, json!({ "i": i })).await
        } else {
            publisher
                .send(json!({ "id": i, "action": "publish", "channel": name, "data": { "i": i } }))
                .await;
            publisher.recv_type("ack").await
        };
        assert_eq!(answer["channel"], *name, "{answer}");
    }

    let mut first_id = None;
    for (i, name) in AWKWARD.iter().enumerate() {
        let message = ws.recv_type("message").await;
        assert_eq!(
            (message["channel"].as_str(), &message["data"]["i"]),
            (Some(*name), &json!(i)),
            "{message}"
        );
        let id = sse_message(&mut listed, name, i).await;
        first_id.get_or_insert(id);
        sse_message(&mut by_path[i], name, i).await;
    }
    sse_message(&mut accents, "é/ü", 1).await;
    sse_message(&mut under_a, "a/b,c", 0).await;
    sse_message(&mut under_a, "a//b", 2).await;

    // The cursor of the first event resumes every name, and replays all but that one.
    let first_id = first_id.expect("an id");
    let mut resumed =
        Sse::open(&server.url(&format!("/sse?{}", stream_query(&AWKWARD, &[]))), Some(&first_id)).await;
    let connected = resumed.connected().await;
    for name in AWKWARD {
        assert_eq!(connected["channels"][name]["recovered"], true, "{name:?}: {connected}");
    }
    for (i, name) in AWKWARD.iter().enumerate().skip(1) {
        sse_message(&mut resumed, name, i).await;
    }

    // Long polling from the cursor taken before publishing gets every publication.
    let query = stream_query(&AWKWARD, &[("timeout", "0"), ("cursor", &cursor)]);
    let polled = get_json(&poll_url(&query)).await;
    let channels: Vec<&str> = polled["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["channel"].as_str())
        .collect();
    assert_eq!(channels, AWKWARD, "{polled}");

    // The REST paths: the whole name as one percent-encoded segment, then `/history`.
    for (i, name) in AWKWARD.iter().enumerate() {
        let latest = get_json(&server.url(&format!("/api/channels/{}", path_segment(name)))).await;
        assert_eq!(
            (latest["channel"].as_str(), latest["latest"]["channel"].as_str()),
            (Some(*name), Some(*name)),
            "{latest}"
        );
        assert_eq!(latest["latest"]["data"]["i"], i, "{latest}");
        let history = get_json(&server.url(&format!("/api/channels/{}/history", path_segment(name)))).await;
        assert_eq!(history["channel"], *name, "{history}");
        assert_eq!(history["publications"][0]["channel"], *name, "{history}");
    }
    // A literal `/history` still selects the history endpoint for names that are plain levels.
    server.publish("plain/name", json!(1)).await;
    let history = get_json(&server.url("/api/channels/plain/name/history")).await;
    assert_eq!(history["publications"][0]["channel"], "plain/name", "{history}");
}

#[tokio::test]
async fn channel_list_escapes_are_checked() {
    let server = TestServer::start().await;
    for query in ["channel=a%5C", "channel=a%5Cb"] {
        let response = reqwest::get(server.url(&format!("/sse?{query}"))).await.expect("request");
        assert_eq!(response.status(), 400, "{query}");
    }
    let mut sse = Sse::open(&server.url("/sse?channel=a%5C%2Cb,c%5C%5C"), None).await;
    let connected = sse.connected().await;
    let mut names: Vec<&String> = connected["channels"].as_object().expect("channels").keys().collect();
    names.sort();
    assert_eq!(names, ["a,b", "c\\"], "{connected}");
}

#[tokio::test]
async fn the_configured_limits_decide_what_a_name_may_be() {
    let long = "l".repeat(2000);
    let deep = vec!["d"; 40].join("/");
    let default = TestServer::start().await;
    let mut config = Config::default();
    config.limits.max_channel_length = 4096;
    config.limits.max_channel_levels = 64;
    let roomy = TestServer::with(config).await;

    for name in [&long, &deep] {
        let body = json!({ "channel": name, "data": 1 });
        let refused = reqwest::Client::new()
            .post(default.url("/api/publish"))
            .json(&body)
            .send()
            .await
            .expect("publish");
        assert_eq!(refused.status(), 400);
        let error: Value = refused.json().await.expect("JSON");
        assert_eq!(error["error"]["code"], "invalid_channel", "{error}");
        let mut ws = default.ws().await;
        ws.send(json!({ "id": 1, "action": "subscribe", "channels": [name] })).await;
        assert_eq!(ws.recv_type("error").await["code"], "invalid_channel");

        let mut ws = roomy.ws().await;
        assert_eq!(ws.subscribe(&[name]).await[0]["channel"], *name);
        let mut sse = Sse::open(&roomy.url(&format!("/sse/{}", path_segment(name))), None).await;
        sse.connected().await;
        roomy.publish(name, json!({ "i": 0 })).await;
        assert_eq!(ws.recv_type("message").await["channel"], *name);
        let id = sse_message(&mut sse, name, 0).await;
        // A cursor holding the long name resumes on the server that issued it.
        let mut resumed = Sse::open(&roomy.url(&format!("/sse/{}", path_segment(name))), Some(&id)).await;
        assert_eq!(resumed.connected().await["channels"][name]["recovered"], true);
    }

    let mut config = Config::default();
    config.limits.max_channel_length = 8;
    let tight = TestServer::with(config).await;
    let body = json!({ "channel": "abcdefghi", "data": 1 });
    let refused =
        reqwest::Client::new().post(tight.url("/api/publish")).json(&body).send().await.expect("publish");
    assert_eq!(refused.status(), 400);
    tight.publish("abcdefgh", json!(1)).await;
}
