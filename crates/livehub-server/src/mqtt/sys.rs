//! `$SYS/broker/...`: the figures Mosquitto users read, published (and retained) from the
//! broker's own counters every `[mqtt] sys_interval_secs`. The same task drops expired
//! sessions every second.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use livehub_core::ChannelName;
use livehub_mqtt::{Properties, QoS};

use super::retained::Retained;
use super::Mqtt;
use crate::App;

/// Runs until shutdown.
pub(crate) async fn run(app: App, mqtt: Arc<Mqtt>) {
    let shutdown = app.shutdown_token();
    let every = app.config().mqtt.sys_interval_secs;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        mqtt.sessions.sweep();
        if every > 0 && ticks.is_multiple_of(every) {
            publish_figures(&app, &mqtt).await;
        }
        ticks += 1;
    }
}

async fn publish_figures(app: &App, mqtt: &Mqtt) {
    let figures = [
        ("$SYS/broker/clients/connected", mqtt.connected.load(Ordering::Relaxed).to_string()),
        ("$SYS/broker/clients/disconnected", mqtt.sessions.parked().to_string()),
        ("$SYS/broker/messages/received", mqtt.received.load(Ordering::Relaxed).to_string()),
        ("$SYS/broker/messages/sent", mqtt.sent.load(Ordering::Relaxed).to_string()),
        ("$SYS/broker/messages/dropped", mqtt.dropped.load(Ordering::Relaxed).to_string()),
        ("$SYS/broker/retained messages/count", mqtt.retained.len().to_string()),
        ("$SYS/broker/uptime", format!("{} seconds", mqtt.uptime().as_secs())),
        ("$SYS/broker/version", format!("livehub {}", env!("CARGO_PKG_VERSION"))),
    ];
    for (topic, text) in figures {
        let Ok(channel) = ChannelName::new(topic) else { continue };
        let payload = Bytes::from(text);
        let data = super::publish::payload(&payload);
        if app.node().publish_internal(&channel, data, None).await.is_ok() {
            let properties = Properties::default();
            mqtt.retained.set(Retained {
                topic: channel,
                payload,
                qos: QoS::AtMostOnce,
                expires_at: None,
                properties,
            });
        }
    }
}
