//! The decoder: bytes from the network to [`Packet`]s, refusing anything the specifications
//! forbid with the reason code they name.

use bytes::Bytes;

use crate::packet::*;
use crate::properties::{Owner, Properties};
use crate::Reason;

/// The largest remaining length four length bytes can say (MQTT's own ceiling).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Why bytes are not a packet this side accepts. Ends the connection, with `reason` in a v5
/// `DISCONNECT` (or `CONNACK`, before the connection is accepted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({reason:?})")]
pub struct DecodeError {
    /// The reason code to send.
    pub reason: Reason,
    /// What was wrong, for the reason string and the log.
    pub message: &'static str,
}

impl DecodeError {
    pub(crate) fn new(reason: Reason, message: &'static str) -> Self {
        Self { reason, message }
    }

    pub(crate) fn malformed(message: &'static str) -> Self {
        Self::new(Reason::MalformedPacket, message)
    }
}

/// A packet and how many bytes of the buffer it took.
#[derive(Debug)]
pub struct Decoded {
    /// The packet.
    pub packet: Packet,
    /// Its length on the wire, fixed header included.
    pub len: usize,
}

/// Decodes the first packet in `buf`; `Ok(None)` when `buf` does not hold a whole one yet.
///
/// `version` is the connection's, or `None` before its `CONNECT` (when only a `CONNECT` is
/// accepted). A packet longer than `max_packet_size` is refused as soon as its fixed header
/// says so, before its body arrives.
pub fn decode(
    buf: &[u8],
    version: Option<Version>,
    max_packet_size: usize,
) -> Result<Option<Decoded>, DecodeError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    let mut remaining: usize = 0;
    let mut header = 1;
    loop {
        let Some(&byte) = buf.get(header) else { return Ok(None) };
        remaining |= usize::from(byte & 0x7F) << (7 * (header - 1));
        header += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if header == 5 {
            return Err(DecodeError::malformed("a remaining length of more than four bytes"));
        }
    }
    let len = header + remaining;
    if len > max_packet_size {
        return Err(DecodeError::new(Reason::PacketTooLarge, "larger than the maximum packet size"));
    }
    let Some(body) = buf.get(header..len) else { return Ok(None) };
    let kind = first >> 4;
    let flags = first & 0x0F;
    let packet = match (kind, version) {
        (1, _) => Packet::Connect(Box::new(connect(fixed_flags(flags, 0, body)?)?)),
        (_, None) => return Err(DecodeError::new(Reason::ProtocolError, "the first packet must be CONNECT")),
        (kind, Some(version)) => body_packet(kind, flags, body, version)?,
    };
    Ok(Some(Decoded { packet, len }))
}

/// Checks that the fixed header's flags are the ones the packet type requires.
fn fixed_flags(flags: u8, want: u8, body: &[u8]) -> Result<&[u8], DecodeError> {
    if flags != want {
        return Err(DecodeError::malformed("reserved flags of the fixed header are wrong"));
    }
    Ok(body)
}

fn body_packet(kind: u8, flags: u8, body: &[u8], v: Version) -> Result<Packet, DecodeError> {
    Ok(match kind {
        2 => Packet::ConnAck(connack(fixed_flags(flags, 0, body)?, v)?),
        3 => Packet::Publish(publish(flags, body, v)?),
        4 => Packet::Ack(ack(AckKind::PubAck, fixed_flags(flags, 0, body)?, v)?),
        5 => Packet::Ack(ack(AckKind::PubRec, fixed_flags(flags, 0, body)?, v)?),
        6 => Packet::Ack(ack(AckKind::PubRel, fixed_flags(flags, 2, body)?, v)?),
        7 => Packet::Ack(ack(AckKind::PubComp, fixed_flags(flags, 0, body)?, v)?),
        8 => Packet::Subscribe(subscribe(fixed_flags(flags, 2, body)?, v)?),
        9 => Packet::SubAck(suback(fixed_flags(flags, 0, body)?, v)?),
        10 => Packet::Unsubscribe(unsubscribe(fixed_flags(flags, 2, body)?, v)?),
        11 => Packet::UnsubAck(unsuback(fixed_flags(flags, 0, body)?, v)?),
        12 | 13 => {
            if !fixed_flags(flags, 0, body)?.is_empty() {
                return Err(DecodeError::malformed("PINGREQ and PINGRESP have no body"));
            }
            if kind == 12 {
                Packet::PingReq
            } else {
                Packet::PingResp
            }
        }
        14 => Packet::Disconnect(disconnect(fixed_flags(flags, 0, body)?, v, Owner::Disconnect)?),
        15 if v == Version::V5 => Packet::Auth(disconnect(fixed_flags(flags, 0, body)?, v, Owner::Auth)?),
        _ => return Err(DecodeError::malformed("a reserved packet type")),
    })
}

fn connect(body: &[u8]) -> Result<Connect, DecodeError> {
    let mut r = Reader::new(body);
    let name = r.string()?;
    let level = r.u8()?;
    let version = match (name.as_str(), level) {
        ("MQTT", 4) => Version::V311,
        ("MQTT", 5) => Version::V5,
        ("MQTT", _) | ("MQIsdp", _) => {
            return Err(DecodeError::new(Reason::UnsupportedProtocolVersion, "an unsupported protocol level"))
        }
        _ => return Err(DecodeError::malformed("not the MQTT protocol")),
    };
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::malformed("the reserved CONNECT flag is set"));
    }
    let has_will = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if !has_will && (will_qos != 0 || will_retain) {
        return Err(DecodeError::malformed("will QoS or retain without a will"));
    }
    let will_qos = QoS::from_bits(will_qos).ok_or(DecodeError::malformed("will QoS 3"))?;
    if version == Version::V311 && has_password && !has_username {
        return Err(DecodeError::malformed("a password without a user name"));
    }
    let keep_alive = r.u16()?;
    let properties = if version == Version::V5 {
        Properties::decode(&mut r, Owner::Connect)?
    } else {
        Properties::default()
    };
    let client_id = r.string()?;
    let will = if has_will {
        let properties = if version == Version::V5 {
            Properties::decode(&mut r, Owner::Will)?
        } else {
            Properties::default()
        };
        let topic = r.string()?;
        let payload = r.binary()?;
        Some(Will { topic, payload, qos: will_qos, retain: will_retain, properties })
    } else {
        None
    };
    let username = has_username.then(|| r.string()).transpose()?;
    let password = has_password.then(|| r.binary()).transpose()?;
    r.end()?;
    Ok(Connect {
        version,
        client_id,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        properties,
        will,
        username,
        password,
    })
}

fn connack(body: &[u8], v: Version) -> Result<ConnAck, DecodeError> {
    let mut r = Reader::new(body);
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::malformed("reserved CONNACK flags are set"));
    }
    let code = r.u8()?;
    let reason = match v {
        Version::V311 => match code {
            0 => Reason::Success,
            1 => Reason::UnsupportedProtocolVersion,
            2 => Reason::ClientIdNotValid,
            3 => Reason::ServerUnavailable,
            4 => Reason::BadUserNameOrPassword,
            5 => Reason::NotAuthorized,
            _ => return Err(DecodeError::malformed("an unknown CONNACK return code")),
        },
        Version::V5 => reason(code)?,
    };
    let properties = props(&mut r, v, Owner::ConnAck)?;
    r.end()?;
    Ok(ConnAck { session_present: flags & 1 != 0, reason, properties })
}

fn publish(flags: u8, body: &[u8], v: Version) -> Result<Publish, DecodeError> {
    let qos = QoS::from_bits((flags >> 1) & 0x03).ok_or(DecodeError::malformed("PUBLISH with QoS 3"))?;
    let dup = flags & 0x08 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::malformed("DUP set on a QoS 0 PUBLISH"));
    }
    let mut r = Reader::new(body);
    let topic = r.string()?;
    let packet_id = if qos == QoS::AtMostOnce { None } else { Some(r.packet_id()?) };
    let properties = props(&mut r, v, Owner::Publish)?;
    let payload = Bytes::copy_from_slice(r.rest());
    Ok(Publish { dup, qos, retain: flags & 0x01 != 0, topic, packet_id, properties, payload })
}

fn ack(kind: AckKind, body: &[u8], v: Version) -> Result<Ack, DecodeError> {
    let mut r = Reader::new(body);
    let packet_id = r.packet_id()?;
    let (reason, properties) = match v {
        Version::V311 => (Reason::Success, Properties::default()),
        Version::V5 if r.is_empty() => (Reason::Success, Properties::default()),
        Version::V5 => {
            let reason = reason(r.u8()?)?;
            let properties =
                if r.is_empty() { Properties::default() } else { Properties::decode(&mut r, Owner::Ack)? };
            (reason, properties)
        }
    };
    r.end()?;
    Ok(Ack { kind, packet_id, reason, properties })
}

fn subscribe(body: &[u8], v: Version) -> Result<Subscribe, DecodeError> {
    let mut r = Reader::new(body);
    let packet_id = r.packet_id()?;
    let properties = props(&mut r, v, Owner::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let bits = r.u8()?;
        let reserved = match v {
            Version::V311 => 0xFC,
            Version::V5 => 0xC0,
        };
        if bits & reserved != 0 {
            return Err(DecodeError::malformed("reserved subscription option bits are set"));
        }
        let qos = QoS::from_bits(bits & 0x03).ok_or(DecodeError::malformed("a subscription with QoS 3"))?;
        let retain_handling = match (bits >> 4) & 0x03 {
            0 => RetainHandling::OnSubscribe,
            1 => RetainHandling::OnNewSubscribe,
            2 => RetainHandling::Never,
            _ => return Err(DecodeError::new(Reason::ProtocolError, "retain handling 3")),
        };
        let options = SubscriptionOptions {
            qos: Some(qos),
            no_local: bits & 0x04 != 0,
            retain_as_published: bits & 0x08 != 0,
            retain_handling,
        };
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(DecodeError::new(Reason::ProtocolError, "a SUBSCRIBE without a filter"));
    }
    Ok(Subscribe { packet_id, properties, filters })
}

fn suback(body: &[u8], v: Version) -> Result<SubAck, DecodeError> {
    let mut r = Reader::new(body);
    let packet_id = r.packet_id()?;
    let properties = props(&mut r, v, Owner::SubAck)?;
    let reasons = r
        .rest()
        .iter()
        .map(|&c| match (v, c) {
            (Version::V311, 0..=2 | 0x80) | (Version::V5, _) => reason(c),
            (Version::V311, _) => Err(DecodeError::malformed("an unknown SUBACK return code")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SubAck { packet_id, properties, reasons })
}

fn unsubscribe(body: &[u8], v: Version) -> Result<Unsubscribe, DecodeError> {
    let mut r = Reader::new(body);
    let packet_id = r.packet_id()?;
    let properties = props(&mut r, v, Owner::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::new(Reason::ProtocolError, "an UNSUBSCRIBE without a filter"));
    }
    Ok(Unsubscribe { packet_id, properties, filters })
}

fn unsuback(body: &[u8], v: Version) -> Result<UnsubAck, DecodeError> {
    let mut r = Reader::new(body);
    let packet_id = r.packet_id()?;
    let properties = props(&mut r, v, Owner::UnsubAck)?;
    if v == Version::V311 {
        r.end()?;
    }
    let reasons = r.rest().iter().map(|&c| reason(c)).collect::<Result<Vec<_>, _>>()?;
    Ok(UnsubAck { packet_id, properties, reasons })
}

fn disconnect(body: &[u8], v: Version, owner: Owner) -> Result<Disconnect, DecodeError> {
    let mut r = Reader::new(body);
    if v == Version::V311 || r.is_empty() {
        r.end()?;
        return Ok(Disconnect { reason: Reason::Success, properties: Properties::default() });
    }
    let reason = reason(r.u8()?)?;
    let properties = if r.is_empty() { Properties::default() } else { Properties::decode(&mut r, owner)? };
    r.end()?;
    Ok(Disconnect { reason, properties })
}

/// v5 properties; none in 3.1.1.
fn props(r: &mut Reader<'_>, v: Version, owner: Owner) -> Result<Properties, DecodeError> {
    match v {
        Version::V311 => Ok(Properties::default()),
        Version::V5 => Properties::decode(r, owner),
    }
}

fn reason(code: u8) -> Result<Reason, DecodeError> {
    Reason::from_code(code).ok_or(DecodeError::malformed("an unknown reason code"))
}

/// A cursor over a packet's body; every read past its end is a malformed packet.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::malformed("the packet ends inside a field"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Checks that nothing is left.
    pub(crate) fn end(&self) -> Result<(), DecodeError> {
        if !self.buf.is_empty() {
            return Err(DecodeError::malformed("bytes after the end of the packet"));
        }
        Ok(())
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// The next `len` bytes as a reader of their own.
    pub(crate) fn sub(&mut self, len: usize) -> Result<Reader<'a>, DecodeError> {
        Ok(Reader::new(self.take(len)?))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A packet identifier, which is never 0.
    pub(crate) fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::malformed("packet identifier 0")),
            id => Ok(id),
        }
    }

    /// A variable byte integer: at most four bytes.
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::malformed("a variable byte integer of more than four bytes"))
    }

    /// A UTF-8 string: valid UTF-8 without U+0000.
    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u16()?);
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::malformed("a string is not UTF-8"))?;
        if text.contains('\0') {
            return Err(DecodeError::malformed("a string contains U+0000"));
        }
        Ok(text.to_owned())
    }

    /// Binary data with a two-byte length.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;

    fn roundtrip(packet: Packet, v: Version) {
        let mut bytes = Vec::new();
        encode(&packet, v, &mut bytes);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], Some(v), usize::MAX).expect("a prefix").is_none(), "{packet:?}");
        }
        let decoded = decode(&bytes, Some(v), usize::MAX).expect("decodes").expect("whole");
        assert_eq!(decoded.len, bytes.len());
        assert_eq!(decoded.packet, packet, "{v:?}");
    }

    pub(super) fn every_packet_for(v: Version) -> Vec<Packet> {
        let v5 = v == Version::V5;
        let props = |p: Properties| if v5 { p } else { Properties::default() };
        let publish_props = props(Properties {
            message_expiry: Some(60),
            topic_alias: Some(3),
            subscription_ids: vec![1, 268_435_455],
            user: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            content_type: Some("application/json".into()),
            payload_format: Some(1),
            ..Properties::default()
        });
        vec![
            Packet::Connect(Box::new(Connect {
                version: v,
                client_id: "dev-1".into(),
                clean_start: false,
                keep_alive: 30,
                properties: props(Properties {
                    session_expiry: Some(3600),
                    receive_maximum: Some(10),
                    maximum_packet_size: Some(1 << 20),
                    topic_alias_maximum: Some(5),
                    ..Properties::default()
                }),
                will: Some(Will {
                    topic: "dev/1/status".into(),
                    payload: Bytes::from_static(b"offline"),
                    qos: QoS::AtLeastOnce,
                    retain: true,
                    properties: props(Properties { will_delay: Some(5), ..Properties::default() }),
                }),
                username: Some("user".into()),
                password: Some(Bytes::from_static(b"pass\0word")),
            })),
            Packet::ConnAck(ConnAck {
                session_present: true,
                reason: Reason::Success,
                properties: props(Properties {
                    assigned_client_id: Some("auto-1".into()),
                    server_keep_alive: Some(60),
                    reason_string: Some("welcome".into()),
                    maximum_qos: Some(1),
                    ..Properties::default()
                }),
            }),
            Packet::ConnAck(ConnAck {
                session_present: false,
                reason: Reason::NotAuthorized,
                properties: Properties::default(),
            }),
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: "a/b".into(),
                packet_id: None,
                properties: publish_props.clone(),
                payload: Bytes::from_static(b"{\"x\":1}"),
            }),
            Packet::Publish(Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: "a/b".into(),
                packet_id: Some(65535),
                properties: publish_props,
                payload: Bytes::new(),
            }),
            Packet::Ack(Ack {
                kind: AckKind::PubAck,
                packet_id: 7,
                reason: Reason::Success,
                properties: Properties::default(),
            }),
            Packet::Ack(Ack {
                kind: AckKind::PubRel,
                packet_id: 7,
                reason: if v5 { Reason::PacketIdNotFound } else { Reason::Success },
                properties: Properties::default(),
            }),
            Packet::Ack(Ack {
                kind: AckKind::PubRec,
                packet_id: 9,
                reason: if v5 { Reason::NotAuthorized } else { Reason::Success },
                properties: props(Properties { reason_string: Some("no".into()), ..Properties::default() }),
            }),
            Packet::Ack(Ack {
                kind: AckKind::PubComp,
                packet_id: 9,
                reason: Reason::Success,
                properties: Properties::default(),
            }),
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: props(Properties { subscription_ids: vec![42], ..Properties::default() }),
                filters: vec![
                    (
                        "a/+/c".into(),
                        SubscriptionOptions { qos: Some(QoS::ExactlyOnce), ..Default::default() },
                    ),
                    (
                        "$share/g/#".into(),
                        SubscriptionOptions {
                            qos: Some(QoS::AtLeastOnce),
                            no_local: v5,
                            retain_as_published: v5,
                            retain_handling: if v5 {
                                RetainHandling::Never
                            } else {
                                RetainHandling::OnSubscribe
                            },
                        },
                    ),
                ],
            }),
            Packet::SubAck(SubAck {
                packet_id: 1,
                properties: Properties::default(),
                reasons: vec![Reason::GrantedQos2, Reason::Unspecified],
            }),
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 2,
                properties: Properties::default(),
                filters: vec!["a/#".into(), "b".into()],
            }),
            Packet::UnsubAck(UnsubAck {
                packet_id: 2,
                properties: Properties::default(),
                reasons: if v5 { vec![Reason::Success, Reason::NoSubscriptionExisted] } else { vec![] },
            }),
            Packet::PingReq,
            Packet::PingResp,
            Packet::Disconnect(Disconnect {
                reason: if v5 { Reason::DisconnectWithWill } else { Reason::Success },
                properties: props(Properties { session_expiry: Some(0), ..Properties::default() }),
            }),
        ]
    }

    #[test]
    fn every_packet_round_trips_in_both_versions() {
        for v in [Version::V311, Version::V5] {
            for packet in every_packet_for(v) {
                roundtrip(packet, v);
            }
        }
        roundtrip(
            Packet::Auth(Disconnect { reason: Reason::Success, properties: Properties::default() }),
            Version::V5,
        );
    }

    #[test]
    fn bad_bytes_get_the_reason_the_specification_names() {
        // A v3.1.1 CONNECT head: "MQTT", level 4, then flags, keep-alive and a client id "c".
        let connect = |flags: u8| vec![0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60, 0, 1, b'c'];
        let cases: Vec<(&str, Vec<u8>, Option<Version>, Reason)> = vec![
            ("PUBLISH before CONNECT", vec![0x30, 3, 0, 1, b'a'], None, Reason::ProtocolError),
            ("reserved CONNECT flag", connect(0x03), None, Reason::MalformedPacket),
            ("will QoS without a will", connect(0x08), None, Reason::MalformedPacket),
            ("v3 password without a user name", connect(0x40), None, Reason::MalformedPacket),
            (
                "protocol level 3",
                vec![0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60, 0, 1, b'c'],
                None,
                Reason::UnsupportedProtocolVersion,
            ),
            ("not MQTT", vec![0x10, 7, 0, 4, b'H', b'T', b'T', b'P', 4, 2, 0], None, Reason::MalformedPacket),
            (
                "five length bytes",
                vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
                Some(Version::V5),
                Reason::MalformedPacket,
            ),
            ("QoS 3", vec![0x36, 5, 0, 1, b'a', 0, 1], Some(Version::V311), Reason::MalformedPacket),
            ("DUP on QoS 0", vec![0x38, 3, 0, 1, b'a'], Some(Version::V311), Reason::MalformedPacket),
            ("packet id 0", vec![0x32, 5, 0, 1, b'a', 0, 0], Some(Version::V311), Reason::MalformedPacket),
            (
                "SUBSCRIBE flags",
                vec![0x80, 6, 0, 1, 0, 1, b'a', 0],
                Some(Version::V311),
                Reason::MalformedPacket,
            ),
            ("empty SUBSCRIBE", vec![0x82, 2, 0, 1], Some(Version::V311), Reason::ProtocolError),
            (
                "v3 option bits",
                vec![0x82, 6, 0, 1, 0, 1, b'a', 0x04],
                Some(Version::V311),
                Reason::MalformedPacket,
            ),
            (
                "retain handling 3",
                vec![0x82, 7, 0, 1, 0, 0, 1, b'a', 0x30],
                Some(Version::V5),
                Reason::ProtocolError,
            ),
            ("NUL in a topic", vec![0x30, 3, 0, 1, 0], Some(Version::V311), Reason::MalformedPacket),
            ("not UTF-8", vec![0x30, 3, 0, 1, 0xFF], Some(Version::V311), Reason::MalformedPacket),
            ("string past the end", vec![0x30, 3, 0, 9, b'a'], Some(Version::V311), Reason::MalformedPacket),
            ("PINGREQ with a body", vec![0xC0, 1, 0], Some(Version::V311), Reason::MalformedPacket),
            ("v3 DISCONNECT with a body", vec![0xE0, 1, 0], Some(Version::V311), Reason::MalformedPacket),
            ("AUTH in 3.1.1", vec![0xF0, 0], Some(Version::V311), Reason::MalformedPacket),
            ("reserved type 0", vec![0x00, 0], Some(Version::V5), Reason::MalformedPacket),
            ("unknown reason", vec![0xE0, 1, 0x03], Some(Version::V5), Reason::MalformedPacket),
            (
                "a property longer than the property length",
                vec![0x30, 9, 0, 1, b'a', 4, 2, 0, 0, 0, 1],
                Some(Version::V5),
                Reason::MalformedPacket,
            ),
            (
                "topic alias 0",
                vec![0x30, 7, 0, 1, b'a', 3, 0x23, 0, 0],
                Some(Version::V5),
                Reason::ProtocolError,
            ),
            (
                "a property PUBLISH may not carry",
                vec![0x30, 9, 0, 1, b'a', 5, 0x11, 0, 0, 0, 1],
                Some(Version::V5),
                Reason::ProtocolError,
            ),
            (
                "a property twice",
                vec![0x30, 14, 0, 1, b'a', 10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1],
                Some(Version::V5),
                Reason::ProtocolError,
            ),
            (
                "property length past the end",
                vec![0x30, 4, 0, 1, b'a', 9],
                Some(Version::V5),
                Reason::MalformedPacket,
            ),
        ];
        for (what, bytes, v, reason) in cases {
            match decode(&bytes, v, usize::MAX) {
                Err(e) => assert_eq!(e.reason, reason, "{what}: {e}"),
                Ok(other) => panic!("{what}: decoded {other:?}"),
            }
        }
    }

    #[test]
    fn a_packet_over_the_limit_is_refused_from_its_fixed_header() {
        // Only the fixed header has arrived: the body would take 16,384 bytes.
        let err = decode(&[0x30, 0x80, 0x80, 0x01], Some(Version::V5), 1024).expect_err("too large");
        assert_eq!(err.reason, Reason::PacketTooLarge);
        assert!(decode(&[0x30, 0x80, 0x80, 0x01], Some(Version::V5), usize::MAX).expect("fine").is_none());
    }
}

#[cfg(test)]
mod mutations {
    use super::*;
    use crate::encode;

    /// Decodes `bytes` in both versions; every packet decoded must encode and decode to itself.
    fn check(bytes: &[u8]) {
        let _ = decode(bytes, None, 1024);
        for v in [Version::V311, Version::V5] {
            let mut rest = bytes;
            while let Ok(Some(decoded)) = decode(rest, Some(v), usize::MAX) {
                rest = &rest[decoded.len..];
                let mut again = Vec::new();
                encode(&decoded.packet, v, &mut again);
                let redecoded = decode(&again, Some(v), usize::MAX).map(|d| d.map(|d| d.packet));
                assert_eq!(redecoded, Ok(Some(decoded.packet.clone())), "{v:?} {bytes:?}");
            }
        }
    }

    #[test]
    fn mutated_packets_never_panic_and_round_trip() {
        let mut seeds = Vec::new();
        for v in [Version::V311, Version::V5] {
            for packet in super::tests::every_packet_for(v) {
                let mut bytes = Vec::new();
                encode(&packet, v, &mut bytes);
                seeds.push(bytes);
            }
        }
        // A fixed xorshift: the same mutations on every run, so a failure reproduces.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let seed = &seeds[next() as usize % seeds.len()];
            let mut bytes = seed.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() as usize % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => bytes[at] ^= 1 << (next() % 8),
                    _ => bytes.truncate(at.max(1)),
                }
            }
            check(&bytes);
        }
    }
}
