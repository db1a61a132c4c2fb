//! Why the server closes a connection, and whether the client should come back.

use std::borrow::Cow;

/// A reason to close a connection: a documented code, a short reason, and whether reconnecting
/// makes sense. The codes are WebSocket close codes; other transports carry the same numbers.
///
/// Every close code the server uses is made here, and `docs/protocol.md` lists them all.
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
    /// A text message was not valid UTF-8.
    pub const INVALID_UTF8: Self = Self::new(1007, "invalid UTF-8 in a text message", false);
    /// A message sent in fragments was not finished in time (`limits.message_timeout_secs`).
    pub const MESSAGE_TIMEOUT: Self = Self::new(1008, "message_timeout", false);
    /// Every connection's unfinished fragmented messages together hold the server's budget
    /// (`limits.max_reassembly_bytes`); reconnect after a back-off.
    pub const REASSEMBLY_BUDGET: Self = Self::new(1013, "reassembly_budget", true);
    /// The connection's token expired and was not refreshed; reconnect with a fresh one.
    pub const TOKEN_EXPIRED: Self = Self::new(4003, "token_expired", true);

    /// The client broke the WebSocket framing rules; `detail` says how (at most 123 bytes are
    /// sent).
    pub fn protocol_violation(detail: impl Into<Cow<'static, str>>) -> Self {
        Self { code: 1002, reason: detail.into(), reconnect: false }
    }

    /// Over a limit (connections from the address, or flooding past the message budget); the
    /// reason is the error code. Reconnect after a back-off.
    pub const fn try_again_later(code: &'static str) -> Self {
        Self::new(4029, code, true)
    }

    /// Refused by policy (credential, origin); the reason is the error code. Do not reconnect
    /// with the same credentials.
    pub const fn policy(code: &'static str) -> Self {
        Self::new(1008, code, false)
    }

    const fn new(code: u16, reason: &'static str, reconnect: bool) -> Self {
        Self { code, reason: Cow::Borrowed(reason), reconnect }
    }
}
