//! Browsers and limits: the origin check, CORS, and the connection and publish limits.

use super::*;

// ---------------------------------------------------------------------------------------------
// 8. Origins

#[tokio::test]
async fn sse_and_polls_from_a_disallowed_origin_are_refused() {
    let server = TestServer::with(secured(&format!("[auth.origins]\nallowed = [\"{APP_ORIGIN}\"]\n"))).await;
    let user = token(json!({ "subscribe": ["news/#"] }));
    let same_origin = format!("http://{}", server.addr);
    for transport in [Transport::Sse, Transport::Poll] {
        for carrier in CARRIERS {
            let cred = Some((carrier, user.as_str()));
            let reply = read(&server, transport, &["news/a"], cred, &[("origin", EVIL_ORIGIN)])
                .await
                .expect_err("a foreign origin is refused");
            reply.assert_error(403, "origin_not_allowed");
            read(&server, transport, &["news/a"], cred, &[("origin", APP_ORIGIN)])
                .await
                .unwrap_or_else(|r| panic!("{transport:?} from the allowed origin: {}", r.text));
            read(&server, transport, &["news/a"], cred, &[("origin", &same_origin)])
                .await
                .unwrap_or_else(|r| panic!("{transport:?} from the server's own origin: {}", r.text));
            read(&server, transport, &["news/a"], cred, &[])
                .await
                .unwrap_or_else(|r| panic!("{transport:?} without an Origin: {}", r.text));
        }
        // The origin is checked first: a foreign page learns nothing about the credential.
        let reply = read(&server, transport, &["news/a"], None, &[("origin", EVIL_ORIGIN)]).await;
        reply.expect_err("refused").assert_error(403, "origin_not_allowed");
        for lookalike in ["https://app.example.com.evil.org", "http://app.example.com", "null"] {
            let reply = read(&server, transport, &["news/a"], bearer(&user), &[("origin", lookalike)]).await;
            reply.expect_err(lookalike).assert_error(403, "origin_not_allowed");
        }
    }
    let refused = refused_counts(&server, bearer(ADMIN_KEY)).await;
    assert!(refused["origin_not_allowed"].as_u64().is_some_and(|n| n >= 14), "{refused}");
}

#[tokio::test]
async fn any_origin_is_allowed_in_anonymous_mode() {
    let server = TestServer::with(Config::default()).await;
    for transport in [Transport::Sse, Transport::Poll] {
        read(&server, transport, &["news/a"], None, &[("origin", EVIL_ORIGIN)])
            .await
            .unwrap_or_else(|r| panic!("{transport:?}: {}", r.text));
    }
}

// ---------------------------------------------------------------------------------------------
// 9. CORS

/// A CORS preflight for `POST path` from `origin`.
async fn preflight(server: &TestServer, path: &str, origin: &str) -> Reply {
    let builder = reqwest::Client::new()
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type");
    send(builder).await
}

/// `GET path` from `origin`.
async fn cross_origin_get(server: &TestServer, path: &str, origin: &str) -> Reply {
    send(reqwest::Client::new().get(server.url(path)).header("origin", origin)).await
}

fn lists(reply: &Reply, header: &str, wanted: &str) -> bool {
    reply.header(header).is_some_and(|v| v.split(',').any(|item| item.trim().eq_ignore_ascii_case(wanted)))
}

#[tokio::test]
async fn cors_allows_any_origin_in_anonymous_mode() {
    let server = TestServer::with(Config::default()).await;
    let reply = preflight(&server, "/api/publish", "https://x.test").await;
    assert!(reply.status < 300, "{reply:?}");
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "{:?}", reply.headers);
    assert!(lists(&reply, "access-control-allow-methods", "POST"), "{:?}", reply.headers);
    assert!(lists(&reply, "access-control-allow-headers", "authorization"), "{:?}", reply.headers);
    assert_eq!(reply.header("access-control-allow-credentials"), None, "no credentials with *");
    let reply = cross_origin_get(&server, "/poll?channel=a&timeout=0", "https://x.test").await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "{:?}", reply.headers);
    assert!(lists(&reply, "access-control-expose-headers", CURSOR_HEADER), "{:?}", reply.headers);
}

#[tokio::test]
async fn cors_echoes_only_the_listed_origins_with_credentials() {
    let mut config = Config::default();
    config.cors.allowed_origins = vec![APP_ORIGIN.to_owned()];
    let server = TestServer::with(config).await;
    let reply = preflight(&server, "/api/publish", APP_ORIGIN).await;
    assert!(reply.status < 300, "{reply:?}");
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP_ORIGIN), "{:?}", reply.headers);
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"), "{:?}", reply.headers);
    assert!(lists(&reply, "vary", "origin"), "a per-origin answer must vary on Origin: {:?}", reply.headers);
    let other = preflight(&server, "/api/publish", "https://x.test").await;
    assert_eq!(other.header("access-control-allow-origin"), None, "{:?}", other.headers);
    let reply = cross_origin_get(&server, "/poll?channel=a&timeout=0", APP_ORIGIN).await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP_ORIGIN), "{:?}", reply.headers);
    assert!(lists(&reply, "access-control-expose-headers", CURSOR_HEADER), "{:?}", reply.headers);
    let reply = cross_origin_get(&server, "/poll?channel=a&timeout=0", "https://x.test").await;
    assert_eq!(reply.header("access-control-allow-origin"), None, "{:?}", reply.headers);
}

#[tokio::test]
async fn cors_follows_the_auth_origins_and_is_closed_by_default_once_auth_is_on() {
    let listed = TestServer::with(secured(&format!("[auth.origins]\nallowed = [\"{APP_ORIGIN}\"]\n"))).await;
    let reply = preflight(&listed, "/api/publish", APP_ORIGIN).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP_ORIGIN), "{:?}", reply.headers);
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"), "{:?}", reply.headers);
    let reply = preflight(&listed, "/api/publish", EVIL_ORIGIN).await;
    assert_eq!(reply.header("access-control-allow-origin"), None, "{:?}", reply.headers);
    // A refusal is readable by the allowed origin, so a browser client can see why.
    let reply = cross_origin_get(&listed, "/api/channels/news/a", APP_ORIGIN).await;
    reply.assert_error(401, "unauthorized");
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP_ORIGIN), "{:?}", reply.headers);

    let closed = TestServer::with(secured("")).await;
    for origin in [APP_ORIGIN, "https://x.test"] {
        let reply = preflight(&closed, "/api/publish", origin).await;
        assert_eq!(reply.header("access-control-allow-origin"), None, "{origin}: {:?}", reply.headers);
    }
}

// ---------------------------------------------------------------------------------------------
// 10. Limits

#[tokio::test]
async fn connections_per_ip_limit_sse_and_polls_and_free_the_slot() {
    let mut config = Config::default();
    config.rate_limits.connections_per_ip = 1;
    let server = TestServer::with(config).await;
    let mut first =
        open_sse(get(&server, "/sse?channel=a", None)).await.map_err(|r| r.text).expect("first stream");
    first.connected().await;
    refused(&server, Transport::Sse, &["a"], None).await.assert_error(429, "too_many_connections");
    refused(&server, Transport::Poll, &["a"], None).await.assert_error(429, "too_many_connections");
    // Short reads and publishes hold no connection slot.
    admitted(&server, Transport::Rest, &["a"], None).await;
    server.publish("a", json!(1)).await;
    let event = first.next().await.expect("the first stream still works");
    assert_eq!(event.event, "a", "{event:?}");
    drop(first);
    // Once the server sees the first stream gone, a new one is admitted.
    let deadline = Instant::now() + WAIT;
    loop {
        match open_sse(get(&server, "/sse?channel=a", None)).await {
            Ok(mut stream) => {
                stream.connected().await;
                break;
            }
            Err(reply) => {
                reply.assert_error(429, "too_many_connections");
                assert!(Instant::now() < deadline, "the dropped stream's slot was not freed within {WAIT:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let refused = refused_counts(&server, None).await;
    assert!(refused["too_many_connections"].as_u64().is_some_and(|n| n >= 2), "{refused}");
}

#[tokio::test]
async fn refused_streams_and_polls_give_their_connection_slot_back() {
    let server = TestServer::with(secured("[rate_limits]\nconnections_per_ip = 1\n")).await;
    let user = token(json!({ "subscribe": ["news/#"] }));
    for _ in 0..3 {
        for transport in [Transport::Sse, Transport::Poll] {
            refused(&server, transport, &["secret/x"], bearer(&user)).await.assert_error(403, "forbidden");
            refused(&server, transport, &["news/a", "#"], bearer(&user)).await.assert_error(403, "forbidden");
            refused(&server, transport, &["news/a"], None).await.assert_error(401, "unauthorized");
            let expired = token(json!({ "exp": now() - 3600 }));
            refused(&server, transport, &["news/a"], bearer(&expired))
                .await
                .assert_error(401, "token_expired");
            // A poll that answers at once gives its slot back too.
            admitted(&server, Transport::Poll, &["news/a"], bearer(&user)).await;
        }
    }
    let mut stream = open_sse(get(&server, "/sse?channel=news/a", bearer(&user)))
        .await
        .map_err(|r| r.text)
        .expect("the only slot is free");
    stream.connected().await;
    refused(&server, Transport::Poll, &["news/a"], bearer(&user))
        .await
        .assert_error(429, "too_many_connections");
}

#[tokio::test]
async fn a_held_long_poll_holds_a_connection_slot_until_it_answers() {
    let mut config = Config::default();
    config.rate_limits.connections_per_ip = 1;
    let server = TestServer::with(config).await;
    // The held poll retries until it gets the slot (a probe below may hold it for a moment).
    let held = tokio::spawn({
        let url = server.url("/poll?channel=a&timeout=30");
        async move {
            loop {
                let reply = send(reqwest::Client::new().get(&url)).await;
                if reply.status != 429 {
                    return reply;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    // A probe that does not wait is refused once the held poll has the slot.
    let deadline = Instant::now() + WAIT;
    loop {
        match read(&server, Transport::Poll, &["b"], None, &[]).await {
            Err(reply) => {
                reply.assert_error(429, "too_many_connections");
                break;
            }
            Ok(_) => {
                assert!(Instant::now() < deadline, "the poll was never held");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    refused(&server, Transport::Sse, &["b"], None).await.assert_error(429, "too_many_connections");
    server.publish("a", json!(1)).await;
    let answer = held.await.expect("poll task");
    assert_eq!(answer.status, 200, "{}", answer.text);
    admitted(&server, Transport::Sse, &["b"], None).await;
}

#[tokio::test]
async fn the_publish_rate_limit_trips_and_recovers() {
    let mut config = Config::default();
    config.rate_limits.publishes_per_sec_per_ip = 2.0;
    config.rate_limits.publish_burst_per_ip = 1;
    let server = TestServer::with(config).await;
    let body = json!({ "channel": "rl/a", "data": 1 });
    assert_eq!(publish(&server, None, &body).await.status, 200);
    let reply = publish(&server, None, &body).await;
    reply.assert_error(429, "rate_limited");
    // Refused publications do not count against the budget, so this recovers at the rate.
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = publish(&server, None, &body).await;
        if reply.status == 200 {
            break;
        }
        reply.assert_error(429, "rate_limited");
        assert!(Instant::now() < deadline, "the publish budget did not refill within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let published = history(&server, "rl/a").await;
    assert_eq!(published.len(), 2, "only the admitted publications: {published:?}");
    let refused = refused_counts(&server, None).await;
    assert!(refused["rate_limited"].as_u64().is_some_and(|n| n >= 1), "{refused}");
}

/// BUG (see the report): the per-address publish budget is taken item by item *while* the batch
/// is being published (`api.rs`, `publish`), so a batch larger than the remaining budget
/// publishes its first items and then answers 429, unlike every other refusal of a batch.
#[tokio::test]
async fn a_batch_over_the_publish_budget_publishes_nothing() {
    let mut config = Config::default();
    config.rate_limits.publishes_per_sec_per_ip = 0.01;
    config.rate_limits.publish_burst_per_ip = 2;
    let server = TestServer::with(config).await;
    let batch = json!([
        { "channel": "rl/batch", "data": 1 },
        { "channel": "rl/batch", "data": 2 },
        { "channel": "rl/batch", "data": 3 },
    ]);
    let reply = publish(&server, None, &batch).await;
    reply.assert_error(429, "rate_limited");
    let published = history(&server, "rl/batch").await;
    assert!(
        published.is_empty(),
        "a refused batch published {} of its items: {published:?}",
        published.len()
    );
}
