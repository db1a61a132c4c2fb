//! The errors of the core, each with a stable code that transports show to clients.

/// An error from the channel model. [`Error::code`] is the stable, documented code a client sees.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A channel name or pattern is malformed.
    #[error("invalid channel {0}")]
    InvalidChannel(String),
    /// Clients may not publish to `$` system channels.
    #[error("channel {0} is read-only for clients")]
    ReadOnlyChannel(String),
    /// Publication data is not valid JSON, or too large.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// Publication data is larger than the configured limit.
    #[error("data of {size} bytes is larger than the limit of {max}")]
    TooLarge {
        /// Size of the data.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A connection asked for more subscriptions than it may hold.
    #[error("too many subscriptions (at most {0} per connection)")]
    TooManySubscriptions(usize),
    /// The connection already holds this subscription.
    #[error("already subscribed to {0}")]
    AlreadySubscribed(String),
    /// The connection does not hold this subscription.
    #[error("not subscribed to {0}")]
    NotSubscribed(String),
    /// No parked session answers to this resume token (unknown, expired, another owner's, or
    /// overflowed while parked): subscribe afresh and recover from history.
    #[error("no session to resume; subscribe again and recover from your positions")]
    SessionNotFound,
    /// The broker failed (storage or network); the request may be retried.
    #[error("broker unavailable: {0}")]
    Broker(String),
    /// The store's write-behind queue is full: the publication was refused, not stored or
    /// delivered, and may be retried once the disk catches up.
    #[error("the store is behind: {0}")]
    StoreFull(String),
}

impl Error {
    /// The stable code for this error, as documented in `docs/protocol.md`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidChannel(_) => "invalid_channel",
            Self::ReadOnlyChannel(_) => "read_only_channel",
            Self::InvalidData(_) => "invalid_data",
            Self::TooLarge { .. } => "too_large",
            Self::TooManySubscriptions(_) => "too_many_subscriptions",
            Self::AlreadySubscribed(_) => "already_subscribed",
            Self::NotSubscribed(_) => "not_subscribed",
            Self::SessionNotFound => "session_not_found",
            Self::Broker(_) => "unavailable",
            Self::StoreFull(_) => "store_full",
        }
    }
}
