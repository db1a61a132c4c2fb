//! livehub's built-in publishers. Each source produces [`Sample`]s on a timer and publishes them
//! through [`Node::publish_internal`], like any other publisher; the dashboard draws them.
//!
//! Only the system metrics are real; the stock ticker, transit, weather and sensors are
//! simulated, and say so in every payload (`"simulated": true`). `docs/sources.md` lists every
//! channel and payload.

mod runner;
mod sensors;
mod sim;
mod stocks;
mod system;
mod transit;
mod weather;

use std::time::Duration;

use livehub_core::{ChannelName, Error, HistoryPolicy, Node};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runner::{Simulated, Source};

/// Which sources run, and how fast.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// Real host metrics on `metrics/system`.
    pub system: SystemConfig,
    /// Simulated stock ticker on `stocks/{SYMBOL}`.
    pub stocks: StocksConfig,
    /// Simulated vehicles on `transit/route/{id}`.
    pub transit: TransitConfig,
    /// Simulated weather stations on `weather/station/{id}` and alerts on `weather/alerts`.
    pub weather: WeatherConfig,
    /// Simulated IoT sensors on `sensors/{id}`.
    pub sensors: SensorsConfig,
}

impl SourcesConfig {
    /// Every source switched off.
    pub fn disabled() -> Self {
        let mut config = Self::default();
        config.system.enabled = false;
        config.stocks.enabled = false;
        config.transit.enabled = false;
        config.weather.enabled = false;
        config.sensors.enabled = false;
        config
    }
}

/// System metrics.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SystemConfig {
    /// Publish at all.
    pub enabled: bool,
    /// Milliseconds between samples.
    pub interval_ms: u64,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self { enabled: true, interval_ms: 1000 }
    }
}

/// Stock ticker.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StocksConfig {
    /// Publish at all.
    pub enabled: bool,
    /// Milliseconds between rounds; each round some symbols tick.
    pub interval_ms: u64,
}

impl Default for StocksConfig {
    fn default() -> Self {
        Self { enabled: true, interval_ms: 250 }
    }
}

/// Transit vehicles.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TransitConfig {
    /// Publish at all.
    pub enabled: bool,
    /// Milliseconds between snapshots of each route.
    pub interval_ms: u64,
}

impl Default for TransitConfig {
    fn default() -> Self {
        Self { enabled: true, interval_ms: 1000 }
    }
}

/// Weather stations and alerts.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WeatherConfig {
    /// Publish at all.
    pub enabled: bool,
    /// Milliseconds between readings of each station.
    pub interval_ms: u64,
    /// Mean seconds between alerts.
    pub alert_every_secs: u64,
}

impl Default for WeatherConfig {
    fn default() -> Self {
        Self { enabled: true, interval_ms: 2000, alert_every_secs: 20 }
    }
}

/// IoT sensors.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SensorsConfig {
    /// Publish at all.
    pub enabled: bool,
    /// Samples per second of each sensor.
    pub rate_hz: u32,
}

impl Default for SensorsConfig {
    fn default() -> Self {
        Self { enabled: true, rate_hz: 10 }
    }
}

/// One publication a source wants made.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Where.
    pub channel: ChannelName,
    /// What: a JSON object with `ts`.
    pub data: serde_json::Value,
}

/// The description served at `GET /api/sources`: channels, rates and static data
/// (symbols, route geometry, stations).
#[derive(Clone, Debug, Serialize)]
pub struct Catalog {
    /// The shape is documented in `docs/sources.md`.
    #[serde(flatten)]
    pub value: serde_json::Value,
}

/// What `config` runs, for `GET /api/sources`.
pub fn catalog(config: &SourcesConfig) -> Catalog {
    Catalog {
        value: serde_json::json!({
            "system": system::catalog(&config.system),
            "stocks": stocks::catalog(&config.stocks),
            "transit": transit::catalog(&config.transit),
            "weather": weather::catalog(&config.weather),
            "sensors": sensors::catalog(&config.sensors),
        }),
    }
}

/// A day and an hour: how far back the dashboard's charts reach with a store on disk.
const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

/// History rules for the sources' channel prefixes, so charts open filled.
///
/// In memory (`on_disk` false) each keeps ten minutes at most, a few hundred publications. With
/// a store on disk the charted channels keep what the dashboard's ranges draw: a day of host
/// metrics (86,400 publications at the default second, about 70 MB) and an hour of the 10 Hz
/// sensors (36,000, about 7 MB); a day of sensors would be 20 times that, and a series over it
/// more publications than one request reads.
pub fn history_rules(on_disk: bool) -> Vec<(String, HistoryPolicy)> {
    let ten_minutes = Duration::from_secs(600);
    let in_memory = |size| HistoryPolicy { size, max_age: ten_minutes };
    let (metrics, sensors) = if on_disk {
        (HistoryPolicy { size: 90_000, max_age: DAY }, HistoryPolicy { size: 40_000, max_age: HOUR })
    } else {
        (in_memory(600), in_memory(600))
    };
    [
        ("metrics/", metrics),
        ("sensors/", sensors),
        ("stocks/", in_memory(300)),
        ("transit/", in_memory(60)),
        ("weather/", in_memory(200)),
    ]
    .into_iter()
    .map(|(prefix, policy)| (prefix.to_string(), policy))
    .collect()
}

/// Starts every enabled source; each publishes through `node` until `shutdown` is cancelled.
///
/// Spawns Tokio tasks, so call it inside a runtime. The simulated sources are seeded from the
/// operating system, so every run differs.
pub fn spawn(node: &Node, config: &SourcesConfig, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if config.system.enabled {
        let made = system::SystemSource::new(node.clone());
        tasks.extend(launch(node, made, Duration::from_millis(config.system.interval_ms), shutdown));
    }
    if config.stocks.enabled {
        let made = stocks::Ticker::new(StdRng::from_os_rng()).map(Simulated);
        tasks.extend(launch(node, made, Duration::from_millis(config.stocks.interval_ms), shutdown));
    }
    if config.transit.enabled {
        let made = transit::Transit::new(StdRng::from_os_rng()).map(Simulated);
        tasks.extend(launch(node, made, Duration::from_millis(config.transit.interval_ms), shutdown));
    }
    if config.weather.enabled {
        let made = weather::Weather::new(&config.weather, StdRng::from_os_rng()).map(Simulated);
        tasks.extend(launch(node, made, Duration::from_millis(config.weather.interval_ms), shutdown));
    }
    if config.sensors.enabled {
        let made = sensors::Sensors::new(&config.sensors, StdRng::from_os_rng()).map(Simulated);
        tasks.extend(launch(node, made, sensors::period(&config.sensors), shutdown));
    }
    tasks
}

/// Spawns the runner of a source that could be made.
fn launch<S: Source>(
    node: &Node,
    made: Result<S, Error>,
    period: Duration,
    shutdown: &CancellationToken,
) -> Option<JoinHandle<()>> {
    match made {
        Ok(source) => {
            tracing::debug!(source = source.name(), ?period, "starting built-in source");
            Some(tokio::spawn(runner::run(node.clone(), source, period, shutdown.clone())))
        }
        // Only a channel name can be refused, and those are constants checked by the tests.
        Err(e) => {
            tracing::error!(error = %e, "cannot start a built-in source");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use livehub_core::{ChannelFilter, HistoryQuery, NodeConfig, SubscribeOptions};

    use super::*;

    /// Every source on, at short intervals.
    fn fast() -> SourcesConfig {
        SourcesConfig {
            system: SystemConfig { enabled: true, interval_ms: 50 },
            stocks: StocksConfig { enabled: true, interval_ms: 20 },
            transit: TransitConfig { enabled: true, interval_ms: 20 },
            weather: WeatherConfig { enabled: true, interval_ms: 20, alert_every_secs: 1 },
            sensors: SensorsConfig { enabled: true, rate_hz: 50 },
        }
    }

    /// Characters allowed in channel names by the brief: letters, digits, `_-.:@=~` and `/`.
    fn valid_channel(name: &str) -> bool {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:@=~/".contains(c))
            && ChannelName::new(name).is_ok()
    }

    /// Every channel the catalog lists.
    fn catalog_channels(catalog: &Catalog) -> Vec<String> {
        let v = &catalog.value;
        let mut channels = vec![v["system"]["channel"].clone(), v["weather"]["alerts_channel"].clone()];
        for (source, list) in
            [("stocks", "symbols"), ("transit", "routes"), ("weather", "stations"), ("sensors", "sensors")]
        {
            let entries = v[source][list].as_array().expect("a list");
            channels.extend(entries.iter().map(|e| e["channel"].clone()));
        }
        channels.into_iter().map(|c| c.as_str().expect("a channel name").to_string()).collect()
    }

    #[test]
    fn catalog_lists_every_source_and_its_channels() {
        let catalog = catalog(&SourcesConfig::default());
        let v = &catalog.value;
        for source in ["system", "stocks", "transit", "weather", "sensors"] {
            assert_eq!(v[source]["enabled"], true, "{source}");
        }
        assert!(v["system"].get("simulated").is_none(), "system metrics are real");
        for source in ["stocks", "transit", "weather", "sensors"] {
            assert_eq!(v[source]["simulated"], true, "{source}");
        }
        assert_eq!(v["system"]["interval_ms"], 1000);
        assert_eq!(v["stocks"]["interval_ms"], 250);
        assert_eq!(v["transit"]["interval_ms"], 1000);
        assert_eq!(v["weather"]["interval_ms"], 2000);
        assert_eq!(v["sensors"]["sensors"][0]["rate_hz"], 10);
        let channels = catalog_channels(&catalog);
        assert_eq!(channels.len(), 1 + 1 + 12 + 4 + 3 + 1);
        assert!(channels.iter().all(|c| valid_channel(c)), "{channels:?}");
        let serialized = serde_json::to_value(&catalog).expect("serializes");
        assert_eq!(&serialized, v, "the catalog serializes as its value");
    }

    #[test]
    fn catalog_follows_the_config() {
        let mut config = SourcesConfig::disabled();
        config.stocks.enabled = true;
        config.sensors.rate_hz = 25;
        let v = catalog(&config).value;
        assert_eq!(v["stocks"]["enabled"], true);
        for source in ["system", "transit", "weather", "sensors"] {
            assert_eq!(v[source]["enabled"], false, "{source}");
        }
        assert_eq!(v["sensors"]["sensors"][0]["rate_hz"], 25);
    }

    #[test]
    fn history_rules_cover_every_source() {
        let channels = catalog_channels(&catalog(&SourcesConfig::default()));
        for on_disk in [false, true] {
            let rules = history_rules(on_disk);
            for channel in &channels {
                assert!(rules.iter().any(|(prefix, _)| channel.starts_with(prefix.as_str())), "{channel}");
            }
        }
    }

    #[tokio::test]
    async fn spawned_sources_publish_on_the_documented_channels_until_cancelled() {
        let node = Node::new(NodeConfig::default());
        let mut receiver = node.connect("test");
        let everything = ChannelFilter::new("#").expect("valid filter");
        node.subscribe(receiver.session(), &everything, SubscribeOptions::default())
            .await
            .expect("subscribe");
        let shutdown = CancellationToken::new();
        let config = fast();
        let tasks = spawn(&node, &config, &shutdown);
        assert_eq!(tasks.len(), 5);

        let expected: BTreeSet<String> = catalog_channels(&catalog(&config)).into_iter().collect();
        let mut seen = BTreeSet::new();
        let mut buf = Vec::new();
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while !expected.is_subset(&seen) {
                buf.clear();
                receiver.recv_many(&mut buf, 256).await;
                for publication in &buf {
                    let name = publication.channel.as_str();
                    if name.starts_with('$') {
                        continue;
                    }
                    let livehub_core::Payload::Json(bytes) = &publication.data else { panic!("JSON data") };
                    let data: serde_json::Value = serde_json::from_slice(bytes).expect("valid JSON");
                    assert!(data["ts"].as_u64().is_some(), "{name}: {data}");
                    assert!(expected.contains(name), "undocumented channel {name}");
                    seen.insert(name.to_string());
                }
            }
        })
        .await;
        assert!(waited.is_ok(), "never published on {:?}", expected.difference(&seen).collect::<Vec<_>>());
        let history = node
            .history(&ChannelName::new("metrics/system").expect("valid"), HistoryQuery::newest(1))
            .await
            .expect("history");
        assert!(history.latest.is_some());

        shutdown.cancel();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task).await.expect("task ends").expect("no panic");
        }
    }

    #[tokio::test]
    async fn disabled_sources_do_not_start() {
        let node = Node::new(NodeConfig::default());
        assert!(spawn(&node, &SourcesConfig::disabled(), &CancellationToken::new()).is_empty());
    }

    #[test]
    fn config_reads_partial_sections() {
        let config: SourcesConfig =
            serde_json::from_value(serde_json::json!({ "stocks": { "interval_ms": 100 } }))
                .expect("valid config");
        assert_eq!(config.stocks, StocksConfig { enabled: true, interval_ms: 100 });
        assert_eq!(config.weather, WeatherConfig::default());
    }
}
