//! livehub's load generator: opens many subscriber connections to a server on loopback, publishes
//! through it, and measures what arrives. It drives livehub and the peers it is compared with
//! (nchan, a Node.js `ws` server, a Python `websockets` server and a raw ceiling) with the same
//! scenarios, so their figures can be set side by side. `docs/benchmarks.md` is the reference.
//!
//! The pipeline: [`run`] checks the [`BenchConfig`], opens [`subscriber`]s (one task each, a
//! minimal client per protocol), starts a [`publisher`], and counts receipts in a shared
//! [`tally::Tally`] that also closes the publishing loop. The result is a [`Report`].

mod http;
mod marker;
mod proc;
mod publisher;
pub mod raw;
mod report;
mod scenario;
mod subscriber;
mod tally;
mod ws;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

pub use report::{ConnectStats, LatencyStats, MemoryStats, Report};

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Many subscribers on one channel, one publisher: delivered messages per second and latency.
    Fanout,
    /// The same over many channels with few subscribers each.
    Channels,
    /// How fast connections are opened and subscribed.
    Connect,
    /// Idle subscribed connections: memory per connection.
    Idle,
    /// Every subscriber on a wildcard pattern of its own (`bench/<i>/+`), and one publisher on
    /// channels that one pattern each matches: what routing a publication past many patterns
    /// costs (livehub only).
    Wildcards,
}

/// The server under test, which decides the URLs and the publishing path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// livehub's native protocol.
    Livehub,
    /// nginx with the nchan module.
    Nchan,
    /// The Node.js `ws` broadcast server in `bench/peers/node-ws`.
    NodeWs,
    /// The Python `websockets` broadcast loop in `bench/peers/python_ws.py`, which publishes by
    /// itself.
    PythonWs,
    /// [`raw`]: pre-framed messages written to every socket by a plain loop.
    Raw,
}

/// How subscribers receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket, JSON text frames.
    Ws,
    /// WebSocket, MessagePack binary frames (livehub only).
    WsMsgpack,
    /// Server-Sent Events.
    Sse,
    /// Long polling.
    Longpoll,
    /// livehub's SignalR hub over WebSockets, JSON hub protocol.
    SignalR,
    /// livehub's SignalR hub over WebSockets, MessagePack hub protocol.
    SignalRMsgpack,
}

/// A whole run's settings.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// What to measure.
    pub scenario: Scenario,
    /// Which server speaks at `addr`.
    pub target: Target,
    /// How subscribers receive.
    pub transport: Transport,
    /// The server; must be on 127.0.0.0/8.
    pub addr: SocketAddr,
    /// Subscriber connections.
    pub connections: usize,
    /// Channels the subscribers are spread over.
    pub channels: usize,
    /// Publications per second; 0 runs a closed loop bounded by `window`.
    pub rate: u32,
    /// Closed loop: publications outstanding to the slowest subscriber.
    pub window: u32,
    /// Measured time.
    pub duration: Duration,
    /// Time before measuring starts.
    pub warmup: Duration,
    /// Padding bytes per publication.
    pub payload: usize,
    /// Local addresses to connect from, in turn; all on 127.0.0.0/8.
    pub source_addrs: Vec<IpAddr>,
    /// The server's process, for `idle`; found from the listening port when `None`.
    pub server_pid: Option<u32>,
    /// Connection attempts in flight at once.
    pub concurrency: usize,
    /// The command line, recorded in the report.
    pub command: String,
    /// Print a progress line every second to stderr.
    pub progress: bool,
}

impl BenchConfig {
    /// Defaults for `scenario` against `target` at `addr`.
    pub fn new(scenario: Scenario, target: Target, addr: SocketAddr) -> Self {
        Self {
            scenario,
            target,
            transport: Transport::Ws,
            addr,
            connections: 1000,
            channels: 1,
            rate: 0,
            window: 8,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            payload: 64,
            source_addrs: vec![IpAddr::from([127, 0, 0, 1])],
            server_pid: None,
            concurrency: 200,
            command: String::new(),
            progress: false,
        }
    }

    /// Checks the settings before anything connects.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_loopback(self.addr.ip()) {
            return Err(ConfigError::NotLoopback(self.addr.ip()));
        }
        if let Some(ip) = self.source_addrs.iter().find(|ip| !is_loopback(**ip)) {
            return Err(ConfigError::NotLoopback(*ip));
        }
        if self.source_addrs.is_empty() {
            return Err(ConfigError::Invalid("--source-addrs needs at least one address".into()));
        }
        if self.connections == 0 {
            return Err(ConfigError::Invalid("--connections must be at least 1".into()));
        }
        if self.channels == 0 || self.channels > self.connections {
            return Err(ConfigError::Invalid("--channels must be between 1 and --connections".into()));
        }
        // The closed loop tracks window × channels publications at once.
        if self.window == 0 || self.window as usize * self.channels >= tally::SLOTS / 2 {
            let most = (tally::SLOTS / 2 - 1) / self.channels;
            return Err(ConfigError::Invalid(format!(
                "--window must be between 1 and {most} with this many channels"
            )));
        }
        if self.concurrency == 0 {
            return Err(ConfigError::Invalid("--concurrency must be at least 1".into()));
        }
        let supported = match self.target {
            Target::Livehub => true,
            Target::Nchan => matches!(self.transport, Transport::Ws | Transport::Sse | Transport::Longpoll),
            Target::NodeWs | Target::PythonWs | Target::Raw => self.transport == Transport::Ws,
        };
        if !supported {
            return Err(ConfigError::Unsupported(format!(
                "{} does not speak {}",
                self.target, self.transport
            )));
        }
        let has_channels = matches!(self.target, Target::Livehub | Target::Nchan);
        if self.channels > 1 && !has_channels {
            return Err(ConfigError::Unsupported(format!(
                "{} has no channels; use --channels 1",
                self.target
            )));
        }
        if self.scenario == Scenario::Channels && self.channels < 2 {
            return Err(ConfigError::Invalid("the channels scenario needs --channels 2 or more".into()));
        }
        if self.scenario == Scenario::Wildcards {
            if self.target != Target::Livehub {
                return Err(ConfigError::Unsupported(format!(
                    "{} has no wildcard subscriptions",
                    self.target
                )));
            }
            // A long poll resumes from the positions of channels, and a pattern has none.
            if self.transport == Transport::Longpoll {
                return Err(ConfigError::Unsupported(
                    "the wildcards scenario does not run over longpoll".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A setting the run cannot go ahead with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Load must only ever go to loopback.
    #[error("{0} is not a loopback address: livehub bench only targets 127.0.0.0/8")]
    NotLoopback(IpAddr),
    /// The target does not offer this.
    #[error("{0}")]
    Unsupported(String),
    /// A value out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Whether `ip` is on 127.0.0.0/8 (or `::1`).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// Runs one scenario to the end and reports. Configuration problems are errors; a run that
/// fails (a dropped subscriber, a stalled loop, nothing delivered) is a report with `ok: false`.
pub async fn run(config: BenchConfig) -> Result<Report, ConfigError> {
    config.validate()?;
    Ok(scenario::run(config).await)
}

macro_rules! names {
    ($ty:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The name used on the command line and in reports.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(format!("unknown {}: {s:?} (one of: {})", stringify!($ty).to_lowercase(), [$($name),+].join(", "))),
                }
            }
        }
    };
}

names!(Scenario { Fanout => "fanout", Channels => "channels", Connect => "connect", Idle => "idle", Wildcards => "wildcards" });
names!(Target { Livehub => "livehub", Nchan => "nchan", NodeWs => "node-ws", PythonWs => "python-ws", Raw => "raw" });
names!(Transport {
    Ws => "ws",
    WsMsgpack => "ws-msgpack",
    Sse => "sse",
    Longpoll => "longpoll",
    SignalR => "signalr",
    SignalRMsgpack => "signalr-msgpack"
});

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BenchConfig {
        BenchConfig::new(Scenario::Fanout, Target::Livehub, "127.0.0.1:9".parse().expect("addr"))
    }

    #[test]
    fn only_loopback_is_accepted() {
        let mut c = config();
        assert!(c.validate().is_ok());
        c.addr = "127.0.0.2:9".parse().expect("addr");
        assert!(c.validate().is_ok());
        c.addr = "10.0.0.1:9".parse().expect("addr");
        assert!(matches!(c.validate(), Err(ConfigError::NotLoopback(_))));
        let mut c = config();
        c.source_addrs = vec!["192.168.1.2".parse().expect("ip")];
        assert!(matches!(c.validate(), Err(ConfigError::NotLoopback(_))));
    }

    #[test]
    fn transports_a_target_lacks_are_refused() {
        let mut c = config();
        c.target = Target::NodeWs;
        c.transport = Transport::Sse;
        assert!(matches!(c.validate(), Err(ConfigError::Unsupported(_))));
        c.target = Target::Nchan;
        assert!(c.validate().is_ok());
        c.transport = Transport::WsMsgpack;
        assert!(matches!(c.validate(), Err(ConfigError::Unsupported(_))));
        c.transport = Transport::SignalR;
        assert!(matches!(c.validate(), Err(ConfigError::Unsupported(_))));
        c.target = Target::Livehub;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn wildcards_are_livehubs_alone() {
        let mut c = config();
        c.scenario = Scenario::Wildcards;
        assert!(c.validate().is_ok());
        c.transport = Transport::Longpoll;
        assert!(matches!(c.validate(), Err(ConfigError::Unsupported(_))));
        c.transport = Transport::Ws;
        c.target = Target::Nchan;
        assert!(matches!(c.validate(), Err(ConfigError::Unsupported(_))));
    }

    #[test]
    fn names_round_trip() {
        for t in [Target::Livehub, Target::Nchan, Target::NodeWs, Target::PythonWs, Target::Raw] {
            assert_eq!(t.name().parse::<Target>(), Ok(t));
        }
        assert!("mqtt".parse::<Transport>().is_err());
    }
}
