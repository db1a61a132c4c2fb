//! The MQTT 3.1.1 and 5.0 broker: a transport of the engine, bridged one to one with channels.
//!
//! Topic `a/b/c` is channel `a/b/c`: an MQTT PUBLISH goes through `engine::publish` like any
//! other publication (permissions, rate limits, history), and an MQTT subscription is a
//! subscription of the connection's node session, so publications from every transport reach
//! it. What channels do not keep (QoS, retained messages, wills, in-flight state, sessions of
//! offline clients) lives here. `docs/mqtt.md` is the user's guide.
//!
//! - `listener.rs`: the TCP (or TLS) accept loop, and `ws.rs`: `/mqtt` on the main port.
//! - `connection.rs`: one connection from `CONNECT` to its end.
//! - `session.rs`: what outlives a connection; `publish.rs`: the bridge rules;
//!   `meta.rs`: what MQTT said about a publication; `retained.rs`; `shared.rs`: `$share`.
//! - `sys.rs`: the `$SYS/broker/...` topics.

mod connection;
mod listener;
mod meta;
mod publish;
mod retained;
mod session;
mod settings;
mod shared;
mod sys;
mod ws;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livehub_auth::Identity;
use livehub_core::{ChannelFilter, ChannelLimits, ClientId};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

pub(crate) use listener::{bind, spawn};
pub use settings::{parse_listen, MqttSettings};
pub(crate) use sys::run as run_sys;
pub(crate) use ws::upgrade;

use crate::App;

/// The transport name MQTT sessions count under in presence.
pub(crate) const TRANSPORT: &str = "mqtt";

/// How a shared subscription's filter starts.
pub(crate) const SHARE_PREFIX: &str = "$share/";

/// The broker's state, shared by its connections.
#[derive(Default)]
pub(crate) struct Mqtt {
    pub(crate) sessions: session::Sessions,
    pub(crate) retained: retained::RetainedStore,
    pub(crate) meta: meta::MetaTable,
    pub(crate) shared: shared::Shared,
    /// Wills waiting for their delay, by client identifier.
    wills: Mutex<HashMap<String, CancellationToken>>,
    /// Connected clients now.
    pub(crate) connected: AtomicUsize,
    /// PUBLISH packets received and published.
    pub(crate) received: AtomicU64,
    /// PUBLISH packets sent.
    pub(crate) sent: AtomicU64,
    /// Messages dropped because a session's queue was full.
    pub(crate) dropped: AtomicU64,
    next_client: AtomicU64,
    started: Mutex<Option<Instant>>,
}

impl Mqtt {
    pub(crate) fn new() -> Arc<Self> {
        let mqtt = Self::default();
        *mqtt.started.lock() = Some(Instant::now());
        Arc::new(mqtt)
    }

    /// A number for an assigned client identifier or a session.
    pub(crate) fn next_client_number(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Seconds since the broker started.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.lock().map_or(Duration::ZERO, |at| at.elapsed())
    }

    /// Stops a delayed will of `client_id`: the client is back.
    pub(crate) fn cancel_will(&self, client_id: &str) {
        if let Some(token) = self.wills.lock().remove(client_id) {
            token.cancel();
        }
    }

    /// Publishes a will now, or after `delay_secs` unless the client reconnects first.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn publish_will(
        self: &Arc<Self>,
        app: &App,
        client_id: &str,
        identity: Arc<Identity>,
        peer: IpAddr,
        origin: ClientId,
        message: publish::Message,
        delay_secs: u32,
    ) {
        if delay_secs == 0 {
            publish::publish(app, self, &identity, peer, origin, message).await;
            return;
        }
        let token = CancellationToken::new();
        if let Some(old) = self.wills.lock().insert(client_id.to_owned(), token.clone()) {
            old.cancel();
        }
        let (app, mqtt, client_id) = (app.clone(), self.clone(), client_id.to_owned());
        let shutdown = app.shutdown_token();
        tokio::spawn(async move {
            tokio::select! {
                () = token.cancelled() => return,
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(u64::from(delay_secs))) => {}
            }
            {
                let mut wills = mqtt.wills.lock();
                if wills.get(&client_id).is_some_and(|t| t.is_cancelled()) {
                    return;
                }
                wills.remove(&client_id);
            }
            publish::publish(&app, &mqtt, &identity, peer, origin, message).await;
        });
    }
}

/// Parses an MQTT topic filter: `$share/{group}/{filter}` gives the inner filter and `true`.
pub(crate) fn parse_filter(
    text: &str,
    limits: &ChannelLimits,
) -> Result<(ChannelFilter, bool), livehub_core::Error> {
    match text.strip_prefix(SHARE_PREFIX) {
        Some(rest) => {
            let (group, filter) = rest.split_once('/').unwrap_or((rest, ""));
            if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
                return Err(livehub_core::Error::InvalidChannel(format!(
                    "{text:?}: not $share/{{group}}/{{filter}}"
                )));
            }
            Ok((ChannelFilter::with_limits(filter, limits)?, true))
        }
        None => Ok((ChannelFilter::with_limits(text, limits)?, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_filters_name_a_group_and_a_filter() {
        let limits = ChannelLimits::default();
        let (filter, shared) = parse_filter("$share/g/a/+", &limits).expect("valid");
        assert!(shared);
        assert_eq!(filter.as_str(), "a/+");
        for bad in ["$share/g", "$share//a", "$share/g+/a", "$share/g/"] {
            assert!(parse_filter(bad, &limits).is_err(), "{bad}");
        }
        assert!(!parse_filter("$SYS/#", &limits).expect("valid").1);
    }
}
