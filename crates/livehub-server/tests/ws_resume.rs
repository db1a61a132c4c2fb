//! WebSocket sessions that outlive a dropped connection (`websocket.session_ttl_secs`): the
//! session keeps its subscriptions and queues publications, and `?resume=` takes it over with
//! nothing lost and nothing repeated. A clean close, a wrong token and a server that keeps no
//! sessions all give a fresh session and `resumed: false`.

mod common;

use common::{TestServer, Ws};
use livehub_server::Config;
use serde_json::{json, Value};

async fn server(ttl: u64) -> TestServer {
    let mut config = Config::default();
    config.websocket.session_ttl_secs = ttl;
    TestServer::with(config).await
}

/// A connection that reads `connected` itself, so the test sees its `session` and `resumed`.
async fn connect(server: &TestServer, resume: Option<&str>) -> (Ws, Value) {
    let url = match resume {
        Some(token) => format!("{}?resume={token}", server.ws_url()),
        None => server.ws_url(),
    };
    let mut ws = Ws::connect(&url, Some("livehub.json")).await;
    let connected = ws.recv_type("connected").await;
    (ws, connected)
}

async fn offsets_received(ws: &mut Ws, n: usize) -> Vec<u64> {
    let mut offsets = Vec::new();
    while offsets.len() < n {
        let message = ws.recv_type("message").await;
        offsets.push(message["offset"].as_u64().expect("offset"));
    }
    offsets
}

#[tokio::test]
async fn a_dropped_connection_is_resumed_with_what_was_published_meanwhile() {
    let server = server(30).await;
    let (mut ws, connected) = connect(&server, None).await;
    let token = connected["session"].as_str().expect("a session token").to_owned();
    assert!(connected.get("resumed").is_none(), "{connected}");
    ws.subscribe(&["r/a"]).await;
    server.publish("r/a", json!(1)).await;
    assert_eq!(offsets_received(&mut ws, 1).await, [1]);
    // Gone without a close frame, as a dropped network would leave it.
    drop(ws);
    common::eventually("the dropped connection to be parked", || async {
        (server.presence().await["connections"] == 0).then_some(())
    })
    .await;
    server.publish("r/a", json!(2)).await;
    server.publish("r/a", json!(3)).await;

    let (mut ws, connected) = connect(&server, Some(&token)).await;
    assert_eq!(connected["resumed"], true, "{connected}");
    assert_eq!(offsets_received(&mut ws, 2).await, [2, 3], "queued while away, nothing repeated");
    server.publish("r/a", json!(4)).await;
    assert_eq!(offsets_received(&mut ws, 1).await, [4], "still subscribed");
}

#[tokio::test]
async fn a_clean_close_a_wrong_token_or_no_session_ttl_give_a_fresh_session() {
    let server = server(30).await;
    let (mut ws, connected) = connect(&server, None).await;
    let token = connected["session"].as_str().expect("a session token").to_owned();
    ws.subscribe(&["r/b"]).await;
    ws.stream.close(None).await.expect("close");
    let (_ws, again) = connect(&server, Some(&token)).await;
    assert_eq!(again["resumed"], false, "a client that closed left on purpose: {again}");
    let (_ws, wrong) = connect(&server, Some("00000000000000000000000000000000")).await;
    assert_eq!(wrong["resumed"], false, "{wrong}");

    let plain = TestServer::start().await;
    let (_ws, connected) = connect(&plain, Some(&token)).await;
    assert!(connected.get("session").is_none() && connected.get("resumed").is_none(), "{connected}");
}
