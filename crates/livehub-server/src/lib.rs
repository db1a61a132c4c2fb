//! livehub's HTTP edge: one axum router serving the native protocol over WebSocket, SSE, long
//! polling and the REST API, plus configuration and graceful shutdown.
//!
//! Every handler talks to a [`livehub_core::Node`]; nothing here keeps channel state.

mod access;
mod address;
mod api;
mod channel_list;
mod config;
mod cors;
mod cursor;
mod dashboard;
mod direct;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod gate;
mod gather;
mod half_open;
mod listen;
mod mqtt;
mod poll;
mod protocol;
mod resume;
mod series;
mod series_fields;
mod signalr;
mod sse;
mod storage;
mod timeq;
mod tls;
mod transport;
#[cfg(test)]
mod wire_names;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::header::X_CONTENT_TYPE_OPTIONS;
use axum::http::HeaderValue;
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use livehub_core::Node;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use address::listen_address;
pub use config::{
    ApiSettings, Config, ConfigError, CorsSettings, DashboardSettings, HistoryRule, HistorySettings, Limits,
    LongPollSettings, SseSettings, StorageSettings, StoreKind, TlsSettings, WebSocketSettings,
};
pub use config::{SignalRSettings, SignalRTarget};
pub use cursor::{BadCursor, Cursor, MAX_CURSOR_LEN};
pub use error::ApiError;
pub use listen::bind;
pub use livehub_auth::{AuthConfig, RateLimits};
pub use livehub_sources::SourcesConfig;
pub use mqtt::{parse_listen as parse_mqtt_listen, MqttSettings};
pub use poll::CURSOR_HEADER;
pub use protocol::{JSON_PROTOCOL, MSGPACK_PROTOCOL};
pub use storage::{open_store, OpenStoreError, ServerStore};
pub use tls::{TlsError, TlsListener, TlsReloader};

/// What every handler shares: the node, the settings and the shutdown signal. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    node: Node,
    config: Config,
    shutdown: CancellationToken,
    access: access::Access,
    /// Upgraded WebSocket tasks: hyper's connection future ends at the upgrade, so `serve_node`
    /// waits for these itself, or they would be cut off before their close frame is written.
    upgraded: TaskTracker,
    /// What took the fast paths.
    fast_paths: Arc<listen::FastPaths>,
    /// Connections with no complete request head yet.
    half_open: Arc<half_open::HalfOpen>,
    /// Bytes of unfinished fragmented WebSocket messages, all connections together.
    reassembly: Arc<ws::ReassemblyBudget>,
    /// Long polls waiting for a publication now (`/api/metrics`).
    held_polls: poll::HeldPolls,
    /// The durable store, when history is kept on disk (`/health` reports it).
    store: Option<storage::ServerStore>,
    /// The SignalR hub's connections by token.
    signalr: signalr::Registry,
    /// The MQTT broker's state, unless MQTT is off (no listener and no WebSocket path).
    mqtt: Option<Arc<mqtt::Mqtt>>,
}

impl App {
    /// An app over `node`; cancelling `shutdown` starts a graceful shutdown. Fails when the auth
    /// configuration cannot be used (an unreadable key file, an unknown algorithm).
    pub fn new(node: Node, config: Config, shutdown: CancellationToken) -> Result<Self, ConfigError> {
        let access = access::Access::new(&config)?;
        let upgraded = TaskTracker::new();
        let fast_paths = Arc::default();
        let held_polls = poll::HeldPolls::default();
        let limits = &config.limits;
        let total = match limits.max_half_open {
            0 => half_open::default_total(),
            n => n,
        };
        let half_open = half_open::HalfOpen::new(limits.max_half_open_per_ip, total);
        let reassembly = ws::ReassemblyBudget::new(limits.max_reassembly_bytes);
        let mqtt = (config.mqtt.listen.is_some() || config.mqtt.websocket).then(mqtt::Mqtt::new);
        let inner = AppInner {
            mqtt,
            node,
            config,
            shutdown,
            access,
            upgraded,
            fast_paths,
            held_polls,
            half_open,
            reassembly,
            store: None,
            signalr: signalr::Registry::default(),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The same app, reporting `store` in `/health`; call before serving.
    fn with_store(mut self, store: Option<storage::ServerStore>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.store = store;
        }
        self
    }

    /// The durable store, if history is kept on disk.
    pub(crate) fn store(&self) -> Option<&storage::ServerStore> {
        self.inner.store.as_ref()
    }

    pub(crate) fn fast_paths(&self) -> &Arc<listen::FastPaths> {
        &self.inner.fast_paths
    }

    pub(crate) fn half_open(&self) -> &Arc<half_open::HalfOpen> {
        &self.inner.half_open
    }

    pub(crate) fn reassembly(&self) -> &Arc<ws::ReassemblyBudget> {
        &self.inner.reassembly
    }

    pub(crate) fn mqtt(&self) -> Option<&Arc<mqtt::Mqtt>> {
        self.inner.mqtt.as_ref()
    }

    pub(crate) fn held_polls(&self) -> &poll::HeldPolls {
        &self.inner.held_polls
    }

    pub(crate) fn signalr(&self) -> &signalr::Registry {
        &self.inner.signalr
    }

    pub(crate) fn upgraded(&self) -> &TaskTracker {
        &self.inner.upgraded
    }

    pub(crate) fn access(&self) -> &access::Access {
        &self.inner.access
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// The router with every endpoint.
    pub fn router(&self) -> Router {
        let max_body_size = self.config().limits.max_body_size;
        let mut router = Router::new()
            .route("/", get(dashboard::index))
            .route("/assets/{name}", get(dashboard::asset))
            .route("/health", get(api::health))
            .route("/api/sources", get(api::sources))
            .route("/ws", get(ws::upgrade))
            .route("/sse", get(sse::stream))
            .route("/sse/{*channel}", get(sse::stream_path))
            .route("/poll", get(poll::poll))
            .route("/api/publish", post(api::publish))
            .route("/api/presence", get(api::presence))
            .route("/api/metrics", get(api::metrics))
            .route("/api/channels", get(api::channels))
            .route("/api/channels/{*channel}", get(api::channel));
        if self.config().test_endpoints {
            router = router.route("/_test/echo", get(ws::echo));
        }
        router = router.merge(signalr::routes(self)).route("/mqtt", get(mqtt::upgrade));
        router
            .fallback(|| async {
                ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such endpoint")
            })
            .layer(DefaultBodyLimit::max(max_body_size))
            .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
                self.config().limits.request_body_timeout_secs.max(1),
            )))
            .layer(middleware::map_response(move |r: Response| error::json_body_limit(r, max_body_size)))
            .layer(cors::layer(self.config()))
            .layer(middleware::from_fn(access::with_peer))
            // Outermost, so that every answer has it: errors, CORS preflights, streams (the
            // direct SSE path writes these headers too), the 404 fallback.
            .layer(middleware::map_response(no_sniff))
            .with_state(self.clone())
    }
}

/// A router layer: `X-Content-Type-Options: nosniff` on every answer, so that no browser
/// second-guesses a JSON error or a stream as HTML and runs what a client published into it.
async fn no_sniff(mut response: Response) -> Response {
    response.headers_mut().insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// Drops idle per-address limiter state until shutdown.
async fn sweep_limits(app: App) {
    let mut every = tokio::time::interval(access::SWEEP_INTERVAL);
    let shutdown = app.shutdown_token();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => app.access().sweep(),
        }
    }
}

/// Serves `config` on `listener` until `shutdown` is cancelled, then closes every connection
/// (WebSocket clients are told to reconnect) and returns within `shutdown_grace_secs`. The
/// built-in sources `config` enables publish until then.
///
/// History goes to the store `config.storage` names (opened here, and closed cleanly after the
/// last connection, so that the next start keeps every epoch).
///
/// Make `listener` with [`bind`], whose accept queue takes a burst of reconnects.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let store = open_store(&config.storage).await.map_err(std::io::Error::other)?;
    let mqtt = bind_mqtt(&config)?;
    serve_with_store(config, store, listener, mqtt, shutdown).await
}

/// Like [`serve`], with the store already opened by [`open_store`] and the MQTT listener bound by
/// [`bind_mqtt`] (so that a store that cannot be opened or a port that is taken stops the process
/// before it listens); closes the store cleanly at the end.
pub async fn serve_with_store(
    config: Config,
    store: Option<storage::ServerStore>,
    listener: TcpListener,
    mqtt_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let node = match &store {
        Some(store) => Node::with_store(config.node_config(), store.clone()),
        None => Node::new(config.node_config()),
    };
    if let Some(store) = &store {
        storage::spawn_maintenance(store, &node, shutdown.clone());
    }
    let served = serve_stored(node, store.clone(), config, listener, mqtt_listener, shutdown).await;
    if let Some(store) = store {
        storage::close(&store).await;
    }
    served
}

/// Binds the MQTT listener `[mqtt] listen` names, if any; the error names the setting. Bind it
/// before logging that the server is up, and pass it to [`serve_with_mqtt`].
pub fn bind_mqtt(config: &Config) -> std::io::Result<Option<TcpListener>> {
    config.mqtt.listen.map(mqtt::bind).transpose()
}

/// Like [`serve`], over an existing node (for embedding and tests); the MQTT listener, when
/// `[mqtt] listen` names one, is bound here.
pub async fn serve_node(
    node: Node,
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mqtt = bind_mqtt(&config)?;
    serve_stored(node, None, config, listener, mqtt, shutdown).await
}

/// Like [`serve_node`], with the MQTT listener bound already (or none).
pub async fn serve_with_mqtt(
    node: Node,
    config: Config,
    listener: TcpListener,
    mqtt_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_stored(node, None, config, listener, mqtt_listener, shutdown).await
}

async fn serve_stored(
    node: Node,
    store: Option<storage::ServerStore>,
    config: Config,
    listener: TcpListener,
    mqtt_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let app =
        App::new(node.clone(), config, shutdown.clone()).map_err(std::io::Error::other)?.with_store(store);
    // Certificates are read before anything starts, so bad files fail at start-up. TLS
    // handshakes count as half-open connections, in the same registry as the requests after.
    let listener = match &app.config().tls {
        Some(settings) => listen::Listen::Tls(
            TlsListener::with_half_open(listener, settings, app.half_open().clone())
                .map_err(std::io::Error::other)?,
        ),
        None => listen::Listen::Plain(listener),
    };
    // The sources stop with the shutdown token; their tasks are not awaited, since they only
    // publish into the node.
    let _sources = livehub_sources::spawn(&node, &app.config().sources, &shutdown);
    tokio::spawn(sweep_limits(app.clone()));
    if let Some(mqtt) = app.mqtt() {
        if let Some(listener) = mqtt_listener {
            mqtt::spawn(&app, mqtt, listener)?;
        }
        tokio::spawn(mqtt::run_sys(app.clone(), mqtt.clone()));
    }
    let router = app.router();
    let upgraded = app.upgraded().clone();
    let policy = Arc::new(listen::Accepting {
        fast_paths: app.fast_paths().clone(),
        half_open: app.half_open().clone(),
        head_timeout: Duration::from_secs(app.config().limits.request_head_timeout_secs.max(1)),
    });
    let accepting = shutdown.clone();
    let server = async move {
        let connections = TaskTracker::new();
        listen::run(listener, router, policy, accepting, connections.clone()).await;
        connections.close();
        connections.wait().await;
        // Upgraded WebSocket tasks outlive the connection task that answered the handshake.
        upgraded.close();
        upgraded.wait().await;
        Ok(())
    };
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        _ = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "connections still open after the grace period; exiting anyway");
            Ok(())
        }
    }
}
