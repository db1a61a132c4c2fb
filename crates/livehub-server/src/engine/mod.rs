//! The command layer: what a client may ask and what it is sent, once for every transport.
//!
//! A transport reads bytes its own way, decodes each message with [`Request::decode`] (one
//! decoder per wire format) and hands it to its [`Client`], which runs it against the node and
//! writes the replies through the [`Transport`](crate::transport::Transport) seam. SSE and long
//! polling subscribe once, from the URL, through [`Client::open`]; the REST API publishes and
//! reads history through [`publish`] and [`read_history`]. So a rule about subscribing,
//! recovering, publishing or reading history is written here once.

mod client;
mod command;
mod error;
mod reply;
mod subscribe;

use std::net::IpAddr;

use livehub_auth::Identity;
use livehub_core::{ChannelFilter, ChannelName, History, HistoryQuery, Payload, Published};

pub(crate) use client::{Budget, Client};
pub(crate) use command::{
    msgpack_payload, Command, HistoryRequest, Publish, Request, Subscribe, Unsubscribe,
};
pub(crate) use error::ClientError;
pub(crate) use reply::Reply;

use crate::App;

/// Most publications one history read returns, whoever asks.
pub(crate) const MAX_HISTORY_LIMIT: usize = 1000;

/// Publications a history read returns when the client names no limit.
pub(crate) const DEFAULT_HISTORY_LIMIT: usize = 100;

/// Publishes `data` to `channel` for `identity` at `peer`: the name, the grant, the address's
/// budget and the data are checked, in that order.
pub(crate) async fn publish(
    app: &App,
    identity: &Identity,
    peer: IpAddr,
    channel: &str,
    data: Payload,
    key: Option<&str>,
) -> Result<(ChannelName, Published), ClientError> {
    let channel = ChannelName::with_limits(channel, &app.node().config().channel_limits)?;
    app.access().may_publish(identity, &channel)?;
    app.access().publish_allowed(peer, 1)?;
    let published = app.node().publish(&channel, data, key).await?;
    Ok((channel, published))
}

/// Reads part of `channel`'s history for `identity`: after the offset `since`, or the newest
/// publications. When the client names the `epoch` its offsets belong to, another epoch is an
/// error rather than a silent jump into a different history.
pub(crate) async fn read_history(
    app: &App,
    identity: &Identity,
    channel: &str,
    since: Option<u64>,
    epoch: Option<&str>,
    limit: Option<usize>,
) -> Result<(ChannelName, History), ClientError> {
    let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT).min(MAX_HISTORY_LIMIT);
    read_history_query(app, identity, channel, HistoryQuery::new(since, limit), epoch).await
}

/// [`read_history`] with any [`HistoryQuery`] (bounded in time as well as by offset); the
/// caller bounds its `limit`.
pub(crate) async fn read_history_query(
    app: &App,
    identity: &Identity,
    channel: &str,
    query: HistoryQuery,
    epoch: Option<&str>,
) -> Result<(ChannelName, History), ClientError> {
    let channel = ChannelName::with_limits(channel, &app.node().config().channel_limits)?;
    app.access().may_read(identity, &ChannelFilter::Exact(channel.clone()))?;
    let history = app.node().history(&channel, query).await?;
    if let Some(epoch) = epoch {
        if epoch != history.position.epoch.as_str() {
            return Err(ClientError::EpochMismatch(history.position.epoch.to_string()));
        }
    }
    Ok((channel, history))
}
