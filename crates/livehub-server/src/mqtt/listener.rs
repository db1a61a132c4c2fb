//! The MQTT listener: plain TCP, or TLS when the server has `[tls]`. Connections go through the
//! same hardened accept path as HTTP's: each is half-open (`half_open.rs`) until its `CONNECT`
//! has arrived, within `limits.request_head_timeout_secs`, and at most
//! `limits.max_half_open_per_ip` per address.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::Mqtt;
use crate::tls::TlsListener;
use crate::App;

/// Binds the MQTT listener `[mqtt] listen` names; the error names the setting, so that a taken
/// port 1883 (a Mosquitto on the same host, say) says what to change.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    crate::listen::bind(addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot listen for MQTT on {addr}: {e}; set [mqtt] listen, --mqtt-listen or \
                 LIVEHUB_MQTT_LISTEN to another address, or to \"off\""
            ),
        )
    })
}

/// Starts accepting MQTT connections on `listener` until shutdown.
pub(crate) fn spawn(app: &App, mqtt: &Arc<Mqtt>, listener: TcpListener) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "MQTT listening on {addr}");
    }
    let (app, mqtt) = (app.clone(), mqtt.clone());
    match &app.config().tls {
        Some(settings) => {
            let tls = TlsListener::with_half_open(listener, settings, app.half_open().clone())
                .map_err(io::Error::other)?;
            tokio::spawn(accept(tls, app, mqtt));
        }
        None => {
            tokio::spawn(accept(Plain(listener), app, mqtt));
        }
    }
    Ok(())
}

/// The plain listener, with `TCP_NODELAY` on every connection: an acknowledgement is a few
/// bytes that must not wait for the peer's delayed ACK.
struct Plain(TcpListener);

impl Listener for Plain {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((mut tcp, peer)) => {
                    crate::listen::no_delay(&mut tcp);
                    return (tcp, peer);
                }
                Err(e) => {
                    // Out of descriptors, most likely: pause rather than spin.
                    tracing::debug!(error = %e, "MQTT accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

async fn accept<L>(mut listener: L, app: App, mqtt: Arc<Mqtt>)
where
    L: Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shutdown = app.shutdown_token();
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let Some(slot) = app.half_open().admit(peer.ip()) else {
            tracing::debug!(%peer, "too many half-open connections from this address");
            continue;
        };
        // On the tracker `serve_node` waits for at shutdown, so each connection can say goodbye.
        app.upgraded().spawn(super::connection::serve(app.clone(), mqtt.clone(), io, peer, Some(slot)));
    }
}
