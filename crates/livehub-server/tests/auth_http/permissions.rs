//! Permissions: reads inside and outside the grants, publishing, the admin endpoints, and the read rules.

use super::*;

// ---------------------------------------------------------------------------------------------
// 3. Inside and outside the grants

#[tokio::test]
async fn sse_and_poll_refuse_the_whole_request_when_one_channel_is_forbidden() {
    let server = TestServer::with(secured("")).await;
    let user = token(json!({ "subscribe": ["news/#", "stocks/+"] }));
    let cred = bearer(&user);
    let allowed: [&[&str]; 6] = [
        &["news/a"],
        &["news/a", "news/b/c"],
        &["news/#"],
        &["news/+/c"],
        &["stocks/+"],
        &["stocks/aapl", "news/a"],
    ];
    let forbidden: [&[&str]; 8] = [
        &["secret/x"],
        &["news/a", "secret/x"],
        &["secret/x", "news/a"],
        &["#"],
        &["+/a"],
        &["stocks/#"],
        &["stocks/aapl/bid"],
        &["news/a", "$sys/presence"],
    ];
    for transport in [Transport::Sse, Transport::Poll] {
        for channels in allowed {
            admitted(&server, transport, channels, cred).await;
        }
        for channels in forbidden {
            let reply = refused(&server, transport, channels, cred).await;
            assert_eq!(reply.status, 403, "{transport:?} {channels:?}: {}", reply.text);
            reply.assert_error(403, "forbidden");
        }
    }
    // A refused stream subscribed nothing: no subscriber was left behind on the allowed channel.
    let reply = send(get(&server, "/api/channels/news/a", bearer(ADMIN_KEY))).await;
    assert_eq!(reply.json()["subscribers"], 0, "{}", reply.text);
    admitted(&server, Transport::Rest, &["news/a"], cred).await;
    let reply = send(get(&server, "/api/channels/news/a", cred)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    for path in ["/api/channels/secret/x", "/api/channels/secret/x/history", "/api/channels/stocks/a/b"] {
        send(get(&server, path, cred)).await.assert_error(403, "forbidden");
    }
}

#[tokio::test]
async fn a_forbidden_channel_looks_the_same_whether_it_exists_or_not() {
    let server = TestServer::with(secured("")).await;
    // `secret/existing` has history and a live subscriber; `secret/never` was never used.
    let reply =
        publish(&server, bearer(ADMIN_KEY), &json!({ "channel": "secret/existing", "data": 42 })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut watcher = open_sse(get(&server, "/sse?channel=secret/existing", bearer(ADMIN_KEY)))
        .await
        .map_err(|r| r.text)
        .expect("the admin key reads everything");
    watcher.connected().await;
    let user = token(json!({ "subscribe": ["news/#"] }));
    for transport in TRANSPORTS {
        let existing = refused(&server, transport, &["secret/existing"], bearer(&user)).await;
        let never = refused(&server, transport, &["secret/never"], bearer(&user)).await;
        existing.assert_error(403, "forbidden");
        assert_eq!((existing.status, &existing.text), (never.status, &never.text), "{transport:?}");
        assert!(!existing.text.contains("secret"), "the answer names the channel: {}", existing.text);
    }
    let existing = send(get(&server, "/api/channels/secret/existing", bearer(&user))).await;
    let never = send(get(&server, "/api/channels/secret/never", bearer(&user))).await;
    existing.assert_error(403, "forbidden");
    assert_eq!((existing.status, &existing.text), (never.status, &never.text));
}

// ---------------------------------------------------------------------------------------------
// 5. Publishing

#[tokio::test]
async fn publishing_needs_a_credential_whose_pattern_matches_every_item() {
    let ingest = "lh_ingest-key-for-stocks";
    let server = TestServer::with(secured(&api_key("ingest", ingest, &["stocks/#"], &[], false))).await;
    let key = bearer(ingest);
    let reply = publish(&server, key, &json!({ "channel": "stocks/aapl", "data": 1 })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["offset"], 1, "{}", reply.text);
    // Outside its pattern: refused, nothing published.
    publish(&server, key, &json!({ "channel": "news/x", "data": 1 })).await.assert_error(403, "forbidden");
    assert!(history(&server, "news/x").await.is_empty());
    // A batch with one forbidden item publishes none of them.
    let batch = json!([
        { "channel": "stocks/aapl", "data": 2 },
        { "channel": "news/x", "data": 2 },
        { "channel": "stocks/msft", "data": 2 },
    ]);
    publish(&server, key, &batch).await.assert_error(403, "forbidden");
    assert_eq!(history(&server, "stocks/aapl").await.len(), 1, "the batch published nothing");
    assert!(history(&server, "stocks/msft").await.is_empty());
    assert!(history(&server, "news/x").await.is_empty());
    // Without a key, or with an unknown one, in any carrier.
    let body = json!({ "channel": "stocks/aapl", "data": 3 });
    publish(&server, None, &body).await.assert_error(401, "unauthorized");
    for carrier in CARRIERS {
        publish(&server, Some((carrier, "lh_unknown")), &body).await.assert_error(401, "unauthorized");
    }
    let reply = publish(&server, bearer(ingest), &body).await;
    assert_eq!(reply.status, 200, "the key as a bearer: {}", reply.text);
    assert_eq!(history(&server, "stocks/aapl").await.len(), 2);
    // Binary publishing names its channel in the query; its key still goes in the header.
    let binary = |path: &str| {
        reqwest::Client::new()
            .post(server.url(path))
            .header("content-type", "application/octet-stream")
            .bearer_auth(ingest)
            .body(vec![1u8, 2, 3])
    };
    let reply = send(binary("/api/publish?channel=stocks/bin")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    send(binary("/api/publish?channel=news/bin")).await.assert_error(403, "forbidden");
    let keyless = reqwest::Client::new()
        .post(server.url("/api/publish?channel=stocks/bin"))
        .header("content-type", "application/octet-stream")
        .body(vec![1u8, 2, 3]);
    send(keyless).await.assert_error(401, "unauthorized");
    assert_eq!(history(&server, "stocks/bin").await.len(), 1);
    assert!(history(&server, "news/bin").await.is_empty());
}

#[tokio::test]
async fn a_user_token_publishes_inside_its_grants() {
    let server = TestServer::with(secured("")).await;
    let alice = token(json!({ "publish": ["chat/{sub}/#"] }));
    let reply =
        publish(&server, bearer(&alice), &json!({ "channel": "chat/alice/room", "data": "hi" })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = publish(&server, bearer(&alice), &json!({ "channel": "chat/bob/room", "data": "hi" })).await;
    reply.assert_error(403, "forbidden");
    assert!(history(&server, "chat/bob/room").await.is_empty());
    // Subscribe grants do not allow publishing.
    let reader = token(json!({ "subscribe": ["#"] }));
    publish(&server, bearer(&reader), &json!({ "channel": "news/a", "data": 1 }))
        .await
        .assert_error(403, "forbidden");
    let expired = token(json!({ "publish": ["#"], "exp": now() - 3600 }));
    let reply = publish(&server, bearer(&expired), &json!({ "channel": "news/a", "data": 1 })).await;
    reply.assert_error(401, "token_expired");
    assert!(history(&server, "news/a").await.is_empty());
}

#[tokio::test]
async fn api_key_and_denied_prefixes_decide_who_publishes() {
    let collector = "lh_collector-key";
    let server = TestServer::with(secured(&format!(
        "{}[[auth.channels]]\nprefix = \"metrics\"\npublish = \"api_key\"\n\n\
         [[auth.channels]]\nprefix = \"audit\"\npublish = \"denied\"\n",
        api_key("collector", collector, &["metrics/#", "audit/#"], &[], false),
    )))
    .await;
    let user = token(json!({ "publish": ["#"] }));
    let cpu = json!({ "channel": "metrics/cpu", "data": 1 });
    publish(&server, bearer(&user), &cpu).await.assert_error(403, "forbidden");
    let reply = publish(&server, bearer(collector), &cpu).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let audit = json!({ "channel": "audit/log", "data": 1 });
    publish(&server, bearer(&user), &audit).await.assert_error(403, "forbidden");
    publish(&server, bearer(collector), &audit).await.assert_error(403, "forbidden");
    publish(&server, bearer(ADMIN_KEY), &audit).await.assert_error(403, "forbidden");
    assert_eq!(history(&server, "metrics/cpu").await.len(), 1);
    assert!(history(&server, "audit/log").await.is_empty());
    // Elsewhere the user token's grant applies as usual.
    let reply = publish(&server, bearer(&user), &json!({ "channel": "chat/x", "data": 1 })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // `$` channels stay read-only whoever asks.
    let presence = json!({ "channel": "$sys/presence", "data": 1 });
    for credential in [ADMIN_KEY, collector, user.as_str()] {
        publish(&server, bearer(credential), &presence).await.assert_error(403, "read_only_channel");
    }
}

/// BUG (see the report): `POST /api/publish` with a cookie credential from a foreign origin. A
/// JSON body sent as `text/plain` is a CORS "simple request" (no preflight), so a page on any
/// site can make a logged-in user's browser publish; CORS only hides the answer. The origin
/// check guards SSE, polls and WebSocket but not publishing.
#[tokio::test]
async fn a_cross_site_publish_carrying_the_cookie_is_refused() {
    let server = TestServer::with(secured(&format!("[auth.origins]\nallowed = [\"{APP_ORIGIN}\"]\n"))).await;
    let alice = token(json!({ "publish": ["chat/{sub}/#"] }));
    let forged = request(&server, Method::POST, "/api/publish", Some((Carrier::Cookie, &alice)))
        .header("origin", EVIL_ORIGIN)
        .header("content-type", "text/plain")
        .body(json!({ "channel": "chat/alice/room", "data": "forged" }).to_string());
    let reply = send(forged).await;
    let published = history(&server, "chat/alice/room").await;
    assert!(published.is_empty(), "a cross-site request published as alice: {published:?}");
    reply.assert_error(403, "origin_not_allowed");
}

// ---------------------------------------------------------------------------------------------
// 6. The admin endpoints

#[tokio::test]
async fn admin_endpoints_need_an_admin_credential_once_auth_is_on() {
    let plain_key = "lh_plain-publisher";
    let server = TestServer::with(secured(&api_key("plain", plain_key, &["#"], &["#"], false))).await;
    let user = token(json!({ "subscribe": ["#"], "publish": ["#"] }));
    let presence_reader = token(json!({ "subscribe": ["$sys/#"] }));
    for path in ["/api/channels", "/api/metrics", "/api/presence"] {
        send(get(&server, path, None)).await.assert_error(401, "unauthorized");
        send(get(&server, path, bearer(&user))).await.assert_error(403, "forbidden");
        send(get(&server, path, bearer(plain_key))).await.assert_error(403, "forbidden");
        let reply = send(get(&server, path, bearer(ADMIN_KEY))).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let reply = send(get(&server, path, Some((Carrier::Token, ADMIN_KEY)))).await;
        reply.assert_error(401, "unauthorized");
        assert!(reply.text.contains("Authorization"), "{path}: says where keys belong: {}", reply.text);
    }
    // Presence is for whoever may read `$sys/presence`; the rest stays admin-only.
    let reply = send(get(&server, "/api/presence", bearer(&presence_reader))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json()["connections"].is_number(), "{}", reply.text);
    send(get(&server, "/api/channels", bearer(&presence_reader))).await.assert_error(403, "forbidden");
    send(get(&server, "/api/metrics", bearer(&presence_reader))).await.assert_error(403, "forbidden");
    let refused = refused_counts(&server, bearer(ADMIN_KEY)).await;
    assert!(refused["forbidden"].as_u64().is_some_and(|n| n >= 8), "{refused}");
    assert!(refused["unauthorized"].as_u64().is_some_and(|n| n >= 3), "{refused}");
}

#[tokio::test]
async fn admin_endpoints_stay_open_in_anonymous_mode() {
    let server = TestServer::with(Config::default()).await;
    server.publish("news/a", json!(1)).await;
    for path in ["/api/channels", "/api/metrics", "/api/presence", "/api/channels/news/a/history"] {
        let reply = send(get(&server, path, None)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
    let reply = send(get(&server, "/api/metrics", None)).await;
    assert_eq!(reply.json()["refused"], json!({}), "{}", reply.text);
    for transport in [Transport::Sse, Transport::Poll] {
        admitted(&server, transport, &["#"], None).await;
        admitted(&server, transport, &["$sys/presence"], None).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Public and authenticated read rules

fn with_read_rules(required: &str) -> Config {
    secured(&format!(
        "[auth]\n{required}\n\n[[auth.channels]]\nprefix = \"public\"\nread = \"public\"\n\n\
         [[auth.channels]]\nprefix = \"members\"\nread = \"authenticated\"\n"
    ))
}

#[tokio::test]
async fn a_public_prefix_is_readable_without_a_token_when_auth_is_optional() {
    let server = TestServer::with(with_read_rules("required = false")).await;
    for transport in TRANSPORTS {
        admitted(&server, transport, &["public/x"], None).await;
        refused(&server, transport, &["private/x"], None).await.assert_error(403, "forbidden");
    }
    for transport in [Transport::Sse, Transport::Poll] {
        admitted(&server, transport, &["public/#"], None).await;
        refused(&server, transport, &["#"], None).await.assert_error(403, "forbidden");
        refused(&server, transport, &["public/x", "private/x"], None).await.assert_error(403, "forbidden");
    }
    // Optional does not mean "bad tokens become anonymous".
    let expired = token(json!({ "exp": now() - 3600 }));
    refused(&server, Transport::Sse, &["public/x"], bearer(&expired))
        .await
        .assert_error(401, "token_expired");
    refused(&server, Transport::Sse, &["public/x"], bearer("lh_unknown"))
        .await
        .assert_error(401, "unauthorized");
    // Anonymous callers still may not publish (no anonymous grants once auth is on).
    publish(&server, None, &json!({ "channel": "public/x", "data": 1 })).await.assert_error(403, "forbidden");
}

#[tokio::test]
async fn an_authenticated_prefix_admits_any_valid_credential() {
    let server = TestServer::with(with_read_rules("required = false")).await;
    let nobody_special = token(json!({}));
    let no_grants_key = "lh_key-without-grants";
    let server_with_key = TestServer::with(secured(&format!(
        "{}[[auth.channels]]\nprefix = \"members\"\nread = \"authenticated\"\n",
        api_key("bare", no_grants_key, &[], &[], false)
    )))
    .await;
    for transport in TRANSPORTS {
        admitted(&server, transport, &["members/chat"], bearer(&nobody_special)).await;
        admitted(&server_with_key, transport, &["members/chat"], bearer(no_grants_key)).await;
        // Without a credential (allowed here) the anonymous identity is refused with 403: the
        // credential is optional, the channel needs one. See the report on 401 vs 403.
        refused(&server, transport, &["members/chat"], None).await.assert_error(403, "forbidden");
        // A valid token without grants reads nothing else.
        refused(&server, transport, &["private/x"], bearer(&nobody_special))
            .await
            .assert_error(403, "forbidden");
    }
    // Once credentials are required, the missing one is the reason.
    let required = TestServer::with(with_read_rules("required = true")).await;
    for transport in TRANSPORTS {
        refused(&required, transport, &["members/chat"], None).await.assert_error(401, "unauthorized");
        // Documented: a public prefix needs `required = false` to let tokenless readers in.
        refused(&required, transport, &["public/x"], None).await.assert_error(401, "unauthorized");
        admitted(&required, transport, &["public/x"], bearer(&nobody_special)).await;
    }
}
