//! SignalR's hub protocol on the wire: the handshake, the two framings (JSON records ending in
//! `0x1E`, MessagePack records behind a VarInt length) and the messages of each.
//!
//! Decoding is for untrusted bytes: every error is a [`ProtocolError`], nothing panics, and
//! nesting is bounded (serde_json's own limit for JSON, [`MAX_MSGPACK_DEPTH`] for MessagePack).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use livehub_core::{Payload, Publication, MAX_DATA_DEPTH};

use crate::protocol::{msgpack_fields, put_json_fields, BinaryAs};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Ends every JSON record, and the handshake in both protocols.
pub(crate) const RECORD_SEPARATOR: u8 = 0x1e;

/// The newest hub protocol version spoken, for both protocols: version 2 adds `Ack` and
/// `Sequence` (stateful reconnect). Every version up to it is accepted, as ASP.NET Core does.
pub(crate) const MAX_VERSION: u64 = 2;

/// Longest handshake request: it names a protocol and a version, so anything longer is noise.
const MAX_HANDSHAKE: usize = 4096;

/// How deeply a MessagePack message may nest while decoded: the message's own two levels (the
/// array and the arguments) over what publication data may hold, so that data a little too deep
/// still reaches the check that names it.
const MAX_MSGPACK_DEPTH: usize = 2 * MAX_DATA_DEPTH + 4;

/// The hub protocol a connection chose in its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `json`: UTF-8 text records, each ending in `0x1E`.
    Json,
    /// `messagepack`: binary records, each behind its length as a VarInt.
    MessagePack,
}

impl Protocol {
    /// Whether the protocol needs a transport that carries binary data.
    pub(crate) fn is_binary(self) -> bool {
        self == Self::MessagePack
    }
}

/// Why bytes from the client could not be read. The connection ends with a `Close` naming it,
/// as ASP.NET Core ends a connection whose messages it cannot parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ProtocolError {
    /// The handshake request is not what the protocol says.
    #[error("invalid handshake: {0}")]
    Handshake(String),
    /// The handshake names a protocol this server does not speak.
    #[error("The protocol '{0}' is not supported.")]
    UnknownProtocol(String),
    /// The handshake names a newer version than this server speaks.
    #[error("The server does not support version {version} of the '{protocol}' protocol.")]
    Version {
        /// The protocol.
        protocol: String,
        /// The version asked for.
        version: u64,
    },
    /// A record is longer than the server accepts.
    #[error("a message of {0} bytes is over the limit")]
    TooLarge(usize),
    /// A record is not a message.
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// A parsed handshake request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Handshake {
    /// The protocol for every later message.
    pub(crate) protocol: Protocol,
    /// The version the client speaks; at most [`MAX_VERSION`].
    pub(crate) version: u64,
}

#[derive(Deserialize)]
struct HandshakeWire {
    protocol: String,
    version: u64,
}

/// Reads the handshake request at the start of `buf`: `Ok(None)` until its separator has come,
/// then the handshake, with `buf` advanced past it (what follows is hub messages).
pub(crate) fn read_handshake(buf: &mut BytesMut) -> Result<Option<Handshake>, ProtocolError> {
    let Some(end) = buf.iter().position(|&b| b == RECORD_SEPARATOR) else {
        if buf.len() > MAX_HANDSHAKE {
            return Err(ProtocolError::Handshake("no record separator".into()));
        }
        return Ok(None);
    };
    let record = buf.split_to(end + 1);
    let wire: HandshakeWire =
        serde_json::from_slice(&record[..end]).map_err(|e| ProtocolError::Handshake(e.to_string()))?;
    let protocol = match wire.protocol.as_str() {
        "json" => Protocol::Json,
        "messagepack" => Protocol::MessagePack,
        _ => return Err(ProtocolError::UnknownProtocol(wire.protocol)),
    };
    if wire.version > MAX_VERSION {
        return Err(ProtocolError::Version { protocol: wire.protocol, version: wire.version });
    }
    Ok(Some(Handshake { protocol, version: wire.version }))
}

/// The handshake response: `{}` or `{"error":…}`, a JSON record in both protocols.
pub(crate) fn handshake_response(error: Option<&str>) -> Bytes {
    let mut out = match error {
        None => b"{}".to_vec(),
        Some(error) => serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default(),
    };
    out.push(RECORD_SEPARATOR);
    Bytes::from(out)
}

/// An argument or stream item as its protocol carried it, read when the method knows its type.
#[derive(Debug)]
pub(crate) enum Arg {
    /// JSON text, kept as it came (data is published byte for byte).
    Json(Box<RawValue>),
    /// A MessagePack value.
    MessagePack(rmpv::Value),
}

impl Arg {
    /// The argument as a `T`, or why not.
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        match self {
            Arg::Json(raw) => serde_json::from_str(raw.get()).map_err(|e| e.to_string()),
            Arg::MessagePack(value) => rmpv::ext::from_value(value.clone()).map_err(|e| e.to_string()),
        }
    }

    /// Whether the argument is `null` (nil).
    pub(crate) fn is_null(&self) -> bool {
        match self {
            Arg::Json(raw) => raw.get().trim() == "null",
            Arg::MessagePack(value) => value.is_nil(),
        }
    }

    /// The argument as publication data, through the same gate as every transport's.
    pub(crate) fn into_payload(self) -> Result<Payload, livehub_core::Error> {
        match self {
            Arg::Json(raw) => Payload::json(Bytes::from(raw.get().to_owned())),
            Arg::MessagePack(value) => crate::engine::msgpack_payload(value),
        }
    }
}

/// A message from the client.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// `Invocation` (type 1) or, with `stream`, `StreamInvocation` (type 4).
    Invocation {
        /// The id its completion carries; none means no reply is wanted.
        id: Option<String>,
        /// The hub method.
        target: String,
        /// Its arguments.
        arguments: Vec<Arg>,
        /// Ids of the client-to-server streams passed as further arguments.
        stream_ids: Vec<String>,
        /// Whether the client expects a stream of items back.
        stream: bool,
    },
    /// `StreamItem` (type 2): an item of a client-to-server stream.
    StreamItem {
        /// The stream's id.
        id: String,
        /// The item.
        item: Arg,
    },
    /// `Completion` (type 3): the end of a client-to-server stream.
    Completion {
        /// The stream's id.
        id: String,
        /// The client's error, if it ended with one.
        error: Option<String>,
    },
    /// `CancelInvocation` (type 5): stop a server-to-client stream.
    Cancel {
        /// The stream invocation's id.
        id: String,
    },
    /// `Ping` (type 6).
    Ping,
    /// `Close` (type 7): the client is leaving.
    Close,
    /// `Ack` (type 8): the client has every message up to this sequence id.
    Ack {
        /// The sequence id.
        sequence: u64,
    },
    /// `Sequence` (type 9): the id of the client's next message, after a reconnect.
    Sequence {
        /// The sequence id.
        sequence: u64,
    },
    /// A type this server does not know; ignored, so that newer clients keep working.
    Unknown(u64),
}

impl Incoming {
    /// Whether the message counts for stateful reconnect's sequence ids (invocations, stream
    /// items, completions and cancels do; pings, acks and the rest do not).
    pub(crate) fn is_sequenced(&self) -> bool {
        matches!(
            self,
            Self::Invocation { .. } | Self::StreamItem { .. } | Self::Completion { .. } | Self::Cancel { .. }
        )
    }
}

/// Cuts records out of what the client sends: a record may arrive split across WebSocket
/// messages or POST bodies, and one message may hold several.
pub(crate) struct Framer {
    protocol: Protocol,
    buf: BytesMut,
    max: usize,
}

impl Framer {
    /// A framer for `protocol` whose records may be at most `max` bytes.
    pub(crate) fn new(protocol: Protocol, max: usize) -> Self {
        Self { protocol, buf: BytesMut::new(), max }
    }

    /// A framer that starts with `rest`, what followed the handshake.
    pub(crate) fn with(protocol: Protocol, max: usize, rest: BytesMut) -> Self {
        Self { protocol, buf: rest, max }
    }

    /// Appends bytes from the client.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `Ok(None)` when the rest is not whole yet.
    pub(crate) fn next_message(&mut self) -> Result<Option<Incoming>, ProtocolError> {
        match self.protocol {
            Protocol::Json => {
                let Some(end) = self.buf.iter().position(|&b| b == RECORD_SEPARATOR) else {
                    return self.unfinished(self.buf.len());
                };
                if end > self.max {
                    return Err(ProtocolError::TooLarge(end));
                }
                let record = self.buf.split_to(end + 1);
                decode_json(&record[..end]).map(Some)
            }
            Protocol::MessagePack => {
                let Some((len, used)) = read_varint(&self.buf)? else { return self.unfinished(0) };
                if len > self.max {
                    return Err(ProtocolError::TooLarge(len));
                }
                if self.buf.len() < used + len {
                    return Ok(None);
                }
                self.buf.advance(used);
                let record = self.buf.split_to(len);
                decode_msgpack(&record).map(Some)
            }
        }
    }

    fn unfinished(&self, len: usize) -> Result<Option<Incoming>, ProtocolError> {
        if len > self.max {
            return Err(ProtocolError::TooLarge(len));
        }
        Ok(None)
    }
}

/// Reads a VarInt length (7 bits a byte, least significant group first, at most 5 bytes):
/// `Ok(None)` while it is unfinished.
fn read_varint(buf: &[u8]) -> Result<Option<(usize, usize)>, ProtocolError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let len = usize::try_from(value).map_err(|_| ProtocolError::TooLarge(usize::MAX))?;
            return Ok(Some((len, i + 1)));
        }
    }
    if buf.len() >= 5 {
        return Err(ProtocolError::Invalid("a length prefix longer than 5 bytes".into()));
    }
    Ok(None)
}

/// Writes `len` as a VarInt.
pub(crate) fn write_varint(out: &mut BytesMut, mut len: usize) {
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonWire {
    #[serde(rename = "type")]
    kind: u64,
    #[serde(default)]
    invocation_id: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    arguments: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    stream_ids: Option<Vec<String>>,
    #[serde(default)]
    item: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    sequence_id: Option<u64>,
}

fn invalid(message: impl Into<String>) -> ProtocolError {
    ProtocolError::Invalid(message.into())
}

/// Decodes one JSON record (without its separator).
pub(crate) fn decode_json(record: &[u8]) -> Result<Incoming, ProtocolError> {
    let wire: JsonWire = serde_json::from_slice(record).map_err(|e| invalid(e.to_string()))?;
    let id = || wire.invocation_id.clone().ok_or_else(|| invalid("missing \"invocationId\""));
    let sequence = || wire.sequence_id.ok_or_else(|| invalid("missing \"sequenceId\""));
    Ok(match wire.kind {
        1 | 4 => Incoming::Invocation {
            id: if wire.kind == 4 { Some(id()?) } else { wire.invocation_id.clone() },
            target: wire.target.clone().ok_or_else(|| invalid("missing \"target\""))?,
            arguments: wire
                .arguments
                .ok_or_else(|| invalid("missing \"arguments\""))?
                .into_iter()
                .map(Arg::Json)
                .collect(),
            stream_ids: wire.stream_ids.unwrap_or_default(),
            stream: wire.kind == 4,
        },
        2 => Incoming::StreamItem {
            id: id()?,
            item: Arg::Json(wire.item.ok_or_else(|| invalid("missing \"item\""))?),
        },
        3 => Incoming::Completion { id: id()?, error: wire.error },
        5 => Incoming::Cancel { id: id()? },
        6 => Incoming::Ping,
        7 => Incoming::Close,
        8 => Incoming::Ack { sequence: sequence()? },
        9 => Incoming::Sequence { sequence: sequence()? },
        other => Incoming::Unknown(other),
    })
}

/// Decodes one MessagePack record (without its length).
pub(crate) fn decode_msgpack(record: &[u8]) -> Result<Incoming, ProtocolError> {
    let mut decoder = rmp_serde::Deserializer::from_read_ref(record);
    decoder.set_max_depth(MAX_MSGPACK_DEPTH);
    let value = rmpv::Value::deserialize(&mut decoder).map_err(|e| invalid(e.to_string()))?;
    let rmpv::Value::Array(mut items) = value else { return Err(invalid("a message is an array")) };
    let kind = items.first().and_then(rmpv::Value::as_u64).ok_or_else(|| invalid("no message type"))?;
    // Take fields by position, leaving the array's later items for later fields.
    let mut field = |i: usize| items.get_mut(i).map(|v| std::mem::replace(v, rmpv::Value::Nil));
    let string = |v: Option<rmpv::Value>, what: &str| match v {
        Some(rmpv::Value::String(s)) => s.into_str().ok_or_else(|| invalid(format!("{what} is not UTF-8"))),
        _ => Err(invalid(format!("{what} is not a string"))),
    };
    let sequence =
        |v: Option<rmpv::Value>| v.and_then(|v| v.as_u64()).ok_or_else(|| invalid("no sequence id"));
    Ok(match kind {
        // [type, headers, invocationId, target, arguments, streamIds?]
        1 | 4 => {
            let id = match field(2) {
                Some(rmpv::Value::Nil) if kind == 1 => None,
                other => Some(string(other, "invocationId")?),
            };
            let target = string(field(3), "target")?;
            let Some(rmpv::Value::Array(arguments)) = field(4) else {
                return Err(invalid("arguments are not an array"));
            };
            let stream_ids = match field(5) {
                None | Some(rmpv::Value::Nil) => Vec::new(),
                Some(rmpv::Value::Array(ids)) => {
                    ids.into_iter().map(|id| string(Some(id), "a stream id")).collect::<Result<_, _>>()?
                }
                Some(_) => return Err(invalid("streamIds are not an array")),
            };
            let arguments = arguments.into_iter().map(Arg::MessagePack).collect();
            Incoming::Invocation { id, target, arguments, stream_ids, stream: kind == 4 }
        }
        // [2, headers, invocationId, item]
        2 => {
            let id = string(field(2), "invocationId")?;
            let item = field(3).ok_or_else(|| invalid("no item"))?;
            Incoming::StreamItem { id, item: Arg::MessagePack(item) }
        }
        // [3, headers, invocationId, resultKind, result?]
        3 => {
            let id = string(field(2), "invocationId")?;
            let error = match field(3).and_then(|v| v.as_u64()) {
                Some(1) => Some(string(field(4), "error")?),
                Some(2 | 3) => None,
                _ => return Err(invalid("unknown result kind")),
            };
            Incoming::Completion { id, error }
        }
        // [5, headers, invocationId]
        5 => Incoming::Cancel { id: string(field(2), "invocationId")? },
        6 => Incoming::Ping,
        7 => Incoming::Close,
        8 => Incoming::Ack { sequence: sequence(field(1))? },
        9 => Incoming::Sequence { sequence: sequence(field(1))? },
        other => Incoming::Unknown(other),
    })
}

/// A message to the client, other than a publication (see [`publication_record`]).
pub(crate) enum Outgoing<'a> {
    /// A method's result: `Ok(None)` for a void one, `Err` for its error.
    Completion {
        /// The invocation's id.
        id: &'a str,
        /// The result.
        result: Result<Option<rmpv::Value>, String>,
    },
    /// An item of a server-to-client stream.
    StreamItem {
        /// The stream invocation's id.
        id: &'a str,
        /// The item.
        item: rmpv::Value,
    },
    /// A keep-alive.
    Ping,
    /// The server ends the connection.
    Close {
        /// Why, if not a normal close.
        error: Option<&'a str>,
        /// Whether the client may reconnect.
        allow_reconnect: bool,
    },
    /// Every message of the client's up to this sequence id arrived.
    Ack {
        /// The sequence id.
        sequence: u64,
    },
    /// The id of the next message the server sends, after a reconnect.
    Sequence {
        /// The sequence id.
        sequence: u64,
    },
}

/// Appends `message` as one record of `protocol` to `out`.
pub(crate) fn encode(protocol: Protocol, message: &Outgoing<'_>, out: &mut BytesMut) {
    match protocol {
        Protocol::Json => {
            let value = match message {
                Outgoing::Completion { id, result: Ok(None) } => {
                    serde_json::json!({ "type": 3, "invocationId": id })
                }
                Outgoing::Completion { id, result: Ok(Some(result)) } => {
                    serde_json::json!({ "type": 3, "invocationId": id, "result": result })
                }
                Outgoing::Completion { id, result: Err(error) } => {
                    serde_json::json!({ "type": 3, "invocationId": id, "error": error })
                }
                Outgoing::StreamItem { id, item } => {
                    serde_json::json!({ "type": 2, "invocationId": id, "item": item })
                }
                Outgoing::Ping => serde_json::json!({ "type": 6 }),
                Outgoing::Close { error, allow_reconnect } => {
                    let mut close = serde_json::json!({ "type": 7, "allowReconnect": allow_reconnect });
                    if let Some(error) = error {
                        close["error"] = (*error).into();
                    }
                    close
                }
                Outgoing::Ack { sequence } => serde_json::json!({ "type": 8, "sequenceId": sequence }),
                Outgoing::Sequence { sequence } => serde_json::json!({ "type": 9, "sequenceId": sequence }),
            };
            // Writing a value into a growable buffer cannot fail.
            let _ = serde_json::to_writer(out.writer(), &value);
            out.put_u8(RECORD_SEPARATOR);
        }
        Protocol::MessagePack => {
            let headers = || rmpv::Value::Map(Vec::new());
            let value = match message {
                Outgoing::Completion { id, result: Err(error) } => {
                    vec![3.into(), headers(), (*id).into(), 1.into(), error.as_str().into()]
                }
                Outgoing::Completion { id, result: Ok(None) } => {
                    vec![3.into(), headers(), (*id).into(), 2.into()]
                }
                Outgoing::Completion { id, result: Ok(Some(result)) } => {
                    vec![3.into(), headers(), (*id).into(), 3.into(), result.clone()]
                }
                Outgoing::StreamItem { id, item } => vec![2.into(), headers(), (*id).into(), item.clone()],
                Outgoing::Ping => vec![6.into()],
                Outgoing::Close { error, allow_reconnect } => {
                    vec![7.into(), error.map_or(rmpv::Value::Nil, Into::into), (*allow_reconnect).into()]
                }
                Outgoing::Ack { sequence } => vec![8.into(), (*sequence).into()],
                Outgoing::Sequence { sequence } => vec![9.into(), (*sequence).into()],
            };
            put_msgpack(out, &rmpv::Value::Array(value));
        }
    }
}

/// Appends `value` as a length-prefixed MessagePack record.
fn put_msgpack(out: &mut BytesMut, value: &rmpv::Value) {
    let mut body = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut body, value);
    write_varint(out, body.len());
    out.put_slice(&body);
}

/// A publication as the `message` argument of a client method or a stream item: the fields of
/// the native protocol's `message` (channel, data, offset, epoch, ts). JSON carries binary data
/// as base64 with `encoding`, as the native protocol does; MessagePack carries it as binary.
pub(crate) fn message_value(protocol: Protocol, p: &Publication) -> rmpv::Value {
    let binary = match protocol {
        Protocol::Json => BinaryAs::Base64,
        Protocol::MessagePack => BinaryAs::Bin,
    };
    let mut fields = Vec::with_capacity(6);
    msgpack_fields(&mut fields, p, binary);
    rmpv::Value::Map(fields)
}

/// A publication as one whole record invoking `target(channel, message)` on the client.
pub(crate) fn publication_record(protocol: Protocol, target: &str, p: &Publication) -> Bytes {
    let mut out = BytesMut::with_capacity(p.data.len() + p.channel.as_str().len() * 2 + 128);
    match protocol {
        Protocol::Json => {
            out.put_slice(b"{\"type\":1,\"target\":");
            // Serializing a string into a growable buffer cannot fail.
            let _ = serde_json::to_writer((&mut out).writer(), target);
            out.put_slice(b",\"arguments\":[");
            let _ = serde_json::to_writer((&mut out).writer(), p.channel.as_str());
            out.put_slice(b",{");
            put_json_fields(&mut out, p);
            out.put_slice(b"}]}");
            out.put_u8(RECORD_SEPARATOR);
        }
        Protocol::MessagePack => {
            let invocation = rmpv::Value::Array(vec![
                1.into(),
                rmpv::Value::Map(Vec::new()),
                rmpv::Value::Nil,
                target.into(),
                rmpv::Value::Array(vec![p.channel.as_str().into(), message_value(protocol, p)]),
                rmpv::Value::Array(Vec::new()),
            ]);
            put_msgpack(&mut out, &invocation);
        }
    }
    out.freeze()
}

/// The fuzz target `signalr`: bytes as a client sends them. The first byte picks the protocol
/// (bit 0) and whether a handshake comes first (bit 1); the rest arrives in two reads, and every
/// argument of every invocation is read as each method reads it.
pub(crate) fn fuzz(bytes: &[u8]) {
    let Some((&mode, rest)) = bytes.split_first() else { return };
    let protocol = if mode & 1 == 0 { Protocol::Json } else { Protocol::MessagePack };
    let (first, second) = rest.split_at(rest.len() / 2);
    let mut buf = BytesMut::from(first);
    if mode & 2 != 0 && !matches!(read_handshake(&mut buf), Ok(Some(_))) {
        return;
    }
    let mut framer = Framer::with(protocol, 4096, buf);
    framer.push(second);
    while let Ok(Some(message)) = framer.next_message() {
        let arguments = match message {
            Incoming::Invocation { arguments, .. } => arguments,
            Incoming::StreamItem { item, .. } => vec![item],
            _ => continue,
        };
        for argument in arguments {
            let _ = argument.parse::<Vec<String>>();
            let _ = argument.parse::<std::collections::HashMap<String, livehub_core::StreamPosition>>();
            let _ = argument.parse::<Option<usize>>();
            let _ = argument.is_null();
            let _ = argument.into_payload();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Read = Result<Option<Handshake>, ProtocolError>;

    fn handshake(text: &[u8]) -> Read {
        read_handshake(&mut BytesMut::from(text))
    }

    #[test]
    fn handshakes_accept_every_version_up_to_the_newest() {
        let table: [(&[u8], Read); 6] = [
            (
                b"{\"protocol\":\"json\",\"version\":1}\x1e",
                Ok(Some(Handshake { protocol: Protocol::Json, version: 1 })),
            ),
            (
                b"{\"protocol\":\"json\",\"version\":0}\x1e",
                Ok(Some(Handshake { protocol: Protocol::Json, version: 0 })),
            ),
            (
                b"{\"protocol\":\"messagepack\",\"version\":2}\x1e",
                Ok(Some(Handshake { protocol: Protocol::MessagePack, version: 2 })),
            ),
            (b"{\"protocol\":\"json\",\"version\":1}", Ok(None)),
            (b"{\"protocol\":\"xml\",\"version\":1}\x1e", Err(ProtocolError::UnknownProtocol("xml".into()))),
            (
                b"{\"protocol\":\"json\",\"version\":3}\x1e",
                Err(ProtocolError::Version { protocol: "json".into(), version: 3 }),
            ),
        ];
        for (bytes, want) in table {
            assert_eq!(handshake(bytes), want, "{}", String::from_utf8_lossy(bytes));
        }
        assert!(matches!(handshake(b"nope\x1e"), Err(ProtocolError::Handshake(_))));
        assert!(matches!(handshake(&[b' '; MAX_HANDSHAKE + 1]), Err(ProtocolError::Handshake(_))));
    }

    #[test]
    fn the_handshake_leaves_what_follows_it() {
        let mut buf = BytesMut::from(&b"{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e"[..]);
        assert!(read_handshake(&mut buf).expect("valid").is_some());
        let mut framer = Framer::with(Protocol::Json, 1024, buf);
        assert!(matches!(framer.next_message(), Ok(Some(Incoming::Ping))));
        assert!(matches!(framer.next_message(), Ok(None)));
    }

    #[test]
    fn varints_round_trip_and_refuse_six_bytes() {
        for len in [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 268_435_455, 2_147_483_647] {
            let mut out = BytesMut::new();
            write_varint(&mut out, len);
            assert_eq!(read_varint(&out), Ok(Some((len, out.len()))), "{len}");
            assert_eq!(read_varint(&out[..out.len() - 1]), Ok(None), "{len} unfinished");
        }
        assert!(read_varint(&[0x80; 6]).is_err());
    }

    #[test]
    fn json_records_split_across_pushes_and_share_one() {
        let mut framer = Framer::new(Protocol::Json, 1024);
        framer.push(b"{\"type\":1,\"target\":\"Publish\",\"argu");
        assert!(matches!(framer.next_message(), Ok(None)));
        framer.push(
            b"ments\":[\"a\",{\"x\":1}],\"invocationId\":\"7\"}\x1e{\"type\":5,\"invocationId\":\"3\"}\x1e",
        );
        let Ok(Some(Incoming::Invocation { id, target, arguments, .. })) = framer.next_message() else {
            panic!("an invocation")
        };
        assert_eq!((id.as_deref(), target.as_str(), arguments.len()), (Some("7"), "Publish", 2));
        assert!(matches!(framer.next_message(), Ok(Some(Incoming::Cancel { id })) if id == "3"));
    }

    #[test]
    fn bad_json_records_are_errors_and_unknown_types_are_not() {
        let table: [(&[u8], bool); 7] = [
            (b"{\"type\":1,\"arguments\":[]}", false),
            (b"{\"type\":1,\"target\":\"x\"}", false),
            (b"{\"type\":4,\"target\":\"x\",\"arguments\":[]}", false),
            (b"{\"type\":2,\"invocationId\":\"1\"}", false),
            (b"[1,2]", false),
            (b"{\"type\":8}", false),
            (b"{\"type\":42}", true),
        ];
        for (record, ok) in table {
            assert_eq!(decode_json(record).is_ok(), ok, "{}", String::from_utf8_lossy(record));
        }
    }

    #[test]
    fn oversized_records_are_refused_before_they_are_whole() {
        let mut framer = Framer::new(Protocol::Json, 8);
        framer.push(b"{\"type\":6,   ");
        assert!(matches!(framer.next_message(), Err(ProtocolError::TooLarge(_))));
        let mut framer = Framer::new(Protocol::MessagePack, 8);
        let mut out = BytesMut::new();
        write_varint(&mut out, 9);
        framer.push(&out);
        assert!(matches!(framer.next_message(), Err(ProtocolError::TooLarge(9))));
    }

    fn msgpack_record(value: rmpv::Value) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_msgpack(&mut out, &value);
        out.to_vec()
    }

    #[test]
    fn msgpack_messages_decode_by_position() {
        let invocation = rmpv::Value::Array(vec![
            1.into(),
            rmpv::Value::Map(Vec::new()),
            "1".into(),
            "Upload".into(),
            rmpv::Value::Array(vec!["a".into()]),
            rmpv::Value::Array(vec!["0".into()]),
        ]);
        let mut framer = Framer::new(Protocol::MessagePack, 1024);
        framer.push(&msgpack_record(invocation));
        framer.push(&msgpack_record(rmpv::Value::Array(vec![6.into()])));
        framer.push(&msgpack_record(rmpv::Value::Array(vec![
            3.into(),
            rmpv::Value::Map(Vec::new()),
            "0".into(),
            2.into(),
        ])));
        let Ok(Some(Incoming::Invocation { id, stream_ids, .. })) = framer.next_message() else {
            panic!("an invocation")
        };
        assert_eq!((id.as_deref(), stream_ids), (Some("1"), vec!["0".to_owned()]));
        assert!(matches!(framer.next_message(), Ok(Some(Incoming::Ping))));
        assert!(matches!(framer.next_message(), Ok(Some(Incoming::Completion { error: None, .. }))));
        for bad in [rmpv::Value::from(1), rmpv::Value::Array(vec![]), rmpv::Value::Array(vec![1.into()])] {
            assert!(decode_msgpack(&msgpack_record(bad.clone())[1..]).is_err(), "{bad}");
        }
    }

    #[test]
    fn deep_msgpack_is_refused_without_recursing() {
        let mut deep = vec![0x94, 0x01, 0x80, 0xc0];
        deep.extend(std::iter::repeat_n(0x91, 100_000));
        deep.push(0x01);
        assert!(decode_msgpack(&deep).is_err());
    }

    #[test]
    fn outgoing_json_is_one_record_each() {
        let mut out = BytesMut::new();
        encode(Protocol::Json, &Outgoing::Completion { id: "1", result: Err("nope".into()) }, &mut out);
        encode(Protocol::Json, &Outgoing::Close { error: None, allow_reconnect: true }, &mut out);
        assert_eq!(
            &out[..],
            &b"{\"error\":\"nope\",\"invocationId\":\"1\",\"type\":3}\x1e{\"allowReconnect\":true,\"type\":7}\x1e"[..]
        );
    }
}
