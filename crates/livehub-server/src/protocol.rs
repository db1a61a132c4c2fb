//! The native protocol's messages: client commands in, server messages out, as JSON text or
//! MessagePack. `docs/protocol.md` is the reference; keep the two in step.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use std::io::Write as _;
use std::sync::LazyLock;

use livehub_core::{Encoding, Payload, Publication, StreamPosition};
use serde_json::{json, Value};

use crate::cursor::Cursor;

/// The WebSocket subprotocol that selects MessagePack binary frames.
pub const MSGPACK_PROTOCOL: &str = "livehub.msgpack";

/// The WebSocket subprotocol that selects JSON text frames (also the default without one).
pub const JSON_PROTOCOL: &str = "livehub.json";

/// The encoding of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// JSON text frames.
    Json,
    /// MessagePack binary frames.
    MessagePack,
}

/// A publication's `message` as JSON text: WebSocket text frames, SSE `data:`, long-poll bodies.
static JSON: LazyLock<Encoding> = LazyLock::new(|| Encoding::register("json"));
/// A publication's `message` as MessagePack: WebSocket binary frames.
static MSGPACK: LazyLock<Encoding> = LazyLock::new(|| Encoding::register("msgpack"));
/// A whole SSE event without its `id:` line.
static SSE_EVENT: LazyLock<Encoding> = LazyLock::new(|| Encoding::register("sse-event"));
/// A whole SSE event of a one-channel stream, `id:` included.
static SSE_EVENT_POSITIONED: LazyLock<Encoding> =
    LazyLock::new(|| Encoding::register("sse-event-positioned"));

/// Encodes a control message (a JSON object with a `type`) in `format`.
pub(crate) fn encode(format: Format, message: &Value) -> Bytes {
    match format {
        Format::Json => Bytes::from(message.to_string()),
        // Serializing a `serde_json::Value` into a Vec cannot fail: every key is a string.
        Format::MessagePack => Bytes::from(rmp_serde::to_vec_named(message).unwrap_or_default()),
    }
}

/// A publication as a `message` in `format`, encoded once and shared by every subscriber.
pub(crate) fn message_frame(format: Format, publication: &Publication) -> Bytes {
    match format {
        Format::Json => publication.frame(*JSON, json_message),
        Format::MessagePack => publication.frame(*MSGPACK, msgpack_message),
    }
}

/// A publication as an SSE event without its `id:` line (which is per stream): `event:` is the
/// channel, or `message` when the channel holds a line break (which would end the line: the
/// event name cannot carry it); `data:` is the JSON `message`, which always names the channel.
pub(crate) fn sse_event(publication: &Publication) -> Bytes {
    publication.frame(*SSE_EVENT, |p| {
        let json = message_frame(Format::Json, p);
        let channel = p.channel.as_str();
        let name = if channel.contains(['\n', '\r']) { "message" } else { channel };
        let mut out = BytesMut::with_capacity(json.len() + name.len() + 16);
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\ndata: ");
        out.put_slice(&json);
        out.put_u8(b'\n');
        out.freeze()
    })
}

/// A publication as a whole SSE event of a stream of its channel alone: the `id:` is the cursor
/// of that one channel at this publication, the same for every such stream, so it is encoded
/// once too.
pub(crate) fn sse_event_positioned(publication: &Publication) -> &Bytes {
    publication.frame_ref(*SSE_EVENT_POSITIONED, |p| {
        let event = sse_event(p);
        let cursor = Cursor::encode(std::iter::once((&p.channel, p.position.offset, &p.position.epoch)));
        let mut out = BytesMut::with_capacity(event.len() + cursor.len() + 6);
        out.put_slice(&event);
        out.put_slice(b"id: ");
        out.put_slice(cursor.as_bytes());
        out.put_slice(b"\n\n");
        out.freeze()
    })
}

/// The JSON form of a `message`: `{"type":"message",` and the shared fields.
fn json_message(p: &Publication) -> Bytes {
    let mut out = BytesMut::with_capacity(p.data.len() + p.channel.as_str().len() + 96);
    out.put_slice(b"{\"type\":\"message\",");
    put_json_fields(&mut out, p);
    out.put_u8(b'}');
    out.freeze()
}

/// The fields of a publication as every JSON form of it carries them (the native `message`, a
/// SignalR `Receive` argument): `"channel":…,"data":…,"offset":…,"epoch":"…","ts":…`, with
/// binary data as base64 and `"encoding":"base64"`. Built by hand: the channel goes through
/// serde_json's string escaping (straight into the buffer, so a name that needs none costs a
/// copy), epochs are server-made and need none, and JSON data is already compact JSON text, sent
/// byte for byte as it was published.
pub(crate) fn put_json_fields(out: &mut BytesMut, p: &Publication) {
    out.put_slice(b"\"channel\":");
    // Serializing a string into a growable buffer cannot fail.
    let _ = serde_json::to_writer(out.writer(), p.channel.as_str());
    out.put_slice(b",\"data\":");
    match &p.data {
        Payload::Json(json) => out.put_slice(json),
        Payload::Binary(bin) => {
            out.put_u8(b'"');
            out.put_slice(STANDARD.encode(bin).as_bytes());
            out.put_slice(b"\",\"encoding\":\"base64\"");
        }
    }
    // Writing into a growable buffer cannot fail.
    let _ = write!(
        out.writer(),
        ",\"offset\":{},\"epoch\":\"{}\",\"ts\":{}",
        p.position.offset,
        p.position.epoch,
        p.ts
    );
}

/// The MessagePack form of a `message`: `type` and the shared fields.
fn msgpack_message(p: &Publication) -> Bytes {
    let mut fields = vec![("type".into(), "message".into())];
    msgpack_fields(&mut fields, p, BinaryAs::Bin);
    let mut out = Vec::with_capacity(p.data.len() + 64);
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &rmpv::Value::Map(fields));
    Bytes::from(out)
}

/// How a MessagePack form carries binary data.
#[derive(Clone, Copy)]
pub(crate) enum BinaryAs {
    /// As MessagePack `bin`, the native protocol's way and SignalR's over MessagePack.
    Bin,
    /// As base64 text with `"encoding": "base64"`, the way of the JSON forms (a SignalR result
    /// over the JSON hub protocol is built as a value first).
    Base64,
}

/// The fields of a publication as a MessagePack map's entries: channel, data, offset, epoch, ts
/// (the same names as [`put_json_fields`]). JSON data is converted value by value.
pub(crate) fn msgpack_fields(
    fields: &mut Vec<(rmpv::Value, rmpv::Value)>,
    p: &Publication,
    binary: BinaryAs,
) {
    fields.push(("channel".into(), p.channel.as_str().into()));
    match (&p.data, binary) {
        (Payload::Binary(bin), BinaryAs::Bin) => {
            fields.push(("data".into(), rmpv::Value::Binary(bin.to_vec())))
        }
        (Payload::Binary(bin), BinaryAs::Base64) => {
            fields.push(("data".into(), STANDARD.encode(bin).into()));
            fields.push(("encoding".into(), "base64".into()));
        }
        (Payload::Json(json), _) => {
            let data = serde_json::from_slice::<rmpv::Value>(json).unwrap_or_else(|e| {
                // `Payload::json` admits only data that parses here (depth within
                // `MAX_DATA_DEPTH`, numbers within a float), so this is a broken invariant, not a
                // client's mistake: say so loudly rather than deliver `nil` quietly, and keep the
                // connection going.
                tracing::error!(channel = %p.channel, offset = p.position.offset, error = %e,
                    "publication data admitted by Payload::json has no MessagePack form; sent as nil");
                rmpv::Value::Nil
            });
            fields.push(("data".into(), data));
        }
    }
    fields.push(("offset".into(), p.position.offset.into()));
    fields.push(("epoch".into(), p.position.epoch.as_str().into()));
    fields.push(("ts".into(), p.ts.into()));
}

/// A publication as a JSON value (inside `history` replies, long-poll bodies and `latest`).
pub(crate) fn message_value(p: &Publication) -> Value {
    // The message adds one level to data nesting at most `MAX_DATA_DEPTH` (64), well inside
    // serde_json's recursion limit of 128, and `Payload::json` refused numbers it cannot parse:
    // failing here is a broken invariant, logged as such.
    serde_json::from_slice(&message_frame(Format::Json, p)).unwrap_or_else(|e| {
        tracing::error!(channel = %p.channel, offset = p.position.offset, error = %e,
            "publication data admitted by Payload::json does not parse; sent as null");
        Value::Null
    })
}

/// `{"offset": …, "epoch": …}`.
pub(crate) fn position_value(position: &StreamPosition) -> Value {
    json!({ "offset": position.offset, "epoch": position.epoch })
}

#[cfg(test)]
mod tests {
    use super::*;
    use livehub_core::{ChannelName, Epoch};

    fn publication(data: Payload) -> Publication {
        Publication::with_ts(
            ChannelName::new("stocks/AAPL").expect("valid"),
            data,
            StreamPosition { offset: 7, epoch: Epoch::from_client("e1") },
            1234,
        )
    }

    #[test]
    fn json_message_is_valid_json_with_every_field() {
        let p = publication(Payload::json(r#"{"price":1.5}"#).expect("valid"));
        let v: Value = serde_json::from_slice(&message_frame(Format::Json, &p)).expect("json");
        assert_eq!(
            v,
            json!({"type":"message","channel":"stocks/AAPL","data":{"price":1.5},"offset":7,"epoch":"e1","ts":1234})
        );
    }

    #[test]
    fn binary_data_is_base64_in_json_and_bin_in_msgpack() {
        let p = publication(Payload::Binary(Bytes::from_static(&[0, 255])));
        let v: Value = serde_json::from_slice(&message_frame(Format::Json, &p)).expect("json");
        assert_eq!(v["data"], "AP8=");
        assert_eq!(v["encoding"], "base64");
        let m: rmpv::Value =
            rmpv::decode::read_value(&mut &message_frame(Format::MessagePack, &p)[..]).expect("msgpack");
        let data = m.as_map().expect("map").iter().find(|(k, _)| k.as_str() == Some("data")).expect("data");
        assert_eq!(data.1, rmpv::Value::Binary(vec![0, 255]));
    }

    #[test]
    fn data_at_the_depth_limit_survives_every_encoding() {
        let depth = livehub_core::MAX_DATA_DEPTH;
        let text = format!("{}{{\"x\":1.5}}{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
        let p = publication(Payload::json(text.clone()).expect("at the limit"));
        let data: Value = serde_json::from_str(&text).expect("parses");
        assert_eq!(message_value(&p)["data"], data);
        let m: rmpv::Value =
            rmpv::decode::read_value(&mut &message_frame(Format::MessagePack, &p)[..]).expect("msgpack");
        let sent = m.as_map().expect("map").iter().find(|(k, _)| k.as_str() == Some("data")).expect("data");
        assert_eq!(sent.1, rmpv::ext::to_value(data).expect("converts"));
    }

    #[test]
    fn sse_event_names_the_channel() {
        let p = publication(Payload::json("1").expect("valid"));
        let event = sse_event(&p);
        let text = std::str::from_utf8(&event).expect("utf8");
        assert!(text.starts_with("event: stocks/AAPL\ndata: {\"type\":\"message\""), "{text}");
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn a_positioned_sse_event_carries_the_one_channel_cursor() {
        let p = publication(Payload::json("1").expect("valid"));
        let text = std::str::from_utf8(sse_event_positioned(&p)).expect("utf8").to_owned();
        let plain = std::str::from_utf8(&sse_event(&p)).expect("utf8").to_owned();
        let id =
            text.strip_prefix(plain.as_str()).and_then(|rest| rest.strip_prefix("id: ")).expect("id line");
        let position = (&p.channel, p.position.offset, &p.position.epoch);
        assert_eq!(id, format!("{}\n\n", Cursor::encode(std::iter::once(position))));
    }
}
