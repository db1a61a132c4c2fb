//! A run's result: the JSON `docs/benchmarks.md` describes, and a readable table.

use std::fmt::{self, Write};

use hdrhistogram::Histogram;
use serde::Serialize;

/// What one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `fanout`, `channels`, `connect` or `idle`.
    pub scenario: String,
    /// The server kind.
    pub target: String,
    /// The subscribers' transport.
    pub transport: String,
    /// The server's base URL.
    pub url: String,
    /// The command line of the run.
    pub command: String,
    /// Subscriber connections that were open and subscribed.
    pub connections: usize,
    /// Channels the subscribers were spread over.
    pub channels: usize,
    /// Padding bytes per publication.
    pub payload_bytes: usize,
    /// Requested publications per second (0: closed loop).
    pub rate: u32,
    /// Closed loop: publications outstanding to the slowest subscriber.
    pub window: u32,
    /// Measured seconds.
    pub duration_secs: f64,
    /// Publications sent while measuring.
    pub published: u64,
    /// `published` per second.
    pub published_per_sec: f64,
    /// Receipts while measuring, over all subscribers.
    pub delivered: u64,
    /// `delivered` per second.
    pub delivered_per_sec: f64,
    /// Publish-to-receipt time; `null` for `connect` and `idle`.
    pub latency_ms: Option<LatencyStats>,
    /// How fast the connections were opened.
    pub connect: Option<ConnectStats>,
    /// Memory per connection; `idle` only.
    pub memory: Option<MemoryStats>,
    /// Why the run failed; empty when it did not.
    pub errors: Vec<String>,
    /// Whether the run completed and measured something.
    pub ok: bool,
}

/// A latency distribution in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyStats {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl LatencyStats {
    /// From a histogram of microseconds.
    pub(crate) fn from_micros(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        })
    }
}

/// Connection opening.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectStats {
    /// Connections opened and subscribed per second, over the whole opening.
    pub per_sec: f64,
    /// Median time of one, from starting to connect to subscribed.
    pub p50_ms: f64,
    /// 99th percentile of the same.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// Resident memory of the server under test and of the load generator.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryStats {
    /// The processes measured (all that hold the listening socket), in one figure.
    pub server_pid: Vec<u32>,
    /// Their resident memory before any connection, KiB.
    pub server_rss_base_kib: u64,
    /// With every connection open and idle, KiB.
    pub server_rss_kib: u64,
    /// The difference per connection.
    pub server_kib_per_connection: f64,
    /// The load generator's own growth per connection.
    pub client_kib_per_connection: f64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows: Vec<(&str, String)> = vec![
            ("scenario", format!("{} · {} over {}", self.scenario, self.target, self.transport)),
            ("connections", format!("{} on {} channel(s)", self.connections, self.channels)),
        ];
        if matches!(self.scenario.as_str(), "fanout" | "channels") {
            let rate = if self.rate == 0 {
                format!("closed loop, window {}", self.window)
            } else {
                format!("{}/s", self.rate)
            };
            rows.push(("publishing", format!("{rate}, {} B padding", self.payload_bytes)));
            rows.push((
                "published",
                format!(
                    "{} ({:.1}/s over {:.1} s)",
                    self.published, self.published_per_sec, self.duration_secs
                ),
            ));
            rows.push(("delivered", format!("{} ({}/s)", self.delivered, thousands(self.delivered_per_sec))));
        }
        if let Some(l) = &self.latency_ms {
            rows.push((
                "latency ms",
                format!("p50 {} · p90 {} · p99 {} · max {}", l.p50, l.p90, l.p99, l.max),
            ));
        }
        if let Some(c) = &self.connect {
            rows.push((
                "connect",
                format!(
                    "{:.0}/s · p50 {} ms · p99 {} ms · max {} ms",
                    c.per_sec, c.p50_ms, c.p99_ms, c.max_ms
                ),
            ));
        }
        if let Some(m) = &self.memory {
            rows.push((
                "memory",
                format!(
                    "server {:.2} KiB/conn ({} → {} KiB) · client {:.2} KiB/conn",
                    m.server_kib_per_connection,
                    m.server_rss_base_kib,
                    m.server_rss_kib,
                    m.client_kib_per_connection
                ),
            ));
        }
        rows.push(("result", if self.ok { "ok".into() } else { "FAILED".into() }));
        for e in &self.errors {
            rows.push(("error", e.clone()));
        }
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:>12}  {v}");
        }
        f.write_str(&out)
    }
}

/// `1234567.8` as `1,234,568`.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }

    #[test]
    fn latency_is_reported_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for us in [1000, 2000, 3000] {
            h.record(us).expect("in range");
        }
        let l = LatencyStats::from_micros(&h).expect("samples");
        assert_eq!((l.count, l.p50), (3, 2.0));
        // Three significant digits: the max is reported at its bucket's upper edge.
        assert!((3.0..=3.003).contains(&l.max), "{}", l.max);
    }
}
