//! The packets, as typed values.

use bytes::Bytes;

use crate::properties::Properties;

/// The protocol version a connection speaks, chosen by its `CONNECT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

/// A quality of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    /// At most once.
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS of the two bits `bits`; 3 is not one.
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// `CONNECT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// The version it asks for.
    pub version: Version,
    /// The client identifier; may be empty.
    pub client_id: String,
    /// 3.1.1 clean session, v5 clean start.
    pub clean_start: bool,
    /// Seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    /// v5 properties (empty for 3.1.1).
    pub properties: Properties,
    /// The last will.
    pub will: Option<Will>,
    /// The user name.
    pub username: Option<String>,
    /// The password (binary data).
    pub password: Option<Bytes>,
}

/// A last will: published when the connection ends without a normal `DISCONNECT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Whether it is retained.
    pub retain: bool,
    /// v5 will properties (will delay, message expiry, content type and so on).
    pub properties: Properties,
}

/// `CONNACK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server had a session for the client.
    pub session_present: bool,
    /// The v5 reason (a 3.1.1 return code is derived from it).
    pub reason: crate::Reason,
    /// v5 properties.
    pub properties: Properties,
}

/// `PUBLISH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// A redelivery.
    pub dup: bool,
    /// Its QoS.
    pub qos: QoS,
    /// The retain flag.
    pub retain: bool,
    /// The topic; empty in v5 when a topic alias stands for it.
    pub topic: String,
    /// The packet identifier, for QoS 1 and 2.
    pub packet_id: Option<u16>,
    /// v5 properties.
    pub properties: Properties,
    /// The application message.
    pub payload: Bytes,
}

/// Which acknowledgement of a publication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckKind {
    /// `PUBACK` (QoS 1).
    PubAck,
    /// `PUBREC` (QoS 2, first step).
    PubRec,
    /// `PUBREL` (QoS 2, second step).
    PubRel,
    /// `PUBCOMP` (QoS 2, last step).
    PubComp,
}

/// `PUBACK`, `PUBREC`, `PUBREL` or `PUBCOMP`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Which one.
    pub kind: AckKind,
    /// The publication's packet identifier.
    pub packet_id: u16,
    /// v5 reason (always success in 3.1.1).
    pub reason: crate::Reason,
    /// v5 properties.
    pub properties: Properties,
}

/// v5 retain handling: when a subscription is sent the retained messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// At every subscribe.
    #[default]
    OnSubscribe,
    /// Only when the subscription is new.
    OnNewSubscribe,
    /// Never.
    Never,
}

/// What a `SUBSCRIBE` asks for one filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// The most QoS the subscriber wants.
    pub qos: Option<QoS>,
    /// v5: not sent the connection's own publications.
    pub no_local: bool,
    /// v5: the retain flag as published rather than cleared.
    pub retain_as_published: bool,
    /// v5: when retained messages are sent.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// The requested QoS (always set by the decoder).
    pub fn max_qos(&self) -> QoS {
        self.qos.unwrap_or(QoS::AtMostOnce)
    }
}

/// `SUBSCRIBE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// The packet identifier.
    pub packet_id: u16,
    /// v5 properties (a subscription identifier, user properties).
    pub properties: Properties,
    /// The filters and their options, at least one.
    pub filters: Vec<(String, SubscriptionOptions)>,
}

/// `SUBACK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    /// The `SUBSCRIBE`'s packet identifier.
    pub packet_id: u16,
    /// v5 properties.
    pub properties: Properties,
    /// One per filter: the granted QoS, or a refusal (encoded as 0x80 in 3.1.1).
    pub reasons: Vec<crate::Reason>,
}

/// `UNSUBSCRIBE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The packet identifier.
    pub packet_id: u16,
    /// v5 properties.
    pub properties: Properties,
    /// The filters, at least one.
    pub filters: Vec<String>,
}

/// `UNSUBACK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsubAck {
    /// The `UNSUBSCRIBE`'s packet identifier.
    pub packet_id: u16,
    /// v5 properties.
    pub properties: Properties,
    /// v5: one per filter (3.1.1 sends none).
    pub reasons: Vec<crate::Reason>,
}

/// `DISCONNECT` (a reason and properties in v5 only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// Why.
    pub reason: crate::Reason,
    /// v5 properties (session expiry, reason string).
    pub properties: Properties,
}

/// One MQTT control packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// `CONNECT`.
    Connect(Box<Connect>),
    /// `CONNACK`.
    ConnAck(ConnAck),
    /// `PUBLISH`.
    Publish(Publish),
    /// `PUBACK`, `PUBREC`, `PUBREL`, `PUBCOMP`.
    Ack(Ack),
    /// `SUBSCRIBE`.
    Subscribe(Subscribe),
    /// `SUBACK`.
    SubAck(SubAck),
    /// `UNSUBSCRIBE`.
    Unsubscribe(Unsubscribe),
    /// `UNSUBACK`.
    UnsubAck(UnsubAck),
    /// `PINGREQ`.
    PingReq,
    /// `PINGRESP`.
    PingResp,
    /// `DISCONNECT`.
    Disconnect(Disconnect),
    /// v5 `AUTH` (decoded so that it can be refused with the right code).
    Auth(Disconnect),
}
