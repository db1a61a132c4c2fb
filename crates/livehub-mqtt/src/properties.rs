//! v5 properties (MQTT 5.0 section 2.2.2): which exist, which packet may carry which, and their
//! wire forms.

use bytes::Bytes;

use crate::decode::{DecodeError, Reader};
use crate::encode::Writer;
use crate::Reason;

/// The properties of one packet. A field a packet may not carry is refused by the decoder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01: 1 when the payload is UTF-8 text.
    pub payload_format: Option<u8>,
    /// 0x02: seconds the message lives.
    pub message_expiry: Option<u32>,
    /// 0x03: the payload's content type.
    pub content_type: Option<String>,
    /// 0x08: where a response goes.
    pub response_topic: Option<String>,
    /// 0x09: correlates a response with its request.
    pub correlation_data: Option<Bytes>,
    /// 0x0B: subscription identifiers (one in `SUBSCRIBE`, any number in `PUBLISH`).
    pub subscription_ids: Vec<u32>,
    /// 0x11: seconds a session outlives its connection.
    pub session_expiry: Option<u32>,
    /// 0x12: the identifier the server chose for the client.
    pub assigned_client_id: Option<String>,
    /// 0x13: the keep-alive the server imposes.
    pub server_keep_alive: Option<u16>,
    /// 0x15: extended authentication's method.
    pub authentication_method: Option<String>,
    /// 0x16: extended authentication's data.
    pub authentication_data: Option<Bytes>,
    /// 0x17: whether reason strings and user properties may be sent on failures.
    pub request_problem_information: Option<u8>,
    /// 0x18: seconds the will waits after the connection ends.
    pub will_delay: Option<u32>,
    /// 0x19: whether the client wants response information.
    pub request_response_information: Option<u8>,
    /// 0x1A: response information.
    pub response_information: Option<String>,
    /// 0x1C: another server to use.
    pub server_reference: Option<String>,
    /// 0x1F: a human-readable reason.
    pub reason_string: Option<String>,
    /// 0x21: QoS 1 and 2 publications the sender accepts in flight.
    pub receive_maximum: Option<u16>,
    /// 0x22: the highest topic alias the sender accepts.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23: a topic alias.
    pub topic_alias: Option<u16>,
    /// 0x24: the highest QoS the server supports.
    pub maximum_qos: Option<u8>,
    /// 0x25: whether retained messages are supported.
    pub retain_available: Option<u8>,
    /// 0x26: user properties, in order, repeats allowed.
    pub user: Vec<(String, String)>,
    /// 0x27: the largest packet the sender accepts.
    pub maximum_packet_size: Option<u32>,
    /// 0x28: whether wildcard subscriptions are supported.
    pub wildcard_available: Option<u8>,
    /// 0x29: whether subscription identifiers are supported.
    pub subscription_ids_available: Option<u8>,
    /// 0x2A: whether shared subscriptions are supported.
    pub shared_available: Option<u8>,
}

/// Which packet the properties belong to, for the rule of who may carry what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Connect,
    Will,
    ConnAck,
    Publish,
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl Owner {
    /// Whether this packet may carry property `id`.
    fn allows(self, id: u8) -> bool {
        use Owner::*;
        match id {
            0x26 => true,
            0x1F => !matches!(self, Connect | Will | Publish | Subscribe | Unsubscribe),
            0x01 | 0x02 | 0x03 | 0x08 | 0x09 => matches!(self, Publish | Will),
            0x0B => matches!(self, Publish | Subscribe),
            0x11 => matches!(self, Connect | ConnAck | Disconnect),
            0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => self == ConnAck,
            0x15 | 0x16 => matches!(self, Connect | ConnAck | Auth),
            0x17 | 0x19 => self == Connect,
            0x18 => self == Will,
            0x1C => matches!(self, ConnAck | Disconnect),
            0x21 | 0x22 | 0x27 => matches!(self, Connect | ConnAck),
            0x23 => self == Publish,
            _ => false,
        }
    }
}

/// Sets `slot` once; a second value is a protocol error.
fn once<T>(slot: &mut Option<T>, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::new(Reason::ProtocolError, "a property appears twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// A byte property that may only be 0 or 1.
fn flag(r: &mut Reader<'_>) -> Result<u8, DecodeError> {
    match r.u8()? {
        b @ (0 | 1) => Ok(b),
        _ => Err(DecodeError::new(Reason::ProtocolError, "a boolean property is neither 0 nor 1")),
    }
}

/// A u16 or u32 property for which 0 is a protocol error.
fn nonzero<T: PartialEq + Default>(value: T, what: &'static str) -> Result<T, DecodeError> {
    if value == T::default() {
        return Err(DecodeError::new(Reason::ProtocolError, what));
    }
    Ok(value)
}

impl Properties {
    /// Reads a property length and the properties it covers, as `owner` may carry them.
    pub(crate) fn decode(r: &mut Reader<'_>, owner: Owner) -> Result<Self, DecodeError> {
        let len = r.varint()? as usize;
        let mut r = r.sub(len)?;
        let mut p = Self::default();
        while !r.is_empty() {
            let id = r.varint()?;
            let id = u8::try_from(id).map_err(|_| DecodeError::malformed("unknown property identifier"))?;
            if !owner.allows(id) {
                return Err(DecodeError::new(
                    Reason::ProtocolError,
                    "a property this packet may not carry, or an unknown one",
                ));
            }
            match id {
                0x01 => once(&mut p.payload_format, flag(&mut r)?)?,
                0x02 => once(&mut p.message_expiry, r.u32()?)?,
                0x03 => once(&mut p.content_type, r.string()?)?,
                0x08 => once(&mut p.response_topic, r.string()?)?,
                0x09 => once(&mut p.correlation_data, r.binary()?)?,
                0x0B => {
                    let sid = nonzero(r.varint()?, "subscription identifier 0")?;
                    if owner == Owner::Subscribe && !p.subscription_ids.is_empty() {
                        return Err(DecodeError::new(Reason::ProtocolError, "two subscription identifiers"));
                    }
                    p.subscription_ids.push(sid);
                }
                0x11 => once(&mut p.session_expiry, r.u32()?)?,
                0x12 => once(&mut p.assigned_client_id, r.string()?)?,
                0x13 => once(&mut p.server_keep_alive, r.u16()?)?,
                0x15 => once(&mut p.authentication_method, r.string()?)?,
                0x16 => once(&mut p.authentication_data, r.binary()?)?,
                0x17 => once(&mut p.request_problem_information, flag(&mut r)?)?,
                0x18 => once(&mut p.will_delay, r.u32()?)?,
                0x19 => once(&mut p.request_response_information, flag(&mut r)?)?,
                0x1A => once(&mut p.response_information, r.string()?)?,
                0x1C => once(&mut p.server_reference, r.string()?)?,
                0x1F => once(&mut p.reason_string, r.string()?)?,
                0x21 => once(&mut p.receive_maximum, nonzero(r.u16()?, "receive maximum 0")?)?,
                0x22 => once(&mut p.topic_alias_maximum, r.u16()?)?,
                0x23 => once(&mut p.topic_alias, nonzero(r.u16()?, "topic alias 0")?)?,
                0x24 => once(&mut p.maximum_qos, flag(&mut r)?)?,
                0x25 => once(&mut p.retain_available, flag(&mut r)?)?,
                0x26 => {
                    let key = r.string()?;
                    let value = r.string()?;
                    p.user.push((key, value));
                }
                0x27 => once(&mut p.maximum_packet_size, nonzero(r.u32()?, "maximum packet size 0")?)?,
                0x28 => once(&mut p.wildcard_available, flag(&mut r)?)?,
                0x29 => once(&mut p.subscription_ids_available, flag(&mut r)?)?,
                0x2A => once(&mut p.shared_available, flag(&mut r)?)?,
                _ => return Err(DecodeError::malformed("unknown property identifier")),
            }
        }
        Ok(p)
    }

    /// Writes the property length and the properties.
    pub(crate) fn encode(&self, w: &mut Writer) {
        let mut body = Writer::default();
        let b = &mut body;
        let byte = |b: &mut Writer, id: u8, v: Option<u8>| {
            if let Some(v) = v {
                b.u8(id);
                b.u8(v);
            }
        };
        let string = |b: &mut Writer, id: u8, v: &Option<String>| {
            if let Some(v) = v {
                b.u8(id);
                b.string(v);
            }
        };
        let binary = |b: &mut Writer, id: u8, v: &Option<Bytes>| {
            if let Some(v) = v {
                b.u8(id);
                b.binary(v);
            }
        };
        let u16p = |b: &mut Writer, id: u8, v: Option<u16>| {
            if let Some(v) = v {
                b.u8(id);
                b.u16(v);
            }
        };
        let u32p = |b: &mut Writer, id: u8, v: Option<u32>| {
            if let Some(v) = v {
                b.u8(id);
                b.u32(v);
            }
        };
        byte(b, 0x01, self.payload_format);
        u32p(b, 0x02, self.message_expiry);
        string(b, 0x03, &self.content_type);
        string(b, 0x08, &self.response_topic);
        binary(b, 0x09, &self.correlation_data);
        for sid in &self.subscription_ids {
            b.u8(0x0B);
            b.varint(*sid);
        }
        u32p(b, 0x11, self.session_expiry);
        string(b, 0x12, &self.assigned_client_id);
        u16p(b, 0x13, self.server_keep_alive);
        string(b, 0x15, &self.authentication_method);
        binary(b, 0x16, &self.authentication_data);
        byte(b, 0x17, self.request_problem_information);
        u32p(b, 0x18, self.will_delay);
        byte(b, 0x19, self.request_response_information);
        string(b, 0x1A, &self.response_information);
        string(b, 0x1C, &self.server_reference);
        string(b, 0x1F, &self.reason_string);
        u16p(b, 0x21, self.receive_maximum);
        u16p(b, 0x22, self.topic_alias_maximum);
        u16p(b, 0x23, self.topic_alias);
        byte(b, 0x24, self.maximum_qos);
        byte(b, 0x25, self.retain_available);
        for (key, value) in &self.user {
            b.u8(0x26);
            b.string(key);
            b.string(value);
        }
        u32p(b, 0x27, self.maximum_packet_size);
        byte(b, 0x28, self.wildcard_available);
        byte(b, 0x29, self.subscription_ids_available);
        byte(b, 0x2A, self.shared_available);
        w.varint(body.len() as u32);
        w.bytes(body.as_slice());
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
