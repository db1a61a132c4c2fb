//! What an SSE or long-poll request asks for: shared by the two, which both name their channels
//! in the URL and resume from a self-contained token. Subscribing is the command layer's
//! ([`Client::open`](crate::engine::Client::open)).

use livehub_core::{ChannelFilter, ChannelLimits};

use crate::channel_list;
use crate::cursor::Cursor;
use crate::error::ApiError;

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
