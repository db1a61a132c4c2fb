//! livehub's channel model: channel names, publications with positions, bounded history with
//! recovery, the broker seam, the hub that fans publications out to sessions, and presence.
//!
//! Nothing here knows about HTTP, WebSocket framing, Redis or configuration files: transports
//! call a [`Node`] and read from a [`SessionReceiver`]; brokers implement [`Broker`].

mod broker;
mod channel;
mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
mod detached;
mod disconnect;
mod error;
mod frames;
mod history;
mod history_store;
mod hub;
mod interest;
mod memory_broker;
mod node;
mod pollers;
mod presence;
mod publication;
mod session;
mod stream;
mod trie;

pub use broker::{Broker, ChannelSummary, History, HistoryQuery, PublicationSink, Published};
pub use channel::{
    ChannelFilter, ChannelLimits, ChannelName, DEFAULT_MAX_CHANNEL_LEN, DEFAULT_MAX_CHANNEL_LEVELS,
    SYSTEM_PREFIX,
};
pub use clock::{now_millis, Clock, ManualClock};
pub use detached::{ResumeToken, Resumed};
pub use disconnect::Disconnect;
pub use error::Error;
pub use frames::Encoding;
pub use history::{HistoryConfig, HistoryPolicy};
pub use history_store::{HistoryStore, NullStore, StoredEntry, StoredHistory, StoredStream};
pub use hub::{Hub, HubStats};
pub use memory_broker::{MemoryBroker, CHANNEL_IDLE_TTL};
pub use node::{
    ChannelInfo, Node, NodeConfig, PollerGuard, Recovery, SubscribeOptions, Subscribed,
    MAX_DETACHED_SESSIONS, MAX_RECOVERY,
};
pub use pollers::{MAX_POLLERS, POLLER_TTL};
pub use presence::{
    LocalPresence, Presence, PresenceBackend, PresenceCounts, PRESENCE_CHANNEL, PRESENCE_MAX_CHANNELS,
    PRESENCE_MIN_INTERVAL,
};
pub use publication::{data_too_deep, Epoch, Payload, Publication, StreamPosition, MAX_DATA_DEPTH};
pub use session::{ClientId, DeliveryTracker, Session, SessionReceiver};
pub use stream::IDEMPOTENCY_WINDOW;
