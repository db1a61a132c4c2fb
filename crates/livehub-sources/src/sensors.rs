//! Simulated IoT sensors on `sensors/{id}`.

use std::f64::consts::TAU;
use std::time::Duration;

use livehub_core::{ChannelName, Error};
use rand::rngs::StdRng;
use serde_json::{json, Value};

use crate::runner::Generator;
use crate::sim::{gaussian, round_to, Drift};
use crate::{Sample, SensorsConfig};

/// The sensors: id and display name.
const SENSORS: [(&str, &str); 1] = [("lab-1", "Lab 1")];

/// Most seconds of samples published in one round: after a stall, older samples are skipped
/// instead of sent as a burst.
const MAX_CATCH_UP_SECS: u64 = 1;

/// The channel of sensor `id`.
pub(crate) fn channel_name(id: &str) -> String {
    format!("sensors/{id}")
}

/// The rate the sensors sample at: `rate_hz`, at least once a second.
pub(crate) fn rate_hz(config: &SensorsConfig) -> u32 {
    config.rate_hz.max(1)
}

/// Time between two samples of a sensor.
pub(crate) fn period(config: &SensorsConfig) -> Duration {
    Duration::from_secs_f64(1.0 / f64::from(rate_hz(config)))
}

/// The `sensors` entry of the catalog.
pub(crate) fn catalog(config: &SensorsConfig) -> Value {
    let sensors: Vec<Value> = SENSORS
        .iter()
        .map(|&(id, name)| json!({ "id": id, "name": name, "channel": channel_name(id), "rate_hz": rate_hz(config) }))
        .collect();
    json!({ "enabled": config.enabled, "simulated": true, "sensors": sensors })
}

struct Sensor {
    id: &'static str,
    channel: ChannelName,
    temperature: Drift,
    humidity: Drift,
    pressure: Drift,
    light: Drift,
}

/// Generates `rate_hz` samples a second per sensor, on a fixed schedule whatever the rounds.
pub(crate) struct Sensors {
    sensors: Vec<Sensor>,
    rate_hz: u32,
    rng: StdRng,
    /// When the first sample was due; sample `k` is due `k / rate_hz` seconds later.
    start_ms: Option<u64>,
    /// Index of the next sample due.
    next: u64,
}

impl Sensors {
    /// The sensors of `config`.
    pub(crate) fn new(config: &SensorsConfig, rng: StdRng) -> Result<Self, Error> {
        let sensors = SENSORS
            .iter()
            .map(|&(id, _)| {
                Ok(Sensor {
                    id,
                    channel: ChannelName::new(&channel_name(id))?,
                    // A lab: temperature and humidity drift slowly, light changes as people move.
                    temperature: Drift::new(0.3, 120.0),
                    humidity: Drift::new(1.5, 300.0),
                    pressure: Drift::new(1.5, 1800.0),
                    light: Drift::new(40.0, 60.0),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self { sensors, rate_hz: rate_hz(config), rng, start_ms: None, next: 0 })
    }
}

impl Generator for Sensors {
    const NAME: &'static str = "sensors";

    fn tick(&mut self, now_ms: u64) -> Vec<Sample> {
        let period_ms = 1000.0 / f64::from(self.rate_hz);
        let start = *self.start_ms.get_or_insert(now_ms);
        // Samples 0..due are due by now.
        let due = (now_ms.saturating_sub(start) as f64 / period_ms).floor() as u64 + 1;
        let most = MAX_CATCH_UP_SECS * u64::from(self.rate_hz);
        self.next = self.next.max(due.saturating_sub(most));
        let dt = 1.0 / f64::from(self.rate_hz);
        let mut samples = Vec::new();
        for k in self.next..due {
            let ts = start + (k as f64 * period_ms) as u64;
            for sensor in &mut self.sensors {
                samples.push(Sample {
                    channel: sensor.channel.clone(),
                    data: sensor.sample(&mut self.rng, ts, dt),
                });
            }
        }
        self.next = self.next.max(due);
        samples
    }
}

impl Sensor {
    /// A sample at `ts`, `dt` seconds after the previous one.
    fn sample(&mut self, rng: &mut StdRng, ts: u64, dt: f64) -> Value {
        let t = ts as f64 / 1000.0;
        // Slow cycles (a thermostat, ventilation, clouds passing) plus drift plus sensor noise.
        let temperature =
            22.0 + 0.8 * (TAU * t / 600.0).sin() + self.temperature.step(rng, dt) + 0.03 * gaussian(rng);
        let humidity =
            (45.0 + 3.0 * (TAU * t / 900.0 + 1.0).sin() + self.humidity.step(rng, dt) + 0.2 * gaussian(rng))
                .clamp(0.0, 100.0);
        let pressure = 1013.0 + self.pressure.step(rng, dt) + 0.05 * gaussian(rng);
        let light =
            (420.0 + 150.0 * (TAU * t / 300.0).sin() + self.light.step(rng, dt) + 5.0 * gaussian(rng))
                .max(0.0);
        json!({
            "sensor": self.id,
            "ts": ts,
            "simulated": true,
            "temperature_c": round_to(temperature, 2),
            "humidity_pct": round_to(humidity, 1),
            "pressure_hpa": round_to(pressure, 1),
            "light_lux": round_to(light, 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    const START_MS: u64 = 1_763_791_200_000;

    /// The samples from 0 to `seconds` simulated seconds, with a round every `round_ms`.
    fn run(rate_hz: u32, seconds: u64, round_ms: u64) -> Vec<Sample> {
        let config = SensorsConfig { enabled: true, rate_hz };
        let mut sensors = Sensors::new(&config, StdRng::seed_from_u64(3)).expect("valid channels");
        (0..=seconds * 1000 / round_ms).flat_map(|r| sensors.tick(START_MS + r * round_ms)).collect()
    }

    #[test]
    fn publishes_rate_hz_samples_per_second() {
        for (rate, round_ms) in [(10, 100), (10, 250), (10, 30), (3, 1000), (3, 70), (50, 20)] {
            let seconds = 20;
            let samples = run(rate, seconds, round_ms);
            let expected = u64::from(rate) * seconds;
            let got = samples.len() as u64;
            assert!(got.abs_diff(expected) <= 1, "{rate} Hz in rounds of {round_ms} ms: {got} samples");
            assert!(samples.iter().all(|s| s.channel.as_str() == "sensors/lab-1"));
            let ts: Vec<u64> = samples.iter().map(|s| s.data["ts"].as_u64().expect("ts")).collect();
            assert!(ts.windows(2).all(|w| w[0] < w[1]), "evenly spaced, in order");
        }
    }

    #[test]
    fn a_stall_is_not_caught_up_in_full() {
        let config = SensorsConfig::default();
        let mut sensors = Sensors::new(&config, StdRng::seed_from_u64(3)).expect("valid channels");
        assert_eq!(sensors.tick(START_MS).len(), 1);
        let after_stall = sensors.tick(START_MS + 60_000).len() as u64;
        assert_eq!(after_stall, MAX_CATCH_UP_SECS * u64::from(config.rate_hz));
        assert!(sensors.tick(START_MS + 60_100).len() == 1);
    }

    #[test]
    fn values_are_plausible() {
        for sample in run(10, 3600, 1000) {
            let d = &sample.data;
            let num = |field: &str| d[field].as_f64().unwrap_or_else(|| panic!("{field} in {d}"));
            assert_eq!(d["sensor"], "lab-1");
            assert_eq!(d["simulated"], true);
            assert!((15.0..30.0).contains(&num("temperature_c")), "{d}");
            assert!((0.0..=100.0).contains(&num("humidity_pct")), "{d}");
            assert!((990.0..1040.0).contains(&num("pressure_hpa")), "{d}");
            assert!((0.0..2000.0).contains(&num("light_lux")), "{d}");
        }
    }

    #[test]
    fn zero_rate_means_once_a_second() {
        let config = SensorsConfig { enabled: true, rate_hz: 0 };
        assert_eq!(period(&config), Duration::from_secs(1));
        assert_eq!(catalog(&config)["sensors"][0]["rate_hz"], 1);
    }

    #[test]
    fn catalog_lists_the_sensor() {
        let value = catalog(&SensorsConfig::default());
        assert_eq!(
            value["sensors"],
            json!([{ "id": "lab-1", "name": "Lab 1", "channel": "sensors/lab-1", "rate_hz": 10 }])
        );
    }
}
