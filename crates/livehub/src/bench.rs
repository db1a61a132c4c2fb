//! `livehub bench`: the load generator's command line. The measuring is in `livehub-bench`.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use livehub_bench::{BenchConfig, Scenario, Target, Transport};

use crate::failure::{self, Failure};

/// What `livehub bench` runs.
#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// N subscribers on one channel and one publisher: delivered messages/s and latency.
    Fanout(RunArgs),
    /// The same spread over --channels channels.
    Channels(RunArgs),
    /// How fast --connections connections are opened and subscribed.
    Connect(RunArgs),
    /// --connections idle subscribed connections: the server's memory per connection.
    Idle(RunArgs),
    /// --connections subscribers on a wildcard pattern each; the publisher's channels match one
    /// pattern each: routing a publication past many patterns.
    Wildcards(RunArgs),
    /// Serve the raw ceiling: pre-framed broadcast to every socket, no protocol logic.
    ServeRaw(RawArgs),
}

/// Settings of one run; `docs/benchmarks.md` explains each.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// The server under test: livehub, nchan, node-ws, python-ws or raw.
    #[arg(long, default_value = "livehub")]
    target: Target,
    /// How subscribers receive: ws, ws-msgpack, sse, longpoll, signalr or signalr-msgpack.
    #[arg(long, default_value = "ws")]
    transport: Transport,
    /// The server's base URL; only 127.0.0.0/8 is accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Channels the subscribers are spread over.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Publications per second; 0 runs a closed loop bounded by --window.
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// Closed loop: publications outstanding to the slowest subscriber.
    #[arg(long, default_value_t = 8)]
    window: u32,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Padding bytes in each publication.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Local addresses to connect from, in turn (each gives about 28,000 connections).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    source_addrs: Vec<IpAddr>,
    /// The server process whose memory `idle` reads; found from the port by default.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Print the result as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

/// Settings of `serve-raw`.
#[derive(Args)]
pub(crate) struct RawArgs {
    /// Address to listen on; loopback only.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
}

/// Runs the command on a single-threaded runtime: pinned to one core with `taskset`, the load
/// generator then uses exactly that core, and nothing is shared between threads.
pub(crate) fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (scenario, args) = match command {
        BenchCommand::Fanout(args) => (Scenario::Fanout, args),
        BenchCommand::Channels(args) => (Scenario::Channels, args),
        BenchCommand::Connect(args) => (Scenario::Connect, args),
        BenchCommand::Idle(args) => (Scenario::Idle, args),
        BenchCommand::Wildcards(args) => (Scenario::Wildcards, args),
        BenchCommand::ServeRaw(args) => {
            anyhow::ensure!(
                livehub_bench::is_loopback(args.listen.ip()),
                "serve-raw only listens on loopback"
            );
            return runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(args.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", args.listen))?;
                eprintln!("raw ceiling listening on {}", listener.local_addr()?);
                livehub_bench::raw::serve(listener).await?;
                Ok(ExitCode::SUCCESS)
            });
        }
    };
    let config = args.config(scenario).map_err(|e| Failure::usage(failure::sentence(&e)))?;
    // Only the settings can make a run an error; a run that fails is a report.
    let report = runtime.block_on(livehub_bench::run(config)).map_err(|e| Failure::usage(e.to_string()))?;
    if args.json {
        eprint!("{report}");
        failure::print_line(&serde_json::to_string(&report)?)?;
    } else {
        failure::print_text(&report.to_string())?;
    }
    if report.ok {
        return Ok(ExitCode::SUCCESS);
    }
    if report.errors.iter().any(|e| rate_limited(e)) {
        eprintln!("livehub bench: {RATE_LIMITED_HINT}");
    } else if report.errors.iter().any(|e| e.contains("connection refused")) {
        eprintln!(
            "livehub bench: nothing accepts connections at {}; start the server first \
             (`livehub serve --bench-mode`) or point --url at it",
            report.url
        );
    }
    Ok(ExitCode::FAILURE)
}

/// What to do when the server under test rate-limits the load generator.
const RATE_LIMITED_HINT: &str = "the server rate-limited the load (every bench connection comes \
     from one address); start it with `livehub serve --bench-mode` (or LIVEHUB_BENCH_MODE=1), or \
     turn off the per-address limits in its [rate_limits] section";

/// Whether a run's error says the server refused the load by rate: a `rate_limited` or
/// `too_many_connections` error, or a `429` answer.
fn rate_limited(error: &str) -> bool {
    error.contains("rate_limited") || error.contains("too_many_connections") || error.contains(" 429")
}

impl RunArgs {
    fn config(&self, scenario: Scenario) -> anyhow::Result<BenchConfig> {
        let addr = parse_url(&self.url)?;
        let seconds = |s: f64, name: &str| {
            anyhow::ensure!(
                s.is_finite() && (0.0..=3600.0).contains(&s),
                "--{name} must be 0 to 3600 seconds"
            );
            Ok(Duration::from_secs_f64(s))
        };
        let mut config = BenchConfig::new(scenario, self.target, addr);
        config.transport = self.transport;
        config.connections = self.connections;
        config.channels = self.channels;
        config.rate = self.rate;
        config.window = self.window;
        config.duration = seconds(self.duration, "duration")?;
        config.warmup = seconds(self.warmup, "warmup")?;
        config.payload = self.payload;
        config.source_addrs = self.source_addrs.clone();
        config.server_pid = self.server_pid;
        config.concurrency = self.concurrency;
        config.command = std::env::args().collect::<Vec<_>>().join(" ");
        config.progress = !self.quiet;
        Ok(config)
    }
}

/// `http://127.0.0.1:8080` (or `ws://`, with or without a trailing slash) as an address.
fn parse_url(url: &str) -> anyhow::Result<SocketAddr> {
    // No scheme means http://, as for `publish` and `subscribe`.
    let rest = if url.contains("://") {
        ["http://", "ws://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .with_context(|| format!("--url {url:?} must start with http:// (TLS is not benchmarked)"))?
    } else {
        url
    };
    let host = rest.trim_end_matches('/');
    let host = host.replace("localhost", "127.0.0.1");
    host.parse().with_context(|| format!("--url {url:?} must be http://IP:PORT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_errors_are_recognised() {
        assert!(rate_limited(
            "publishing failed: the server refused a publication (rate_limited): slow down"
        ));
        assert!(rate_limited("the WebSocket handshake on /ws was answered 429"));
        assert!(!rate_limited("the server closed the publisher's connection"));
        assert!(
            RATE_LIMITED_HINT.contains("--bench-mode") && RATE_LIMITED_HINT.contains("LIVEHUB_BENCH_MODE")
        );
    }

    #[test]
    fn urls_name_an_address() {
        assert_eq!(parse_url("http://127.0.0.1:8080").expect("ok"), "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(parse_url("ws://localhost:9/").expect("ok"), "127.0.0.1:9".parse().expect("addr"));
        assert_eq!(parse_url("127.0.0.1:8080").expect("no scheme"), "127.0.0.1:8080".parse().expect("addr"));
        assert!(parse_url("https://127.0.0.1:1").is_err());
        assert!(parse_url("http://example.com:80").is_err());
    }
}
