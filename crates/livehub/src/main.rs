//! The `livehub` command: `serve`, `publish` / `subscribe` clients for the shell, and
//! development credentials (`token`, `apikey`), and the load generator (`bench`).

mod apikey;
mod bench;
mod client;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use livehub_server::{Config, SourcesConfig};
use tokio_util::sync::CancellationToken;

/// One server that pushes live data to dashboards and devices over WebSocket, SSE, long polling
/// and a REST API, with history and recovery.
#[derive(Parser)]
#[command(name = "livehub", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (defaults: 127.0.0.1:8080, in-memory history, every transport on).
    Serve(ServeArgs),
    /// Publish one message: `livehub publish demo/ticks '{"v":2}'`.
    Publish(client::PublishArgs),
    /// Print each message of one or more channels as a JSON line, reconnecting without loss.
    Subscribe(client::SubscribeArgs),
    /// Mint a development JWT: `livehub token --secret-file dev.secret --sub alice --subscribe 'chat/#'`.
    Token(token::TokenArgs),
    /// Generate an API key and its [[auth.api_keys]] config entry, or hash an existing key.
    #[command(name = "apikey", alias = "api-key")]
    ApiKey(apikey::ApiKeyArgs),
    /// Measure fan-out, latency, connection rate or memory of a server on loopback
    /// (docs/benchmarks.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Settings for `serve`. Precedence: flags, then `LIVEHUB_*` environment variables, then the
/// TOML file, then built-in defaults.
#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (see livehub.example.toml).
    #[arg(long, env = "LIVEHUB_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, such as 127.0.0.1:8080 or 0.0.0.0:80.
    #[arg(long, env = "LIVEHUB_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Publications kept per channel by default.
    #[arg(long, env = "LIVEHUB_HISTORY_SIZE")]
    history_size: Option<usize>,
    /// Age limit of history by default, in seconds.
    #[arg(long, env = "LIVEHUB_HISTORY_MAX_AGE_SECS")]
    history_max_age_secs: Option<u64>,
    /// Transports to switch off, comma-separated: websocket, sse, long-polling, polling.
    #[arg(long, env = "LIVEHUB_DISABLE", value_delimiter = ',')]
    disable: Vec<Transport>,
    /// Largest WebSocket message a client may send, in bytes.
    #[arg(long, env = "LIVEHUB_MAX_MESSAGE_SIZE")]
    max_message_size: Option<usize>,
    /// Run none of the built-in data sources (system metrics and the simulated feeds).
    #[arg(long, env = "LIVEHUB_NO_SOURCES")]
    no_sources: bool,
    /// Serve the test-only WebSocket echo endpoint /_test/echo (for the Autobahn suite).
    #[arg(long, hide = true, env = "LIVEHUB_TEST_ENDPOINTS")]
    test_endpoints: bool,
    /// Where MQTT listens, such as 127.0.0.1:1883, or `off` (see docs/mqtt.md).
    #[arg(long, env = "LIVEHUB_MQTT_LISTEN")]
    mqtt_listen: Option<String>,
    /// Log filter, such as `info` or `livehub=debug` (RUST_LOG syntax).
    #[arg(long, env = "LIVEHUB_LOG", default_value = "info")]
    log: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Transport {
    Websocket,
    Sse,
    LongPolling,
    Polling,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(size) = self.history_size {
            config.history.size = size;
        }
        if let Some(secs) = self.history_max_age_secs {
            config.history.max_age_secs = secs;
        }
        if let Some(max) = self.max_message_size {
            config.limits.max_message_size = max;
        }
        for transport in &self.disable {
            match transport {
                Transport::Websocket => config.websocket.enabled = false,
                Transport::Sse => config.sse.enabled = false,
                Transport::LongPolling => config.long_polling.enabled = false,
                Transport::Polling => config.api.polling_enabled = false,
            }
        }
        if self.no_sources {
            config.sources = SourcesConfig::disabled();
        }
        config.test_endpoints |= self.test_endpoints;
        if let Some(mqtt) = &self.mqtt_listen {
            config.mqtt.listen = livehub_server::parse_mqtt_listen(mqtt)
                .map_err(|e| anyhow::anyhow!("--mqtt-listen / LIVEHUB_MQTT_LISTEN: {e}"))?;
        }
        Ok(config)
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = || tokio::runtime::Runtime::new().context("starting the async runtime");
    let done = match cli.command {
        // The multi-threaded runtime even on one core: the single-threaded one, tried, stopped
        // writes from coalescing when a publisher feeds many channels (4× fewer deliveries in
        // docs/benchmarks.md's many-channels scenario) for 5 % more one-channel fan-out.
        Command::Serve(args) => runtime()?.block_on(serve(args)),
        Command::Publish(args) => {
            init_logging("warn");
            runtime()?.block_on(client::publish(args))
        }
        Command::Subscribe(args) => {
            init_logging("warn");
            runtime()?.block_on(client::subscribe(args))
        }
        Command::Token(args) => token::run(args),
        Command::ApiKey(args) => apikey::run(args),
        // Its own runtime, and its own exit status: 1 when the run failed.
        Command::Bench(command) => return bench::run(command),
    };
    done.map(|()| ExitCode::SUCCESS)
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log);
    let config = args.config()?;
    match exposure(&config) {
        Some(Exposure::NoAuth) => {
            tracing::warn!(
                "AUTH IS OFF on {}, which is not a loopback address: anyone who can reach it can \
                 read every channel and publish to any channel",
                config.listen
            );
            tracing::warn!(
                "configure [auth] to require tokens or API keys (docs/security.md), or listen on \
                 127.0.0.1 to stay local"
            );
        }
        Some(Exposure::NoTls) => tracing::warn!(
            "auth is on but {} is plain HTTP on a non-loopback address: tokens and API keys cross \
             the network in clear; configure [tls] or terminate TLS in a proxy (docs/security.md)",
            config.listen
        ),
        None => {}
    }
    let listener =
        livehub_server::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let mqtt = livehub_server::bind_mqtt(&config)?;
    let shutdown = CancellationToken::new();
    on_signal(shutdown.clone()).context("cannot listen for SIGINT and SIGTERM")?;
    tracing::info!(%addr, "livehub listening: dashboard and API at http://{addr}/");
    if config.test_endpoints {
        tracing::warn!("test endpoints are enabled (/_test/echo); never do this in production");
    }
    let node = livehub_core::Node::new(config.node_config());
    livehub_server::serve_with_mqtt(node, config, listener, mqtt, shutdown).await?;
    tracing::info!("livehub stopped");
    Ok(())
}

/// What a listener that other hosts can reach lacks.
#[derive(Debug, PartialEq)]
enum Exposure {
    /// Anyone who can connect may read and publish everything.
    NoAuth,
    /// Auth is on, but credentials travel in clear.
    NoTls,
}

/// What `config` leaves unprotected on a non-loopback listener, if anything.
fn exposure(config: &Config) -> Option<Exposure> {
    // Canonical, so that an IPv4-mapped `::ffff:127.0.0.1` counts as the loopback it is.
    if config.listen.ip().to_canonical().is_loopback() {
        None
    } else if !config.auth.is_enabled() {
        Some(Exposure::NoAuth)
    } else if config.tls.is_none() {
        Some(Exposure::NoTls)
    } else {
        None
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM. The handlers are registered before this returns, so
/// a signal sent right after the listening line is logged stops the server gracefully instead of
/// killing it.
fn on_signal(shutdown: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            tracing::info!("shutting down: closing connections");
            shutdown.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("shutting down: closing connections");
            shutdown.cancel();
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_depends_on_address_auth_and_tls() {
        let config = |listen: &str, auth: &str| {
            Config::from_toml(&format!("listen = \"{listen}\"\n{auth}")).expect("config")
        };
        let secret = "[auth.jwt]\nhmac_secret = \"s\"";
        let tls = "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"";
        let table = [
            ("127.0.0.1:80", "", None),
            ("127.1.2.3:80", "", None),
            ("[::1]:80", "", None),
            ("[::ffff:127.0.0.1]:80", "", None),
            ("0.0.0.0:80", "", Some(Exposure::NoAuth)),
            ("[::]:80", "", Some(Exposure::NoAuth)),
            ("192.168.1.2:80", "[auth]\nrequired = true", Some(Exposure::NoTls)),
            ("0.0.0.0:80", secret, Some(Exposure::NoTls)),
            ("0.0.0.0:80", &format!("{secret}\n{tls}"), None),
            ("127.0.0.1:80", secret, None),
        ];
        for (listen, auth, expected) in table {
            assert_eq!(exposure(&config(listen, auth)), expected, "{listen} {auth}");
        }
    }
}
