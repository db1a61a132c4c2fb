//! One suite over every transport: each case is written once, as an async fn taking its row, and
//! runs as one test per row (`case::sse`, `case::ws_json::by_rest`, …).
//!
//! Rows: subscribers over WebSocket JSON, WebSocket MessagePack, SSE and long polling; publishers
//! over WebSocket JSON, WebSocket MessagePack and the REST API. Adding a transport adds a line to
//! [`for_each_subscriber`] or [`for_each_publisher`] (and its client to `common/rows.rs`), never a
//! copy of a case. A case that cannot apply to a row says so in its table entry, where the row
//! becomes an ignored test whose reason is printed with the results.

mod common;
// Only this suite uses the rows; `common/mod.rs` is compiled into every test binary.
#[path = "common/rows.rs"]
mod rows;

use std::collections::BTreeMap;

use base64::Engine;
use common::{eventually, TestServer};
use livehub_server::Config;
use rows::{Format, Msg, Position, Pub, Publisher, Refusal, Subscriber, Transport};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Calls `$m!(…, name Row)` for each subscriber row.
macro_rules! for_each_subscriber {
    ($m:ident ! ($($args:tt)*)) => {
        $m!($($args)* ws_json WsJson);
        $m!($($args)* ws_msgpack WsMsgpack);
        $m!($($args)* sse Sse);
        $m!($($args)* long_poll LongPoll);
    };
}

/// Calls `$m!(…, name Row)` for each publisher row.
macro_rules! for_each_publisher {
    ($m:ident ! ($($args:tt)*)) => {
        $m!($($args)* by_ws_json WsJson);
        $m!($($args)* by_ws_msgpack WsMsgpack);
        $m!($($args)* by_rest Rest);
    };
}

/// `case(Transport)` as one test per subscriber row. A row listed in `skip` becomes an ignored
/// test with the reason given, so a gap in the table is visible in every test run.
macro_rules! per_subscriber {
    ($case:ident $(, skip { $($skip:ident : $why:literal),+ $(,)? })?) => {
        per_subscriber!(@ ($) $case [$($($skip : $why),+)?]);
    };
    (@ ($d:tt) $case:ident [$($skip:ident : $why:literal),*]) => {
        mod $case {
            macro_rules! row {
                $( ($skip $d row:ident) => {
                    #[tokio::test]
                    #[ignore = $why]
                    async fn $skip() {}
                }; )*
                ($d name:ident $d row:ident) => {
                    #[tokio::test]
                    async fn $d name() {
                        super::$case(crate::rows::Transport::$d row).await
                    }
                };
            }
            for_each_subscriber!(row!());
        }
    };
}

/// `case(Publisher)` as one test per publisher row.
macro_rules! per_publisher {
    ($case:ident) => {
        mod $case {
            for_each_publisher!(publisher_test!($case));
        }
    };
}

macro_rules! publisher_test {
    ($case:ident $name:ident $row:ident) => {
        #[tokio::test]
        async fn $name() {
            super::$case(crate::rows::Publisher::$row).await
        }
    };
}

/// `case(Transport, Publisher)` as one test per subscriber row and publisher row:
/// `case::sse::by_ws_msgpack`.
macro_rules! per_pair {
    ($case:ident) => {
        mod $case {
            for_each_subscriber!(pair_subscriber!($case));
        }
    };
}

macro_rules! pair_subscriber {
    ($case:ident $name:ident $row:ident) => {
        mod $name {
            for_each_publisher!(pair_test!($case $row));
        }
    };
}

macro_rules! pair_test {
    ($case:ident $subscriber:ident $name:ident $publisher:ident) => {
        #[tokio::test]
        async fn $name() {
            super::super::$case(crate::rows::Transport::$subscriber, crate::rows::Publisher::$publisher).await
        }
    };
}

// The table: every case, and the rows it cannot apply to.

per_pair!(live_publications_arrive_in_order);
per_pair!(recovery_after_a_gap_returns_exactly_what_was_missed);
per_subscriber!(latest_comes_first_then_live_ones);
per_subscriber!(recovery_from_a_position_history_no_longer_holds_sends_the_latest);
per_subscriber!(recovery_from_another_epoch_is_not_recovered);
per_subscriber!(an_exact_channel_and_a_matching_pattern_deliver_each_publication_once);
per_subscriber!(a_pattern_recovers_the_concrete_channels_named);
per_subscriber!(presence_counts_each_long_lived_subscriber);
per_subscriber!(an_invalid_channel_is_refused_and_the_subscriber_stays_usable);
per_subscriber!(
    a_bad_cursor_is_refused_400,
    skip {
        ws_json: "a WebSocket resumes from positions in `recover`, not a cursor",
        ws_msgpack: "a WebSocket resumes from positions in `recover`, not a cursor",
    }
);
per_subscriber!(
    malformed_commands_are_answered_and_the_connection_stays_up,
    skip {
        sse: "SSE takes no commands: its one request is checked by the invalid channel and bad cursor cases",
        long_poll:
            "long polls take no commands: each request is checked by the invalid channel and bad cursor cases",
    }
);
per_publisher!(publish_answers_the_position_and_keys_make_it_idempotent);
per_publisher!(history_reads_after_a_position_or_the_newest);
per_publisher!(refused_publishes_name_the_code_and_the_publisher_stays_usable);

/// Data that tells publications apart and must survive every encoding unchanged.
fn n(i: u64) -> Value {
    json!({ "n": i, "text": "ä \"quoted\" \\ /" })
}

/// The publication `i` of `channel` as a subscriber must get it.
fn msg(channel: &str, i: u64, offset: u64, epoch: &str) -> Msg {
    Msg { channel: channel.to_owned(), data: n(i), offset, epoch: epoch.to_owned() }
}

/// A position to resume from.
fn at(channel: &str, offset: u64, epoch: &str) -> Position {
    (channel.to_owned(), offset, epoch.to_owned())
}

/// Offsets per channel, in the order received: the order across channels is not promised.
fn by_channel(msgs: &[Msg]) -> BTreeMap<&str, Vec<u64>> {
    let mut out: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for m in msgs {
        out.entry(m.channel.as_str()).or_default().push(m.offset);
    }
    out
}

/// A server whose channels keep at most `size` publications.
async fn server_with_history(size: usize) -> TestServer {
    let mut config = Config::default();
    config.history.size = size;
    TestServer::with(config).await
}

async fn live_publications_arrive_in_order(row: Transport, by: Publisher) {
    let server = TestServer::start().await;
    let mut sub = Subscriber::open(&server, row, &["live/a"], &[], false).await;
    let start = sub.start("live/a").clone();
    assert_eq!(start.offset, 0, "{start:?}");
    assert_ne!(start.recovered, Some(true), "nothing was recovered: {start:?}");
    let mut publisher = Pub::connect(&server, by).await;
    let mut published = Vec::new();
    for i in 1..=5 {
        published.push(publisher.put("live/a", n(i)).await);
    }
    let got = sub.take(5).await;
    let want: Vec<Msg> =
        published.iter().zip(1..).map(|(p, i)| msg("live/a", i, p.offset, &p.epoch)).collect();
    assert_eq!(got, want);
    let offsets: Vec<u64> = published.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [1, 2, 3, 4, 5]);
    assert!(published.iter().all(|p| p.epoch == start.epoch), "the stream's epoch: {start:?} {published:?}");
}

async fn recovery_after_a_gap_returns_exactly_what_was_missed(row: Transport, by: Publisher) {
    let server = TestServer::start().await;
    let mut publisher = Pub::connect(&server, by).await;
    let mut sub = Subscriber::open(&server, row, &["gap/a"], &[], false).await;
    let epoch = publisher.put("gap/a", n(1)).await.epoch;
    publisher.put("gap/a", n(2)).await;
    assert_eq!(sub.take(2).await, [msg("gap/a", 1, 1, &epoch), msg("gap/a", 2, 2, &epoch)]);
    let positions = sub.positions();
    assert_eq!(positions, [at("gap/a", 2, &epoch)]);
    drop(sub);
    for i in 3..=5 {
        publisher.put("gap/a", n(i)).await;
    }
    let mut sub = Subscriber::open(&server, row, &["gap/a"], &positions, false).await;
    let start = sub.start("gap/a");
    assert_eq!((start.offset, start.epoch.as_str(), start.recovered), (5, epoch.as_str(), Some(true)));
    let missed: Vec<Msg> = (3..=5).map(|i| msg("gap/a", i, i, &epoch)).collect();
    assert_eq!(sub.take(3).await, missed);
    // Then live ones, with nothing of the replay repeated in between.
    publisher.put("gap/a", n(6)).await;
    assert_eq!(sub.next().await, msg("gap/a", 6, 6, &epoch));
    // Resuming with nothing missed recovers too; a long poll's `204` has no body to say so in.
    let positions = sub.positions();
    drop(sub);
    let sub = Subscriber::open(&server, row, &["gap/a"], &positions, false).await;
    let said = if row == Transport::LongPoll { None } else { Some(true) };
    assert_eq!(sub.start("gap/a"), &rows::Start { offset: 6, epoch, recovered: said });
}

async fn latest_comes_first_then_live_ones(row: Transport) {
    let server = TestServer::start().await;
    let mut publisher = Pub::connect(&server, Publisher::Rest).await;
    for i in 1..=3 {
        publisher.put("latest/a", n(i)).await;
    }
    let mut sub = Subscriber::open(&server, row, &["latest/a"], &[], true).await;
    let epoch = sub.start("latest/a").epoch.clone();
    assert_eq!(sub.start("latest/a").offset, 3);
    assert_eq!(sub.next().await, msg("latest/a", 3, 3, &epoch));
    publisher.put("latest/a", n(4)).await;
    assert_eq!(sub.next().await, msg("latest/a", 4, 4, &epoch));
    // Without `latest`, a stream starts at the position and gets only what follows.
    let mut plain = Subscriber::open(&server, row, &["latest/a"], &[], false).await;
    assert_eq!(plain.start("latest/a").offset, 4);
    publisher.put("latest/a", n(5)).await;
    assert_eq!(plain.next().await, msg("latest/a", 5, 5, &epoch));
}

async fn recovery_from_a_position_history_no_longer_holds_sends_the_latest(row: Transport) {
    let server = server_with_history(2).await;
    let mut publisher = Pub::connect(&server, Publisher::Rest).await;
    let mut epoch = String::new();
    for i in 1..=5 {
        epoch = publisher.put("lost/a", n(i)).await.epoch;
    }
    let mut sub = Subscriber::open(&server, row, &["lost/a"], &[at("lost/a", 1, &epoch)], false).await;
    let start = sub.start("lost/a");
    assert_eq!((start.offset, start.recovered), (5, Some(false)), "{start:?}");
    assert_eq!(sub.next().await, msg("lost/a", 5, 5, &epoch));
    publisher.put("lost/a", n(6)).await;
    assert_eq!(sub.next().await, msg("lost/a", 6, 6, &epoch), "live ones follow the latest");
    // A position in the future cannot be vouched for either.
    let mut ahead = Subscriber::open(&server, row, &["lost/a"], &[at("lost/a", 99, &epoch)], false).await;
    let start = ahead.start("lost/a");
    assert_eq!((start.offset, start.recovered), (6, Some(false)), "{start:?}");
    assert_eq!(ahead.next().await, msg("lost/a", 6, 6, &epoch));
}

async fn recovery_from_another_epoch_is_not_recovered(row: Transport) {
    // History keeps three: `epoch/whole` still holds its whole epoch, `epoch/latest` does not.
    let server = server_with_history(3).await;
    let mut publisher = Pub::connect(&server, Publisher::Rest).await;
    let whole = (1..=3).map(|i| ("epoch/whole", i));
    let latest = (1..=5).map(|i| ("epoch/latest", i));
    let mut epochs = BTreeMap::new();
    for (channel, i) in whole.chain(latest) {
        epochs.insert(channel, publisher.put(channel, n(i)).await.epoch);
    }
    let positions = [at("epoch/whole", 57, "before-restart"), at("epoch/latest", 2, "before-restart")];
    let mut sub = Subscriber::open(&server, row, &["epoch/whole", "epoch/latest"], &positions, false).await;
    for (channel, offset) in [("epoch/whole", 3), ("epoch/latest", 5)] {
        let start = sub.start(channel);
        assert_eq!((start.offset, &start.epoch, start.recovered), (offset, &epochs[channel], Some(false)));
    }
    let got = sub.take(4).await;
    let mut want = BTreeMap::new();
    want.insert("epoch/whole", vec![1, 2, 3]);
    want.insert("epoch/latest", vec![5]);
    assert_eq!(by_channel(&got), want, "the whole new epoch where history has it, else the latest: {got:?}");
    for m in &got {
        assert_eq!((&m.data, &m.epoch), (&n(m.offset), &epochs[m.channel.as_str()]), "{m:?}");
    }
    publisher.put("epoch/latest", n(6)).await;
    assert_eq!(sub.next().await, msg("epoch/latest", 6, 6, &epochs["epoch/latest"]));
}

async fn an_exact_channel_and_a_matching_pattern_deliver_each_publication_once(row: Transport) {
    let server = TestServer::start().await;
    let mut publisher = Pub::connect(&server, Publisher::Rest).await;
    let mut exact_first = Subscriber::open(&server, row, &["once/a", "once/+"], &[], false).await;
    let mut pattern_first = Subscriber::open(&server, row, &["once/+", "once/a"], &[], false).await;
    // One at a time: a copy of any of them would come in place of the next one.
    for (channel, i) in [("once/a", 1), ("once/b", 1), ("once/a", 2)] {
        let got =
            publish_live(&server, &mut publisher, &mut [&mut exact_first, &mut pattern_first], channel, i)
                .await;
        let published = publisher.history(channel, None, Some(1)).await.expect("history").publications;
        assert_eq!(got, [published[0].clone(), published[0].clone()], "{channel} {i}");
    }
    // A backlog: now both channels are known to every row, so none waits for a poll to be held.
    for (channel, i) in [("once/a", 3), ("once/b", 2), ("once/a", 4), ("once/b", 3)] {
        publisher.put(channel, n(i)).await;
    }
    let mut want = BTreeMap::new();
    want.insert("once/a", vec![3, 4]);
    want.insert("once/b", vec![2, 3]);
    for sub in [&mut exact_first, &mut pattern_first] {
        let got = sub.take(4).await;
        assert_eq!(by_channel(&got), want, "{got:?}");
    }
    // Had anything of the backlog come twice, it would come before this.
    let marker = publisher.put("once/b", n(4)).await;
    for sub in [&mut exact_first, &mut pattern_first] {
        assert_eq!(sub.next().await, msg("once/b", 4, 4, &marker.epoch));
    }
}

async fn a_pattern_recovers_the_concrete_channels_named(row: Transport) {
    let server = TestServer::start().await;
    let mut publisher = Pub::connect(&server, Publisher::Rest).await;
    publisher.put("named/a", n(1)).await;
    let seen = publisher.put("named/a", n(2)).await;
    publisher.put("named/a", n(3)).await;
    publisher.put("named/a", n(4)).await;
    let unseen = publisher.put("named/b", n(1)).await;
    let positions = [at("named/a", 2, &seen.epoch)];
    let mut sub = Subscriber::open(&server, row, &["named/+"], &positions, false).await;
    let start = sub.start("named/a");
    assert_eq!((start.offset, start.recovered), (4, Some(true)), "{start:?}");
    assert!(!sub.has_start("named/b"), "a pattern cannot recover a channel the client never saw");
    assert_eq!(sub.take(2).await, [msg("named/a", 3, 3, &seen.epoch), msg("named/a", 4, 4, &seen.epoch)]);
    let got = publish_live(&server, &mut publisher, &mut [&mut sub], "named/b", 2).await;
    assert_eq!(got, [msg("named/b", 2, 2, &unseen.epoch)], "named/b starts live, without its past");
}

/// Publishes `n(i)` on `channel` while each of `subs` listens, and returns what each got next.
///
/// A long poll listens only while it is held: a channel that only a pattern selects is not in
/// the poller's cursor until it has seen it, so a publication on it between two polls is not
/// recovered by the next one (a pattern recovers only the channels its cursor names). So the
/// publication waits until every poll is held.
async fn publish_live(
    server: &TestServer,
    publisher: &mut Pub,
    subs: &mut [&mut Subscriber],
    channel: &str,
    i: u64,
) -> Vec<Msg> {
    let polls = subs.iter().filter(|s| s.is_long_poll()).count() as u64;
    let publish = async {
        if polls > 0 {
            server.wait_for_held_polls(polls).await;
        }
        publisher.put(channel, n(i)).await
    };
    let receive = futures_util::future::join_all(subs.iter_mut().map(|s| s.next()));
    let (got, _) = tokio::join!(receive, publish);
    got
}

async fn presence_counts_each_long_lived_subscriber(row: Transport) {
    let server = TestServer::start().await;
    let mut sub = Subscriber::open(&server, row, &["presence/a"], &[], false).await;
    let Some(transport) = row.in_presence() else {
        // A long-polling client counts as a connection (for a while after each poll, too), but
        // its channels are not subscriptions: it holds none between requests.
        let held = tokio::spawn(async move { sub.next().await });
        server.wait_for_held_polls(1).await;
        let poller = json!({ "connections": 1, "transports": { "long-polling": 1 }, "subscriptions": 0, "channels": {} });
        assert_eq!(server.presence().await, poller);
        let published = Pub::connect(&server, Publisher::Rest).await.put("presence/a", n(1)).await;
        let got = held.await.expect("the held poll");
        assert_eq!(got, msg("presence/a", 1, 1, &published.epoch));
        return;
    };
    let presence = server.presence().await;
    let counted = json!({
        "connections": 1,
        "transports": { transport: 1 },
        "subscriptions": 1,
        "channels": { "presence/a": 1 },
    });
    assert_eq!(presence, counted);
    drop(sub);
    eventually("the subscriber to leave presence", || async {
        (server.presence().await["connections"] == 0).then_some(())
    })
    .await;
}

async fn an_invalid_channel_is_refused_and_the_subscriber_stays_usable(row: Transport) {
    let server = TestServer::start().await;
    let mut sub = Subscriber::connect(&server, row).await;
    let refused = Refusal { code: "invalid_channel".into(), status: row.is_http().then_some(400) };
    let long = "x".repeat(livehub_core::DEFAULT_MAX_CHANNEL_LEN + 1);
    for bad in ["a\0b", "a/#/b", "a+", "#x", long.as_str()] {
        assert_eq!(sub.subscribe(&[bad], &[], false).await, Err(refused.clone()), "{bad}");
    }
    sub.subscribe(&["valid/a"], &[], false).await.expect("a valid channel after the refusals");
    let published = Pub::connect(&server, Publisher::Rest).await.put("valid/a", n(1)).await;
    assert_eq!(sub.next().await, msg("valid/a", 1, 1, &published.epoch));
}

async fn a_bad_cursor_is_refused_400(row: Transport) {
    let server = TestServer::start().await;
    let mut sub = Subscriber::connect(&server, row).await;
    let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    let bad = [
        "!!!".to_owned(),
        b64("cursor/a not-an-offset e1"),
        b64("cursor/a 1"),
        b64("a\0b 1 e1"),
        "A".repeat(livehub_server::MAX_CURSOR_LEN + 1),
    ];
    let refused = Refusal { code: "bad_cursor".into(), status: Some(400) };
    for cursor in &bad {
        assert_eq!(
            sub.subscribe_with_cursor(&["cursor/a"], cursor, false).await,
            Err(refused.clone()),
            "{cursor}"
        );
    }
    sub.subscribe(&["cursor/a"], &[], false).await.expect("a stream without the cursor");
    let published = Pub::connect(&server, Publisher::Rest).await.put("cursor/a", n(1)).await;
    assert_eq!(sub.next().await, msg("cursor/a", 1, 1, &published.epoch));
}

async fn malformed_commands_are_answered_and_the_connection_stays_up(row: Transport) {
    let server = TestServer::start().await;
    let mut sub = Subscriber::connect(&server, row).await;
    let ws = sub.ws();
    let ping = json!({ "action": "ping" });
    let (garbage, other_type) = match ws.format() {
        Format::Json => {
            (Message::text("{not json"), Message::binary(rmp_serde::to_vec_named(&ping).expect("encode")))
        }
        Format::MessagePack => (Message::binary(vec![0xc1]), Message::text(ping.to_string())),
    };
    let error = |code: &str, id: Option<u64>| {
        let mut e = json!({ "type": "error", "code": code });
        if let Some(id) = id {
            e["id"] = id.into();
        }
        e
    };
    let without_message = |mut reply: Value| {
        assert!(reply["message"].is_string(), "{reply}");
        reply.as_object_mut().map(|o| o.remove("message"));
        reply
    };
    ws.send_raw(garbage).await;
    assert_eq!(without_message(ws.reply().await), error("invalid_message", None));
    ws.send_raw(other_type).await;
    assert_eq!(without_message(ws.reply().await), error("bad_request", None));
    let id = ws.command(json!({ "action": "dance" })).await;
    assert_eq!(without_message(ws.reply().await), error("unknown_action", Some(id)));
    let id = ws.command(json!({ "action": "publish", "channel": "still/a" })).await;
    assert_eq!(without_message(ws.reply().await), error("bad_request", Some(id)), "publish without data");
    let id = ws.command(ping).await;
    assert_eq!(ws.reply().await, json!({ "type": "pong", "id": id }));
    sub.subscribe(&["still/a"], &[], false).await.expect("subscribe after the errors");
    let published = Pub::connect(&server, Publisher::Rest).await.put("still/a", n(1)).await;
    assert_eq!(sub.next().await, msg("still/a", 1, 1, &published.epoch));
}

async fn publish_answers_the_position_and_keys_make_it_idempotent(by: Publisher) {
    let server = TestServer::start().await;
    let mut publisher = Pub::connect(&server, by).await;
    let first = publisher.publish("pos/a", n(1), None).await.expect("publish");
    assert_eq!((first.offset, first.duplicate), (1, false));
    let second = publisher.publish("pos/a", n(2), None).await.expect("publish");
    assert_eq!((second.offset, &second.epoch, second.duplicate), (2, &first.epoch, false));
    let keyed = publisher.publish("pos/a", n(3), Some("key-1")).await.expect("publish");
    assert_eq!((keyed.offset, keyed.duplicate), (3, false));
    let retried = publisher.publish("pos/a", n(99), Some("key-1")).await.expect("publish");
    assert_eq!(retried, rows::Published { offset: 3, epoch: first.epoch.clone(), duplicate: true });
    let after = publisher.publish("pos/a", n(4), None).await.expect("publish");
    assert_eq!((after.offset, after.duplicate), (4, false));
    // The retry stored nothing: history holds each publication once, with the first data.
    let history = publisher.history("pos/a", None, None).await.expect("history");
    let want: Vec<Msg> = (1..=4).map(|i| msg("pos/a", i, i, &first.epoch)).collect();
    assert_eq!(history.publications, want);
    // Offsets count per channel; a key is per channel too.
    let other = publisher.publish("pos/b", n(1), Some("key-1")).await.expect("publish");
    assert_eq!((other.offset, other.duplicate), (1, false));
}

async fn history_reads_after_a_position_or_the_newest(by: Publisher) {
    let server = TestServer::start().await;
    let mut publisher = Pub::connect(&server, by).await;
    let mut epoch = String::new();
    for i in 1..=5 {
        epoch = publisher.put("hist/a", n(i)).await.epoch;
    }
    assert_eq!(offsets(&mut publisher, &epoch, Some(2), None).await, [3, 4, 5], "after a position");
    assert_eq!(offsets(&mut publisher, &epoch, None, Some(2)).await, [4, 5], "the newest, oldest first");
    assert_eq!(offsets(&mut publisher, &epoch, Some(2), Some(2)).await, [3, 4], "after a position, limited");
    assert_eq!(
        offsets(&mut publisher, &epoch, Some(5), None).await,
        Vec::<u64>::new(),
        "nothing after the position"
    );
    assert_eq!(offsets(&mut publisher, &epoch, None, None).await, [1, 2, 3, 4, 5]);
    let mismatch = publisher.history("hist/a", Some((2, "another-epoch")), None).await;
    let status = (by == Publisher::Rest).then_some(409);
    assert_eq!(mismatch, Err(Refusal { code: "epoch_mismatch".into(), status }));
    let empty = publisher.history("hist/none", None, None).await.expect("history of an empty channel");
    assert_eq!((empty.offset, empty.publications.len()), (0, 0));
}

/// The offsets of a history read of `hist/a`, after checking its position and publications.
async fn offsets(publisher: &mut Pub, epoch: &str, since: Option<u64>, limit: Option<usize>) -> Vec<u64> {
    let history = publisher
        .history("hist/a", since.map(|s| (s, epoch)), limit)
        .await
        .unwrap_or_else(|e| panic!("history since {since:?} limit {limit:?}: {e:?}"));
    assert_eq!((history.offset, history.epoch.as_str()), (5, epoch));
    for m in &history.publications {
        assert_eq!(m, &msg("hist/a", m.offset, m.offset, epoch));
    }
    history.publications.iter().map(|m| m.offset).collect()
}

async fn refused_publishes_name_the_code_and_the_publisher_stays_usable(by: Publisher) {
    let server = TestServer::start().await;
    let mut publisher = Pub::connect(&server, by).await;
    let http = by == Publisher::Rest;
    let cases = [
        ("a\0b", "invalid_channel", 400),
        ("refuse/+", "invalid_channel", 400),
        ("refuse/#", "invalid_channel", 400),
        ("$sys/x", "read_only_channel", 403),
        ("$sys/presence", "read_only_channel", 403),
    ];
    for (channel, code, status) in cases {
        let refused = publisher.publish(channel, n(1), None).await;
        assert_eq!(refused, Err(Refusal { code: code.into(), status: http.then_some(status) }), "{channel}");
    }
    let history = publisher.history("a\0b", None, None).await;
    assert_eq!(history, Err(Refusal { code: "invalid_channel".into(), status: http.then_some(400) }));
    let published =
        publisher.publish("refuse/a", n(1), None).await.expect("a valid publish after the refusals");
    assert_eq!(published.offset, 1);
}
