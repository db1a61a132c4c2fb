//! The WebSockets transport: one socket carries both directions. A connection negotiated first
//! names itself with `?id=`; one that skipped negotiation is admitted here. With stateful
//! reconnect, a socket that drops parks the session (`Node::detach`) for
//! [`RECONNECT_WINDOW`](super::negotiate::RECONNECT_WINDOW), and a new socket with the same `id`
//! takes it over (`Node::resume`) with nothing lost or repeated.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use livehub_core::{Disconnect, ResumeToken};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::connection::{handshake, End, HubConnection, Wire};
use super::negotiate::RECONNECT_WINDOW;
use crate::access::{self, Admission};
use crate::engine::Client;
use crate::error::ApiError;
use crate::ws::{frame_header, Socket, Upgrade, OPCODE_BINARY, OPCODE_TEXT};
use crate::App;

/// How long to wait for the client's close frame after ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Initial read buffer of a socket (as on the native WebSocket: small, grows when needed).
const READ_BUFFER_SIZE: usize = 512;

/// A SignalR connection's socket.
struct WsWire {
    socket: Socket,
    /// Whether the client sent a close frame: it left on purpose.
    client_closed: bool,
}

impl Wire for WsWire {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Disconnect>>> {
        loop {
            let message = match pin!(self.socket.recv()).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(message) => message,
            };
            return Poll::Ready(match message {
                None => None,
                Some(Ok(Message::Text(text))) => Some(Ok(Bytes::from(text))),
                Some(Ok(Message::Binary(bytes))) => Some(Ok(bytes)),
                Some(Ok(Message::Close(_))) => {
                    self.client_closed = true;
                    None
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(tungstenite::Error::Capacity(_))) => Some(Err(Disconnect::MESSAGE_TOO_BIG)),
                Some(Err(tungstenite::Error::Utf8(_))) => Some(Err(Disconnect::INVALID_UTF8)),
                Some(Err(_)) => None,
            });
        }
    }

    async fn send(&mut self, records: &[Bytes], binary: bool) -> Result<(), ()> {
        // All the records in one frame, written with its header in one vectored write: a
        // publication's record is shared by every connection and never copied. JSON records are
        // UTF-8 by construction (serde_json's output, validated data), so text frames are valid.
        let len = records.iter().map(Bytes::len).sum();
        let (header, used) = frame_header(if binary { OPCODE_BINARY } else { OPCODE_TEXT }, len);
        let parts: Vec<&[u8]> =
            std::iter::once(&header[..used]).chain(records.iter().map(|r| &r[..])).collect();
        self.socket.write_frames(&parts, |part| part).await.map_err(|_| ())
    }

    async fn close(&mut self, reason: &Disconnect) {
        // 1000 whatever the reason: the hub's `Close` message has said why, and the official
        // clients treat any other code as a transport failure.
        let code = match reason.code {
            1009 | 1007 | 1002 => reason.code,
            _ => 1000,
        };
        let frame = CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from_static("") };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if self.socket.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = self.socket.recv().await {}
            }
        })
        .await;
    }
}

/// What a socket is for, decided before the upgrade is answered.
enum Start {
    /// A new connection (negotiated, or skipping negotiation), maybe stateful.
    New { admission: Admission, stateful: Option<ResumeToken> },
    /// A stateful connection's client reconnecting.
    Reconnect { token: String, admission: Admission },
}

/// `GET {path}` with `Upgrade: websocket`.
pub(super) async fn upgrade(
    app: App,
    peer: SocketAddr,
    query: Option<String>,
    id: Option<String>,
    request: Request,
) -> Response {
    if app.shutting_down() {
        return ApiError::shutting_down().into_response();
    }
    let (mut parts, _) = request.into_parts();
    let ws = match Upgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(response) => return response,
    };
    let registry = app.signalr();
    if let Some(token) = &id {
        // A stateful client reconnects at once, maybe before this server saw its socket drop.
        registry.settle(token).await;
    }
    let start = match id {
        Some(token) if registry.is_parked(&token) => {
            match app.access().admit(&parts.headers, query.as_deref(), peer.ip()) {
                Ok(admission) => Start::Reconnect { token, admission },
                Err(e) => return access::refusal(e),
            }
        }
        Some(token) => match registry.take_pending(&token) {
            Some(pending) => Start::New {
                admission: pending.admission,
                stateful: pending.stateful.then_some(pending.token),
            },
            None => return super::unknown_id(),
        },
        None => match app.access().admit(&parts.headers, query.as_deref(), peer.ip()) {
            Ok(admission) => Start::New { admission, stateful: None },
            Err(e) => return access::refusal(e),
        },
    };
    let max = app.config().limits.max_message_size;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(READ_BUFFER_SIZE);
    let budget = app.reassembly().clone();
    ws.accept(None, config, budget, move |socket| async move {
        let tasks = app.upgraded().clone();
        tasks.track_future(serve(app, peer, socket, start)).await;
    })
}

async fn serve(app: App, peer: SocketAddr, socket: Socket, start: Start) {
    let mut wire = WsWire { socket, client_closed: false };
    let (mut connection, token) = match start {
        Start::New { admission, stateful } => {
            let Some((protocol, rest)) = handshake(&app, &mut wire).await else { return };
            let connection =
                HubConnection::new(app.clone(), admission, peer.ip(), protocol, rest, stateful.is_some());
            (connection, stateful)
        }
        Start::Reconnect { token, admission } => {
            let owner = admission.identity.subject().map(str::to_owned);
            let parked = app.signalr().unpark(&token).filter(|p| p.owner == owner);
            let resumed = parked.and_then(|p| Some((app.node().resume(&token, owner.as_deref()).ok()?, p)));
            let Some((session, parked)) = resumed else {
                // Too late, or not this client's: the client falls back to a new connection.
                wire.close(&Disconnect::policy("the connection cannot be resumed")).await;
                return;
            };
            let token = parked.token.clone();
            let client = Client::resumed(app.clone(), session, admission, peer.ip(), true);
            let mut connection =
                HubConnection::from_parts(client, parked.state, parked.replay, parked.protocol);
            if !connection.reattach(&mut wire).await {
                return;
            }
            (connection, Some(token))
        }
    };
    tracing::debug!(client = %connection.client().id(), "signalr websocket connected");
    let live = token.as_ref().map(|t| app.signalr().live(t.as_str()));
    let end = connection.run(&mut wire).await;
    match end {
        End::Close(reason) => connection.close(&mut wire, &reason).await,
        End::Left => wire.close(&Disconnect { code: 1000, reason: "".into(), reconnect: false }).await,
        End::Gone if wire.client_closed => {}
        End::Gone => {
            if let Some(token) = token.filter(|_| connection.is_stateful() && !app.shutting_down()) {
                let (client, state, replay, protocol) = connection.into_parts();
                let owner = client.identity().subject().map(str::to_owned);
                let (receiver, tracker) = client.into_session();
                if app.node().detach(token.clone(), receiver, tracker, owner.as_deref(), RECONNECT_WINDOW) {
                    app.signalr().park(token, state, replay, protocol, owner);
                }
            }
        }
    }
    drop(live);
}
