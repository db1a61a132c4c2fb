//! `[mqtt]`: the MQTT listener and its limits.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

/// The MQTT broker's settings (`docs/mqtt.md`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// Where MQTT over TCP listens (TLS when `[tls]` is set); `"off"` turns it off. Also
    /// `--mqtt-listen` and `LIVEHUB_MQTT_LISTEN`.
    #[serde(deserialize_with = "listen_or_off")]
    pub listen: Option<SocketAddr>,
    /// MQTT over WebSocket at `/mqtt` on the main port (subprotocol `mqtt`).
    pub websocket: bool,
    /// Largest packet a client may send, in bytes (CONNACK's maximum packet size).
    pub max_packet_size: usize,
    /// QoS 1 and 2 publications the server sends a client before waiting for its
    /// acknowledgements, when the client names no lower receive maximum (3.1.1 clients too).
    pub max_inflight: u16,
    /// QoS 2 publications a client may have in flight towards the server (CONNACK's receive
    /// maximum); more close the connection with 0x93.
    pub receive_maximum: u16,
    /// Topic aliases a v5 client may use towards the server.
    pub topic_alias_maximum: u16,
    /// Longest a session may outlive its connection, in seconds; a 3.1.1 persistent session
    /// (clean session false) gets this.
    pub max_session_expiry_secs: u32,
    /// Messages one session holds for a client that is offline or whose in-flight window is
    /// full; further messages for it are dropped (and counted) until it catches up.
    pub max_queued_messages: usize,
    /// Seconds between updates of the `$SYS/broker/...` topics; 0 turns them off.
    pub sys_interval_secs: u64,
    /// The longest keep-alive a client may ask for, in seconds; 0 for no limit. A v5 client
    /// asking for more (or for none) is told this one (CONNACK's server keep-alive) and held to
    /// it; a 3.1.1 client, which cannot be told, is refused (CONNACK 2), as Mosquitto does.
    pub max_keep_alive_secs: u16,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 1883))),
            websocket: true,
            // 256 KiB: the default largest publication (64 KiB) with room for its topic and
            // properties; a device's telemetry is far smaller.
            max_packet_size: 256 * 1024,
            // 20, Mosquitto's own default: a window a slow device can absorb.
            max_inflight: 20,
            receive_maximum: 100,
            topic_alias_maximum: 16,
            // A week: a device offline over a weekend still finds its messages.
            max_session_expiry_secs: 7 * 24 * 3600,
            // 1,000, Mosquitto's default.
            max_queued_messages: 1000,
            sys_interval_secs: 10,
            max_keep_alive_secs: 0,
        }
    }
}

/// `"off"` (or an empty string) for no listener, otherwise an address.
fn listen_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

/// Parses a listen setting: `off` or an address such as `127.0.0.1:1883`.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    match text.trim() {
        "" | "off" | "false" | "none" => Ok(None),
        addr => {
            addr.parse().map(Some).map_err(|e| format!("{addr:?} is neither \"off\" nor an address: {e}"))
        }
    }
}
