//! Property tests: every wire format carries any valid channel name, and gives it back.
//!
//! Names are random (any character but NUL and the wildcards, with the ones that break formats
//! drawn often: quotes, backslashes, controls, line breaks, commas, spaces, `%`, non-ASCII, empty
//! levels). Each goes through the JSON and MessagePack `message`, the SSE event as an SSE parser
//! reads it, the cursor, and the comma-escaped `channel=` list of a stream request.

use std::collections::BTreeMap;

use bytes::Bytes;
use livehub_core::{ChannelFilter, ChannelLimits, ChannelName, Epoch, Payload, Publication, StreamPosition};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::channel_list;
use crate::cursor::Cursor;
use crate::protocol::{message_frame, sse_event, sse_event_positioned, Format};
use crate::resume::StreamRequest;

/// Characters that have broken, or could break, one of the formats.
const AWKWARD: &[char] = &[
    '"', '\\', '\n', '\r', ',', ' ', '%', '\t', '\u{1}', '\u{1f}', '\u{7f}', '\u{85}', '\u{2028}',
    '\u{feff}', 'é', 'ü', '日', '🎉', '$', '&', '=', '?', ':', '.', ';', '\'', '<', '>',
];

fn name_char() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::sample::select(AWKWARD),
        any::<char>().prop_filter("not NUL, '/' or a wildcard", |c| !matches!(c, '\0' | '/' | '+' | '#')),
        proptest::char::range('a', 'z'),
    ]
}

/// A valid channel name: up to six levels (empty ones included) of up to eight characters.
fn channel_name() -> impl Strategy<Value = String> {
    let level =
        proptest::collection::vec(name_char(), 0..8).prop_map(|chars| chars.into_iter().collect::<String>());
    proptest::collection::vec(level, 1..6)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a name is not empty", |name| !name.is_empty())
}

fn publication(name: &str, data: Payload) -> Publication {
    let channel = ChannelName::new(name).expect("the strategy makes valid names");
    Publication::with_ts(channel, data, StreamPosition { offset: 7, epoch: Epoch::from_client("e1") }, 1234)
}

/// Reads SSE text as the spec's parser does: lines end at CRLF, CR or LF; a line's field is what
/// precedes the first colon, and one space after the colon is dropped. Returns the (field, value)
/// pairs of each dispatched event (a blank line ends one); text after the last blank line comes
/// last, undispatched.
fn sse_events(text: &str) -> Vec<Vec<(String, String)>> {
    let mut events = vec![Vec::new()];
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<&str> = normalized.split('\n').collect();
    // The text ends with a line break, so the last piece is empty and is no line.
    assert_eq!(lines.pop(), Some(""), "{text:?} ends with a line break");
    for line in lines {
        if line.is_empty() {
            events.push(Vec::new());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        events.last_mut().expect("one at least").push((field.to_owned(), value.to_owned()));
    }
    events
}

/// The event name the server must use for `name`.
fn event_name(name: &str) -> &str {
    if name.contains(['\n', '\r']) {
        "message"
    } else {
        name
    }
}

fn check_json(name: &str) -> Result<(), TestCaseError> {
    let p = publication(name, Payload::json(r#"{"x":[1,"\""]}"#).expect("valid"));
    let frame = message_frame(Format::Json, &p);
    let v: Value =
        serde_json::from_slice(&frame).map_err(|e| TestCaseError::fail(format!("{e}: {frame:?}")))?;
    let want =
        json!({"type":"message","channel":name,"data":{"x":[1,"\""]},"offset":7,"epoch":"e1","ts":1234});
    prop_assert_eq!(v, want);
    let binary = publication(name, Payload::Binary(Bytes::from_static(&[0, 1])));
    let v: Value = serde_json::from_slice(&message_frame(Format::Json, &binary)).expect("JSON");
    prop_assert_eq!(&v["channel"], name);
    prop_assert_eq!(&v["encoding"], "base64");
    Ok(())
}

fn check_msgpack(name: &str) -> Result<(), TestCaseError> {
    let p = publication(name, Payload::json("[1]").expect("valid"));
    let frame = message_frame(Format::MessagePack, &p);
    let m = rmpv::decode::read_value(&mut &frame[..]).expect("MessagePack");
    let field =
        |key: &str| m.as_map().and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(key))).map(|(_, v)| v);
    prop_assert_eq!(field("channel").and_then(rmpv::Value::as_str), Some(name));
    prop_assert_eq!(field("type").and_then(rmpv::Value::as_str), Some("message"));
    Ok(())
}

fn check_sse(name: &str) -> Result<(), TestCaseError> {
    let p = publication(name, Payload::json("\"a\\nb\"").expect("valid"));
    let json = String::from_utf8(message_frame(Format::Json, &p).to_vec()).expect("UTF-8");

    // The shared part: exactly an `event:` and a `data:` line, not yet dispatched.
    let event = String::from_utf8(sse_event(&p).to_vec()).expect("UTF-8");
    let parsed = sse_events(&event);
    let want =
        vec![vec![("event".to_owned(), event_name(name).to_owned()), ("data".to_owned(), json.clone())]];
    prop_assert_eq!(&parsed, &want, "{:?}", event);

    // The whole event of a one-channel stream: the same two lines, the cursor, a blank line.
    let whole = String::from_utf8(sse_event_positioned(&p).to_vec()).expect("UTF-8");
    let parsed = sse_events(&whole);
    prop_assert_eq!(parsed.len(), 2, "one dispatched event: {:?}", whole);
    prop_assert_eq!(&parsed[1], &Vec::<(String, String)>::new());
    let fields = &parsed[0];
    prop_assert_eq!(&fields[..2], &want[0][..]);
    prop_assert_eq!(fields.len(), 3);
    prop_assert_eq!(&fields[2].0, "id");
    let data: Value = serde_json::from_str(&fields[1].1).expect("the data line is JSON");
    prop_assert_eq!(&data["channel"], name);
    let cursor = Cursor::decode(&fields[2].1).expect("the id is a cursor");
    let channel = ChannelName::new(name).expect("valid");
    prop_assert_eq!(cursor.positions.get(&channel), Some(&p.position));
    Ok(())
}

fn check_cursor(names: &[String]) -> Result<(), TestCaseError> {
    let epoch = Epoch::from_client("ep0ch");
    let positions: BTreeMap<ChannelName, StreamPosition> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (ChannelName::new(n).expect("valid"), StreamPosition { offset: i as u64, epoch: epoch.clone() })
        })
        .collect();
    let token = Cursor::encode(positions.iter().map(|(c, p)| (c, p.offset, &p.epoch)));
    let decoded = Cursor::decode(&token).map_err(|e| TestCaseError::fail(format!("{e}: {names:?}")))?;
    prop_assert_eq!(decoded.positions, positions);
    Ok(())
}

/// The names go half in one comma-escaped `channel=` value, half as repeated parameters, all
/// percent-encoded as a URL query; the request must name exactly them, in order.
fn check_query(names: &[String]) -> Result<(), TestCaseError> {
    let mut unique: Vec<&str> = Vec::new();
    for n in names {
        if !unique.contains(&n.as_str()) {
            unique.push(n);
        }
    }
    let (listed, repeated) = unique.split_at(unique.len() / 2);
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !listed.is_empty() {
        query.append_pair("channel", &channel_list::join(listed.iter().copied()));
    }
    for name in repeated {
        query.append_pair("channel", &channel_list::join([*name]));
    }
    let query = query.finish();
    let request = StreamRequest::parse(Some(&query), None, &["cursor"], 64, &ChannelLimits::default())
        .map_err(|e| TestCaseError::fail(format!("{e:?}: {query}")))?;
    let got: Vec<&str> = request.filters.iter().map(ChannelFilter::as_str).collect();
    prop_assert_eq!(got, unique);
    prop_assert!(request.filters.iter().all(|f| matches!(f, ChannelFilter::Exact(_))));
    Ok(())
}

proptest! {
    #[test]
    fn every_format_round_trips_any_valid_name(names in proptest::collection::vec(channel_name(), 1..5)) {
        for name in &names {
            check_json(name)?;
            check_msgpack(name)?;
            check_sse(name)?;
        }
        check_cursor(&names)?;
        check_query(&names)?;
    }
}

#[test]
fn the_awkward_names_of_the_brief_round_trip() {
    let names =
        ["a/b,c", "é/ü", "a//b", "x y", "q\"uote", "line\nbreak", "cr\rlf", "100%", "back\\slash", "/", "a/"];
    for name in names {
        check_json(name).expect("JSON");
        check_msgpack(name).expect("MessagePack");
        check_sse(name).expect("SSE");
    }
    let owned: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    check_cursor(&owned).expect("cursor");
    check_query(&owned).expect("query");
}

#[test]
fn the_sse_event_name_is_the_channel_unless_it_breaks_a_line() {
    let table =
        [("stocks/AAPL", "stocks/AAPL"), ("x y", "x y"), ("line\nbreak", "message"), ("cr\r", "message")];
    for (name, event) in table {
        let p = publication(name, Payload::json("1").expect("valid"));
        let text = String::from_utf8(sse_event(&p).to_vec()).expect("UTF-8");
        assert!(text.starts_with(&format!("event: {event}\ndata: {{")), "{text:?}");
    }
}
