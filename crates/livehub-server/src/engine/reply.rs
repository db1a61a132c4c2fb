//! Server messages other than publications: typed here, encoded per wire format by
//! [`Reply::encode`], written by whichever transport the connection uses.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use livehub_core::{ChannelName, ClientId, Publication, StreamPosition};
use serde_json::{json, Map, Value};

use super::error::ClientError;
use crate::protocol::{encode, message_value, position_value, Format};

/// What a concrete channel's stream starts from after a subscribe.
#[derive(Clone, Debug)]
pub(crate) struct ChannelStart {
    /// The channel's position at subscribe time.
    pub(crate) position: StreamPosition,
    /// Whether recovery was asked for and returned exactly what was missed; `None` when none
    /// was asked for.
    pub(crate) recovered: Option<bool>,
}

impl ChannelStart {
    /// `{"position": …, "recovered": …}`, `recovered` only when recovery was asked for.
    pub(crate) fn value(&self) -> Value {
        let mut entry = json!({ "position": position_value(&self.position) });
        if let Some(recovered) = self.recovered {
            entry["recovered"] = recovered.into();
        }
        entry
    }
}

/// A server message.
#[derive(Debug)]
pub(crate) enum Reply<'a> {
    /// The first message of a WebSocket connection.
    Connected {
        /// The connection's id.
        client: ClientId,
        /// Seconds between server pings.
        ping_interval: u64,
        /// When the connection's token expires, in Unix ms.
        expires: Option<u64>,
        /// The token that resumes this session after the connection drops, when it can.
        session: Option<&'a str>,
        /// Whether the session asked for with `resume` was taken over.
        resumed: Option<bool>,
    },
    /// A subscribe to one channel or pattern succeeded.
    Subscribed {
        /// The command's id.
        id: Option<u64>,
        /// The channel or pattern as the client named it.
        channel: &'a str,
        /// For an exact channel, where its stream starts.
        exact: Option<&'a ChannelStart>,
        /// For a pattern, the concrete channels recovered by name, or the error of each.
        channels: &'a [(ChannelName, Result<ChannelStart, &'static str>)],
    },
    /// A command without more to say succeeded.
    Ack {
        /// The command's id.
        id: u64,
    },
    /// A publish was stored.
    Published {
        /// The command's id.
        id: u64,
        /// Where.
        channel: &'a ChannelName,
        /// At which position.
        position: &'a StreamPosition,
        /// Whether the idempotency key had been seen before.
        duplicate: bool,
    },
    /// A part of a channel's history.
    History {
        /// The command's id.
        id: Option<u64>,
        /// The channel.
        channel: &'a ChannelName,
        /// Its position now.
        position: &'a StreamPosition,
        /// The publications, oldest first.
        publications: &'a [Arc<Publication>],
    },
    /// A token refresh was accepted.
    Refreshed {
        /// The command's id.
        id: Option<u64>,
        /// When the new token expires, in Unix ms.
        expires: Option<u64>,
    },
    /// A command, or one channel of it, failed.
    Error {
        /// The command's id.
        id: Option<u64>,
        /// The channel the error is about.
        channel: Option<&'a str>,
        /// The stable code.
        code: &'static str,
        /// For people; never internal detail.
        message: Cow<'a, str>,
    },
    /// The answer to `ping`.
    Pong {
        /// The command's id.
        id: Option<u64>,
    },
}

impl Reply<'_> {
    /// The message as a JSON value (the one shape both formats share).
    pub(crate) fn value(&self) -> Value {
        match self {
            Reply::Connected { client, ping_interval, expires, session, resumed } => {
                let mut m = json!({
                    "type": "connected",
                    "client": client.to_string(),
                    "version": env!("CARGO_PKG_VERSION"),
                    "ping_interval": ping_interval,
                    "expires": expires,
                });
                if let Some(session) = session {
                    m["session"] = (*session).into();
                }
                if let Some(resumed) = resumed {
                    m["resumed"] = (*resumed).into();
                }
                m
            }
            Reply::Subscribed { id, channel, exact, channels } => {
                let mut reply = json!({ "type": "subscribed", "id": id, "channel": channel });
                match exact {
                    Some(start) => {
                        reply["position"] = position_value(&start.position);
                        reply["recovered"] = start.recovered.unwrap_or(false).into();
                    }
                    None => {
                        // A pattern cannot vouch for channels the client never named.
                        reply["recovered"] = false.into();
                        if !channels.is_empty() {
                            let map: Map<String, Value> = channels
                                .iter()
                                .map(|(name, start)| {
                                    let entry = match start {
                                        Ok(start) => json!({
                                            "position": position_value(&start.position),
                                            "recovered": start.recovered.unwrap_or(false),
                                        }),
                                        Err(code) => json!({ "error": code }),
                                    };
                                    (name.to_string(), entry)
                                })
                                .collect();
                            reply["channels"] = map.into();
                        }
                    }
                }
                reply
            }
            Reply::Ack { id } => json!({ "type": "ack", "id": id }),
            Reply::Published { id, channel, position, duplicate } => json!({
                "type": "ack", "id": id, "channel": channel,
                "offset": position.offset, "epoch": position.epoch, "duplicate": duplicate,
            }),
            Reply::History { id, channel, position, publications } => json!({
                "type": "history", "id": id, "channel": channel,
                "position": position_value(position),
                "publications": publications.iter().map(|p| message_value(p)).collect::<Vec<Value>>(),
            }),
            Reply::Refreshed { id, expires } => json!({ "type": "ack", "id": id, "expires": expires }),
            Reply::Error { id, channel, code, message } => {
                let mut m = json!({ "type": "error", "code": code, "message": message });
                if let Some(id) = id {
                    m["id"] = (*id).into();
                }
                if let Some(channel) = channel {
                    m["channel"] = (*channel).into();
                }
                m
            }
            Reply::Pong { id } => json!({ "type": "pong", "id": id }),
        }
    }

    /// The message encoded in `format`.
    pub(crate) fn encode(&self, format: Format) -> Bytes {
        encode(format, &self.value())
    }
}

impl<'a> Reply<'a> {
    /// The `error` reply for `error`; an internal failure is logged with `client` and shown as a
    /// fixed sentence.
    pub(crate) fn error(
        id: Option<u64>,
        channel: Option<&'a str>,
        error: &ClientError,
        client: ClientId,
    ) -> Self {
        Reply::Error {
            id,
            channel,
            code: error.code(),
            message: Cow::Owned(error.client_message(Some(client))),
        }
    }
}
