//! The hub's methods: each invocation becomes one of the engine's commands (subscribe,
//! unsubscribe, publish, history) run by the connection's [`Client`], or is answered here
//! (presence, streams); the engine's replies become one `Completion`.
//!
//! [`HubWriter`] is the SignalR side of the transport seam: it turns publications into
//! invocations of the client method their channel maps to (or items of the streams that asked
//! for them) and collects the engine's replies for the completion.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use bytes::{Bytes, BytesMut};
use livehub_core::{ChannelFilter, DeliveryTracker, Disconnect, Encoding, Publication, StreamPosition};
use serde_json::Value;

use super::connection::Wire;
use super::protocol::{encode, message_value, publication_record, Arg, Outgoing, Protocol};
use crate::config::SignalRSettings;
use crate::engine::{
    Client, ClientError, Command, HistoryRequest, Publish, Reply, Request, Subscribe, Unsubscribe,
};
use crate::transport::Transport;

/// Most client-to-server streams (`Upload`) one connection may have open at once: each holds a
/// little state until the client completes it, so a client must not open them without end.
const MAX_UPLOADS: usize = 64;

/// A publication as a JSON record invoking its client method.
static JSON_RECORD: LazyLock<Encoding> = LazyLock::new(|| Encoding::register("signalr-json"));
/// A publication as a MessagePack record invoking its client method.
static MSGPACK_RECORD: LazyLock<Encoding> = LazyLock::new(|| Encoding::register("signalr-msgpack"));

/// The client method for publications on `channel`: the longest matching prefix's, or the
/// default.
pub(crate) fn target_for<'a>(settings: &'a SignalRSettings, channel: &str) -> &'a str {
    settings
        .targets
        .iter()
        .filter(|t| channel.starts_with(&t.prefix))
        .max_by_key(|t| t.prefix.len())
        .map_or(&settings.default_target, |t| &t.target)
}

/// Which client-visible route each subscription of the session feeds: `Subscribe` (client
/// method invocations) or a `Stream` invocation's items. A session holds a filter once; a filter
/// wanted by both is held while either wants it.
#[derive(Default)]
pub(crate) struct Routes {
    /// Filters subscribed with `Subscribe`.
    subscribed: HashSet<ChannelFilter>,
    /// Stream invocations by id, with the filter each streams.
    streams: HashMap<String, ChannelFilter>,
}

impl Routes {
    fn held(&self, filter: &ChannelFilter) -> bool {
        self.subscribed.contains(filter) || self.streams.values().any(|f| f == filter)
    }
}

/// A client-to-server stream (`Upload`): each item is published to `channel`.
pub(crate) struct Upload {
    /// The invocation its completion answers.
    invocation: Option<String>,
    channel: String,
    published: u64,
    last: Option<StreamPosition>,
}

/// What a connection's hub state is besides its [`Client`].
#[derive(Default)]
pub(crate) struct HubState {
    pub(crate) routes: Routes,
    /// Client-to-server streams by stream id.
    pub(crate) uploads: HashMap<String, Upload>,
}

/// The engine's replies to one command, collected for its completion.
#[derive(Default)]
pub(crate) struct Collected {
    /// Per channel subscribed: where it starts.
    subscribed: Vec<(String, Value)>,
    /// The first failure: code, message, channel.
    failed: Option<String>,
    /// A publish's or a history read's result.
    result: Option<rmpv::Value>,
}

/// The write side of a SignalR connection for the engine.
pub(crate) struct HubWriter<'a, W: Wire> {
    pub(crate) wire: &'a mut W,
    pub(crate) protocol: Protocol,
    /// Records not yet handed to the wire.
    pub(crate) out: &'a mut Vec<Bytes>,
    /// The routes and uploads of the connection.
    pub(crate) state: &'a mut HubState,
    pub(crate) settings: &'a SignalRSettings,
    pub(crate) collected: Collected,
    /// Stateful reconnect: records written count towards the sequence (see `Buffer`).
    pub(crate) sent: &'a mut Option<super::connection::Replay>,
}

impl<W: Wire> HubWriter<'_, W> {
    /// Appends one record (and keeps it for stateful reconnect when that is on).
    pub(crate) fn push(&mut self, record: Bytes) {
        if let Some(replay) = self.sent.as_mut() {
            replay.keep(record.clone());
        }
        self.out.push(record);
    }

    /// Appends one message.
    pub(crate) fn message(&mut self, message: &Outgoing<'_>) {
        let mut record = BytesMut::new();
        encode(self.protocol, message, &mut record);
        self.push(record.freeze());
    }

    /// Hands what is queued to the wire.
    pub(crate) async fn send(&mut self) -> Result<(), ()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let sent = self.wire.send(self.out, self.protocol.is_binary()).await;
        self.out.clear();
        sent
    }
}

impl<W: Wire> Transport for HubWriter<'_, W> {
    type Error = ();

    async fn write(&mut self, reply: &Reply<'_>) -> Result<(), ()> {
        let collected = &mut self.collected;
        match reply {
            Reply::Subscribed { channel, .. } => {
                let mut value = reply.value();
                if let Some(map) = value.as_object_mut() {
                    map.remove("type");
                    map.remove("id");
                    map.remove("channel");
                }
                collected.subscribed.push(((*channel).to_owned(), value));
            }
            Reply::Error { channel, code, message, .. } => {
                if collected.failed.is_none() {
                    collected.failed = Some(match channel {
                        Some(channel) => format!("{code}: {channel}: {message}"),
                        None => format!("{code}: {message}"),
                    });
                }
            }
            Reply::Published { channel, position, duplicate, .. } => {
                collected.result = Some(rmpv::Value::Map(vec![
                    ("channel".into(), channel.as_str().into()),
                    ("offset".into(), position.offset.into()),
                    ("epoch".into(), position.epoch.as_str().into()),
                    ("duplicate".into(), (*duplicate).into()),
                ]));
            }
            Reply::History { channel, position, publications, .. } => {
                let messages = publications.iter().map(|p| message_value(self.protocol, p)).collect();
                collected.result = Some(rmpv::Value::Map(vec![
                    ("channel".into(), channel.as_str().into()),
                    ("offset".into(), position.offset.into()),
                    ("epoch".into(), position.epoch.as_str().into()),
                    ("publications".into(), rmpv::Value::Array(messages)),
                ]));
            }
            Reply::Ack { .. } | Reply::Connected { .. } | Reply::Refreshed { .. } | Reply::Pong { .. } => {}
        }
        Ok(())
    }

    async fn write_many(
        &mut self,
        publications: &mut Vec<Arc<Publication>>,
        tracker: &mut DeliveryTracker,
    ) -> Result<(), ()> {
        publications.retain(|p| tracker.admit(p));
        for p in publications.iter() {
            // Without streams every subscription is a `Subscribe`: no lookup.
            let routes = &self.state.routes;
            if routes.streams.is_empty() || routes.subscribed.iter().any(|f| f.matches(&p.channel)) {
                let (protocol, settings) = (self.protocol, self.settings);
                let encoding = match protocol {
                    Protocol::Json => *JSON_RECORD,
                    Protocol::MessagePack => *MSGPACK_RECORD,
                };
                // The target is part of the cached record: one node serves one configuration.
                let record = p.frame_ref(encoding, |p| {
                    publication_record(protocol, target_for(settings, p.channel.as_str()), p)
                });
                let record = record.clone();
                self.push(record);
            }
            let ids: Vec<String> = self
                .state
                .routes
                .streams
                .iter()
                .filter(|(_, f)| f.matches(&p.channel))
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                let item = message_value(self.protocol, p);
                self.message(&Outgoing::StreamItem { id: &id, item });
            }
        }
        self.send().await
    }

    async fn flush(&mut self) -> Result<(), ()> {
        self.send().await
    }

    async fn close(&mut self, reason: &Disconnect) {
        self.wire.close(reason).await;
    }
}

/// Why an invocation could not be run, as its completion's error says.
fn failed(method: &str, why: impl std::fmt::Display) -> String {
    format!("Failed to invoke '{method}': {why}")
}

/// Checks the argument count.
fn arity(method: &str, arguments: &[Arg], min: usize, max: usize) -> Result<(), String> {
    let n = arguments.len();
    if (min..=max).contains(&n) {
        return Ok(());
    }
    let expected = if min == max { min.to_string() } else { format!("{min} to {max}") };
    Err(failed(method, format!("{n} argument(s) given, {expected} expected")))
}

/// One or several channel names: a string or an array of strings.
fn channel_list(method: &str, arg: &Arg) -> Result<Vec<String>, String> {
    if let Ok(one) = arg.parse::<String>() {
        return Ok(vec![one]);
    }
    arg.parse::<Vec<String>>().map_err(|_| failed(method, "channels must be a string or an array of strings"))
}

/// An invocation from the client, ready to run.
pub(crate) struct Invocation {
    pub(crate) id: Option<String>,
    pub(crate) target: String,
    pub(crate) arguments: Vec<Arg>,
    pub(crate) stream_ids: Vec<String>,
    pub(crate) stream: bool,
}

/// Runs one invocation and writes its completion (when it has an id), or starts a stream.
pub(crate) async fn invoke<W: Wire>(
    client: &mut Client,
    writer: &mut HubWriter<'_, W>,
    invocation: Invocation,
) -> Result<(), ()> {
    let Invocation { id, target, arguments, stream_ids, stream } = invocation;
    let method = target.to_ascii_lowercase();
    let result = match (method.as_str(), stream) {
        ("stream", true) => return start_stream(client, writer, id, &target, arguments).await,
        ("upload", false) => start_upload(writer.state, id.clone(), &target, arguments, stream_ids),
        (_, true) => Err(failed(&target, "only 'Stream' returns a stream")),
        ("stream", false) => Err(failed(&target, "'Stream' is a streaming method; call it with stream()")),
        _ if !stream_ids.is_empty() => Err(failed(&target, "only 'Upload' takes a stream")),
        ("subscribe", _) => subscribe(client, writer, &target, arguments).await,
        ("unsubscribe", _) => unsubscribe(client, writer, &target, arguments).await,
        ("publish", _) => publish(client, writer, &target, arguments).await,
        ("history", _) => history(client, writer, &target, arguments).await,
        ("presence", _) => presence(client, &target, arguments),
        _ => Err(failed(&target, "the hub has no such method")),
    };
    let Some(id) = id else {
        // No id: the client wants no reply, not even an error.
        return writer.send().await;
    };
    match result {
        // An upload answers when its stream completes.
        Ok(None) if method == "upload" => {}
        Ok(result) => writer.message(&Outgoing::Completion { id: &id, result: Ok(result) }),
        Err(error) => writer.message(&Outgoing::Completion { id: &id, result: Err(error) }),
    }
    writer.send().await
}

/// Runs `command` through the client, collecting its replies.
async fn run<W: Wire>(client: &mut Client, writer: &mut HubWriter<'_, W>, command: Command) -> Collected {
    writer.collected = Collected::default();
    // The id makes the engine answer; SignalR's own id goes on the completion.
    let _ = client.handle(Request { id: Some(0), command }, writer).await;
    std::mem::take(&mut writer.collected)
}

async fn subscribe<W: Wire>(
    client: &mut Client,
    writer: &mut HubWriter<'_, W>,
    method: &str,
    arguments: Vec<Arg>,
) -> Result<Option<rmpv::Value>, String> {
    arity(method, &arguments, 1, 2)?;
    let channels = channel_list(method, &arguments[0])?;
    let recover: HashMap<String, StreamPosition> = match arguments.get(1) {
        Some(arg) if !arg.is_null() => arg
            .parse()
            .map_err(|_| failed(method, "positions must map channels to {\"offset\", \"epoch\"}"))?,
        _ => HashMap::new(),
    };
    let limits = client.app().node().config().channel_limits;
    // Routed before subscribing, so that the replay is delivered as invocations.
    for name in &channels {
        if let Ok(filter) = ChannelFilter::with_limits(name, &limits) {
            writer.state.routes.subscribed.insert(filter);
        }
    }
    let collected =
        run(client, writer, Command::Subscribe(Subscribe { channels, recover, latest: false })).await;
    if let Some(failed) = collected.failed {
        return Err(failed);
    }
    let map = collected
        .subscribed
        .into_iter()
        .map(|(name, start)| {
            (rmpv::Value::from(name), rmpv::ext::to_value(start).unwrap_or(rmpv::Value::Nil))
        })
        .collect();
    Ok(Some(rmpv::Value::Map(map)))
}

async fn unsubscribe<W: Wire>(
    client: &mut Client,
    writer: &mut HubWriter<'_, W>,
    method: &str,
    arguments: Vec<Arg>,
) -> Result<Option<rmpv::Value>, String> {
    arity(method, &arguments, 1, 1)?;
    let limits = client.app().node().config().channel_limits;
    let mut channels = channel_list(method, &arguments[0])?;
    // A filter a stream still reads stays in the session; only its route goes.
    channels.retain(|name| {
        let Ok(filter) = ChannelFilter::with_limits(name, &limits) else { return true };
        writer.state.routes.subscribed.remove(&filter);
        !writer.state.routes.held(&filter)
    });
    if channels.is_empty() {
        return Ok(None);
    }
    let collected = run(client, writer, Command::Unsubscribe(Unsubscribe { channels })).await;
    collected.failed.map_or(Ok(None), Err)
}

async fn publish<W: Wire>(
    client: &mut Client,
    writer: &mut HubWriter<'_, W>,
    method: &str,
    arguments: Vec<Arg>,
) -> Result<Option<rmpv::Value>, String> {
    arity(method, &arguments, 2, 3)?;
    let mut arguments = arguments.into_iter();
    let (Some(channel), Some(data), key) = (arguments.next(), arguments.next(), arguments.next()) else {
        return Err(failed(method, "missing arguments"));
    };
    let channel: String = channel.parse().map_err(|_| failed(method, "the channel must be a string"))?;
    let key: Option<String> = match key {
        Some(key) if !key.is_null() => {
            Some(key.parse().map_err(|_| failed(method, "the idempotency key must be a string"))?)
        }
        _ => None,
    };
    let data = match data.into_payload() {
        Ok(data) => data,
        Err(e) => {
            let e = ClientError::from(e);
            client.app().access().count_limit(e.code());
            return Err(format!("{}: {}", e.code(), e.client_message(Some(client.id()))));
        }
    };
    let collected = run(client, writer, Command::Publish(Publish { channel, data, key })).await;
    match (collected.failed, collected.result) {
        (Some(failed), _) => Err(failed),
        (None, result) => Ok(result),
    }
}

async fn history<W: Wire>(
    client: &mut Client,
    writer: &mut HubWriter<'_, W>,
    method: &str,
    arguments: Vec<Arg>,
) -> Result<Option<rmpv::Value>, String> {
    arity(method, &arguments, 1, 3)?;
    let channel: String = arguments[0].parse().map_err(|_| failed(method, "the channel must be a string"))?;
    let since: Option<StreamPosition> = match arguments.get(1) {
        Some(arg) if !arg.is_null() => {
            Some(arg.parse().map_err(|_| failed(method, "since must be {\"offset\", \"epoch\"} or null"))?)
        }
        _ => None,
    };
    let limit: Option<usize> = match arguments.get(2) {
        Some(arg) if !arg.is_null() => {
            Some(arg.parse().map_err(|_| failed(method, "limit must be a non-negative integer"))?)
        }
        _ => None,
    };
    let collected = run(client, writer, Command::History(HistoryRequest { channel, since, limit })).await;
    match (collected.failed, collected.result) {
        (Some(failed), _) => Err(failed),
        (None, result) => Ok(result),
    }
}

/// `Presence(channel)`: how many connections on this node receive the channel, if the caller
/// may read it.
fn presence(client: &Client, method: &str, arguments: Vec<Arg>) -> Result<Option<rmpv::Value>, String> {
    arity(method, &arguments, 1, 1)?;
    let name: String = arguments[0].parse().map_err(|_| failed(method, "the channel must be a string"))?;
    let app = client.app();
    let checked = livehub_core::ChannelName::with_limits(&name, &app.node().config().channel_limits)
        .map_err(ClientError::from)
        .and_then(|channel| {
            app.access().may_read(client.identity(), &ChannelFilter::Exact(channel.clone()))?;
            Ok(channel)
        });
    let channel = checked.map_err(|e| format!("{}: {}", e.code(), e.client_message(Some(client.id()))))?;
    Ok(Some(rmpv::Value::Map(vec![
        ("channel".into(), name.into()),
        ("subscribers".into(), (app.node().subscribers(&channel) as u64).into()),
    ])))
}

/// `Stream(channel[, position])`: the channel's publications as stream items until the client
/// cancels. A failure to subscribe completes the stream with the error.
async fn start_stream<W: Wire>(
    client: &mut Client,
    writer: &mut HubWriter<'_, W>,
    id: Option<String>,
    method: &str,
    arguments: Vec<Arg>,
) -> Result<(), ()> {
    let Some(id) = id else { return writer.send().await };
    let started = async {
        arity(method, &arguments, 1, 2)?;
        let name: String =
            arguments[0].parse().map_err(|_| failed(method, "the channel must be a string"))?;
        let position: Option<StreamPosition> = match arguments.get(1) {
            Some(arg) if !arg.is_null() => Some(
                arg.parse()
                    .map_err(|_| failed(method, "the position must be {\"offset\", \"epoch\"} or null"))?,
            ),
            _ => None,
        };
        let limits = client.app().node().config().channel_limits;
        let filter =
            ChannelFilter::with_limits(&name, &limits).map_err(|e| format!("{}: {}", e.code(), e))?;
        if writer.state.routes.streams.contains_key(&id) {
            return Err(failed(method, "the invocation id is in use"));
        }
        let held = writer.state.routes.held(&filter);
        writer.state.routes.streams.insert(id.clone(), filter);
        if held {
            return Ok(());
        }
        let recover = position.map(|p| HashMap::from([(name.clone(), p)])).unwrap_or_default();
        let collected = run(
            client,
            writer,
            Command::Subscribe(Subscribe { channels: vec![name], recover, latest: false }),
        )
        .await;
        match collected.failed {
            Some(failed) => {
                writer.state.routes.streams.remove(&id);
                Err(failed)
            }
            None => Ok(()),
        }
    }
    .await;
    if let Err(error) = started {
        writer.message(&Outgoing::Completion { id: &id, result: Err(error) });
    }
    writer.send().await
}

/// `CancelInvocation`: ends a stream, and leaves its channel when nothing else reads it.
pub(crate) fn cancel_stream(client: &mut Client, state: &mut HubState, id: &str) {
    let Some(filter) = state.routes.streams.remove(id) else { return };
    if !state.routes.held(&filter) {
        let _ = client.app().node().unsubscribe(client.session(), &filter);
    }
}

/// `Upload(channel)` with one client stream: registers the stream; its items are published.
fn start_upload(
    state: &mut HubState,
    id: Option<String>,
    method: &str,
    arguments: Vec<Arg>,
    stream_ids: Vec<String>,
) -> Result<Option<rmpv::Value>, String> {
    arity(method, &arguments, 1, 1)?;
    let [stream] = <[String; 1]>::try_from(stream_ids).map_err(|_| failed(method, "it takes one stream"))?;
    let channel: String = arguments[0].parse().map_err(|_| failed(method, "the channel must be a string"))?;
    if state.uploads.contains_key(&stream) {
        return Err(failed(method, "the stream id is in use"));
    }
    if state.uploads.len() >= MAX_UPLOADS {
        return Err(failed(method, format!("at most {MAX_UPLOADS} uploads may be open at once")));
    }
    state.uploads.insert(stream, Upload { invocation: id, channel, published: 0, last: None });
    Ok(None)
}

/// An item of a client stream: published to its upload's channel. A failed publish ends the
/// upload with its error.
pub(crate) async fn upload_item<W: Wire>(
    client: &mut Client,
    writer: &mut HubWriter<'_, W>,
    stream: &str,
    item: Arg,
) -> Result<(), ()> {
    let Some(channel) = writer.state.uploads.get(stream).map(|u| u.channel.clone()) else { return Ok(()) };
    let published = match item.into_payload() {
        Ok(data) => {
            let collected = run(client, writer, Command::Publish(Publish { channel, data, key: None })).await;
            match (collected.failed, collected.result) {
                (Some(failed), _) => Err(failed),
                (None, result) => Ok(result),
            }
        }
        Err(e) => {
            let e = ClientError::from(e);
            Err(format!("{}: {}", e.code(), e.client_message(Some(client.id()))))
        }
    };
    match published {
        Ok(result) => {
            if let Some(upload) = writer.state.uploads.get_mut(stream) {
                upload.published += 1;
                upload.last = result.as_ref().and_then(position_of);
            }
            Ok(())
        }
        Err(error) => {
            let upload = writer.state.uploads.remove(stream);
            if let Some(id) = upload.and_then(|u| u.invocation) {
                writer.message(&Outgoing::Completion { id: &id, result: Err(error) });
            }
            writer.send().await
        }
    }
}

/// The end of a client stream: completes its upload with the count and the last position.
pub(crate) async fn upload_done<W: Wire>(
    writer: &mut HubWriter<'_, W>,
    stream: &str,
    error: Option<String>,
) -> Result<(), ()> {
    let Some(upload) = writer.state.uploads.remove(stream) else { return Ok(()) };
    let Some(id) = upload.invocation else { return Ok(()) };
    let result = match error {
        Some(error) => Err(format!("the client stream ended with an error: {error}")),
        None => {
            let mut fields = vec![
                ("channel".into(), upload.channel.into()),
                ("published".into(), upload.published.into()),
            ];
            if let Some(last) = upload.last {
                fields.push(("offset".into(), last.offset.into()));
                fields.push(("epoch".into(), last.epoch.as_str().into()));
            }
            Ok(Some(rmpv::Value::Map(fields)))
        }
    };
    writer.message(&Outgoing::Completion { id: &id, result });
    writer.send().await
}

/// The position in a publish result.
fn position_of(result: &rmpv::Value) -> Option<StreamPosition> {
    let field = |key: &str| result.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v);
    let offset = field("offset")?.as_u64()?;
    let epoch = field("epoch")?.as_str()?;
    serde_json::from_value(serde_json::json!({ "offset": offset, "epoch": epoch })).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SignalRTarget;

    #[test]
    fn the_longest_prefix_names_the_target() {
        let settings = SignalRSettings {
            targets: vec![
                SignalRTarget { prefix: "metrics/".into(), target: "ReceiveMetrics".into() },
                SignalRTarget { prefix: "metrics/cpu".into(), target: "ReceiveCpu".into() },
            ],
            ..SignalRSettings::default()
        };
        let table =
            [("metrics/mem", "ReceiveMetrics"), ("metrics/cpu/0", "ReceiveCpu"), ("stocks/x", "Receive")];
        for (channel, want) in table {
            assert_eq!(target_for(&settings, channel), want, "{channel}");
        }
    }
}
