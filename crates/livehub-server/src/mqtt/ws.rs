//! MQTT over WebSocket: `GET /mqtt` with subprotocol `mqtt` on the main port. Binary messages
//! carry the MQTT byte stream (a packet may span messages, or a message hold several); a
//! pump task copies it through an in-memory pipe to the same connection code as TCP.

use std::net::SocketAddr;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::{ApiError, App};

/// The WebSocket subprotocol MQTT clients ask for.
pub(crate) const SUBPROTOCOL: &str = "mqtt";

/// The pipe between the WebSocket pump and the connection, in bytes each way.
const PIPE: usize = 64 * 1024;

/// `GET /mqtt`.
pub(crate) async fn upgrade(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Before the handshake is checked, as on `/ws`: a browser cannot read why a handshake was
    // refused, but a plain GET tells it that the transport is off (the dashboard falls back).
    let Some(mqtt) = app.mqtt().cloned().filter(|_| app.config().mqtt.websocket) else {
        return ApiError::disabled("mqtt").into_response();
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(refusal) => return refusal.into_response(),
    };
    let ws = ws.protocols([SUBPROTOCOL]).max_message_size(app.config().mqtt.max_packet_size + 8);
    let tracker = app.upgraded().clone();
    ws.on_upgrade(move |socket| {
        let (ours, theirs) = tokio::io::duplex(PIPE);
        tracker.spawn(pump(socket, theirs));
        super::connection::serve(app, mqtt, ours, peer, None)
    })
}

/// Copies WebSocket binary messages into the pipe and the pipe's bytes out as binary messages,
/// until either side ends.
async fn pump(socket: WebSocket, mut pipe: DuplexStream) {
    let (mut sink, mut stream) = socket.split();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    if pipe.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                // Text is not MQTT: the specification says to close.
                Some(Ok(Message::Text(_) | Message::Close(_))) | Some(Err(_)) | None => break,
            },
            read = pipe.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    let _ = sink.close().await;
}
