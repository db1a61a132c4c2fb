//! Simulated vehicles on `transit/route/{id}`: a few tram lines through a made-up city.

use livehub_core::{ChannelName, Error};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

use crate::runner::Generator;
use crate::sim::{chance, gaussian, round_to};
use crate::{Sample, TransitConfig};

mod routes;

use routes::{Route, ROUTES};

/// Metres per degree of latitude (and of longitude at the equator).
const METRES_PER_DEGREE: f64 = 111_320.0;

/// Cruising speeds of the vehicles, in km/h: city trams between stops.
const CRUISE_KMH: std::ops::Range<f64> = 22.0..36.0;

/// Relative spread of the speed around the cruising speed from one snapshot to the next.
const SPEED_JITTER: f64 = 0.08;

/// Mean seconds a vehicle runs before it gets stuck in traffic.
const MEAN_SECS_BETWEEN_DELAYS: f64 = 600.0;

/// How long a traffic jam lasts, in seconds.
const JAM_SECS: std::ops::Range<f64> = 20.0..90.0;

/// Fraction of its speed a vehicle keeps in a jam; it falls behind by the rest.
const JAM_SPEED: f64 = 0.5;

/// Speed relative to cruising while making up a delay after the jam.
const CATCH_UP_SPEED: f64 = 1.3;

/// Mean seconds a vehicle runs before it is taken out of service.
const MEAN_SECS_BETWEEN_BREAKDOWNS: f64 = 900.0;

/// How long a vehicle stays out of service, in seconds.
const BREAKDOWN_SECS: std::ops::Range<f64> = 20.0..90.0;

/// Longest step simulated at once: after a stall the vehicles move on as if this much time
/// passed, instead of jumping across the map.
const MAX_STEP_SECS: f64 = 10.0;

/// The channel of route `id`.
pub(crate) fn channel_name(id: &str) -> String {
    format!("transit/route/{id}")
}

/// The `transit` entry of the catalog, with the route geometry the dashboard draws.
pub(crate) fn catalog(config: &TransitConfig) -> Value {
    let routes: Vec<Value> = ROUTES
        .iter()
        .map(|route| {
            let path: Vec<[f64; 2]> = route.path.iter().map(|&(lat, lon)| [lat, lon]).collect();
            let stops: Vec<Value> = route
                .stops
                .iter()
                .map(|&(i, name)| json!({ "name": name, "lat": route.path[i].0, "lon": route.path[i].1 }))
                .collect();
            json!({
                "id": route.id, "name": route.name, "color": route.color,
                "channel": channel_name(route.id), "path": path, "stops": stops,
            })
        })
        .collect();
    json!({ "enabled": config.enabled, "simulated": true, "interval_ms": config.interval_ms, "routes": routes })
}

/// What a vehicle is doing.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Status {
    OnRoute,
    /// Behind schedule: stuck for `jam_secs` more, then catching up until the delay is gone.
    Delayed {
        jam_secs: f64,
    },
    /// Stopped for `secs` more.
    OutOfService {
        secs: f64,
    },
}

struct Vehicle {
    id: String,
    /// Distance travelled within one cycle of the route, in metres: once along a looped path,
    /// there and back along the others.
    cycle_pos: f64,
    cruise_kmh: f64,
    speed_kmh: f64,
    delay_secs: f64,
    status: Status,
}

/// A route with its measured path and its vehicles.
struct Line {
    route: &'static Route,
    channel: ChannelName,
    /// Distance from the start of the path to each point, in metres.
    along: Vec<f64>,
    vehicles: Vec<Vehicle>,
}

/// Generates one snapshot per route per round.
pub(crate) struct Transit {
    lines: Vec<Line>,
    rng: StdRng,
    last_ms: Option<u64>,
}

impl Transit {
    /// The routes with their vehicles spread along them.
    pub(crate) fn new(mut rng: StdRng) -> Result<Self, Error> {
        let mut lines = Vec::new();
        for route in &ROUTES {
            let mut along = vec![0.0];
            for pair in route.path.windows(2) {
                along.push(along[along.len() - 1] + distance(pair[0], pair[1]));
            }
            let mut line =
                Line { route, channel: ChannelName::new(&channel_name(route.id))?, along, vehicles: vec![] };
            let cycle = line.cycle();
            line.vehicles = (0..route.vehicles)
                .map(|n| {
                    let cruise_kmh = rng.random_range(CRUISE_KMH);
                    Vehicle {
                        id: format!("{}-{}", route.id, n + 1),
                        cycle_pos: cycle * (n as f64 + rng.random::<f64>() * 0.5) / route.vehicles as f64,
                        cruise_kmh,
                        speed_kmh: cruise_kmh,
                        delay_secs: 0.0,
                        status: Status::OnRoute,
                    }
                })
                .collect();
            lines.push(line);
        }
        Ok(Self { lines, rng, last_ms: None })
    }
}

impl Generator for Transit {
    const NAME: &'static str = "transit";

    fn tick(&mut self, now_ms: u64) -> Vec<Sample> {
        let dt =
            self.last_ms.map_or(0.0, |last| now_ms.saturating_sub(last) as f64 / 1000.0).min(MAX_STEP_SECS);
        self.last_ms = Some(now_ms);
        let rng = &mut self.rng;
        self.lines
            .iter_mut()
            .map(|line| {
                let cycle = line.cycle();
                for vehicle in &mut line.vehicles {
                    vehicle.step(rng, dt, cycle);
                }
                let vehicles: Vec<Value> = line.vehicles.iter().map(|v| line.describe(v)).collect();
                let data =
                    json!({ "route": line.route.id, "ts": now_ms, "simulated": true, "vehicles": vehicles });
                Sample { channel: line.channel.clone(), data }
            })
            .collect()
    }
}

impl Vehicle {
    /// Advances the vehicle by `dt` seconds on a route whose cycle is `cycle` metres.
    fn step(&mut self, rng: &mut StdRng, dt: f64, cycle: f64) {
        if dt <= 0.0 {
            return;
        }
        if !matches!(self.status, Status::OutOfService { .. })
            && chance(rng, dt, MEAN_SECS_BETWEEN_BREAKDOWNS)
        {
            self.status = Status::OutOfService { secs: rng.random_range(BREAKDOWN_SECS) };
        }
        let factor = match self.status {
            Status::OutOfService { secs } if secs > dt => {
                self.status = Status::OutOfService { secs: secs - dt };
                self.speed_kmh = 0.0;
                return;
            }
            Status::OutOfService { .. } => {
                // Back in service with a fresh timetable.
                self.status = Status::OnRoute;
                self.delay_secs = 0.0;
                1.0
            }
            Status::OnRoute if chance(rng, dt, MEAN_SECS_BETWEEN_DELAYS) => {
                self.status = Status::Delayed { jam_secs: rng.random_range(JAM_SECS) };
                self.delay_secs += dt * (1.0 - JAM_SPEED);
                JAM_SPEED
            }
            Status::OnRoute => 1.0,
            Status::Delayed { jam_secs } if jam_secs > 0.0 => {
                self.status = Status::Delayed { jam_secs: jam_secs - dt };
                self.delay_secs += dt * (1.0 - JAM_SPEED);
                JAM_SPEED
            }
            Status::Delayed { .. } => {
                self.delay_secs -= dt * (CATCH_UP_SPEED - 1.0);
                if self.delay_secs <= 0.0 {
                    self.delay_secs = 0.0;
                    self.status = Status::OnRoute;
                }
                CATCH_UP_SPEED
            }
        };
        self.speed_kmh = (self.cruise_kmh * factor * (1.0 + SPEED_JITTER * gaussian(rng))).clamp(3.0, 70.0);
        self.cycle_pos = (self.cycle_pos + self.speed_kmh / 3.6 * dt) % cycle;
    }
}

impl Line {
    fn length(&self) -> f64 {
        self.along.last().copied().unwrap_or(0.0)
    }

    /// Metres in one cycle: once around a loop, there and back otherwise.
    fn cycle(&self) -> f64 {
        if self.route.looped {
            self.length()
        } else {
            2.0 * self.length()
        }
    }

    /// A vehicle's payload: where it is, where it heads, how it is doing.
    fn describe(&self, vehicle: &Vehicle) -> Value {
        let length = self.length();
        let (pos, forward) = if vehicle.cycle_pos <= length {
            (vehicle.cycle_pos, true)
        } else {
            (2.0 * length - vehicle.cycle_pos, false)
        };
        // The segment the vehicle is on: the last point at or before it.
        let seg = self.along.partition_point(|&d| d <= pos).saturating_sub(1).min(self.along.len() - 2);
        let (a, b) = (self.route.path[seg], self.route.path[seg + 1]);
        let t = ((pos - self.along[seg]) / (self.along[seg + 1] - self.along[seg])).clamp(0.0, 1.0);
        let (lat, lon) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        let heading = if forward { bearing(a, b) } else { bearing(b, a) };
        let status = match vehicle.status {
            Status::OnRoute => "on_route",
            Status::Delayed { .. } => "delayed",
            Status::OutOfService { .. } => "out_of_service",
        };
        json!({
            "id": vehicle.id,
            "lat": round_to(lat, 5),
            "lon": round_to(lon, 5),
            "heading": round_to(heading, 1) % 360.0,
            "speed_kmh": round_to(vehicle.speed_kmh, 1),
            "status": status,
            "next_stop": self.next_stop(pos, forward),
            "delay_secs": vehicle.delay_secs.ceil() as u64,
        })
    }

    /// The first stop ahead of `pos` in the direction of travel.
    fn next_stop(&self, pos: f64, forward: bool) -> &'static str {
        // A vehicle within a metre of a stop is at it, so the stop after counts as next.
        let stop_at = |&(i, name): &(usize, &'static str)| (self.along[i], name);
        let mut stops = self.route.stops.iter().map(stop_at);
        let ahead = if forward {
            stops.find(|&(d, _)| d > pos + 1.0)
        } else {
            stops.rev().find(|&(d, _)| d < pos - 1.0)
        };
        let wrap = match (self.route.looped, forward) {
            // Past the last stop of a loop: the first one (one metre along) comes next.
            (true, _) => {
                self.route.stops.get(1).filter(|_| pos >= self.length() - 1.0).or(self.route.stops.first())
            }
            // Turning at an end: the stop next to it, going back.
            (false, true) => self.route.stops.iter().rev().nth(1),
            (false, false) => self.route.stops.get(1),
        };
        ahead.map(|(_, name)| name).or(wrap.map(|&(_, name)| name)).unwrap_or("")
    }
}

/// Approximate distance between two nearby points, in metres.
fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    let dy = (b.0 - a.0) * METRES_PER_DEGREE;
    let dx = (b.1 - a.1) * METRES_PER_DEGREE * a.0.to_radians().cos();
    dx.hypot(dy)
}

/// Compass bearing from `a` to `b`, in degrees clockwise from north, in `[0, 360)`.
fn bearing(a: (f64, f64), b: (f64, f64)) -> f64 {
    let dy = b.0 - a.0;
    let dx = (b.1 - a.1) * a.0.to_radians().cos();
    dx.atan2(dy).to_degrees().rem_euclid(360.0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;

    use super::*;

    const START_MS: u64 = 1_763_791_200_000;

    /// Snapshots of `seconds` simulated seconds, one round a second.
    fn run(seconds: u64) -> Vec<Sample> {
        let mut transit = Transit::new(StdRng::seed_from_u64(11)).expect("valid channels");
        (0..seconds).flat_map(|s| transit.tick(START_MS + s * 1000)).collect()
    }

    fn route_of(sample: &Sample) -> &'static Route {
        let id = sample.data["route"].as_str().expect("route id");
        ROUTES.iter().find(|r| r.id == id).expect("a known route")
    }

    #[test]
    fn routes_are_well_formed() {
        let ids: HashSet<&str> = ROUTES.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), ROUTES.len(), "unique ids");
        for route in &ROUTES {
            assert!((6..=12).contains(&route.path.len()), "{}: path of 6–12 points", route.id);
            assert!((3..=5).contains(&route.vehicles), "{}: 3–5 vehicles", route.id);
            assert!(
                route.path.windows(2).all(|w| distance(w[0], w[1]) > 50.0),
                "{}: no repeated points",
                route.id
            );
            assert!(
                route.stops.iter().all(|&(i, _)| i < route.path.len()),
                "{}: stops on the path",
                route.id
            );
            assert_eq!(route.looped, route.path.first() == route.path.last(), "{}: loops close", route.id);
            if !route.looped {
                let last = route.path.len() - 1;
                assert_eq!(route.stops.first().map(|s| s.0), Some(0), "{}: starts at a stop", route.id);
                assert_eq!(route.stops.last().map(|s| s.0), Some(last), "{}: ends at a stop", route.id);
            }
        }
    }

    #[test]
    fn one_snapshot_per_route_per_round_on_documented_channels() {
        let samples = run(3);
        assert_eq!(samples.len(), 3 * ROUTES.len());
        for (sample, route) in samples.iter().zip(ROUTES.iter().cycle()) {
            assert_eq!(sample.channel.as_str(), format!("transit/route/{}", route.id));
            assert_eq!(sample.data["route"], route.id);
            assert_eq!(sample.data["simulated"], true);
            assert!(sample.data["ts"].as_u64().is_some_and(|ts| ts >= START_MS));
            let vehicles = sample.data["vehicles"].as_array().expect("vehicles");
            assert_eq!(vehicles.len(), route.vehicles);
            assert_eq!(vehicles[0]["id"], format!("{}-1", route.id));
        }
    }

    #[test]
    fn vehicles_stay_on_their_routes_and_report_sane_values() {
        let mut statuses = HashSet::new();
        for sample in run(3600) {
            let route = route_of(&sample);
            let lats = route.path.iter().map(|p| p.0);
            let lons = route.path.iter().map(|p| p.1);
            let (lat_min, lat_max) = (lats.clone().fold(f64::MAX, f64::min), lats.fold(f64::MIN, f64::max));
            let (lon_min, lon_max) = (lons.clone().fold(f64::MAX, f64::min), lons.fold(f64::MIN, f64::max));
            let stops: HashSet<&str> = route.stops.iter().map(|s| s.1).collect();
            for v in sample.data["vehicles"].as_array().expect("vehicles") {
                let num = |field: &str| v[field].as_f64().unwrap_or_else(|| panic!("{field} in {v}"));
                let eps = 1e-9;
                assert!((lat_min - eps..=lat_max + eps).contains(&num("lat")), "{v}");
                assert!((lon_min - eps..=lon_max + eps).contains(&num("lon")), "{v}");
                assert!((0.0..360.0).contains(&num("heading")), "{v}");
                assert!((0.0..=70.0).contains(&num("speed_kmh")), "{v}");
                assert!(stops.contains(v["next_stop"].as_str().expect("next stop")), "{v}");
                let delay = v["delay_secs"].as_u64().expect("delay");
                let status = v["status"].as_str().expect("status");
                match status {
                    "on_route" => assert_eq!(delay, 0, "{v}"),
                    "delayed" => assert!(delay > 0, "{v}"),
                    "out_of_service" => assert_eq!(num("speed_kmh"), 0.0, "{v}"),
                    other => panic!("unknown status {other}"),
                }
                statuses.insert(status.to_string());
            }
        }
        assert_eq!(statuses.len(), 3, "every status shows up in an hour: {statuses:?}");
    }

    #[test]
    fn vehicles_move_at_city_speeds() {
        let samples = run(60);
        let first = &samples[0].data["vehicles"][0];
        let later = &samples[samples.len() - ROUTES.len()].data["vehicles"][0];
        let at = |v: &Value| (v["lat"].as_f64().expect("lat"), v["lon"].as_f64().expect("lon"));
        let metres = distance(at(first), at(later));
        // A minute at city speed is a few hundred metres, less if the path turned back.
        assert!(metres > 50.0 && metres < 60.0 * 70.0 / 3.6, "moved {metres} m");
    }

    #[test]
    fn heading_follows_the_segment() {
        assert_eq!(bearing((52.0, 4.0), (52.1, 4.0)).round(), 0.0);
        assert_eq!(bearing((52.0, 4.0), (52.0, 4.1)).round(), 90.0);
        assert_eq!(bearing((52.1, 4.0), (52.0, 4.0)).round(), 180.0);
        assert_eq!(bearing((52.0, 4.1), (52.0, 4.0)).round(), 270.0);
    }

    #[test]
    fn catalog_has_geometry() {
        let value = catalog(&TransitConfig::default());
        let routes = value["routes"].as_array().expect("routes");
        assert_eq!(routes.len(), ROUTES.len());
        assert_eq!(routes[0]["channel"], "transit/route/12");
        assert_eq!(routes[0]["path"][2], json!([52.3791, 4.9003]));
        assert_eq!(
            routes[0]["stops"][1],
            json!({ "name": "Central Station", "lat": 52.3791, "lon": 4.9003 })
        );
        assert_eq!(value["simulated"], true);
    }
}
