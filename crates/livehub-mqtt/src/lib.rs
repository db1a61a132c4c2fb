//! MQTT 3.1.1 and 5.0 packets: a strict decoder of untrusted bytes and an encoder.
//!
//! The decoder answers every malformed or forbidden packet with the reason code the
//! specifications name for it (a v5 `DISCONNECT` or `CONNACK` carries it; a 3.1.1 server just
//! closes), never with a panic. The broker's logic (sessions, routing, retained messages) is
//! not here: this crate only turns bytes into [`Packet`]s and back.

mod decode;
mod encode;
mod packet;
mod properties;
mod reason;

pub use decode::{decode, DecodeError, Decoded, MAX_REMAINING_LENGTH};
pub use encode::encode;
pub use packet::{
    Ack, AckKind, ConnAck, Connect, Disconnect, Packet, Publish, QoS, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe, Version, Will,
};
pub use properties::Properties;
pub use reason::{connack_v3, Reason};
