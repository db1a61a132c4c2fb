//! Credentials: none, bad ones, every carrier, MessagePack, expiry and `refresh`, and the token bugs.

use super::*;

// ---------------------------------------------------------------------------------------------
// 1. No credential
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn without_a_credential_the_upgrade_succeeds_then_closes_1008_unauthorized() {
    let server = TestServer::with(secured("")).await;
    let unauthorized = (1008, "unauthorized".to_owned());
    assert_eq!(Client::refused(&server, "", &[]).await, unauthorized, "no credential at all");
    // Empty carriers and other schemes are no credential either.
    assert_eq!(Client::refused(&server, "?token=", &[]).await, unauthorized, "empty ?token=");
    assert_eq!(
        Client::refused(&server, "", &[("authorization", "Bearer ")]).await,
        unauthorized,
        "empty bearer"
    );
    assert_eq!(
        Client::refused(&server, "", &[("authorization", "Basic dXNlcjpwYXNz")]).await,
        unauthorized,
        "basic auth is not a bearer token"
    );
    assert_eq!(
        Client::refused(&server, "", &[("cookie", "livehub_token=")]).await,
        unauthorized,
        "empty cookie"
    );
    // A credential that is not shaped like a JWT is taken for an API key, and none matches.
    assert_eq!(Client::refused(&server, "?token=not-a-key", &[]).await, unauthorized, "unknown API key");
}

// ---------------------------------------------------------------------------------------------
// 2. Bad tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_tokens_are_refused_with_their_documented_close_codes() {
    let mut config = secured("");
    config.auth.jwt.issuer = Some("https://id.livehub.test".to_owned());
    config.auth.jwt.audience = Some("livehub".to_owned());
    let server = TestServer::with(config).await;
    let good = |extra: Value| {
        let mut c = claims("alice", json!({ "iss": "https://id.livehub.test", "aud": "livehub" }));
        if let (Some(into), Value::Object(extra)) = (c.as_object_mut(), extra) {
            into.extend(extra);
        }
        c
    };

    // The baseline is accepted, so each refusal below is down to the one thing changed.
    Client::connected(&server, &q(&sign(SECRET, &good(json!({})))), &[]).await;
    Client::connected(&server, &q(&sign(SECRET, &good(json!({ "aud": ["other", "livehub"] })))), &[]).await;

    let unauthorized = (1008, "unauthorized".to_owned());
    let cases: Vec<(&str, String, (u16, String))> = vec![
        ("expired", sign(SECRET, &good(json!({ "exp": now() - 60 }))), (4003, "token_expired".to_owned())),
        (
            "not yet valid",
            sign(SECRET, &good(json!({ "nbf": now() + 3600 }))),
            (1008, "token_not_yet_valid".to_owned()),
        ),
        ("wrong signature", sign("another-secret", &good(json!({}))), unauthorized.clone()),
        ("wrong audience", sign(SECRET, &good(json!({ "aud": "someone-else" }))), unauthorized.clone()),
        ("wrong audiences", sign(SECRET, &good(json!({ "aud": ["a", "b"] }))), unauthorized.clone()),
        ("no audience", sign(SECRET, &good(json!({ "aud": null }))), unauthorized.clone()),
        ("wrong issuer", sign(SECRET, &good(json!({ "iss": "https://evil.test" }))), unauthorized.clone()),
        ("no issuer", sign(SECRET, &good(json!({ "iss": null }))), unauthorized.clone()),
        ("alg none", unsigned(&good(json!({}))), unauthorized.clone()),
        ("no exp (require_exp)", sign(SECRET, &good(json!({ "exp": null }))), unauthorized.clone()),
        ("garbage", "aaa.bbb.ccc".to_owned(), unauthorized.clone()),
    ];
    for (what, token, want) in &cases {
        assert_eq!(&Client::refused(&server, &q(token), &[]).await, want, "{what} in ?token=");
    }
    // `alg: none` also through the header, and with the signature of a real token kept.
    let none = unsigned(&good(json!({})));
    let bearer = format!("Bearer {none}");
    assert_eq!(Client::refused(&server, "", &[("authorization", &bearer)]).await, unauthorized, "alg none");
    let real = sign(SECRET, &good(json!({})));
    let signature = real.rsplit('.').next().expect("signature");
    assert_eq!(Client::refused(&server, &q(&format!("{none}{signature}")), &[]).await, unauthorized);
    // A payload changed under a valid signature.
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(good(json!({ "sub": "mallory", "subscribe": ["#"] })).to_string());
    assert_eq!(Client::refused(&server, &q(&parts.join(".")), &[]).await, unauthorized, "tampered payload");
}

// ---------------------------------------------------------------------------------------------
// 3. Carriers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_token_is_accepted_in_every_carrier() {
    let server = TestServer::with(secured("")).await;
    let token = token("alice", json!({ "subscribe": ["a/#"] }));
    let bearer = format!("Bearer {token}");
    let lower = format!("bearer {token}");
    let cookie = format!("theme=dark; livehub_token={token}; other=1");
    let carriers: Vec<(&str, String, Headers)> = vec![
        ("Authorization: Bearer", String::new(), vec![("authorization", &bearer)]),
        ("authorization: bearer", String::new(), vec![("authorization", &lower)]),
        ("?token=", format!("?token={token}"), vec![]),
        ("?access_token=", format!("?x=1&access_token={token}"), vec![]),
        ("cookie", String::new(), vec![("cookie", &cookie)]),
    ];
    for (id, (what, query, headers)) in (1..).zip(&carriers) {
        let mut client = Client::connected(&server, query, headers).await;
        // The connection carries alice's grants, not the (empty) anonymous ones.
        let reply = client.subscribe(id, "a/x").await;
        assert_eq!(reply["type"], "subscribed", "{what}: {reply}");
        client.forbidden(id + 100, "b/x").await;
    }
    // The header is looked at first: a bad bearer is not rescued by a good query token.
    let bad = format!("Bearer {}", sign("another-secret", &claims("alice", json!({}))));
    assert_eq!(
        Client::refused(&server, &q(&token), &[("authorization", &bad)]).await,
        (1008, "unauthorized".to_owned())
    );
}

#[tokio::test]
async fn messagepack_clients_get_the_same_refusals_and_denials() {
    let server = TestServer::with(secured("")).await;
    let msgpack = ("sec-websocket-protocol", "livehub.msgpack");
    assert_eq!(Client::refused(&server, "", &[msgpack]).await, (1008, "unauthorized".to_owned()));
    let expired = sign(SECRET, &claims("alice", json!({ "exp": now() - 60 })));
    assert_eq!(Client::refused(&server, &q(&expired), &[msgpack]).await, (4003, "token_expired".to_owned()));

    let alice = token("alice", json!({ "subscribe": ["a/#"], "publish": ["a/#"] }));
    let mut ws = Client::connected(&server, &q(&alice), &[msgpack]).await;
    assert!(ws.msgpack);
    ws.subscribed(1, "a/x").await;
    ws.forbidden(2, "b/x").await;
    ws.publish_forbidden(3, "b/x").await;
    ws.published(4, "a/x", json!({ "v": 1 })).await;
    assert_eq!(ws.message().await, ("a/x".to_owned(), json!({ "v": 1 })));
    let fresh = token("alice", json!({ "subscribe": ["a/#"] }));
    let ack = ws.request(json!({ "id": 5, "action": "refresh", "token": fresh })).await;
    assert_eq!((ack["type"].as_str(), ack["id"].as_u64()), (Some("ack"), Some(5)), "{ack}");
    let other = token("bob", json!({}));
    let reply = ws.request(json!({ "id": 6, "action": "refresh", "token": other })).await;
    assert_eq!(reply["code"], "forbidden", "{reply}");
    ws.ping(7).await;
}

// ---------------------------------------------------------------------------------------------
// 7. Expiry and refresh
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_expiring_on_a_live_connection_closes_it_with_4003() {
    let server = TestServer::with(secured("")).await;
    let exp = now() + 2;
    let short = token("alice", json!({ "exp": exp, "subscribe": ["a/#"] }));
    let mut ws = Client::connected(&server, &q(&short), &[]).await;
    ws.subscribed(1, "a/x").await;
    ws.ping(2).await;
    assert_eq!(ws.closed().await, (4003, "token_expired".to_owned()));
    // Closed for the expiry, not for something else: not (more than clock granularity) early.
    assert!(now() + 1 >= exp, "closed at the token's exp, not before");
}

#[tokio::test]
async fn refresh_before_expiry_keeps_the_connection_open() {
    let server = TestServer::with(secured("")).await;
    let mut publisher = Client::connected(&server, &q(&publisher_token()), &[]).await;
    let old_exp = now() + 2;
    let grants = json!({ "subscribe": ["a/#"] });
    let short = sign(SECRET, &claims("alice", json!({ "exp": old_exp, "subscribe": ["a/#"] })));
    let mut ws = Client::connected(&server, &q(&short), &[]).await;
    ws.subscribed(1, "a/x").await;

    let new_exp = now() + 3600;
    let fresh = sign(SECRET, &claims("alice", json!({ "exp": new_exp, "subscribe": grants["subscribe"] })));
    let ack = ws.request(json!({ "id": 2, "action": "refresh", "token": fresh })).await;
    assert_eq!(ack, json!({ "type": "ack", "id": 2, "expires": new_exp * 1000 }));

    sleep_past(old_exp).await;
    ws.ping(3).await;
    publisher.published(1, "a/x", json!("still here")).await;
    assert_eq!(ws.message().await, ("a/x".to_owned(), json!("still here")));
}

#[tokio::test]
async fn refresh_moves_the_expiry_to_the_new_token() {
    let server = TestServer::with(secured("")).await;
    let long = token("alice", json!({}));
    let mut ws = Client::connected(&server, &q(&long), &[]).await;
    // A refresh may also shorten the life of the connection.
    let exp = now() + 2;
    let short = sign(SECRET, &claims("alice", json!({ "exp": exp })));
    let ack = ws.request(json!({ "id": 1, "action": "refresh", "token": short })).await;
    assert_eq!(ack, json!({ "type": "ack", "id": 1, "expires": exp * 1000 }));
    assert_eq!(ws.closed().await, (4003, "token_expired".to_owned()));
}

#[tokio::test]
async fn refresh_for_another_subject_is_forbidden_and_the_old_expiry_stands() {
    let server = TestServer::with(secured("")).await;
    let exp = now() + 2;
    let short = sign(SECRET, &claims("alice", json!({ "exp": exp })));
    let mut ws = Client::connected(&server, &q(&short), &[]).await;
    let bob = token("bob", json!({ "subscribe": ["#"] }));
    let reply = ws.request(json!({ "id": 5, "action": "refresh", "token": bob })).await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str(), reply["id"].as_u64()),
        (Some("error"), Some("forbidden"), Some(5)),
        "{reply}"
    );
    ws.ping(6).await;
    // Still alice's grants (none), not bob's.
    ws.forbidden(7, "a/x").await;
    assert_eq!(ws.closed().await, (4003, "token_expired".to_owned()));
    assert!(now() + 1 >= exp, "closed at the old token's exp, not before");
}

#[tokio::test]
async fn refresh_with_a_bad_token_is_refused_and_the_connection_stays() {
    let server = TestServer::with(secured("")).await;
    let mut ws = Client::connected(&server, &q(&token("alice", json!({ "subscribe": ["a/#"] }))), &[]).await;
    ws.subscribed(1, "a/x").await;
    let cases = [
        ("wrong signature", json!(sign("another-secret", &claims("alice", json!({})))), "unauthorized"),
        ("expired", json!(sign(SECRET, &claims("alice", json!({ "exp": now() - 60 })))), "token_expired"),
        (
            "not yet valid",
            json!(sign(SECRET, &claims("alice", json!({ "nbf": now() + 3600 })))),
            "token_not_yet_valid",
        ),
        ("alg none", json!(unsigned(&claims("alice", json!({ "subscribe": ["#"] })))), "unauthorized"),
        ("missing", Value::Null, "bad_request"),
    ];
    for (id, (what, token, code)) in (10..).zip(cases) {
        let mut command = json!({ "id": id, "action": "refresh" });
        if !token.is_null() {
            command["token"] = token;
        }
        let reply = ws.request(command).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str(), reply["id"].as_u64()),
            (Some("error"), Some(code), Some(id)),
            "{what}: {reply}"
        );
    }
    ws.ping(20).await;
    ws.forbidden(21, "b/x").await; // The grants did not change.
}

#[tokio::test]
async fn refresh_that_no_longer_grants_a_channel_drops_that_subscription() {
    let server = TestServer::with(secured("")).await;
    let mut publisher = Client::connected(&server, &q(&publisher_token()), &[]).await;
    let before = token("alice", json!({ "subscribe": ["c/#", "d/#"] }));
    let mut ws = Client::connected(&server, &q(&before), &[]).await;
    ws.subscribed(1, "c/x").await;
    ws.subscribed(2, "d/x").await;
    ws.subscribed(3, "d/#").await;

    let after = token("alice", json!({ "subscribe": ["c/#"] }));
    ws.send(json!({ "id": 4, "action": "refresh", "token": after })).await;
    let mut dropped = Vec::new();
    let ack = loop {
        let m = ws.recv().await;
        if m["type"] == "ack" {
            break m;
        }
        assert_eq!(
            (m["type"].as_str(), m["code"].as_str(), m["id"].as_u64()),
            (Some("error"), Some("forbidden"), None),
            "{m}"
        );
        dropped.push(m["channel"].as_str().expect("channel").to_owned());
    };
    assert_eq!(ack["id"], 4);
    dropped.sort();
    assert_eq!(dropped, ["d/#", "d/x"], "one error per dropped subscription");

    publisher.published(1, "d/x", json!("gone")).await;
    publisher.published(2, "c/x", json!("kept")).await;
    assert_eq!(ws.message().await, ("c/x".to_owned(), json!("kept")));
    ws.ping(5).await;
    // And the dropped channel cannot be subscribed again.
    ws.forbidden(6, "d/x").await;
}

// ---------------------------------------------------------------------------------------------
// Bugs these tests found, fixed.
// ---------------------------------------------------------------------------------------------

/// A validly signed token whose `exp` is a huge (but finite, in-range for `u64`) NumericDate
/// panics in `Authenticator::verify_token_at` (`UNIX_EPOCH + Duration::from_secs(exp)` overflows
/// `SystemTime`), which kills the handshake handler and, on `refresh`, the connection task.
#[tokio::test]
async fn a_far_future_exp_does_not_crash_the_handshake_or_the_connection() {
    let server = TestServer::with(secured("")).await;
    let far = sign(SECRET, &json!({ "sub": "alice", "exp": 1e19, "subscribe": ["a/#"] }));
    // Either answer is acceptable (admitted as never expiring, or refused as a malformed time
    // claim); a dropped handshake is not.
    let mut client = Client::open(&server, &q(&far), &[]).await;
    match client.next_event().await {
        Event::Json(hello) => assert_eq!(hello["type"], "connected"),
        Event::Closed(code, reason) => assert_eq!((code, reason.as_str()), (1008, "unauthorized")),
    }
    let mut ws = Client::connected(&server, &q(&token("alice", json!({}))), &[]).await;
    let reply = ws.request(json!({ "id": 1, "action": "refresh", "token": far })).await;
    assert!(reply["type"] == "ack" || reply["code"] == "unauthorized", "{reply}");
    ws.ping(2).await;
}

/// Issue 6: exceeding a limit "yields the documented error or close code, and is counted in
/// metrics". The subscription limit, the channel-name length and the message size answer with
/// their codes, but `refused` in `/api/metrics` only counts `AuthError`s.
#[tokio::test]
async fn size_and_subscription_limits_are_counted_in_metrics() {
    let mut config = Config::default();
    config.limits.max_subscriptions = 1;
    config.limits.max_message_size = 1024;
    config.limits.max_channel_length = 255;
    let server = TestServer::with(config).await;
    let mut ws = Client::connected(&server, "", &[]).await;
    ws.subscribed(1, "a").await;
    let reply = ws.subscribe(2, "b").await;
    assert_eq!(reply["code"], "too_many_subscriptions", "{reply}");
    let long = "x".repeat(300);
    let reply = ws.subscribe(3, &long).await;
    assert_eq!(reply["code"], "invalid_channel", "{reply}");
    ws.send(json!({ "id": 4, "action": "ping", "pad": "x".repeat(4096) })).await;
    assert_eq!(ws.closed().await.0, 1009);

    let (_, body) = metrics(&server, None).await;
    let refused = body["refused"].as_object().expect("refused is an object");
    assert_eq!(refused.get("too_many_subscriptions"), Some(&json!(1)), "{body}");
    let total: u64 = refused.values().filter_map(Value::as_u64).sum();
    assert!(total >= 3, "each of the three limits is counted: {body}");
}

/// With no keys configured a credential cannot be checked, so a stray one (a cookie left by a
/// secured instance on another port of the same host) is ignored rather than locking anyone out.
#[tokio::test]
async fn an_open_server_ignores_stray_credentials() {
    let server = TestServer::start().await;
    let stray = token("alice", json!({}));
    let cookie = format!("livehub_token={stray}");
    let mut ws = Client::connected(&server, "?token=garbage", &[("cookie", &cookie)]).await;
    let reply = ws.subscribe(1, "anything/at/all").await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
}

/// `refresh` replaces a token with a newer one for the same user; it cannot turn an anonymous
/// or API-key connection into a user.
#[tokio::test]
async fn only_a_token_connection_can_be_refreshed() {
    let keys = api_key_toml("pub", PUBLISHER_KEY, "publish = [\"#\"]");
    let server = TestServer::with(secured(&format!("[auth]\nrequired = false\n{keys}"))).await;
    let user = token("alice", json!({ "subscribe": ["#"] }));
    let bearer = format!("Bearer {PUBLISHER_KEY}");
    for (query, headers) in [("", vec![]), ("", vec![("authorization", bearer.as_str())])] {
        let mut ws = Client::connected(&server, query, &headers).await;
        let reply = ws.request(json!({ "id": 7, "action": "refresh", "token": user })).await;
        assert_eq!(reply["code"], "forbidden", "{reply}");
        ws.ping(8).await;
    }
}

#[tokio::test]
async fn refresh_with_bad_tokens_spends_the_address_failure_budget() {
    // Two failures, then (practically) no refill: the test never depends on how fast it runs.
    let mut config = secured("");
    config.rate_limits.auth_failure_burst_per_ip = 2;
    config.rate_limits.auth_failures_per_sec_per_ip = 0.0001;
    let server = TestServer::with(config).await;
    let mut ws = Client::connected(&server, &q(&token("alice", json!({}))), &[]).await;
    let forged = sign("not-the-secret", &claims("alice", json!({})));
    for id in 1..=2 {
        let reply = ws.request(json!({ "id": id, "action": "refresh", "token": forged })).await;
        assert_eq!(reply["code"], "unauthorized", "attempt {id}: {reply}");
    }
    // A live connection is no free guessing loop: once the budget is spent, even the right
    // token is not looked at, and a new connection from the address is refused too.
    let good = token("alice", json!({}));
    let reply = ws.request(json!({ "id": 3, "action": "refresh", "token": good })).await;
    assert_eq!(reply["code"], "rate_limited", "{reply}");
    ws.ping(4).await;
    assert_eq!(Client::refused(&server, &q(&good), &[]).await.1, "rate_limited");
}
