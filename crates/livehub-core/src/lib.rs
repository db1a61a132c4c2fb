//! livehub's channel model: channel names, publications with positions, bounded history with
//! recovery, the broker seam, the hub that fans publications out to sessions, and presence.
//!
//! Nothing here knows about HTTP, WebSocket framing, Redis or configuration files: transports
//! call a [`Node`] and read from a [`SessionReceiver`]; brokers implement [`Broker`].

mod broker;
mod channel;
mod disconnect;
mod error;
mod history;
mod hub;
mod interest;
mod memory_broker;
mod node;
mod presence;
mod publication;
mod session;
mod sync;
mod trie;

pub use broker::{Broker, ChannelSummary, History, HistoryQuery, PublicationSink, Published};
pub use channel::{ChannelFilter, ChannelName, MAX_CHANNEL_LEN, MAX_CHANNEL_LEVELS, SYSTEM_PREFIX};
pub use disconnect::Disconnect;
pub use error::Error;
pub use history::{HistoryConfig, HistoryPolicy};
pub use hub::{Hub, HubStats};
pub use memory_broker::{MemoryBroker, CHANNEL_IDLE_TTL};
pub use node::{ChannelInfo, Node, NodeConfig, Recovery, SubscribeOptions, Subscribed, MAX_RECOVERY};
pub use presence::{Presence, PRESENCE_CHANNEL, PRESENCE_MAX_CHANNELS, PRESENCE_MIN_INTERVAL};
pub use publication::{now_millis, Epoch, Payload, Publication, StreamPosition, WireFormat};
pub use session::{ClientId, DeliveryTracker, Session, SessionReceiver};
