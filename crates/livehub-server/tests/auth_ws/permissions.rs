//! Permissions: subscribe, publish and history against grants, roles, `{sub}`, channel rules and API keys.

use super::*;

// ---------------------------------------------------------------------------------------------
// 4. Subscribe permissions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn subscriptions_are_checked_against_the_token_patterns() {
    let server = TestServer::with(secured("")).await;
    let mut publisher = Client::connected(&server, &q(&publisher_token()), &[]).await;
    let alice = token("alice", json!({ "subscribe": ["a/#", "user/{sub}/#"] }));
    let mut ws = Client::connected(&server, &q(&alice), &[]).await;

    ws.subscribed(1, "a/x").await;
    ws.subscribed(2, "a/+").await;
    ws.subscribed(3, "a/#").await;
    ws.subscribed(4, "user/alice/inbox").await;
    ws.subscribed(5, "user/alice/#").await;
    ws.forbidden(6, "b/x").await;
    ws.ping(7).await;
    // Wildcards that could reach a channel outside the grants.
    ws.forbidden(8, "#").await;
    ws.forbidden(9, "+/x").await;
    ws.forbidden(10, "+/+").await;
    ws.forbidden(11, "user/+/inbox").await;
    ws.forbidden(12, "user/#").await;
    ws.forbidden(13, "user/bob/inbox").await;
    ws.forbidden(14, "$sys/presence").await;
    ws.ping(15).await;

    // One command, one answer per channel, in order.
    ws.send(json!({ "id": 16, "action": "subscribe", "channels": ["a/m", "b/m", "user/alice/m"] })).await;
    let replies = [ws.recv().await, ws.recv().await, ws.recv().await];
    assert_eq!(
        (replies[0]["type"].as_str(), replies[0]["channel"].as_str()),
        (Some("subscribed"), Some("a/m"))
    );
    assert_forbidden(&replies[1], 16, "b/m");
    assert_eq!(replies[2]["type"], "subscribed", "{}", replies[2]);

    // Nothing from the refused channels arrives; the allowed ones do.
    publisher.published(1, "b/x", json!("secret")).await;
    publisher.published(2, "user/bob/inbox", json!("for bob")).await;
    publisher.published(3, "a/x", json!("hello")).await;
    let (channel, data) = ws.message().await;
    assert_eq!((channel.as_str(), data), ("a/x", json!("hello")));
}

#[tokio::test]
async fn a_refusal_says_nothing_about_whether_the_channel_exists() {
    let server = TestServer::with(secured("")).await;
    let mut publisher = Client::connected(&server, &q(&publisher_token()), &[]).await;
    publisher.published(1, "b/exists", json!(1)).await;
    let mut ws = Client::connected(&server, &q(&token("alice", json!({ "subscribe": ["a/#"] }))), &[]).await;
    let mut answers = Vec::new();
    for (id, channel) in [(1, "b/exists"), (1, "b/missing")] {
        let mut sub = ws.subscribe(id, channel).await;
        let mut history = ws.request(json!({ "id": id, "action": "history", "channel": channel })).await;
        for reply in [&mut sub, &mut history] {
            reply.as_object_mut().expect("object").remove("channel");
        }
        answers.push((sub, history));
    }
    assert_eq!(answers[0], answers[1], "same answers for an existing and a missing channel");
}

#[tokio::test]
async fn roles_from_the_configuration_grant_through_the_roles_claim() {
    let config = secured(
        r##"
[auth.roles.admin]
subscribe = ["#"]
publish = ["#"]
[auth.roles.reader]
subscribe = ["news/#", "home/{sub}/#"]
"##,
    );
    let server = TestServer::with(config).await;

    let mut admin = Client::connected(&server, &q(&token("root", json!({ "roles": ["admin"] }))), &[]).await;
    admin.subscribed(1, "#").await;
    admin.subscribed(2, "anything/at/all").await;
    admin.forbidden(3, "$sys/presence").await; // `#` never reaches `$` channels.
    admin.published(4, "news/today", json!("headline")).await;

    // `roles` may be a single string.
    let mut reader = Client::connected(&server, &q(&token("rita", json!({ "roles": "reader" }))), &[]).await;
    reader.subscribed(1, "news/#").await;
    reader.subscribed(2, "home/rita/lights").await;
    reader.forbidden(3, "home/root/lights").await;
    reader.forbidden(4, "sports/x").await;
    reader.publish_forbidden(5, "news/today").await;

    // A role the configuration does not know grants nothing.
    let mut stranger =
        Client::connected(&server, &q(&token("sam", json!({ "roles": ["superuser", "admin2"] }))), &[]).await;
    stranger.forbidden(1, "news/today").await;
    stranger.forbidden(2, "#").await;
}

#[tokio::test]
async fn a_subject_that_is_not_one_plain_level_gets_nothing_from_a_sub_placeholder() {
    let server = TestServer::with(secured("")).await;
    let grants = json!({ "subscribe": ["user/{sub}/#"], "publish": ["user/{sub}/out"] });
    for (i, sub) in (1..).zip(["+", "#", "bob/x", "$sys", ""]) {
        let token = sign(SECRET, &claims(sub, grants.clone()));
        let mut ws = Client::connected(&server, &q(&token), &[]).await;
        ws.forbidden(i, "user/bob/inbox").await;
        ws.forbidden(i, "user/+/inbox").await;
        ws.forbidden(i, "user/bob/x/inbox").await;
        ws.publish_forbidden(i, "user/bob/out").await;
    }
    // A token without a subject gets nothing from it either.
    let token = sign(SECRET, &json!({ "exp": now() + 3600, "subscribe": ["user/{sub}/#"] }));
    let mut ws = Client::connected(&server, &q(&token), &[]).await;
    ws.forbidden(1, "user/bob/inbox").await;
}

// ---------------------------------------------------------------------------------------------
// 5. Publish and history permissions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn publishing_and_history_are_checked_against_the_token_patterns() {
    let server = TestServer::with(secured("")).await;
    let mut watcher = Client::connected(&server, &q(&publisher_token()), &[]).await;
    watcher.subscribed(1, "#").await;

    let alice = token("alice", json!({ "subscribe": ["a/#"], "publish": ["a/pub/#", "user/{sub}/out"] }));
    let mut ws = Client::connected(&server, &q(&alice), &[]).await;
    let ack = ws.published(1, "a/pub/x", json!({ "v": 1 })).await;
    assert_eq!(ack["offset"], 1);
    ws.publish_forbidden(2, "a/x").await;
    ws.publish_forbidden(3, "b/x").await;
    ws.published(4, "user/alice/out", json!("mine")).await;
    ws.publish_forbidden(5, "user/bob/out").await;
    // `$` channels are read-only for everyone, whatever the grants.
    let sys = ws.publish(6, "$sys/presence", json!({})).await;
    assert_eq!(
        (sys["type"].as_str(), sys["code"].as_str()),
        (Some("error"), Some("read_only_channel")),
        "{sys}"
    );
    ws.ping(7).await;

    // The refused publications were not stored: the watcher sees only the two accepted ones.
    assert_eq!(watcher.message().await, ("a/pub/x".to_owned(), json!({ "v": 1 })));
    assert_eq!(watcher.message().await, ("user/alice/out".to_owned(), json!("mine")));
    watcher.ping(2).await;

    // History follows the read grants.
    let history = ws.request(json!({ "id": 8, "action": "history", "channel": "a/pub/x" })).await;
    assert_eq!(history["type"], "history", "{history}");
    assert_eq!(history["publications"].as_array().map(Vec::len), Some(1));
    let history = ws.request(json!({ "id": 9, "action": "history", "channel": "user/alice/out" })).await;
    assert_forbidden(&history, 9, "user/alice/out"); // Publishing there does not grant reading it.
    let history = ws.request(json!({ "id": 10, "action": "history", "channel": "b/x" })).await;
    assert_forbidden(&history, 10, "b/x");

    // A token without publish grants cannot publish anywhere.
    let reader = token("rita", json!({ "subscribe": ["#"] }));
    let mut reader = Client::connected(&server, &q(&reader), &[]).await;
    reader.publish_forbidden(1, "a/pub/x").await;
    reader.publish_forbidden(2, "rita").await;
    reader.ping(3).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Channel rules and API keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn channel_rules_and_api_keys_over_websocket() {
    let mut config = secured(&format!(
        r##"
[[auth.channels]]
prefix = "public"
read = "public"
[[auth.channels]]
prefix = "members"
read = "authenticated"
[[auth.channels]]
prefix = "ingest"
publish = "api_key"
[[auth.channels]]
prefix = "locked"
publish = "denied"
{}"##,
        api_key_toml("ingest", PUBLISHER_KEY, r##"publish = ["ingest/#", "locked/#", "public/#"]"##)
    ));
    config.auth.required = Some(false);
    let server = TestServer::with(config).await;

    // Without a credential: public reads only.
    let mut guest = Client::connected(&server, "", &[]).await;
    guest.subscribed(1, "public/x").await;
    guest.subscribed(1, "public").await; // The prefix covers itself.
    guest.forbidden(1, "publicity").await; // … and not other names that start with it.
    guest.subscribed(2, "public/#").await;
    guest.forbidden(3, "private/x").await;
    guest.forbidden(4, "members/chat").await;
    guest.forbidden(5, "#").await;
    guest.forbidden(6, "+/x").await; // Reaches `public/x`, but also `private/x`.
    guest.publish_forbidden(7, "public/x").await;
    guest.ping(8).await;

    // An API key as a bearer credential on the WebSocket.
    let bearer = format!("Bearer {PUBLISHER_KEY}");
    let mut key = Client::connected(&server, "", &[("authorization", &bearer)]).await;
    key.published(1, "ingest/prices", json!(1)).await;
    key.publish_forbidden(2, "locked/x").await; // `denied` even with a matching pattern.
    key.publish_forbidden(3, "other/x").await; // Outside the key's patterns.
    key.published(4, "public/x", json!("for everyone")).await;
    key.subscribed(5, "members/chat").await; // Any authenticated identity reads `members`.
    key.forbidden(6, "ingest/prices").await; // The key has no subscribe grants there.
    assert_eq!(guest.message().await, ("public/x".to_owned(), json!("for everyone")));

    // A user token with matching publish grants: refused on `api_key` and `denied` prefixes.
    let user = token("ursula", json!({ "publish": ["ingest/#", "locked/#", "open/#"] }));
    let mut user = Client::connected(&server, &q(&user), &[]).await;
    user.publish_forbidden(1, "ingest/prices").await;
    user.publish_forbidden(2, "locked/x").await;
    user.published(3, "open/x", json!(true)).await;
    user.subscribed(4, "members/chat").await;
    user.forbidden(5, "open/x").await;

    // A wrong API key is no credential.
    let wrong = "Bearer lh_not_the_right_key";
    assert_eq!(
        Client::refused(&server, "", &[("authorization", wrong)]).await,
        (1008, "unauthorized".to_owned()),
        "a wrong key is refused even where anonymous connections are allowed"
    );
}
