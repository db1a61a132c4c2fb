//! Origins, connection and rate limits, the refusal counters, and anonymous mode.

use super::*;

// ---------------------------------------------------------------------------------------------
// 8. Origin
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn origins_outside_the_allow_list_are_closed_1008() {
    let config = secured("[auth.origins]\nallowed = [\"https://app.example.com\"]\n");
    let server = TestServer::with(config).await;
    let token = q(&token("alice", json!({})));
    assert_eq!(
        Client::refused(&server, &token, &[("origin", "https://evil.example.org")]).await,
        (1008, "origin_not_allowed".to_owned())
    );
    // Near misses of the allowed origin.
    for origin in
        ["http://app.example.com", "https://app.example.com:8443", "https://app.example.com.evil.org", "null"]
    {
        assert_eq!(
            Client::refused(&server, &token, &[("origin", origin)]).await,
            (1008, "origin_not_allowed".to_owned()),
            "{origin}"
        );
    }
    // The origin is checked before the credential: no token, bad origin, still the origin.
    assert_eq!(
        Client::refused(&server, "", &[("origin", "https://evil.example.org")]).await,
        (1008, "origin_not_allowed".to_owned())
    );

    Client::connected(&server, &token, &[("origin", "https://app.example.com")]).await;
    // Same origin: the page was served by this server (the Host header names it).
    let same = format!("http://{}", server.addr);
    Client::connected(&server, &token, &[("origin", &same)]).await;
    // Non-browser clients send no Origin.
    Client::connected(&server, &token, &[]).await;
    // An allowed origin does not stand in for a credential.
    assert_eq!(
        Client::refused(&server, "", &[("origin", "https://app.example.com")]).await,
        (1008, "unauthorized".to_owned())
    );
}

#[tokio::test]
async fn once_auth_is_on_an_empty_origin_list_means_same_origin_only() {
    let server = TestServer::with(secured("")).await;
    let token = q(&token("alice", json!({})));
    assert_eq!(
        Client::refused(&server, &token, &[("origin", "https://app.example.com")]).await,
        (1008, "origin_not_allowed".to_owned())
    );
    let same = format!("http://{}", server.addr);
    Client::connected(&server, &token, &[("origin", &same)]).await;
}

// ---------------------------------------------------------------------------------------------
// 9. Limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connections_per_ip_are_limited_and_freed_on_close() {
    let mut config = Config::default();
    config.rate_limits.connections_per_ip = 2;
    let server = TestServer::with(config).await;
    let a = Client::connected(&server, "", &[]).await;
    let mut b = Client::connected(&server, "", &[]).await;
    assert_eq!(Client::refused(&server, "", &[]).await, (4029, "too_many_connections".to_owned()));
    b.ping(1).await; // The refusal did not disturb the admitted ones.

    a.close().await;
    // The slot is freed once the server has finished with the closed connection; wait for it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut c = loop {
        let mut client = Client::open(&server, "", &[]).await;
        match client.next_event().await {
            Event::Json(hello) => {
                assert_eq!(hello["type"], "connected");
                break client;
            }
            Event::Closed(code, reason) => {
                assert_eq!((code, reason.as_str()), (4029, "too_many_connections"));
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the closed connection's slot was never freed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    c.ping(1).await;
    assert_eq!(Client::refused(&server, "", &[]).await, (4029, "too_many_connections".to_owned()));
}

#[tokio::test]
async fn the_message_budget_answers_rate_limited_and_recovers() {
    let mut config = Config::default();
    config.rate_limits.messages_per_sec = 2.0;
    config.rate_limits.message_burst = 3;
    let server = TestServer::with(config).await;
    let mut ws = Client::connected(&server, "", &[]).await;

    // Five at once: the burst of three is answered, the rest refused (fewer than the burst in a
    // row, so the connection stays).
    for id in 1..=5 {
        ws.stream.feed(Message::text(json!({ "id": id, "action": "ping" }).to_string())).await.expect("feed");
    }
    ws.stream.flush().await.expect("flush");
    let (mut pongs, mut limited) = (0, 0);
    for _ in 1..=5 {
        let m = ws.recv().await;
        match (m["type"].as_str(), m["code"].as_str()) {
            (Some("pong"), _) => pongs += 1,
            (Some("error"), Some("rate_limited")) => limited += 1,
            _ => panic!("unexpected {m}"),
        }
    }
    assert!(pongs >= 3, "the burst is allowed ({pongs} pongs)");
    assert!(limited >= 1, "some pings were refused");

    // At 2 per second, 1.5 s refills enough for a command again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws.ping(6).await;
}

#[tokio::test]
async fn a_flood_of_refused_messages_closes_the_connection_with_4029() {
    let mut config = Config::default();
    config.rate_limits.messages_per_sec = 2.0;
    config.rate_limits.message_burst = 3;
    let server = TestServer::with(config).await;
    let mut ws = Client::connected(&server, "", &[]).await;
    for id in 1..=30 {
        if ws.stream.feed(Message::text(json!({ "id": id, "action": "ping" }).to_string())).await.is_err() {
            break;
        }
    }
    let _ = ws.stream.flush().await;
    let mut limited = 0;
    let close = loop {
        match ws.next_event().await {
            Event::Closed(code, reason) => break (code, reason),
            Event::Json(m) if m["type"] == "pong" => {}
            Event::Json(m) if m["code"] == "rate_limited" => limited += 1,
            Event::Json(m) => panic!("unexpected {m}"),
        }
    };
    assert_eq!(close, (4029, "rate_limited".to_owned()));
    assert!(limited <= 3, "closed after more than `message_burst` refusals in a row, not later ({limited})");
    // Other connections are not affected.
    Client::connected(&server, "", &[]).await.ping(1).await;
}

#[tokio::test]
async fn the_publish_budget_per_ip_answers_rate_limited_and_recovers() {
    let mut config = Config::default();
    config.rate_limits.publishes_per_sec_per_ip = 1.0;
    config.rate_limits.publish_burst_per_ip = 2;
    let server = TestServer::with(config).await;
    let mut a = Client::connected(&server, "", &[]).await;
    let mut b = Client::connected(&server, "", &[]).await;

    let mut results = Vec::new();
    for id in 1..=3 {
        let reply = a.publish(id, "p/x", json!(id)).await;
        results.push((reply["type"].as_str().unwrap_or_default().to_owned(), reply["code"].clone()));
    }
    assert!(results.iter().filter(|(t, _)| t == "ack").count() >= 2, "the burst is allowed: {results:?}");
    let refused = a.publish(4, "p/x", json!(4)).await;
    assert_eq!(
        (
            refused["type"].as_str(),
            refused["code"].as_str(),
            refused["id"].as_u64(),
            refused["channel"].as_str()
        ),
        (Some("error"), Some("rate_limited"), Some(4), Some("p/x")),
        "{refused}"
    );
    // The budget is the address's, shared by its connections.
    let other = b.publish(1, "p/y", json!(1)).await;
    assert_eq!(other["code"], "rate_limited", "{other}");
    // Subscribing and pinging are not publications.
    a.subscribed(5, "p/x").await;
    a.ping(6).await;

    // At 1 per second, 1.5 s refills one publication.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.published(7, "p/x", json!("again")).await;
}

// ---------------------------------------------------------------------------------------------
// 10. Metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_count_refusals_by_code_in_anonymous_mode() {
    let mut config = Config::default();
    config.rate_limits.connections_per_ip = 1;
    config.rate_limits.messages_per_sec = 2.0;
    config.rate_limits.message_burst = 3;
    let server = TestServer::with(config).await;
    let mut ws = Client::connected(&server, "", &[]).await;
    assert_eq!(Client::refused(&server, "", &[]).await, (4029, "too_many_connections".to_owned()));
    for id in 1..=5 {
        ws.stream.feed(Message::text(json!({ "id": id, "action": "ping" }).to_string())).await.expect("feed");
    }
    ws.stream.flush().await.expect("flush");
    let mut limited = 0;
    for _ in 1..=5 {
        if ws.recv().await["code"] == "rate_limited" {
            limited += 1;
        }
    }
    assert!(limited >= 1);

    let (status, body) = metrics(&server, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refused"], json!({ "too_many_connections": 1, "rate_limited": limited }), "{body}");
}

#[tokio::test]
async fn metrics_count_refusals_by_code_for_an_admin_key() {
    let mut config = secured(&api_key_toml("ops", ADMIN_KEY, "admin = true"));
    config.auth.origins.allowed = vec!["https://app.example.com".to_owned()];
    let server = TestServer::with(config).await;
    // A token that expires on its live connection is counted as well.
    let short = sign(SECRET, &claims("carol", json!({ "exp": now() + 2 })));
    let mut expiring = Client::connected(&server, &q(&short), &[]).await;

    assert_eq!(Client::refused(&server, "", &[]).await.1, "unauthorized");
    let expired = sign(SECRET, &claims("alice", json!({ "exp": now() - 60 })));
    assert_eq!(Client::refused(&server, &q(&expired), &[]).await.1, "token_expired");
    let early = sign(SECRET, &claims("alice", json!({ "nbf": now() + 3600 })));
    assert_eq!(Client::refused(&server, &q(&early), &[]).await.1, "token_not_yet_valid");
    let alice = token("alice", json!({ "subscribe": ["a/#"] }));
    assert_eq!(
        Client::refused(&server, &q(&alice), &[("origin", "https://evil.example.org")]).await.1,
        "origin_not_allowed"
    );
    let mut ws = Client::connected(&server, &q(&alice), &[]).await;
    ws.forbidden(1, "b/x").await;
    ws.publish_forbidden(2, "a/x").await;
    let history = ws.request(json!({ "id": 3, "action": "history", "channel": "b/x" })).await;
    assert_forbidden(&history, 3, "b/x");

    assert_eq!(expiring.closed().await, (4003, "token_expired".to_owned()));

    // The metrics are for admins only: anonymous is 401, a user token 403 (both counted too).
    assert_eq!(metrics(&server, None).await.0, 401);
    assert_eq!(metrics(&server, Some(&alice)).await.0, 403);
    let (status, body) = metrics(&server, Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["refused"],
        json!({
            "unauthorized": 2,
            "token_expired": 2,
            "token_not_yet_valid": 1,
            "origin_not_allowed": 1,
            "forbidden": 4,
        }),
        "{body}"
    );
    assert!(body["connections"].as_u64().is_some_and(|n| n >= 1), "{body}");
}

// ---------------------------------------------------------------------------------------------
// 11. Anonymous mode
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn anonymous_mode_still_allows_everything_but_publishing_to_system_channels() {
    let server = TestServer::start().await;
    // Any origin, no credential.
    let mut ws = Client::connected(&server, "", &[("origin", "https://evil.example.org")]).await;
    ws.subscribed(1, "#").await;
    ws.subscribed(2, "$sys/presence").await;
    ws.subscribed(3, "+/x").await;
    let mut other = Client::connected(&server, "", &[]).await;
    other.published(1, "any/x", json!("hi")).await;
    assert_eq!(ws.message().await, ("any/x".to_owned(), json!("hi")));
    let sys = other.publish(2, "$sys/presence", json!({})).await;
    assert_eq!(
        (sys["type"].as_str(), sys["code"].as_str(), sys["id"].as_u64()),
        (Some("error"), Some("read_only_channel"), Some(2)),
        "{sys}"
    );
    let history = other.request(json!({ "id": 3, "action": "history", "channel": "any/x" })).await;
    assert_eq!(history["publications"].as_array().map(Vec::len), Some(1), "{history}");
    let (status, body) = metrics(&server, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["refused"], json!({}), "nothing was refused: {body}");
}
