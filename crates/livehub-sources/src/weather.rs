//! Simulated weather stations on `weather/station/{id}` and their alerts on `weather/alerts`.

use std::f64::consts::TAU;

use livehub_core::{ChannelName, Error};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

use crate::runner::Generator;
use crate::sim::{exponential, gaussian, round_to, Drift};
use crate::{Sample, WeatherConfig};

/// The channel every station's alerts go to.
pub(crate) const ALERTS_CHANNEL: &str = "weather/alerts";

/// A station and the climate around which its readings wander.
struct Climate {
    id: &'static str,
    name: &'static str,
    /// Mean temperature, in °C.
    temperature: f64,
    /// Half the difference between day and night, in °C.
    swing: f64,
    /// Mean relative humidity, in %.
    humidity: f64,
    /// Station pressure minus sea-level pressure (negative up the hill), in hPa.
    pressure_offset: f64,
    /// Mean wind speed, in km/h.
    wind: f64,
    /// Prevailing wind direction, in degrees clockwise from north.
    wind_dir: f64,
}

/// The stations: the windy, damp harbor, the open airport with big day-night swings, the cool
/// hillside.
const STATIONS: [Climate; 3] = [
    Climate {
        id: "harbor",
        name: "Harbor",
        temperature: 13.5,
        swing: 3.0,
        humidity: 74.0,
        pressure_offset: 0.0,
        wind: 18.0,
        wind_dir: 240.0,
    },
    Climate {
        id: "airport",
        name: "Airport",
        temperature: 12.5,
        swing: 5.0,
        humidity: 68.0,
        pressure_offset: -1.5,
        wind: 14.0,
        wind_dir: 225.0,
    },
    Climate {
        id: "hillside",
        name: "Hillside",
        temperature: 10.0,
        swing: 4.0,
        humidity: 62.0,
        pressure_offset: -9.0,
        wind: 11.0,
        wind_dir: 260.0,
    },
];

/// Length of one simulated day, in seconds. Compressed from 24 hours so that a chart of the
/// last ten minutes shows the temperature rise and fall.
const SIMULATED_DAY_SECS: f64 = 1800.0;

/// Standard pressure at sea level, in hPa.
const SEA_LEVEL_HPA: f64 = 1013.25;

/// Most alerts raised in one round: after a stall the backlog of due alerts is dropped rather
/// than published as a burst.
const MAX_ALERTS_PER_ROUND: usize = 3;

/// The alerts a station can raise: severity, title, message with `{n}` (a number drawn from
/// the range) and `{until}` (a time of day a few hours ahead).
const ALERTS: [(&str, &str, &str, std::ops::RangeInclusive<u32>); 7] = [
    ("info", "Fog", "Visibility below {n} m until {until}.", 100..=400),
    ("info", "Pollen", "Grass pollen {n}% above the seasonal average today.", 20..=80),
    ("info", "Heat", "Up to {n} °C this afternoon. Drink enough water.", 28..=34),
    ("warning", "Strong wind", "Gusts up to {n} km/h expected until {until}.", 60..=90),
    ("warning", "Heavy rain", "Up to {n} mm of rain expected until {until}.", 15..=40),
    ("danger", "Storm", "Gusts over {n} km/h until {until}. Stay away from the waterfront.", 90..=120),
    ("danger", "Flooding", "Water {n} cm above normal along the quays until {until}.", 40..=90),
];

/// The channel of station `id`.
pub(crate) fn channel_name(id: &str) -> String {
    format!("weather/station/{id}")
}

/// The `weather` entry of the catalog.
pub(crate) fn catalog(config: &WeatherConfig) -> Value {
    let stations: Vec<Value> = STATIONS
        .iter()
        .map(|c| json!({ "id": c.id, "name": c.name, "channel": channel_name(c.id) }))
        .collect();
    json!({
        "enabled": config.enabled,
        "simulated": true,
        "interval_ms": config.interval_ms,
        "alerts_channel": ALERTS_CHANNEL,
        "stations": stations,
    })
}

struct Station {
    climate: &'static Climate,
    channel: ChannelName,
    temperature_drift: Drift,
    humidity_drift: Drift,
    pressure_drift: Drift,
    wind_drift: Drift,
    wind_dir_drift: Drift,
}

/// Generates a reading per station per round, and alerts as a Poisson process.
pub(crate) struct Weather {
    stations: Vec<Station>,
    alerts_channel: ChannelName,
    /// Mean seconds between alerts; `None` raises none.
    alert_every_secs: Option<f64>,
    next_alert_ms: Option<u64>,
    alerts_raised: u64,
    rng: StdRng,
    last_ms: Option<u64>,
}

impl Weather {
    /// The stations of `config`, with alerts every `alert_every_secs` on average (none if 0).
    pub(crate) fn new(config: &WeatherConfig, rng: StdRng) -> Result<Self, Error> {
        let stations = STATIONS
            .iter()
            .map(|climate| {
                Ok(Station {
                    climate,
                    channel: ChannelName::new(&channel_name(climate.id))?,
                    // Spreads and half-lives: fronts move in over tens of minutes, gusts in minutes.
                    temperature_drift: Drift::new(1.5, 600.0),
                    humidity_drift: Drift::new(6.0, 600.0),
                    pressure_drift: Drift::new(6.0, 1800.0),
                    wind_drift: Drift::new(7.0, 180.0),
                    wind_dir_drift: Drift::new(35.0, 600.0),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self {
            stations,
            alerts_channel: ChannelName::new(ALERTS_CHANNEL)?,
            alert_every_secs: (config.alert_every_secs > 0).then_some(config.alert_every_secs as f64),
            next_alert_ms: None,
            alerts_raised: 0,
            rng,
            last_ms: None,
        })
    }

    fn alert(&mut self, now_ms: u64) -> Sample {
        self.alerts_raised += 1;
        let station = self.stations[self.rng.random_range(0..self.stations.len())].climate.id;
        let (severity, title, message, range) = &ALERTS[self.rng.random_range(0..ALERTS.len())];
        let hour = (now_ms / 3_600_000 + self.rng.random_range(2..=6)) % 24;
        let message = message
            .replace("{n}", &self.rng.random_range(range.clone()).to_string())
            .replace("{until}", &format!("{hour:02}:00"));
        let data = json!({
            "id": format!("a-{}", self.alerts_raised),
            "station": station,
            "ts": now_ms,
            "simulated": true,
            "severity": severity,
            "title": title,
            "message": message,
        });
        Sample { channel: self.alerts_channel.clone(), data }
    }
}

impl Generator for Weather {
    const NAME: &'static str = "weather";

    fn tick(&mut self, now_ms: u64) -> Vec<Sample> {
        let dt = self.last_ms.map_or(0.0, |last| now_ms.saturating_sub(last) as f64 / 1000.0);
        self.last_ms = Some(now_ms);
        let day = (now_ms as f64 / 1000.0 % SIMULATED_DAY_SECS) / SIMULATED_DAY_SECS;
        let rng = &mut self.rng;
        let mut samples: Vec<Sample> = self
            .stations
            .iter_mut()
            .map(|station| Sample {
                channel: station.channel.clone(),
                data: station.reading(rng, now_ms, dt, day),
            })
            .collect();
        if let Some(mean) = self.alert_every_secs {
            let mean_ms = mean * 1000.0;
            let mut due =
                *self.next_alert_ms.get_or_insert_with(|| now_ms + exponential(rng, mean_ms) as u64);
            let mut raised = 0;
            while due <= now_ms {
                if raised < MAX_ALERTS_PER_ROUND {
                    samples.push(self.alert(now_ms));
                    raised += 1;
                }
                due += exponential(&mut self.rng, mean_ms) as u64;
            }
            self.next_alert_ms = Some(due);
        }
        samples
    }
}

impl Station {
    /// A reading `dt` seconds after the previous one, at fraction `day` of the simulated day.
    fn reading(&mut self, rng: &mut StdRng, now_ms: u64, dt: f64, day: f64) -> Value {
        let c = self.climate;
        // Coldest at three in the morning, warmest at three in the afternoon.
        let daily = (TAU * (day - 0.375)).sin();
        let temperature = c.temperature + c.swing * daily + self.temperature_drift.step(rng, dt);
        // Warm air holds more water, so relative humidity falls as the day warms up.
        let humidity = (c.humidity - 2.5 * (temperature - c.temperature) + self.humidity_drift.step(rng, dt))
            .clamp(15.0, 100.0);
        let pressure = SEA_LEVEL_HPA + c.pressure_offset + self.pressure_drift.step(rng, dt);
        let wind = (c.wind + self.wind_drift.step(rng, dt) + 2.0 * gaussian(rng)).max(0.0);
        let wind_dir =
            (c.wind_dir + self.wind_dir_drift.step(rng, dt) + 8.0 * gaussian(rng)).rem_euclid(360.0);
        json!({
            "station": c.id,
            "name": c.name,
            "ts": now_ms,
            "simulated": true,
            "temperature_c": round_to(temperature, 1),
            "humidity_pct": round_to(humidity, 1),
            "pressure_hpa": round_to(pressure, 1),
            "wind_kmh": round_to(wind, 1),
            "wind_dir": round_to(wind_dir, 1) % 360.0,
            "conditions": conditions(humidity, pressure - c.pressure_offset, wind),
        })
    }
}

/// A one-word summary of a reading, from its humidity, sea-level pressure and wind.
fn conditions(humidity: f64, pressure: f64, wind: f64) -> &'static str {
    if wind >= 40.0 {
        "windy"
    } else if humidity >= 88.0 && pressure < SEA_LEVEL_HPA - 3.0 {
        "rain"
    } else if humidity >= 93.0 && wind < 8.0 {
        "fog"
    } else if humidity >= 75.0 || pressure < SEA_LEVEL_HPA - 5.0 {
        "cloudy"
    } else {
        "clear"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;

    use super::*;

    const START_MS: u64 = 1_763_791_200_000;

    fn run(config: &WeatherConfig, seconds: u64) -> Vec<Sample> {
        let mut weather = Weather::new(config, StdRng::seed_from_u64(5)).expect("valid channels");
        let rounds = seconds * 1000 / config.interval_ms;
        (0..rounds).flat_map(|r| weather.tick(START_MS + r * config.interval_ms)).collect()
    }

    #[test]
    fn each_station_reads_every_round() {
        let config = WeatherConfig::default();
        let samples = run(&config, 20);
        let readings: Vec<&Sample> =
            samples.iter().filter(|s| s.channel.as_str() != ALERTS_CHANNEL).collect();
        assert_eq!(readings.len(), 10 * STATIONS.len());
        let channels: HashSet<&str> = readings.iter().map(|s| s.channel.as_str()).collect();
        let documented: HashSet<&str> =
            ["weather/station/harbor", "weather/station/airport", "weather/station/hillside"].into();
        assert_eq!(channels, documented);
    }

    #[test]
    fn readings_are_plausible() {
        let conditions: HashSet<&str> = ["clear", "cloudy", "rain", "fog", "windy"].into();
        let mut seen = HashSet::new();
        for sample in run(&WeatherConfig::default(), 6 * 3600) {
            let d = &sample.data;
            assert_eq!(d["simulated"], true);
            assert!(d["ts"].as_u64().is_some_and(|ts| ts >= START_MS));
            if sample.channel.as_str() == ALERTS_CHANNEL {
                continue;
            }
            let num = |field: &str| d[field].as_f64().unwrap_or_else(|| panic!("{field} in {d}"));
            assert_eq!(sample.channel.as_str(), channel_name(d["station"].as_str().expect("station")));
            assert!((-15.0..40.0).contains(&num("temperature_c")), "{d}");
            assert!((0.0..=100.0).contains(&num("humidity_pct")), "{d}");
            assert!((950.0..1060.0).contains(&num("pressure_hpa")), "{d}");
            assert!((0.0..150.0).contains(&num("wind_kmh")), "{d}");
            assert!((0.0..360.0).contains(&num("wind_dir")), "{d}");
            let condition = d["conditions"].as_str().expect("conditions");
            assert!(conditions.contains(condition), "{d}");
            seen.insert(condition.to_string());
        }
        assert!(seen.len() >= 3, "weather changes: {seen:?}");
    }

    #[test]
    fn temperature_follows_the_day() {
        let samples = run(&WeatherConfig::default(), SIMULATED_DAY_SECS as u64);
        let temps: Vec<f64> = samples
            .iter()
            .filter(|s| s.channel.as_str() == "weather/station/airport")
            .map(|s| s.data["temperature_c"].as_f64().expect("temperature"))
            .collect();
        let max = temps.iter().copied().fold(f64::MIN, f64::max);
        let min = temps.iter().copied().fold(f64::MAX, f64::min);
        assert!(max - min > 5.0, "a day's swing, got {min}..{max}");
    }

    #[test]
    fn alerts_come_at_the_configured_mean_interval() {
        let config = WeatherConfig { alert_every_secs: 20, ..WeatherConfig::default() };
        let seconds = 40_000;
        let alerts: Vec<Value> = run(&config, seconds)
            .into_iter()
            .filter(|s| s.channel.as_str() == ALERTS_CHANNEL)
            .map(|s| s.data)
            .collect();
        let mean = seconds as f64 / alerts.len() as f64;
        assert!((17.0..23.0).contains(&mean), "mean interval {mean} s");
        let severities: HashSet<&str> =
            alerts.iter().map(|a| a["severity"].as_str().expect("severity")).collect();
        assert_eq!(severities, ["info", "warning", "danger"].into());
        let stations: HashSet<&str> = STATIONS.iter().map(|c| c.id).collect();
        let ids: HashSet<&str> = alerts.iter().map(|a| a["id"].as_str().expect("id")).collect();
        assert_eq!(ids.len(), alerts.len(), "unique ids");
        for alert in &alerts {
            assert!(stations.contains(alert["station"].as_str().expect("station")), "{alert}");
            assert!(alert["title"].as_str().is_some_and(|t| !t.is_empty()), "{alert}");
            let message = alert["message"].as_str().expect("message");
            assert!(!message.contains('{'), "placeholders filled: {message}");
        }
    }

    #[test]
    fn zero_disables_alerts() {
        let config = WeatherConfig { alert_every_secs: 0, ..WeatherConfig::default() };
        assert!(run(&config, 3600).iter().all(|s| s.channel.as_str() != ALERTS_CHANNEL));
    }

    #[test]
    fn catalog_lists_the_stations() {
        let value = catalog(&WeatherConfig::default());
        assert_eq!(value["alerts_channel"], "weather/alerts");
        assert_eq!(
            value["stations"][0],
            json!({ "id": "harbor", "name": "Harbor", "channel": "weather/station/harbor" })
        );
    }
}
