//! Reason codes (MQTT 5.0 section 2.4) and the 3.1.1 `CONNACK` return codes they map to.

/// A v5 reason code, named. The numbers are the wire values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// 0x00: success, normal disconnection, or QoS 0 granted.
    Success = 0x00,
    /// 0x01: QoS 1 granted.
    GrantedQos1 = 0x01,
    /// 0x02: QoS 2 granted.
    GrantedQos2 = 0x02,
    /// 0x04: disconnect, and publish the will.
    DisconnectWithWill = 0x04,
    /// 0x10: the publication reached no subscriber.
    NoMatchingSubscribers = 0x10,
    /// 0x11: no such subscription to remove.
    NoSubscriptionExisted = 0x11,
    /// 0x80: unspecified error.
    Unspecified = 0x80,
    /// 0x81: the packet could not be parsed.
    MalformedPacket = 0x81,
    /// 0x82: a packet against the protocol's rules.
    ProtocolError = 0x82,
    /// 0x83: valid, but refused by this server.
    ImplementationSpecific = 0x83,
    /// 0x84: a protocol version this server does not speak.
    UnsupportedProtocolVersion = 0x84,
    /// 0x85: a client identifier this server does not accept.
    ClientIdNotValid = 0x85,
    /// 0x86: the credentials were refused.
    BadUserNameOrPassword = 0x86,
    /// 0x87: not allowed.
    NotAuthorized = 0x87,
    /// 0x88: the server cannot serve now.
    ServerUnavailable = 0x88,
    /// 0x89: the server is busy.
    ServerBusy = 0x89,
    /// 0x8C: an authentication method this server does not support.
    BadAuthenticationMethod = 0x8C,
    /// 0x8B: the server is shutting down.
    ServerShuttingDown = 0x8B,
    /// 0x8D: no packet within 1.5 times the keep-alive.
    KeepAliveTimeout = 0x8D,
    /// 0x8E: another connection took the client identifier over.
    SessionTakenOver = 0x8E,
    /// 0x8F: a topic filter this server does not accept.
    TopicFilterInvalid = 0x8F,
    /// 0x90: a topic name this server does not accept.
    TopicNameInvalid = 0x90,
    /// 0x91: the packet identifier is in use.
    PacketIdInUse = 0x91,
    /// 0x92: no such packet identifier.
    PacketIdNotFound = 0x92,
    /// 0x93: more QoS 1 and 2 publications in flight than the receive maximum.
    ReceiveMaximumExceeded = 0x93,
    /// 0x94: a topic alias out of range, or unknown.
    TopicAliasInvalid = 0x94,
    /// 0x95: larger than the maximum packet size.
    PacketTooLarge = 0x95,
    /// 0x96: publishing faster than allowed.
    MessageRateTooHigh = 0x96,
    /// 0x97: a limit other than the rate was passed.
    QuotaExceeded = 0x97,
    /// 0x98: closed by the administrator (or the server's own policy).
    AdministrativeAction = 0x98,
    /// 0x99: the payload does not match its format indicator.
    PayloadFormatInvalid = 0x99,
    /// 0x9A: retained messages are not supported.
    RetainNotSupported = 0x9A,
    /// 0x9B: a QoS this server does not support.
    QosNotSupported = 0x9B,
    /// 0x9E: shared subscriptions are not supported.
    SharedSubscriptionsNotSupported = 0x9E,
    /// 0x9F: connecting faster than allowed.
    ConnectionRateExceeded = 0x9F,
    /// 0xA1: subscription identifiers are not supported.
    SubscriptionIdsNotSupported = 0xA1,
    /// 0xA2: wildcard subscriptions are not supported.
    WildcardSubscriptionsNotSupported = 0xA2,
}

impl Reason {
    /// The wire value.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Whether it reports a failure (0x80 and above).
    pub fn is_error(self) -> bool {
        self.code() >= 0x80
    }
}

/// The 3.1.1 `CONNACK` return code for a v5 reason: 3.1.1 has five refusals, so every other
/// reason becomes the nearest of them.
pub fn connack_v3(reason: Reason) -> u8 {
    match reason {
        Reason::Success => 0,
        Reason::UnsupportedProtocolVersion => 1,
        Reason::ClientIdNotValid => 2,
        Reason::BadUserNameOrPassword => 4,
        Reason::NotAuthorized => 5,
        _ => 3,
    }
}

impl Reason {
    /// The reason with wire value `code`, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        use Reason::*;
        Some(match code {
            0x00 => Success,
            0x01 => GrantedQos1,
            0x02 => GrantedQos2,
            0x04 => DisconnectWithWill,
            0x10 => NoMatchingSubscribers,
            0x11 => NoSubscriptionExisted,
            0x80 => Unspecified,
            0x81 => MalformedPacket,
            0x82 => ProtocolError,
            0x83 => ImplementationSpecific,
            0x84 => UnsupportedProtocolVersion,
            0x85 => ClientIdNotValid,
            0x86 => BadUserNameOrPassword,
            0x87 => NotAuthorized,
            0x88 => ServerUnavailable,
            0x89 => ServerBusy,
            0x8B => ServerShuttingDown,
            0x8C => BadAuthenticationMethod,
            0x8D => KeepAliveTimeout,
            0x8E => SessionTakenOver,
            0x8F => TopicFilterInvalid,
            0x90 => TopicNameInvalid,
            0x91 => PacketIdInUse,
            0x92 => PacketIdNotFound,
            0x93 => ReceiveMaximumExceeded,
            0x94 => TopicAliasInvalid,
            0x95 => PacketTooLarge,
            0x96 => MessageRateTooHigh,
            0x97 => QuotaExceeded,
            0x98 => AdministrativeAction,
            0x99 => PayloadFormatInvalid,
            0x9A => RetainNotSupported,
            0x9B => QosNotSupported,
            0x9E => SharedSubscriptionsNotSupported,
            0x9F => ConnectionRateExceeded,
            0xA1 => SubscriptionIdsNotSupported,
            0xA2 => WildcardSubscriptionsNotSupported,
            _ => return None,
        })
    }
}
