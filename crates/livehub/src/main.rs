//! The `livehub` command: `serve`, `publish` / `subscribe` clients for the shell, and
//! development credentials (`token`, `apikey`), and the load generator (`bench`).

mod apikey;
mod bench;
mod client;
mod failure;
mod settings;
mod store;
mod token;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use failure::{Failure, Status};
use livehub_server::{Config, SourcesConfig};
use settings::Transport;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

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
    /// Run the server (defaults: 127.0.0.1:8080, history in ./livehub-data, every transport on).
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
    /// Inspect or back up the history store (docs/storage.md).
    #[command(subcommand)]
    Store(store::StoreCommand),
}

/// Settings for `serve`. Precedence: flags, then `LIVEHUB_*` environment variables, then the
/// TOML file, then built-in defaults. The variables are read by [`ServeArgs::config`] rather
/// than by clap, so that a wrong value is reported with the variable's name.
#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (see livehub.example.toml) [env: LIVEHUB_CONFIG].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on, such as 127.0.0.1:8080, localhost:8080 or 0.0.0.0:80
    /// [env: LIVEHUB_LISTEN].
    #[arg(long, value_name = "HOST:PORT", value_parser = settings::listen_address)]
    listen: Option<SocketAddr>,
    /// Publications kept per channel by default [env: LIVEHUB_HISTORY_SIZE].
    #[arg(long)]
    history_size: Option<usize>,
    /// Age limit of history by default, in seconds [env: LIVEHUB_HISTORY_MAX_AGE_SECS].
    #[arg(long)]
    history_max_age_secs: Option<u64>,
    /// Where history is kept: `sqlite` (under --data-dir), `postgres` (at --database-url) or
    /// `memory` (lost on restart) [env: LIVEHUB_STORE].
    #[arg(long)]
    store: Option<StoreArg>,
    /// PostgreSQL URL for `--store postgres`, such as postgres://user:pass@host/db
    /// [env: LIVEHUB_DATABASE_URL, then DATABASE_URL].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Directory of the SQLite store (default ./livehub-data) [env: LIVEHUB_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Transports to switch off, comma-separated: websocket, sse, long-polling, polling
    /// [env: LIVEHUB_DISABLE].
    #[arg(long, value_name = "LIST")]
    disable: Vec<String>,
    /// Largest WebSocket message a client may send, in bytes [env: LIVEHUB_MAX_MESSAGE_SIZE].
    #[arg(long)]
    max_message_size: Option<usize>,
    /// Run none of the built-in data sources (system metrics and the simulated feeds)
    /// [env: LIVEHUB_NO_SOURCES=1].
    #[arg(long)]
    no_sources: bool,
    /// Lift the per-address rate limits, for benchmarking on loopback with `livehub bench`
    /// (docs/cli.md); only with a loopback --listen [env: LIVEHUB_BENCH_MODE=1].
    #[arg(long)]
    bench_mode: bool,
    /// Serve the test-only WebSocket echo endpoint /_test/echo (for the Autobahn suite).
    #[arg(long, hide = true)]
    test_endpoints: bool,
    /// Where MQTT listens, such as 127.0.0.1:1883, or `off` (docs/mqtt.md)
    /// [env: LIVEHUB_MQTT_LISTEN].
    #[arg(long)]
    mqtt_listen: Option<String>,
    /// Log filter, such as `info` or `livehub=debug` (RUST_LOG syntax; every directive names a
    /// level) [env: LIVEHUB_LOG, then RUST_LOG; default: info].
    #[arg(long)]
    log: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StoreArg {
    Sqlite,
    Postgres,
    Memory,
}

impl ServeArgs {
    /// The configuration: the file, then the variables, then the flags over it.
    fn config(&self) -> anyhow::Result<Config> {
        let path = match &self.config {
            Some(path) => Some(path.clone()),
            None => settings::env_text("LIVEHUB_CONFIG")?.map(PathBuf::from),
        };
        let mut config = match &path {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let listen = settings::env_with("LIVEHUB_LISTEN", settings::listen_address)?;
        if let Some(listen) = self.listen.or(listen) {
            config.listen = listen;
        }
        let size = settings::env_parse("LIVEHUB_HISTORY_SIZE", "a whole number")?;
        if let Some(size) = self.history_size.or(size) {
            config.history.size = size;
        }
        let secs = settings::env_parse("LIVEHUB_HISTORY_MAX_AGE_SECS", "a whole number of seconds")?;
        if let Some(secs) = self.history_max_age_secs.or(secs) {
            config.history.max_age_secs = secs;
        }
        let store =
            settings::env_with("LIVEHUB_STORE", |text| match text.trim().to_ascii_lowercase().as_str() {
                "sqlite" => Ok(StoreArg::Sqlite),
                "postgres" => Ok(StoreArg::Postgres),
                "memory" => Ok(StoreArg::Memory),
                _ => Err("use sqlite, postgres or memory".to_owned()),
            })?;
        match self.store.or(store) {
            Some(StoreArg::Sqlite) => config.storage.store = livehub_server::StoreKind::Sqlite,
            Some(StoreArg::Postgres) => config.storage.store = livehub_server::StoreKind::Postgres,
            Some(StoreArg::Memory) => config.storage.store = livehub_server::StoreKind::Memory,
            None => {}
        }
        // The URL: the flag, LIVEHUB_DATABASE_URL, the file's [storage] url, then DATABASE_URL
        // (the variable hosting platforms set), so an explicit setting wins over the ambient one.
        let url = match self.database_url.clone() {
            Some(url) => Some(url),
            None => settings::env_text("LIVEHUB_DATABASE_URL")?,
        };
        if let Some(url) = url {
            config.storage.url = Some(url);
        }
        if config.storage.url.is_none() {
            config.storage.url = settings::env_text("DATABASE_URL")?;
        }
        let dir = settings::env_text("LIVEHUB_DATA_DIR")?.map(PathBuf::from);
        if let Some(dir) = self.data_dir.clone().or(dir) {
            config.storage.data_dir = dir;
        }
        let max = settings::env_parse("LIVEHUB_MAX_MESSAGE_SIZE", "a whole number of bytes")?;
        if let Some(max) = self.max_message_size.or(max) {
            config.limits.max_message_size = max;
        }
        let disable = if self.disable.is_empty() {
            settings::env_with("LIVEHUB_DISABLE", settings::transports)?.unwrap_or_default()
        } else {
            settings::transports(&self.disable.join(","))
                .map_err(|why| Failure::usage(format!("--disable: {why}")))?
        };
        for transport in disable {
            match transport {
                Transport::Websocket => config.websocket.enabled = false,
                Transport::Sse => config.sse.enabled = false,
                Transport::LongPolling => config.long_polling.enabled = false,
                Transport::Polling => config.api.polling_enabled = false,
            }
        }
        if self.no_sources || settings::env_bool("LIVEHUB_NO_SOURCES")?.unwrap_or(false) {
            config.sources = SourcesConfig::disabled();
        }
        if self.bench_mode || settings::env_bool("LIVEHUB_BENCH_MODE")?.unwrap_or(false) {
            if !config.listen.ip().to_canonical().is_loopback() {
                return Err(Failure::usage(format!(
                    "bench mode lifts the per-address rate limits and is for loopback only, but the \
                     server would listen on {}; listen on 127.0.0.1",
                    config.listen
                ))
                .into());
            }
            bench_mode(&mut config);
        }
        config.test_endpoints |=
            self.test_endpoints || settings::env_bool("LIVEHUB_TEST_ENDPOINTS")?.unwrap_or(false);
        let mqtt = match &self.mqtt_listen {
            Some(text) => Some(("--mqtt-listen", text.clone())),
            None => settings::env_text("LIVEHUB_MQTT_LISTEN")?.map(|text| ("LIVEHUB_MQTT_LISTEN", text)),
        };
        if let Some((from, text)) = mqtt {
            config.mqtt.listen = livehub_server::parse_mqtt_listen(&text)
                .map_err(|why| Failure::usage(format!("{from}={text:?}: {why}")))?;
        }
        Ok(config)
    }

    /// The log filter and, when the one asked for is unusable, why (the server then logs at
    /// `info`, so the listening line is never hidden).
    fn log_filter(&self) -> anyhow::Result<(EnvFilter, Option<String>)> {
        let asked = match &self.log {
            Some(text) => Some(("--log".to_owned(), text.clone())),
            None => match settings::env_text("LIVEHUB_LOG")? {
                Some(text) => Some(("LIVEHUB_LOG".to_owned(), text)),
                None => settings::env_text("RUST_LOG")?.map(|text| ("RUST_LOG".to_owned(), text)),
            },
        };
        Ok(match asked {
            None => (EnvFilter::new("info"), None),
            Some((source, text)) => match settings::log_filter(&text) {
                Ok(filter) => (filter, None),
                Err(why) => (
                    EnvFilter::new("info"),
                    Some(format!("{source} {text:?} is not a log filter ({why}); logging at info")),
                ),
            },
        })
    }
}

/// Lifts the limits that a load generator on one address runs into at once (`--bench-mode`):
/// connections, commands, publications and reads per address and per connection. Credential
/// checks stay throttled, and every other limit stays.
fn bench_mode(config: &mut Config) {
    let limits = &mut config.rate_limits;
    limits.connections_per_ip = 0;
    limits.messages_per_sec = 0.0;
    limits.publishes_per_sec_per_ip = 0.0;
    limits.reads_per_sec_per_ip = 0.0;
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let name = cli.command.name();
    // Credentials and bench runs are decided by their arguments and files alone: their failures
    // are usage errors. Clients and the server fail at run time unless they say otherwise.
    let default = match cli.command {
        Command::Token(_) | Command::ApiKey(_) => Status::Usage,
        _ => Status::Runtime,
    };
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => failure::report(name, &e, default),
    }
}

/// Clap's error as one line on standard error, with exit status 2; `--help` and `--version`
/// print as clap prints them.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.use_stderr() { Status::Usage.into() } else { ExitCode::SUCCESS };
    }
    let text = error.render().to_string();
    // The usage block and the pointer to --help follow a blank line; the error is before it.
    let message = text
        .split("\n\n")
        .take_while(|part| !part.starts_with("Usage:") && !part.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join("; ");
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("livehub: {message} (see livehub --help)");
    Status::Usage.into()
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    let runtime = || tokio::runtime::Runtime::new().context("starting the async runtime");
    let done = match command {
        // The multi-threaded runtime even on one core: the single-threaded one, tried, stopped
        // writes from coalescing when a publisher feeds many channels (4× fewer deliveries in
        // docs/benchmarks.md's many-channels scenario) for 5 % more one-channel fan-out.
        Command::Serve(args) => {
            let (filter, bad_filter) = args.log_filter()?;
            init_logging(filter);
            if let Some(why) = bad_filter {
                tracing::warn!("{why}");
            }
            let config = args.config()?;
            runtime()?.block_on(serve(config))
        }
        Command::Publish(args) => {
            init_logging(client_log_filter());
            runtime()?.block_on(client::publish(args))
        }
        Command::Subscribe(args) => {
            init_logging(client_log_filter());
            runtime()?.block_on(client::subscribe(args))
        }
        Command::Token(args) => token::run(args),
        Command::ApiKey(args) => apikey::run(args),
        // Its own runtime, and its own exit status: 1 when the run failed.
        Command::Bench(command) => return bench::run(command),
        Command::Store(command) => store::run(command),
    };
    done.map(|()| ExitCode::SUCCESS)
}

impl Command {
    /// The subcommand's name, for error messages.
    fn name(&self) -> &'static str {
        match self {
            Command::Serve(_) => "serve",
            Command::Publish(_) => "publish",
            Command::Subscribe(_) => "subscribe",
            Command::Token(_) => "token",
            Command::ApiKey(_) => "apikey",
            Command::Bench(_) => "bench",
            Command::Store(_) => "store",
        }
    }
}

/// `RUST_LOG` when it is a usable filter, else warnings only: the clients print their output
/// on standard output and their errors themselves.
fn client_log_filter() -> EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| settings::log_filter(&text).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"))
}

/// Logs to standard error, in colour only when it is a terminal and `NO_COLOR` is not set, so a
/// log file or a pipe gets plain text.
fn init_logging(filter: EnvFilter) {
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr).init();
}

async fn serve(config: Config) -> anyhow::Result<()> {
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
    // Before listening: a store in use by another process, or written by a newer livehub,
    // stops the start with its reason.
    let store =
        livehub_server::open_store(&config.storage).await.with_context(|| match config.storage.store {
            livehub_server::StoreKind::Postgres => "cannot open the history store in PostgreSQL".to_owned(),
            _ => format!("cannot open the history store in {}", config.storage.data_dir.display()),
        })?;
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
    livehub_server::serve_with_store(config, store, listener, mqtt, shutdown).await?;
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
