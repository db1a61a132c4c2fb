//! The rows of the transport suite (`tests/transports.rs`): a subscriber for each transport and a
//! publisher for each way to publish, behind one interface, so that each case is written once.
//!
//! Everything is normalised to what the protocol promises on every transport: a [`Msg`] per
//! publication, a [`Start`] per channel (the WebSocket `subscribed` reply, the SSE `connected`
//! event, a long poll's `channels`), positions to resume from, and a [`Refusal`] per error.
//! Resuming uses each transport's own token: client-side positions on a WebSocket, the `id:`
//! cursor on SSE, the returned `cursor` on long polling.

use std::collections::{BTreeMap, VecDeque};

use futures_util::{SinkExt, StreamExt};
use livehub_server::{Cursor, CURSOR_HEADER, MSGPACK_PROTOCOL};
use serde_json::{json, Map, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Sse, TestServer, Ws, WAIT};

/// Seconds a long poll of [`Subscriber::next`] is held; well within [`WAIT`], which bounds the
/// whole wait for a message over however many polls.
const POLL_HOLD_SECS: u64 = 5;

/// A way to subscribe: one row of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// WebSocket, JSON text frames.
    WsJson,
    /// WebSocket, MessagePack binary frames (`livehub.msgpack`).
    WsMsgpack,
    /// Server-Sent Events, resumed with `Last-Event-ID`.
    Sse,
    /// Long polling, resumed with `cursor=`.
    LongPoll,
}

impl Transport {
    /// The name presence counts this row's connections under; `None` for long polls, which hold no
    /// connection between requests and are not counted.
    pub(crate) fn in_presence(self) -> Option<&'static str> {
        match self {
            Self::WsJson | Self::WsMsgpack => Some("websocket"),
            Self::Sse => Some("sse"),
            Self::LongPoll => None,
        }
    }

    /// Whether the row answers a refused request with an HTTP status (rather than an `error`
    /// message on a connection that stays up).
    pub(crate) fn is_http(self) -> bool {
        matches!(self, Self::Sse | Self::LongPoll)
    }
}

/// A way to publish and read history: the second axis of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Publisher {
    /// `publish` and `history` commands on a WebSocket, JSON.
    WsJson,
    /// `publish` and `history` commands on a WebSocket, MessagePack.
    WsMsgpack,
    /// `POST /api/publish` and `GET /api/channels/{c}/history`.
    Rest,
}

/// A WebSocket's wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    MessagePack,
}

/// A publication as every row delivers it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Msg {
    pub(crate) channel: String,
    pub(crate) data: Value,
    pub(crate) offset: u64,
    pub(crate) epoch: String,
}

impl Msg {
    /// Reads a `message`, checking the fields every transport sends.
    fn from_value(v: &Value) -> Self {
        assert_eq!(v["type"], "message", "{v}");
        assert!(v["ts"].as_u64().is_some(), "a message has a ts: {v}");
        Self {
            channel: v["channel"].as_str().unwrap_or_else(|| panic!("no channel in {v}")).to_owned(),
            data: v["data"].clone(),
            offset: v["offset"].as_u64().unwrap_or_else(|| panic!("no offset in {v}")),
            epoch: v["epoch"].as_str().unwrap_or_else(|| panic!("no epoch in {v}")).to_owned(),
        }
    }
}

/// Where a concrete channel's stream started.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Start {
    pub(crate) offset: u64,
    pub(crate) epoch: String,
    /// `None` when the transport did not say: a WebSocket always says, SSE and long polls only
    /// when the stream resumed, and a long poll's `204` has no body to say it in.
    pub(crate) recovered: Option<bool>,
}

impl Start {
    /// Reads `{"position": {...}, "recovered": ...}` (or a `subscribed` reply, same fields).
    fn from_value(v: &Value) -> Self {
        let position = &v["position"];
        Self {
            offset: position["offset"].as_u64().unwrap_or_else(|| panic!("no position in {v}")),
            epoch: position["epoch"].as_str().unwrap_or_else(|| panic!("no epoch in {v}")).to_owned(),
            recovered: v["recovered"].as_bool(),
        }
    }
}

/// An error as the client sees it: the code, and the HTTP status where there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: String,
    pub(crate) status: Option<u16>,
}

impl Refusal {
    /// An `error` message on a WebSocket.
    fn from_reply(v: &Value) -> Self {
        assert_eq!(v["type"], "error", "{v}");
        Self { code: v["code"].as_str().unwrap_or_else(|| panic!("no code in {v}")).to_owned(), status: None }
    }

    /// An HTTP error answer, `{"error": {"code": ...}}`.
    async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("an error body is JSON");
        let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}"));
        Self { code: code.to_owned(), status: Some(status) }
    }
}

/// A position to resume from: channel, offset, epoch.
pub(crate) type Position = (String, u64, String);

/// A WebSocket in either format, keeping publications and replies apart: a case reads each in
/// order without losing the other.
pub(crate) struct WsConn {
    ws: Ws,
    format: Format,
    next_id: u64,
    messages: VecDeque<Value>,
    replies: VecDeque<Value>,
}

impl WsConn {
    /// Connects and reads the `connected` message.
    pub(crate) async fn connect(server: &TestServer, format: Format) -> Self {
        let protocol = (format == Format::MessagePack).then_some(MSGPACK_PROTOCOL);
        // Without a protocol, `Ws::connect` reads `connected` itself.
        let ws = Ws::connect(&server.ws_url(), protocol).await;
        let mut conn = Self { ws, format, next_id: 1, messages: VecDeque::new(), replies: VecDeque::new() };
        if protocol.is_some() {
            let hello = conn.read().await;
            assert_eq!(hello["type"], "connected", "{hello}");
        }
        conn
    }

    /// The connection's wire format.
    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// Sends a command in the connection's format, with a fresh `id`; returns the id.
    pub(crate) async fn command(&mut self, mut command: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        command["id"] = id.into();
        self.send(&command).await;
        id
    }

    /// Sends `value` in the connection's format, as it is.
    pub(crate) async fn send(&mut self, value: &Value) {
        let frame = match self.format {
            Format::Json => Message::text(value.to_string()),
            Format::MessagePack => Message::binary(rmp_serde::to_vec_named(value).expect("encode msgpack")),
        };
        self.send_raw(frame).await;
    }

    /// Sends one frame as it is.
    pub(crate) async fn send_raw(&mut self, frame: Message) {
        self.ws.stream.send(frame).await.expect("send");
    }

    /// The next reply (anything but a publication), in order.
    pub(crate) async fn reply(&mut self) -> Value {
        loop {
            if let Some(reply) = self.replies.pop_front() {
                return reply;
            }
            self.pull().await;
        }
    }

    /// The next publication on a non-`$` channel, in order.
    pub(crate) async fn message(&mut self) -> Value {
        loop {
            if let Some(message) = self.messages.pop_front() {
                return message;
            }
            self.pull().await;
        }
    }

    /// Reads one server message and files it.
    async fn pull(&mut self) {
        let v = self.read().await;
        if v["type"] != "message" {
            self.replies.push_back(v);
        } else if !v["channel"].as_str().is_some_and(|c| c.starts_with('$')) {
            self.messages.push_back(v);
        }
    }

    /// Reads one server message, checking that it came in the connection's frame type.
    async fn read(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.stream.next())
                .await
                .expect("a server message in time")
                .expect("connection open")
                .expect("no read error");
            match (frame, self.format) {
                (Message::Text(text), Format::Json) => return serde_json::from_str(&text).expect("JSON"),
                (Message::Binary(bytes), Format::MessagePack) => {
                    return rmp_serde::from_slice(&bytes).expect("MessagePack")
                }
                (Message::Ping(_) | Message::Pong(_), _) => continue,
                (other, format) => panic!("unexpected frame on a {format:?} connection: {other:?}"),
            }
        }
    }
}

/// A subscriber over one transport.
pub(crate) struct Subscriber {
    inner: Inner,
    /// Per concrete channel, where its stream started (latest subscribe wins).
    starts: BTreeMap<String, Start>,
    /// Per concrete channel, the last position seen (from the start, then from each message).
    seen: BTreeMap<String, (u64, String)>,
}

enum Inner {
    Ws(WsConn),
    /// The streams are reopened with every channel held when a subscribe adds channels, as
    /// `clients/js` does.
    Sse {
        base: String,
        channels: Vec<String>,
        stream: Option<Sse>,
        cursor: Option<String>,
    },
    Poll {
        base: String,
        channels: Vec<String>,
        cursor: String,
        inbox: VecDeque<Msg>,
    },
}

impl Subscriber {
    /// A subscriber of `row` with nothing subscribed yet (a WebSocket is connected).
    pub(crate) async fn connect(server: &TestServer, row: Transport) -> Self {
        let base = server.url("");
        let inner = match row {
            Transport::WsJson => Inner::Ws(WsConn::connect(server, Format::Json).await),
            Transport::WsMsgpack => Inner::Ws(WsConn::connect(server, Format::MessagePack).await),
            Transport::Sse => Inner::Sse { base, channels: Vec::new(), stream: None, cursor: None },
            Transport::LongPoll => {
                Inner::Poll { base, channels: Vec::new(), cursor: String::new(), inbox: VecDeque::new() }
            }
        };
        Self { inner, starts: BTreeMap::new(), seen: BTreeMap::new() }
    }

    /// Connects and subscribes, which must succeed.
    pub(crate) async fn open(
        server: &TestServer,
        row: Transport,
        channels: &[&str],
        positions: &[Position],
        latest: bool,
    ) -> Self {
        let mut subscriber = Self::connect(server, row).await;
        subscriber
            .subscribe(channels, positions, latest)
            .await
            .unwrap_or_else(|e| panic!("{channels:?}: {e:?}"));
        subscriber
    }

    /// Subscribes to `channels` (adding to those held), recovering from `positions` and sending
    /// the latest publication of channels it does not recover when `latest`. A WebSocket sends a
    /// `subscribe` command; SSE and long polling reopen from the current positions.
    pub(crate) async fn subscribe(
        &mut self,
        channels: &[&str],
        positions: &[Position],
        latest: bool,
    ) -> Result<(), Refusal> {
        if let Inner::Ws(ws) = &mut self.inner {
            let recover: Map<String, Value> = positions
                .iter()
                .map(|(c, offset, epoch)| (c.clone(), json!({ "offset": offset, "epoch": epoch })))
                .collect();
            let id = ws
                .command(json!({ "action": "subscribe", "channels": channels, "recover": recover, "latest": latest }))
                .await;
            let mut refused = None;
            let mut starts = Vec::new();
            for channel in channels {
                let reply = ws.reply().await;
                assert_eq!(
                    (reply["id"].as_u64(), reply["channel"].as_str()),
                    (Some(id), Some(*channel)),
                    "{reply}"
                );
                if reply["type"] == "error" {
                    refused.get_or_insert(Refusal::from_reply(&reply));
                    continue;
                }
                assert_eq!(reply["type"], "subscribed", "{reply}");
                if reply.get("position").is_some() {
                    starts.push((channel.to_string(), Start::from_value(&reply)));
                }
                for (name, entry) in reply["channels"].as_object().into_iter().flatten() {
                    // A named channel that failed to recover is left out, as SSE and polls do.
                    if entry.get("error").is_none() {
                        starts.push((name.clone(), Start::from_value(entry)));
                    }
                }
            }
            self.started(starts);
            return refused.map_or(Ok(()), Err);
        }
        let mut all = self.positions();
        all.retain(|(c, _, _)| !positions.iter().any(|(p, _, _)| p == c));
        all.extend(positions.iter().cloned());
        let cursor = if all.is_empty() { String::new() } else { encode(&all) };
        self.subscribe_with_cursor(channels, &cursor, latest).await
    }

    /// Subscribes an SSE or long-poll row with `cursor` as it is (for bad cursors).
    pub(crate) async fn subscribe_with_cursor(
        &mut self,
        add: &[&str],
        cursor: &str,
        latest: bool,
    ) -> Result<(), Refusal> {
        let (base, channels) = match &self.inner {
            Inner::Sse { base, channels, .. } | Inner::Poll { base, channels, .. } => {
                (base.clone(), channels.clone())
            }
            Inner::Ws(_) => panic!("a WebSocket has no cursor"),
        };
        let mut wanted = channels;
        for channel in add {
            if !wanted.iter().any(|w| w == channel) {
                wanted.push(channel.to_string());
            }
        }
        let mut query: Vec<String> = wanted.iter().map(|c| format!("channel={}", escape(c))).collect();
        if latest {
            query.push("latest=true".into());
        }
        match &mut self.inner {
            Inner::Sse { .. } => {
                let url = format!("{base}/sse?{}", query.join("&"));
                let mut request = reqwest::Client::new().get(url);
                if !cursor.is_empty() {
                    request = request.header("last-event-id", cursor);
                }
                let response = request.send().await.expect("SSE request");
                if response.status() != 200 {
                    return Err(Refusal::from_response(response).await);
                }
                let mut stream = Sse::from_response(response);
                let connected = stream.connected().await;
                let starts = connected["channels"]
                    .as_object()
                    .unwrap_or_else(|| panic!("no channels in {connected}"))
                    .iter()
                    .map(|(name, entry)| (name.clone(), Start::from_value(entry)))
                    .collect();
                if let Inner::Sse { channels, stream: held, cursor: last, .. } = &mut self.inner {
                    *channels = wanted;
                    *held = Some(stream);
                    *last = None;
                }
                self.started(starts);
            }
            Inner::Poll { .. } => {
                query.push(format!("cursor={}", escape(cursor)));
                query.push("timeout=0".into());
                let answer = poll(&base, &query).await?;
                let starts: Vec<(String, Start)> = match &answer.body {
                    Some(body) => body["channels"]
                        .as_object()
                        .unwrap_or_else(|| panic!("no channels in {body}"))
                        .iter()
                        .map(|(name, entry)| (name.clone(), Start::from_value(entry)))
                        .collect(),
                    // A `204` has no body: the cursor is all it says.
                    None => decode(&answer.cursor)
                        .into_iter()
                        .map(|(c, offset, epoch)| (c, Start { offset, epoch, recovered: None }))
                        .collect(),
                };
                if let Inner::Poll { channels, cursor, inbox, .. } = &mut self.inner {
                    *channels = wanted;
                    *cursor = answer.cursor;
                    inbox.extend(answer.messages);
                }
                self.started(starts);
            }
            Inner::Ws(_) => unreachable!(),
        }
        Ok(())
    }

    fn started(&mut self, starts: Vec<(String, Start)>) {
        for (channel, start) in starts {
            self.seen.insert(channel.clone(), (start.offset, start.epoch.clone()));
            self.starts.insert(channel, start);
        }
    }

    /// Where `channel`'s stream started, as the transport reported it.
    pub(crate) fn start(&self, channel: &str) -> &Start {
        self.starts.get(channel).unwrap_or_else(|| panic!("no start for {channel} in {:?}", self.starts))
    }

    /// Whether the transport reported a start for `channel`.
    pub(crate) fn has_start(&self, channel: &str) -> bool {
        self.starts.contains_key(channel)
    }

    /// The next publication, waiting at most [`WAIT`].
    pub(crate) async fn next(&mut self) -> Msg {
        let msg = match &mut self.inner {
            Inner::Ws(ws) => Msg::from_value(&ws.message().await),
            Inner::Sse { stream, cursor, .. } => {
                let stream = stream.as_mut().expect("an open stream");
                let event = stream.next_skipping_presence().await.expect("the stream goes on");
                let data = event.json();
                let msg = Msg::from_value(&data);
                assert_eq!(event.event, msg.channel, "the event is named after its channel: {event:?}");
                *cursor = Some(event.id.clone().unwrap_or_else(|| panic!("no id: {event:?}")));
                msg
            }
            Inner::Poll { base, channels, cursor, inbox } => {
                let deadline = tokio::time::Instant::now() + WAIT;
                while inbox.is_empty() {
                    assert!(tokio::time::Instant::now() < deadline, "no message in {WAIT:?}");
                    let mut query: Vec<String> =
                        channels.iter().map(|c| format!("channel={}", escape(c))).collect();
                    query.push(format!("cursor={}", escape(cursor)));
                    query.push(format!("timeout={POLL_HOLD_SECS}"));
                    let answer = poll(base, &query).await.unwrap_or_else(|e| panic!("poll refused: {e:?}"));
                    *cursor = answer.cursor;
                    inbox.extend(answer.messages);
                }
                inbox.pop_front().expect("not empty")
            }
        };
        self.seen.insert(msg.channel.clone(), (msg.offset, msg.epoch.clone()));
        msg
    }

    /// The next `n` publications.
    pub(crate) async fn take(&mut self, n: usize) -> Vec<Msg> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// What to resume from, in the transport's own terms: the positions a WebSocket client keeps,
    /// the last SSE `id:`, the last long-poll cursor.
    pub(crate) fn positions(&self) -> Vec<Position> {
        match &self.inner {
            Inner::Ws(_) | Inner::Sse { cursor: None, .. } => {
                self.seen.iter().map(|(c, (offset, epoch))| (c.clone(), *offset, epoch.clone())).collect()
            }
            Inner::Sse { cursor: Some(cursor), .. } | Inner::Poll { cursor, .. } => decode(cursor),
        }
    }

    /// Whether this is a long-poll row, which listens only while a poll is held.
    pub(crate) fn is_long_poll(&self) -> bool {
        matches!(self.inner, Inner::Poll { .. })
    }

    /// The WebSocket under a WebSocket row.
    pub(crate) fn ws(&mut self) -> &mut WsConn {
        match &mut self.inner {
            Inner::Ws(ws) => ws,
            _ => panic!("not a WebSocket row"),
        }
    }
}

/// One long poll's answer.
struct Answer {
    cursor: String,
    messages: Vec<Msg>,
    body: Option<Value>,
}

/// `GET {base}/poll?{query}`: a `200` or `204`, or the refusal.
async fn poll(base: &str, query: &[String]) -> Result<Answer, Refusal> {
    let url = format!("{base}/poll?{}", query.join("&"));
    let response =
        tokio::time::timeout(WAIT, reqwest::get(url)).await.expect("poll answered in time").expect("poll");
    if !matches!(response.status().as_u16(), 200 | 204) {
        return Err(Refusal::from_response(response).await);
    }
    let cursor = response.headers()[CURSOR_HEADER].to_str().expect("an ASCII cursor").to_owned();
    if response.status() == 204 {
        return Ok(Answer { cursor, messages: Vec::new(), body: None });
    }
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["cursor"], cursor.as_str(), "body and header carry the same cursor: {body}");
    let messages = body["messages"].as_array().unwrap_or_else(|| panic!("no messages in {body}"));
    let messages = messages.iter().map(Msg::from_value).collect();
    Ok(Answer { cursor, messages, body: Some(body) })
}

/// A cursor for `positions`.
pub(crate) fn encode(positions: &[Position]) -> String {
    let parsed: Vec<(livehub_core::ChannelName, u64, livehub_core::Epoch)> = positions
        .iter()
        .map(|(c, offset, epoch)| {
            (
                livehub_core::ChannelName::new(c).expect("a valid channel"),
                *offset,
                livehub_core::Epoch::from_client(epoch),
            )
        })
        .collect();
    Cursor::encode(parsed.iter().map(|(c, offset, epoch)| (c, *offset, epoch)))
}

/// The positions in a cursor.
fn decode(cursor: &str) -> Vec<Position> {
    let cursor = Cursor::decode(cursor).unwrap_or_else(|e| panic!("{cursor:?}: {e}"));
    cursor.positions.iter().map(|(c, p)| (c.to_string(), p.offset, p.epoch.as_str().to_owned())).collect()
}

/// A channel name or pattern for a query string.
fn escape(channel: &str) -> String {
    form_urlencoded::byte_serialize(channel.as_bytes()).collect()
}

/// What a publish answers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Published {
    pub(crate) offset: u64,
    pub(crate) epoch: String,
    pub(crate) duplicate: bool,
}

/// What a history read answers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct History {
    pub(crate) offset: u64,
    pub(crate) epoch: String,
    pub(crate) publications: Vec<Msg>,
}

/// A publisher over one [`Publisher`] row.
pub(crate) struct Pub {
    base: String,
    ws: Option<WsConn>,
}

impl Pub {
    /// A publisher of `row` (a WebSocket is connected).
    pub(crate) async fn connect(server: &TestServer, row: Publisher) -> Self {
        let ws = match row {
            Publisher::WsJson => Some(WsConn::connect(server, Format::Json).await),
            Publisher::WsMsgpack => Some(WsConn::connect(server, Format::MessagePack).await),
            Publisher::Rest => None,
        };
        Self { base: server.url(""), ws }
    }

    /// Publishes `data` on `channel`, with an idempotency `key`.
    pub(crate) async fn publish(
        &mut self,
        channel: &str,
        data: Value,
        key: Option<&str>,
    ) -> Result<Published, Refusal> {
        let mut command = json!({ "channel": channel, "data": data });
        if let Some(key) = key {
            command["key"] = key.into();
        }
        let answer = match &mut self.ws {
            Some(ws) => {
                command["action"] = "publish".into();
                let id = ws.command(command).await;
                let reply = ws.reply().await;
                assert_eq!(reply["id"].as_u64(), Some(id), "{reply}");
                if reply["type"] == "error" {
                    assert_eq!(reply["channel"], channel, "a publish error names its channel: {reply}");
                    return Err(Refusal::from_reply(&reply));
                }
                assert_eq!(reply["type"], "ack", "{reply}");
                reply
            }
            None => {
                let url = format!("{}/api/publish", self.base);
                let response = reqwest::Client::new().post(url).json(&command).send().await.expect("publish");
                if !response.status().is_success() {
                    return Err(Refusal::from_response(response).await);
                }
                response.json().await.expect("a JSON answer")
            }
        };
        assert_eq!(answer["channel"], channel, "{answer}");
        Ok(Published {
            offset: answer["offset"].as_u64().unwrap_or_else(|| panic!("no offset in {answer}")),
            epoch: answer["epoch"].as_str().unwrap_or_else(|| panic!("no epoch in {answer}")).to_owned(),
            duplicate: answer["duplicate"].as_bool().unwrap_or_else(|| panic!("no duplicate in {answer}")),
        })
    }

    /// Publishes `data` on `channel`, which must succeed.
    pub(crate) async fn put(&mut self, channel: &str, data: Value) -> Published {
        self.publish(channel, data, None).await.unwrap_or_else(|e| panic!("publish to {channel}: {e:?}"))
    }

    /// `channel`'s history after `since` (offset and epoch), or its newest `limit` publications.
    pub(crate) async fn history(
        &mut self,
        channel: &str,
        since: Option<(u64, &str)>,
        limit: Option<usize>,
    ) -> Result<History, Refusal> {
        let answer = match &mut self.ws {
            Some(ws) => {
                let mut command = json!({ "action": "history", "channel": channel });
                if let Some((offset, epoch)) = since {
                    command["since"] = json!({ "offset": offset, "epoch": epoch });
                }
                if let Some(limit) = limit {
                    command["limit"] = limit.into();
                }
                let id = ws.command(command).await;
                let reply = ws.reply().await;
                assert_eq!(reply["id"].as_u64(), Some(id), "{reply}");
                if reply["type"] == "error" {
                    return Err(Refusal::from_reply(&reply));
                }
                assert_eq!(reply["type"], "history", "{reply}");
                reply
            }
            None => {
                let mut query = Vec::new();
                if let Some((offset, epoch)) = since {
                    query.push(format!("since={offset}&epoch={}", escape(epoch)));
                }
                if let Some(limit) = limit {
                    query.push(format!("limit={limit}"));
                }
                let url = format!("{}/api/channels/{channel}/history?{}", self.base, query.join("&"));
                let response = reqwest::get(url).await.expect("history");
                if !response.status().is_success() {
                    return Err(Refusal::from_response(response).await);
                }
                response.json().await.expect("a JSON answer")
            }
        };
        assert_eq!(answer["channel"], channel, "{answer}");
        let start = Start::from_value(&answer);
        let publications =
            answer["publications"].as_array().unwrap_or_else(|| panic!("no publications in {answer}"));
        Ok(History {
            offset: start.offset,
            epoch: start.epoch,
            publications: publications.iter().map(Msg::from_value).collect(),
        })
    }
}
