//! livehub's HTTP edge: one axum router serving the native protocol over WebSocket, SSE, long
//! polling and the REST API, plus configuration and graceful shutdown.
//!
//! Every handler talks to a [`livehub_core::Node`]; nothing here keeps channel state.

mod api;
mod config;
mod cursor;
mod dashboard;
mod error;
mod poll;
mod protocol;
mod resume;
mod sse;
mod ws;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use livehub_core::Node;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{
    ApiSettings, Config, ConfigError, DashboardSettings, HistoryRule, HistorySettings, Limits,
    LongPollSettings, SseSettings, WebSocketSettings,
};
pub use cursor::{BadCursor, Cursor, MAX_CURSOR_LEN};
pub use error::ApiError;
pub use livehub_sources::SourcesConfig;
pub use poll::CURSOR_HEADER;
pub use protocol::{JSON_PROTOCOL, MSGPACK_PROTOCOL};

/// What every handler shares: the node, the settings and the shutdown signal. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    node: Node,
    config: Config,
    shutdown: CancellationToken,
}

impl App {
    /// An app over `node`; cancelling `shutdown` starts a graceful shutdown.
    pub fn new(node: Node, config: Config, shutdown: CancellationToken) -> Self {
        Self { inner: Arc::new(AppInner { node, config, shutdown }) }
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
        let mut router = Router::new()
            .route("/", get(dashboard::index))
            .route("/assets/app.js", get(dashboard::script))
            .route("/assets/app.css", get(dashboard::style))
            .route("/health", get(api::health))
            .route("/api/sources", get(api::sources))
            .route("/ws", get(ws::upgrade))
            .route("/sse", get(sse::stream))
            .route("/sse/{*channel}", get(sse::stream_path))
            .route("/poll", get(poll::poll))
            .route("/api/publish", post(api::publish))
            .route("/api/presence", get(api::presence))
            .route("/api/channels", get(api::channels))
            .route("/api/channels/{*channel}", get(api::channel));
        if self.config().test_endpoints {
            router = router.route("/_test/echo", get(ws::echo));
        }
        router
            .fallback(|| async {
                ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such endpoint")
            })
            .layer(DefaultBodyLimit::max(self.config().limits.max_body_size))
            .with_state(self.clone())
    }
}

/// Serves `config` on `listener` until `shutdown` is cancelled, then closes every connection
/// (WebSocket clients are told to reconnect) and returns within `shutdown_grace_secs`. The
/// built-in sources `config` enables publish until then.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let node = Node::new(config.node_config());
    serve_node(node, config, listener, shutdown).await
}

/// Like [`serve`], over an existing node (for embedding and tests).
pub async fn serve_node(
    node: Node,
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    // The sources stop with the shutdown token; their tasks are not awaited, since they only
    // publish into the node.
    let _sources = livehub_sources::spawn(&node, &config.sources, &shutdown);
    let app = App::new(node, config, shutdown.clone());
    let service = app.router().into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server.into_future() => result,
        _ = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "connections still open after the grace period; exiting anyway");
            Ok(())
        }
    }
}
