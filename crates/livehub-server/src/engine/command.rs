//! Client commands: decoded once per wire format into one typed value per command, so the
//! command layer never looks at JSON or MessagePack again.

use std::collections::HashMap;

use bytes::Bytes;
use livehub_core::{data_too_deep, Payload, StreamPosition, MAX_DATA_DEPTH};
use serde::Deserialize;

use super::error::ClientError;
use crate::protocol::Format;

/// How deeply a MessagePack command may nest while it is decoded, counting its own map: twice
/// [`MAX_DATA_DEPTH`], so that data somewhat over the limit still reaches the check that names
/// it and answers with the command's id, while the decoder (which recurses once per level) stays
/// far from the end of a thread's stack. rmp_serde's own limit of 1,024 is not: one command
/// nesting 1,000 arrays overflowed a 2 MiB stack in a debug build and aborted the process.
const MAX_MSGPACK_DEPTH: usize = 2 * MAX_DATA_DEPTH;

/// A decoded command and the id its replies carry.
#[derive(Debug)]
pub(crate) struct Request {
    /// Correlates the replies; a command without one gets no `ack`.
    pub(crate) id: Option<u64>,
    /// What to do.
    pub(crate) command: Command,
}

/// One client command.
#[derive(Debug)]
pub(crate) enum Command {
    /// Subscribe to channels or patterns.
    Subscribe(Subscribe),
    /// Leave channels or patterns.
    Unsubscribe(Unsubscribe),
    /// Publish to one channel.
    Publish(Publish),
    /// Read part of a channel's history.
    History(HistoryRequest),
    /// Replace the connection's token.
    Refresh(Refresh),
    /// Measure a round trip.
    Ping,
}

/// `subscribe`.
#[derive(Debug, Default)]
pub(crate) struct Subscribe {
    /// Channels or patterns, in the order their replies are sent.
    pub(crate) channels: Vec<String>,
    /// Positions to recover from, per concrete channel.
    pub(crate) recover: HashMap<String, StreamPosition>,
    /// Send each channel's latest publication when not recovering it.
    pub(crate) latest: bool,
}

/// `unsubscribe`.
#[derive(Debug)]
pub(crate) struct Unsubscribe {
    /// Channels or patterns held.
    pub(crate) channels: Vec<String>,
}

/// `publish`.
#[derive(Debug)]
pub(crate) struct Publish {
    /// The channel, not yet validated (its error names it).
    pub(crate) channel: String,
    /// The data, validated as JSON or binary.
    pub(crate) data: Payload,
    /// Idempotency key: a retry with the same key is stored once.
    pub(crate) key: Option<String>,
}

/// `history`.
#[derive(Debug)]
pub(crate) struct HistoryRequest {
    /// The channel.
    pub(crate) channel: String,
    /// Publications after this position; the newest ones without it.
    pub(crate) since: Option<StreamPosition>,
    /// Most publications returned (capped by the server).
    pub(crate) limit: Option<usize>,
}

/// `refresh`.
#[derive(Debug)]
pub(crate) struct Refresh {
    /// The new token.
    pub(crate) token: String,
}

/// A command as either wire format carries it; which fields matter depends on `action`. Unknown
/// fields are ignored so that newer clients can talk to older servers.
#[derive(Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
struct Wire<D> {
    #[serde(default)]
    id: Option<u64>,
    action: String,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    recover: HashMap<String, StreamPosition>,
    #[serde(default)]
    latest: bool,
    /// `null` is data like any other; only a missing field is an error.
    #[serde(default, deserialize_with = "present")]
    data: Option<D>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    since: Option<StreamPosition>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    token: Option<String>,
}

/// Deserializes a field that is present (even as `null`) into `Some`; serde's `default` makes an
/// absent one `None`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Publication data in either encoding.
trait WireData {
    fn into_payload(self) -> Result<Payload, livehub_core::Error>;
}

impl WireData for Box<serde_json::value::RawValue> {
    fn into_payload(self) -> Result<Payload, livehub_core::Error> {
        Payload::json(Bytes::from(self.get().to_owned()))
    }
}

impl WireData for rmpv::Value {
    fn into_payload(self) -> Result<Payload, livehub_core::Error> {
        if let rmpv::Value::Binary(bytes) = self {
            return Ok(Payload::Binary(Bytes::from(bytes)));
        }
        check_msgpack_data(&self, 0)?;
        let json = serde_json::to_vec(&self)
            .map_err(|e| livehub_core::Error::InvalidData(format!("not representable as JSON: {e}")))?;
        // The same gate as JSON data, so that depth and number range are decided in one place.
        Payload::json(json)
    }
}

/// MessagePack publication data as a [`Payload`], through the same checks as a native
/// MessagePack `publish` (for transports with MessagePack framings of their own, like SignalR).
pub(crate) fn msgpack_payload(value: rmpv::Value) -> Result<Payload, livehub_core::Error> {
    value.into_payload()
}

/// Refuses what JSON cannot carry but serde_json would write silently: NaN and ±Infinity become
/// `null`, so the publication would be stored as something other than what was sent.
///
/// The walk stops at [`MAX_DATA_DEPTH`]: deeper data is refused here, before the recursive
/// conversion to JSON, with the error [`Payload::json`] would give (its JSON form nests at least
/// as deep).
fn check_msgpack_data(value: &rmpv::Value, depth: usize) -> Result<(), livehub_core::Error> {
    let non_finite = |f: f64| {
        livehub_core::Error::InvalidData(format!("data holds the number {f}, which JSON cannot represent"))
    };
    let inner = depth + 1;
    match value {
        rmpv::Value::F32(f) if !f.is_finite() => Err(non_finite(f64::from(*f))),
        rmpv::Value::F64(f) if !f.is_finite() => Err(non_finite(*f)),
        rmpv::Value::Array(_) | rmpv::Value::Map(_) if inner > MAX_DATA_DEPTH => Err(data_too_deep()),
        rmpv::Value::Array(items) => items.iter().try_for_each(|item| check_msgpack_data(item, inner)),
        rmpv::Value::Map(entries) => entries.iter().try_for_each(|(key, item)| {
            check_msgpack_data(key, inner)?;
            check_msgpack_data(item, inner)
        }),
        _ => Ok(()),
    }
}

/// A command that could not be decoded, with its id when the id itself could be read.
#[derive(Debug)]
pub(crate) struct Rejected {
    /// The id the error reply carries.
    pub(crate) id: Option<u64>,
    /// Why.
    pub(crate) error: ClientError,
}

impl Request {
    /// Decodes one message of a connection speaking `format`.
    pub(crate) fn decode(format: Format, bytes: &[u8]) -> Result<Self, Rejected> {
        match format {
            Format::Json => {
                let wire: Wire<Box<serde_json::value::RawValue>> =
                    serde_json::from_slice(bytes).map_err(|e| Rejected {
                        id: None,
                        error: if e.is_data() {
                            ClientError::BadRequest(e.to_string())
                        } else {
                            ClientError::InvalidMessage(e.to_string())
                        },
                    })?;
                wire.into_request()
            }
            Format::MessagePack => {
                let mut decoder = rmp_serde::Deserializer::from_read_ref(bytes);
                decoder.set_max_depth(MAX_MSGPACK_DEPTH);
                let wire = Wire::<rmpv::Value>::deserialize(&mut decoder).map_err(|e| Rejected {
                    id: None,
                    error: match e {
                        // Only `data` can nest this deep: every other field has a fixed shape.
                        rmp_serde::decode::Error::DepthLimitExceeded => ClientError::Core(data_too_deep()),
                        rmp_serde::decode::Error::Syntax(_) => ClientError::BadRequest(e.to_string()),
                        _ => ClientError::InvalidMessage(e.to_string()),
                    },
                })?;
                wire.into_request()
            }
        }
    }
}

impl<D: WireData> Wire<D> {
    fn into_request(self) -> Result<Request, Rejected> {
        let id = self.id;
        let reject = |error| Rejected { id, error };
        let command = match self.action.as_str() {
            "subscribe" if self.channels.is_empty() => {
                return Err(reject(ClientError::BadRequest("subscribe needs \"channels\"".into())))
            }
            "subscribe" => Command::Subscribe(Subscribe {
                channels: self.channels,
                recover: self.recover,
                latest: self.latest,
            }),
            "unsubscribe" if self.channels.is_empty() => {
                return Err(reject(ClientError::BadRequest("unsubscribe needs \"channels\"".into())))
            }
            "unsubscribe" => Command::Unsubscribe(Unsubscribe { channels: self.channels }),
            "publish" => {
                let channel = self.channel.ok_or(ClientError::Missing("channel")).map_err(reject)?;
                let data = self.data.ok_or(ClientError::Missing("data")).map_err(reject)?;
                let data = data.into_payload().map_err(|e| reject(e.into()))?;
                Command::Publish(Publish { channel, data, key: self.key })
            }
            "history" => Command::History(HistoryRequest {
                channel: self.channel.ok_or(ClientError::Missing("channel")).map_err(reject)?,
                since: self.since,
                limit: self.limit,
            }),
            "refresh" => Command::Refresh(Refresh {
                token: self.token.ok_or(ClientError::Missing("token")).map_err(reject)?,
            }),
            "ping" => Command::Ping,
            other => return Err(reject(ClientError::UnknownAction(other.to_owned()))),
        };
        Ok(Request { id, command })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Result<Request, Rejected> {
        Request::decode(Format::Json, text.as_bytes())
    }

    fn msgpack(value: rmpv::Value) -> Result<Request, Rejected> {
        let mut buf = Vec::new();
        rmpv::encode::write_value(&mut buf, &value).expect("encode");
        Request::decode(Format::MessagePack, &buf)
    }

    #[test]
    fn each_action_decodes_to_its_command() {
        let table = [
            (r#"{"id":1,"action":"subscribe","channels":["a"],"latest":true}"#, "Subscribe"),
            (r#"{"action":"unsubscribe","channels":["a"]}"#, "Unsubscribe"),
            (r#"{"action":"publish","channel":"a","data":null}"#, "Publish"),
            (r#"{"action":"history","channel":"a","limit":3}"#, "History"),
            (r#"{"action":"refresh","token":"t"}"#, "Refresh"),
            (r#"{"action":"ping","extra":"ignored"}"#, "Ping"),
        ];
        for (text, want) in table {
            let request = json(text).expect(text);
            assert!(format!("{:?}", request.command).starts_with(want), "{text}: {:?}", request.command);
        }
    }

    #[test]
    fn errors_carry_the_id_and_a_stable_code() {
        let table = [
            (r#"{"id":7,"action":"subscribe"}"#, Some(7), "bad_request"),
            (r#"{"id":8,"action":"publish","channel":"a"}"#, Some(8), "bad_request"),
            (r#"{"id":9,"action":"publish","data":1}"#, Some(9), "bad_request"),
            (r#"{"id":10,"action":"dance"}"#, Some(10), "unknown_action"),
            (r#"{"id":11,"action":"refresh"}"#, Some(11), "bad_request"),
            (r#"{"id":"x","action":"ping"}"#, None, "bad_request"),
            (r#"{"action":"#, None, "invalid_message"),
            ("not json", None, "invalid_message"),
        ];
        for (text, id, code) in table {
            let rejected = json(text).expect_err(text);
            assert_eq!((rejected.id, rejected.error.code()), (id, code), "{text}");
        }
    }

    #[test]
    fn msgpack_commands_carry_binary_data() {
        let cmd = rmpv::Value::Map(vec![
            ("id".into(), 3.into()),
            ("action".into(), "publish".into()),
            ("channel".into(), "a".into()),
            ("data".into(), rmpv::Value::Binary(vec![1, 2])),
        ]);
        let request = msgpack(cmd).expect("decodes");
        assert_eq!(request.id, Some(3));
        let Command::Publish(publish) = request.command else { panic!("a publish") };
        assert_eq!(publish.data, Payload::Binary(Bytes::from_static(&[1, 2])));
    }

    fn msgpack_publish(data: rmpv::Value) -> Result<Request, Rejected> {
        msgpack(rmpv::Value::Map(vec![
            ("id".into(), 4.into()),
            ("action".into(), "publish".into()),
            ("channel".into(), "a".into()),
            ("data".into(), data),
        ]))
    }

    fn msgpack_nested(depth: usize) -> rmpv::Value {
        (0..depth).fold(rmpv::Value::from(1), |inner, _| rmpv::Value::Array(vec![inner]))
    }

    #[test]
    fn msgpack_non_finite_numbers_are_refused_anywhere() {
        let table = [
            rmpv::Value::F64(f64::NAN),
            rmpv::Value::F64(f64::INFINITY),
            rmpv::Value::F32(f32::NEG_INFINITY),
            rmpv::Value::Array(vec![1.into(), rmpv::Value::F64(f64::NAN)]),
            rmpv::Value::Map(vec![("x".into(), rmpv::Value::Map(vec![("y".into(), f64::INFINITY.into())]))]),
        ];
        for data in table {
            let rejected = msgpack_publish(data.clone()).expect_err("non-finite");
            assert_eq!((rejected.id, rejected.error.code()), (Some(4), "invalid_data"), "{data}");
            assert!(rejected.error.to_string().contains("JSON cannot represent"), "{}", rejected.error);
        }
        let Command::Publish(publish) = msgpack_publish(rmpv::Value::F64(1.5)).expect("finite").command
        else {
            panic!("a publish")
        };
        assert_eq!(publish.data, Payload::json("1.5").expect("valid"));
    }

    #[test]
    fn msgpack_data_is_held_to_the_json_depth_limit() {
        assert!(msgpack_publish(msgpack_nested(MAX_DATA_DEPTH)).is_ok());
        let rejected = msgpack_publish(msgpack_nested(MAX_DATA_DEPTH + 1)).expect_err("too deep");
        assert_eq!((rejected.id, rejected.error.code()), (Some(4), "invalid_data"));
        // Past what the decoder descends, refused while decoding: before the id is read.
        let mut deep = Vec::new();
        rmpv::encode::write_value(&mut deep, &rmpv::Value::Map(vec![("action".into(), "publish".into())]))
            .expect("encode");
        deep[0] += 1;
        rmpv::encode::write_value(&mut deep, &"data".into()).expect("encode");
        deep.extend(std::iter::repeat_n(0x91, 100_000));
        deep.push(0x01);
        let rejected = Request::decode(Format::MessagePack, &deep).expect_err("too deep");
        assert_eq!((rejected.id, rejected.error.code()), (None, "invalid_data"));
        // A binary inside an array becomes one more JSON array: the depth of the JSON form counts.
        let binary_inside = (1..MAX_DATA_DEPTH)
            .fold(rmpv::Value::Array(vec![rmpv::Value::Binary(vec![1])]), |inner, _| {
                rmpv::Value::Array(vec![inner])
            });
        assert_eq!(msgpack_publish(binary_inside).expect_err("too deep").error.code(), "invalid_data");
    }

    #[test]
    fn json_data_is_held_to_the_depth_limit() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let publish =
            |data: String| json(&format!(r#"{{"id":5,"action":"publish","channel":"a","data":{data}}}"#));
        assert!(publish(nested(MAX_DATA_DEPTH)).is_ok());
        for depth in [MAX_DATA_DEPTH + 1, 127, 10_000] {
            let rejected = publish(nested(depth)).expect_err("too deep");
            assert_eq!((rejected.id, rejected.error.code()), (Some(5), "invalid_data"), "{depth}");
        }
    }

    #[test]
    fn msgpack_garbage_is_an_invalid_message() {
        let rejected = Request::decode(Format::MessagePack, &[0xc1]).expect_err("0xc1 is never valid");
        assert_eq!(rejected.error.code(), "invalid_message");
    }
}
