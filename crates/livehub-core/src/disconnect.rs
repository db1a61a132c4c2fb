//! Why the server closes a connection, and whether the client should come back.

use std::borrow::Cow;

/// A reason to close a connection: a documented code, a short reason, and whether reconnecting
/// makes sense. The codes are WebSocket close codes; other transports carry the same numbers.
///
/// Ranges: 4000–4499 mean "reconnect (and recover)", 4500–4999 mean "do not reconnect"; standard
/// codes (1001, 1008, 1009, 1011) keep their RFC 6455 meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// The close code.
    pub code: u16,
    /// A short human-readable reason (at most 123 bytes, the WebSocket limit).
    pub reason: Cow<'static, str>,
    /// Whether the client should reconnect.
    pub reconnect: bool,
}

impl Disconnect {
    /// The server is shutting down or restarting; reconnect (to another node) and recover.
    pub const SHUTDOWN: Self = Self::new(1001, "server shutting down", true);
    /// The connection fell too far behind; reconnect and recover from history.
    pub const SLOW_CONSUMER: Self = Self::new(4001, "slow consumer", true);
    /// The client did not answer pings; reconnect.
    pub const NO_PONG: Self = Self::new(4002, "no pong", true);
    /// The server failed; reconnect after a back-off.
    pub const INTERNAL: Self = Self::new(1011, "internal error", true);
    /// The client broke the protocol (for example text on a MessagePack connection); do not
    /// reconnect with the same client.
    pub const PROTOCOL: Self = Self::new(4500, "protocol error", false);
    /// A message exceeded the size limit; do not resend it.
    pub const MESSAGE_TOO_BIG: Self = Self::new(1009, "message too big", false);

    const fn new(code: u16, reason: &'static str, reconnect: bool) -> Self {
        Self { code, reason: Cow::Borrowed(reason), reconnect }
    }
}
