//! Opening a stream of several channels from a cursor: shared by SSE and long polling, which
//! both name their channels in the URL and resume from a self-contained token.

use std::collections::HashSet;
use std::sync::Arc;

use livehub_core::{
    ChannelFilter, ChannelLimits, ChannelName, DeliveryTracker, Node, Publication, Session, StreamPosition,
    SubscribeOptions,
};
use serde_json::{json, Map, Value};

use livehub_auth::{AuthError, Identity};

use crate::channel_list;
use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::protocol::position_value;
use crate::App;

/// What an SSE or long-poll request asks for.
#[derive(Debug, Default)]
pub(crate) struct StreamRequest {
    /// Channels and patterns, in request order, without duplicates. May be empty: an idle stream
    /// (or a poll that waits out its timeout) tells a client the transport is up before it has
    /// anything to subscribe to.
    pub(crate) filters: Vec<ChannelFilter>,
    /// Where the client left off.
    pub(crate) cursor: Cursor,
    /// Send each channel's latest publication when not resuming it.
    pub(crate) latest: bool,
    /// Other query parameters, for the transport to read.
    pub(crate) params: Vec<(String, String)>,
}

impl StreamRequest {
    /// Parses `channel=…` (repeatable, each a comma-separated list with `\,` and `\\` escapes),
    /// `latest=true` and the cursor parameter `cursor_param` from a query string; `extra` adds a
    /// channel taken from the path, as it is. Names and the cursor's names are checked against
    /// `limits`.
    pub(crate) fn parse(
        query: Option<&str>,
        extra: Option<&str>,
        cursor_param: &[&str],
        max_channels: usize,
        limits: &ChannelLimits,
    ) -> Result<Self, ApiError> {
        let mut request = Self::default();
        let mut names: Vec<String> = extra.map(str::to_owned).into_iter().collect();
        let mut token = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "channel" => names.extend(channel_list::split(&value)?),
                "latest" => request.latest = matches!(value.as_ref(), "true" | "1" | ""),
                k if cursor_param.contains(&k) => token = Some(value.into_owned()),
                _ => request.params.push((key.into_owned(), value.into_owned())),
            }
        }
        if names.len() > max_channels {
            return Err(ApiError::bad_request(format!("at most {max_channels} channels per request")));
        }
        for name in names {
            let filter = ChannelFilter::with_limits(&name, limits)?;
            if !request.filters.contains(&filter) {
                request.filters.push(filter);
            }
        }
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            request.cursor = Cursor::decode_with_limits(&token, limits)?;
        }
        Ok(request)
    }

    /// The value of another query parameter.
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Checks that `identity` may read every channel and pattern of `request`: one forbidden filter
/// refuses the whole request, so that a stream never silently carries less than it asked for.
pub(crate) fn authorize(app: &App, identity: &Identity, request: &StreamRequest) -> Result<(), AuthError> {
    for filter in &request.filters {
        app.access().may_read(identity, filter)?;
    }
    Ok(())
}

/// A stream's start: what to send before live publications, and each channel's state.
pub(crate) struct Opened {
    /// Publications to send first, in order; pass each through the tracker before sending it.
    pub(crate) replay: Vec<Arc<Publication>>,
    /// Per channel (or pattern): `position` and `recovered`, for the client.
    pub(crate) channels: Map<String, Value>,
}

/// Subscribes `session` to every filter of `request`, recovering from its cursor, and sets
/// `tracker` to where each channel's stream starts. Each concrete channel is recovered once, even
/// when an exact filter and a pattern both select it.
pub(crate) async fn open(
    node: &Node,
    session: &Session,
    request: &StreamRequest,
    tracker: &mut DeliveryTracker,
) -> Result<Opened, ApiError> {
    let mut replay = Vec::new();
    let mut channels = Map::new();
    let mut resumed: HashSet<ChannelName> = HashSet::new();
    for filter in &request.filters {
        let since = match filter {
            ChannelFilter::Exact(channel) => request.cursor.positions.get(channel).cloned(),
            ChannelFilter::Wildcard(_) => None,
        };
        let options = SubscribeOptions { recover: since.clone(), latest: request.latest };
        let subscribed = node.subscribe(session, filter, options).await?;
        if let (ChannelFilter::Exact(channel), Some(position)) = (filter, &subscribed.position) {
            if !resumed.insert(channel.clone()) {
                continue;
            }
            start(tracker, channel, position, &subscribed.publications);
            let mut entry = json!({ "position": position_value(position) });
            if since.is_some() {
                entry["recovered"] = subscribed.recovered.into();
            }
            channels.insert(channel.to_string(), entry);
            replay.extend(subscribed.publications);
        } else {
            // A pattern resumes the concrete channels the cursor holds that it matches.
            for (channel, since) in request.cursor.positions.iter().filter(|(c, _)| filter.matches(c)) {
                if !resumed.insert(channel.clone()) {
                    continue;
                }
                let recovery = node.recover(channel, since).await?;
                start(tracker, channel, &recovery.position, &recovery.publications);
                let entry = json!({ "position": position_value(&recovery.position), "recovered": recovery.recovered });
                channels.insert(channel.to_string(), entry);
                replay.extend(recovery.publications);
            }
        }
    }
    Ok(Opened { replay, channels })
}

/// Sets where a channel's stream starts: just before the first publication to replay (missed
/// ones, a new epoch's whole history, or the latest value), or at `position` when there is none.
fn start(
    tracker: &mut DeliveryTracker,
    channel: &ChannelName,
    position: &StreamPosition,
    replay: &[Arc<Publication>],
) {
    match replay.first() {
        Some(first) => tracker.mark(channel, first.position.offset.saturating_sub(1), &first.position.epoch),
        None => tracker.mark(channel, position.offset, &position.epoch),
    }
}
