//! Server settings, as read from the TOML file; every field has a default, so an empty file (or
//! none) is a working configuration. `livehub.example.toml` documents each one.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use livehub_auth::{AuthConfig, RateLimits};
use livehub_core::{ChannelLimits, HistoryConfig, HistoryPolicy, NodeConfig};
use livehub_sources::SourcesConfig;
use serde::Deserialize;

/// Everything the server can be told.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on: `127.0.0.1:8080`, or a host name such as `localhost:8080`.
    #[serde(deserialize_with = "crate::address::deserialize_listen")]
    pub listen: SocketAddr,
    /// Seconds to let connections close after SIGINT/SIGTERM before exiting anyway.
    pub shutdown_grace_secs: u64,
    /// Size and rate limits.
    pub limits: Limits,
    /// History kept per channel.
    pub history: HistorySettings,
    /// Where history is kept across restarts (`docs/storage.md`).
    pub storage: StorageSettings,
    /// WebSocket transport.
    pub websocket: WebSocketSettings,
    /// Server-Sent Events transport.
    pub sse: SseSettings,
    /// Long-polling transport.
    pub long_polling: LongPollSettings,
    /// The REST read endpoints (short polling) and the publish API.
    pub api: ApiSettings,
    /// The dashboard served at `/`.
    pub dashboard: DashboardSettings,
    /// The built-in publishers (system metrics and the simulated feeds).
    pub sources: SourcesConfig,
    /// Who may connect, subscribe and publish (`docs/security.md`). Off by default.
    pub auth: AuthConfig,
    /// Rate limits per connection and per client address.
    pub rate_limits: RateLimits,
    /// Cross-origin access to the HTTP API and polling.
    pub cors: CorsSettings,
    /// TLS on the listener; plain HTTP when absent.
    pub tls: Option<TlsSettings>,
    /// The SignalR hub (`docs/signalr.md`).
    pub signalr: SignalRSettings,
    /// Endpoints used only by the conformance tests (a WebSocket echo); never enable in production.
    pub test_endpoints: bool,
    /// The MQTT broker (`docs/mqtt.md`).
    pub mqtt: crate::MqttSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace_secs: 10,
            limits: Limits::default(),
            history: HistorySettings::default(),
            storage: StorageSettings::default(),
            websocket: WebSocketSettings::default(),
            sse: SseSettings::default(),
            long_polling: LongPollSettings::default(),
            api: ApiSettings::default(),
            dashboard: DashboardSettings::default(),
            sources: SourcesConfig::default(),
            auth: AuthConfig::default(),
            rate_limits: RateLimits::default(),
            cors: CorsSettings::default(),
            tls: None,
            signalr: SignalRSettings::default(),
            test_endpoints: false,
            mqtt: crate::MqttSettings::default(),
        }
    }
}

/// Size limits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket message a client may send, in bytes (fragments included).
    pub max_message_size: usize,
    /// Largest HTTP request body, in bytes.
    pub max_body_size: usize,
    /// Largest publication data, in bytes.
    pub max_data_size: usize,
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// Channels one SSE stream or long poll may name.
    pub max_stream_channels: usize,
    /// Publications queued for one connection before it is disconnected as a slow consumer.
    pub queue_capacity: usize,
    /// Longest channel name or pattern a client may use, in bytes.
    pub max_channel_length: usize,
    /// Most `/`-separated levels in a channel name or pattern.
    pub max_channel_levels: usize,
    /// Seconds a connection may take to send a complete request head: the first from its accept
    /// (after the TLS handshake), a later one from the end of the response before it, so idle
    /// keep-alive connections are closed after it too.
    pub request_head_timeout_secs: u64,
    /// Seconds a request may take to send its whole body.
    pub request_body_timeout_secs: u64,
    /// Connections from one address that may be half-open (accepted, with no complete request
    /// head yet) at once; more are closed at once. 0 turns the limit off.
    pub max_half_open_per_ip: usize,
    /// Seconds a WebSocket message sent in fragments may take from its first fragment to its
    /// last; past it the connection is closed (1008 `message_timeout`).
    pub message_timeout_secs: u64,
    /// Bytes that every connection's unfinished fragmented WebSocket messages may hold
    /// together; the connection whose fragment passes it is closed (1013). 0 turns it off.
    pub max_reassembly_bytes: usize,
    /// Half-open connections in all; past it the oldest is closed to make room. 0 (the default)
    /// means a quarter of the process's file-descriptor limit, so real clients always find
    /// descriptors left under a flood.
    pub max_half_open: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let node = NodeConfig::default();
        Self {
            max_message_size: 128 * 1024,
            max_body_size: 1024 * 1024,
            max_data_size: node.max_data_size,
            max_subscriptions: node.max_subscriptions,
            max_stream_channels: 64,
            queue_capacity: node.queue_capacity,
            max_channel_length: node.channel_limits.max_len,
            max_channel_levels: node.channel_limits.max_levels,
            // 10 s: a browser or a device on a slow link sends a head in well under a second.
            request_head_timeout_secs: 10,
            // 30 s: a 1 MiB body (the largest by default) at 35 KiB/s.
            request_body_timeout_secs: 30,
            // 256: a load generator or a NAT opens hundreds at once; a flood needs thousands.
            max_half_open_per_ip: 256,
            max_half_open: 0,
            // 10 s: the largest message (128 KiB) arrives in 4 s at 35 KiB/s.
            message_timeout_secs: 10,
            // 64 MiB: 512 clients each half-way through a largest message.
            max_reassembly_bytes: 64 * 1024 * 1024,
        }
    }
}

/// History defaults and per-prefix rules.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HistorySettings {
    /// Publications kept per channel.
    pub size: usize,
    /// Age limit in seconds.
    pub max_age_secs: u64,
    /// Overrides for channels starting with a prefix; the longest prefix wins.
    pub rules: Vec<HistoryRule>,
    /// With a store, the most publications per channel kept in memory; older history is read
    /// from disk. Unset: all of a channel's history is kept in memory too.
    pub memory_size: Option<usize>,
}

impl Default for HistorySettings {
    fn default() -> Self {
        let d = HistoryPolicy::default();
        Self { size: d.size, max_age_secs: d.max_age.as_secs(), rules: Vec::new(), memory_size: None }
    }
}

/// History for channels whose name starts with `prefix`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HistoryRule {
    /// Channel-name prefix, such as `metrics/`.
    pub prefix: String,
    /// Publications kept.
    pub size: usize,
    /// Age limit in seconds.
    pub max_age_secs: u64,
}

/// Which store keeps history, positions and epochs across restarts.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded SQLite database under `data_dir` (the default).
    Sqlite,
    /// Nothing on disk: every restart loses history and changes every epoch.
    Memory,
    /// A PostgreSQL database at `url` (`docs/storage-postgres.md`).
    Postgres,
}

impl StoreKind {
    /// Whether history goes to a database (SQLite or PostgreSQL) rather than only to memory.
    pub fn on_disk(self) -> bool {
        !matches!(self, Self::Memory)
    }
}

/// With a store on disk and no `[history] memory_size`, the publications of a channel kept in
/// memory: reads further back go to the store. A chart's day of host metrics (86,400
/// publications, the sources' rule with a store) would otherwise take about 100 MB of memory
/// for one channel, while 1,000 still answer every reconnect's recovery from memory.
pub(crate) const DEFAULT_MEMORY_SIZE: usize = 1000;

/// Storage settings (`docs/storage.md`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `sqlite`, `postgres` or `memory`.
    pub store: StoreKind,
    /// The PostgreSQL connection URL, for `store = "postgres"`.
    pub url: Option<String>,
    /// Directory of the SQLite store, created when missing; one process at a time.
    pub data_dir: std::path::PathBuf,
    /// Channel-name prefixes whose publishes are acknowledged only once committed to disk; the
    /// others are written behind within 50 ms. `""` makes every channel durable.
    pub durable: Vec<String>,
    /// Write-behind publications queued for the disk before publishes are refused (`store_full`).
    pub max_queued: usize,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            store: StoreKind::Sqlite,
            url: None,
            data_dir: "./livehub-data".into(),
            durable: Vec::new(),
            max_queued: 100_000,
        }
    }
}

/// WebSocket settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketSettings {
    /// Serve `/ws`.
    pub enabled: bool,
    /// Seconds between server pings; a client that has sent nothing (not even a pong) for a whole
    /// interval after a ping is disconnected.
    pub ping_interval_secs: u64,
    /// Seconds a connection's session outlives a connection that drops without a close: its
    /// subscriptions stay and publications queue up, and a new connection with
    /// `?resume=<session>` takes it over. 0 (the default) turns it off; clients then recover
    /// from their positions, which needs no state on the server.
    pub session_ttl_secs: u64,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        // 25 s stays under the 30–60 s idle timeouts of common proxies and load balancers.
        Self { enabled: true, ping_interval_secs: 25, session_ttl_secs: 0 }
    }
}

/// SSE settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SseSettings {
    /// Serve `/sse`.
    pub enabled: bool,
    /// Seconds between heartbeat comments on an idle stream.
    pub heartbeat_secs: u64,
    /// Reconnection delay suggested to `EventSource` (`retry:`), in milliseconds.
    pub retry_ms: u64,
}

impl Default for SseSettings {
    fn default() -> Self {
        Self { enabled: true, heartbeat_secs: 15, retry_ms: 2000 }
    }
}

/// Long-polling settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LongPollSettings {
    /// Serve `/poll`.
    pub enabled: bool,
    /// Seconds a poll is held when the request names no `timeout`.
    pub default_timeout_secs: u64,
    /// Longest hold a request may ask for, in seconds.
    pub max_timeout_secs: u64,
}

impl Default for LongPollSettings {
    fn default() -> Self {
        Self { enabled: true, default_timeout_secs: 30, max_timeout_secs: 60 }
    }
}

/// REST settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Serve the read endpoints under `/api/channels` (short polling).
    pub polling_enabled: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self { polling_enabled: true }
    }
}

/// Dashboard settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardSettings {
    /// Serve the dashboard at `/` and its assets under `/assets/`.
    pub enabled: bool,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// The SignalR hub: ASP.NET Core SignalR clients connect to it unchanged (`docs/signalr.md`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SignalRSettings {
    /// Serve the hub.
    pub enabled: bool,
    /// Where the hub is; `negotiate` is under it.
    pub path: String,
    /// Seconds between the server's pings (ASP.NET Core's `KeepAliveInterval`).
    pub keep_alive_secs: u64,
    /// Seconds without a message from the client before it is disconnected
    /// (`ClientTimeoutInterval`); keep it at least twice the client's own keep-alive.
    pub client_timeout_secs: u64,
    /// Seconds a connection has to send its handshake (`HandshakeTimeout`).
    pub handshake_timeout_secs: u64,
    /// The client method publications invoke when no `targets` entry matches.
    pub default_target: String,
    /// Client methods per channel prefix; the longest matching prefix wins.
    pub targets: Vec<SignalRTarget>,
}

impl Default for SignalRSettings {
    fn default() -> Self {
        // ASP.NET Core's defaults, which the official clients' own timeouts are set against.
        Self {
            enabled: true,
            path: "/hubs/live".into(),
            keep_alive_secs: 15,
            client_timeout_secs: 30,
            handshake_timeout_secs: 15,
            default_target: "Receive".into(),
            targets: Vec::new(),
        }
    }
}

/// The client method invoked for publications on channels starting with `prefix`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignalRTarget {
    /// Channel-name prefix, such as `metrics/`.
    pub prefix: String,
    /// The client method, such as `ReceiveMetrics`.
    pub target: String,
}

/// Which other origins may call the HTTP API and the polling endpoints from a browser.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Allowed origins (`https://app.example.com`), or `*`. Empty means any origin while auth is
    /// off, and the `[auth.origins]` list once it is on.
    pub allowed_origins: Vec<String>,
}

/// TLS directly on the listener, for deployments without a reverse proxy.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first. Reloaded when the file changes.
    pub cert_file: std::path::PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Reloaded when the file changes.
    pub key_file: std::path::PathBuf,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration in {path}: {source}")]
    Parse {
        /// The path.
        path: String,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// The `[auth]` or `[rate_limits]` section cannot be used (a key file, an algorithm, a rate).
    #[error("invalid auth configuration: {0}")]
    Auth(#[from] livehub_auth::AuthConfigError),
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: display.clone(), source })?;
        Self::from_toml(&text)
            .map_err(|source| ConfigError::Parse { path: display, source: Box::new(source) })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The configured history rules, after the sources' built-in ones for the prefixes the
    /// configuration does not name.
    fn history_rules(&self) -> Vec<(String, HistoryPolicy)> {
        let policy = |size, secs| HistoryPolicy { size, max_age: Duration::from_secs(secs) };
        let configured: Vec<_> =
            self.history.rules.iter().map(|r| (r.prefix.clone(), policy(r.size, r.max_age_secs))).collect();
        let mut rules: Vec<_> = livehub_sources::history_rules(self.storage.store.on_disk())
            .into_iter()
            .filter(|(prefix, _)| !configured.iter().any(|(p, _)| p == prefix))
            .collect();
        rules.extend(configured);
        rules
    }

    /// The channel-model settings this configuration implies.
    pub fn node_config(&self) -> NodeConfig {
        let policy = |size, secs| HistoryPolicy { size, max_age: Duration::from_secs(secs) };
        NodeConfig {
            history: HistoryConfig {
                default: policy(self.history.size, self.history.max_age_secs),
                rules: self.history_rules(),
            },
            queue_capacity: self.limits.queue_capacity.max(1),
            max_subscriptions: self.limits.max_subscriptions,
            max_data_size: self.limits.max_data_size,
            channel_limits: ChannelLimits {
                max_len: self.limits.max_channel_length.max(1),
                max_levels: self.limits.max_channel_levels.max(1),
            },
            memory_size: self.history.memory_size.or(self
                .storage
                .store
                .on_disk()
                .then_some(DEFAULT_MEMORY_SIZE)),
            ..NodeConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_matches_the_defaults() {
        let example = include_str!("../../../livehub.example.toml");
        let parsed = Config::from_toml(example).expect("example parses");
        let mut expected = Config::default();
        expected.history.rules = parsed.history.rules.clone();
        assert_eq!(parsed, expected, "the example documents the defaults");
        assert!(!parsed.history.rules.is_empty(), "the example shows a rule");
    }

    #[test]
    fn configured_history_rules_replace_the_sources_ones() {
        let config =
            Config::from_toml("[[history.rules]]\nprefix = \"metrics/\"\nsize = 5\nmax_age_secs = 7")
                .expect("parses");
        let rules = config.node_config().history.rules;
        let metrics: Vec<_> = rules.iter().filter(|(p, _)| p == "metrics/").collect();
        assert_eq!(metrics.len(), 1, "one rule per prefix: {rules:?}");
        assert_eq!(metrics[0].1.size, 5);
        assert!(rules.iter().any(|(p, _)| p == "stocks/"), "the other built-in rules stay");
    }

    #[test]
    fn a_store_on_disk_keeps_a_day_of_metrics_with_a_bounded_hot_window() {
        let rule = |config: &NodeConfig, channel: &str| config.history.policy_for(channel);
        let on_disk = Config::default().node_config();
        assert_eq!(rule(&on_disk, "metrics/system").max_age, Duration::from_secs(86_400));
        assert!(rule(&on_disk, "metrics/system").size >= 86_400, "a day at one sample a second");
        assert_eq!(rule(&on_disk, "sensors/lab-1").max_age, Duration::from_secs(3600));
        assert_eq!(on_disk.memory_size, Some(DEFAULT_MEMORY_SIZE));

        let memory = Config::from_toml("[storage]\nstore = \"memory\"").expect("parses").node_config();
        assert_eq!(rule(&memory, "metrics/system").max_age, Duration::from_secs(600));
        assert_eq!(memory.memory_size, None, "in memory, history is the hot window");

        let set = Config::from_toml("[history]\nmemory_size = 50").expect("parses").node_config();
        assert_eq!(set.memory_size, Some(50), "a configured hot window wins");
    }

    #[test]
    fn channel_limits_reach_the_node() {
        let config = Config::from_toml("[limits]\nmax_channel_length = 4096\nmax_channel_levels = 64")
            .expect("parses");
        assert_eq!(config.node_config().channel_limits, ChannelLimits { max_len: 4096, max_levels: 64 });
        assert_eq!(Config::default().node_config().channel_limits, ChannelLimits::default());
    }

    #[test]
    fn empty_is_default_and_typos_are_errors() {
        assert_eq!(Config::from_toml("").expect("empty"), Config::default());
        assert!(Config::from_toml("listen = \"127.0.0.1:1\"\nmax_mesage_size = 3").is_err());
    }
}
