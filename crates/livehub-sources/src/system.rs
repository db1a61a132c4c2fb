//! Real host metrics on `metrics/system`, read with `sysinfo`, plus livehub's own figures.

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use livehub_core::{now_millis, ChannelName, Error, HubStats, Node};
use serde_json::{json, Value};
use sysinfo::{Disks, Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::runner::Source;
use crate::sim::round_to;
use crate::{Sample, SystemConfig};

/// The channel the metrics are published on.
pub(crate) const CHANNEL: &str = "metrics/system";

/// File systems that hold no data of their own (memory-backed, kernel interfaces, read-only
/// package images), left out of `disks` on top of what `sysinfo` already drops.
const PSEUDO_FILE_SYSTEMS: [&str; 12] = [
    "tmpfs", "devtmpfs", "ramfs", "squashfs", "proc", "sysfs", "cgroup", "cgroup2", "devpts", "nsfs",
    "autofs", "efivarfs",
];

/// The `system` entry of the catalog.
pub(crate) fn catalog(config: &SystemConfig) -> Value {
    json!({ "enabled": config.enabled, "channel": CHANNEL, "interval_ms": config.interval_ms })
}

/// Space on one mounted file system.
#[derive(Clone, Debug, PartialEq)]
struct DiskSpace {
    mount: String,
    fs: String,
    total: u64,
    used: u64,
}

/// One reading of the host: gauges as they are, counters as running totals.
#[derive(Clone, Debug)]
struct HostReading {
    at: Instant,
    cpu_total: f32,
    cores: Vec<f32>,
    memory_total: u64,
    memory_used: u64,
    memory_available: u64,
    swap_total: u64,
    swap_used: u64,
    load: [f64; 3],
    uptime_secs: u64,
    processes: usize,
    disks: Vec<DiskSpace>,
    /// Bytes read and written by the listed disks since boot.
    disk_io: (u64, u64),
    /// Bytes received and sent per interface since boot, by name, loopback left out.
    interfaces: Vec<(String, u64, u64)>,
    /// Resident memory of this process, in bytes.
    rss: u64,
}

/// The `sysinfo` handles, kept between readings so that CPU usage has a baseline. Blocking: use
/// it on a blocking thread.
struct Probe {
    system: System,
    disks: Disks,
    networks: Networks,
    pid: Option<Pid>,
    host: String,
}

impl Probe {
    fn new() -> Result<Self, sysinfo::Error> {
        let mut system = System::new()?;
        // CPU usage is measured between two refreshes; this one is the first.
        system.refresh_cpu_usage();
        Ok(Self {
            system,
            disks: Disks::new()?,
            networks: Networks::new()?,
            pid: sysinfo::get_current_pid().ok(),
            host: System::host_name().unwrap_or_else(|_| "unknown".to_string()),
        })
    }

    fn read(&mut self) -> HostReading {
        let system = &mut self.system;
        system.refresh_cpu_usage();
        system.refresh_memory();
        // Listing processes without their threads, which Linux would otherwise count as processes.
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().without_tasks(),
        );
        let rss = self.pid.map_or(0, |pid| {
            system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                false,
                ProcessRefreshKind::nothing().with_memory().without_tasks(),
            );
            system.process(pid).map_or(0, |p| p.memory())
        });
        self.disks.refresh(true);
        self.networks.refresh(true);
        let at = Instant::now();

        let mut disks: Vec<(String, DiskSpace, (u64, u64))> = self
            .disks
            .iter()
            .map(|d| {
                let space = DiskSpace {
                    mount: d.mount_point().to_string_lossy().into_owned(),
                    fs: d.file_system().to_string_lossy().into_owned(),
                    total: d.total_space(),
                    used: d.total_space().saturating_sub(d.available_space()),
                };
                let usage = d.usage();
                (
                    d.name().to_string_lossy().into_owned(),
                    space,
                    (usage.total_read_bytes, usage.total_written_bytes),
                )
            })
            .collect();
        disks.sort_by(|a, b| a.1.mount.len().cmp(&b.1.mount.len()).then_with(|| a.1.mount.cmp(&b.1.mount)));
        let disks = real_disks(disks);
        let disk_io = disks.iter().fold((0, 0), |(r, w), (_, io)| (r + io.0, w + io.1));

        let mut interfaces: Vec<(String, u64, u64)> = self
            .networks
            .iter()
            .filter(|(name, data)| {
                *name != "lo" && !data.ip_networks().iter().any(|ip| ip.addr.is_loopback())
            })
            .map(|(name, data)| {
                (name.to_string_lossy().into_owned(), data.total_received(), data.total_transmitted())
            })
            .collect();
        interfaces.sort();

        let load = System::load_average().map_or([0.0; 3], |l| [l.one, l.five, l.fifteen]);
        HostReading {
            at,
            cpu_total: system.global_cpu_usage(),
            cores: system.cpus().iter().map(|c| c.usage()).collect(),
            memory_total: system.total_memory(),
            memory_used: system.used_memory(),
            memory_available: system.available_memory(),
            swap_total: system.total_swap(),
            swap_used: system.used_swap(),
            load,
            uptime_secs: System::uptime().unwrap_or(0),
            processes: system.processes().len(),
            disks: disks.into_iter().map(|(space, _)| space).collect(),
            disk_io,
            interfaces,
            rss,
        }
    }
}

/// Keeps real storage from `(device, space, io)` entries sorted by mount path: one entry per
/// device (a device mounted in several places is listed at its shortest mount path), no pseudo
/// file systems, and an overlay only as the root of a container.
fn real_disks(disks: Vec<(String, DiskSpace, (u64, u64))>) -> Vec<(DiskSpace, (u64, u64))> {
    let mut devices = std::collections::HashSet::new();
    disks
        .into_iter()
        .filter(|(_, space, _)| space.total > 0 && !PSEUDO_FILE_SYSTEMS.contains(&space.fs.as_str()))
        .filter(|(_, space, _)| space.fs != "overlay" || space.mount == "/")
        .filter(|(device, ..)| devices.insert(device.clone()))
        .map(|(_, space, io)| (space, io))
        .collect()
}

/// Publishes the host's metrics and livehub's own figures.
pub(crate) struct SystemSource {
    node: Node,
    channel: ChannelName,
    started: Instant,
    /// Taken while a reading runs on a blocking thread; `None` also when it could not be made.
    probe: Option<Probe>,
    previous: Option<(HostReading, HubStats)>,
    /// Whether the failure to read the host was logged already.
    failing: bool,
}

impl SystemSource {
    /// A source reporting on `node`.
    pub(crate) fn new(node: Node) -> Result<Self, Error> {
        Ok(Self {
            node,
            channel: ChannelName::new(CHANNEL)?,
            started: Instant::now(),
            probe: None,
            previous: None,
            failing: false,
        })
    }

    async fn sample(&mut self) -> Vec<Sample> {
        let probe = self.probe.take();
        // sysinfo reads /proc and friends synchronously: keep that off the async threads.
        let joined = tokio::task::spawn_blocking(move || {
            let mut probe = match probe {
                Some(probe) => probe,
                None => Probe::new()?,
            };
            let reading = probe.read();
            Ok::<_, sysinfo::Error>((probe, reading))
        })
        .await;
        let (probe, reading) = match joined {
            Ok(Ok(done)) => done,
            Ok(Err(e)) if !self.failing => {
                self.failing = true;
                tracing::warn!(error = %e, "cannot read system metrics");
                return Vec::new();
            }
            Ok(Err(_)) => return Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "reading system metrics failed");
                return Vec::new();
            }
        };
        self.failing = false;
        let stats = self.node.stats();
        let presence = self.node.presence();
        let previous = self.previous.as_ref();
        let secs = previous.map_or(0.0, |(p, _)| reading.at.duration_since(p.at).as_secs_f64());
        let (pubs, deliveries) = previous.map_or((0.0, 0.0), |(_, s)| {
            (per_sec(stats.publications, s.publications, secs), per_sec(stats.deliveries, s.deliveries, secs))
        });
        let livehub = json!({
            "connections": presence.connections,
            "transports": presence.transports,
            "subscriptions": presence.subscriptions,
            "publications_per_sec": pubs,
            "deliveries_per_sec": deliveries,
            "memory_rss": reading.rss,
            "uptime_secs": self.started.elapsed().as_secs(),
        });
        let data = payload(&probe.host, now_millis(), &reading, previous.map(|(p, _)| p), livehub);
        self.probe = Some(probe);
        self.previous = Some((reading, stats));
        vec![Sample { channel: self.channel.clone(), data }]
    }
}

impl Source for SystemSource {
    fn name(&self) -> &'static str {
        "system"
    }

    fn produce(&mut self) -> impl Future<Output = Vec<Sample>> + Send {
        self.sample()
    }
}

/// The growth of a counter per second, rounded to a tenth; 0 without elapsed time or when the
/// counter went backwards (an interface reset).
fn per_sec(now: u64, before: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    round_to(now.saturating_sub(before) as f64 / secs, 1)
}

/// `part` as a percentage of `total`, rounded to a tenth.
fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    round_to((part as f64 / total as f64 * 100.0).clamp(0.0, 100.0), 1)
}

/// The documented payload, with rates against `previous` (all 0 without one).
fn payload(host: &str, ts: u64, now: &HostReading, previous: Option<&HostReading>, livehub: Value) -> Value {
    let secs = previous.map_or(0.0, |p| now.at.duration_since(p.at).as_secs_f64());
    let usage = |u: f32| round_to(f64::from(u).clamp(0.0, 100.0), 1);
    let disks: Vec<Value> = now
        .disks
        .iter()
        .map(|d| json!({ "mount": d.mount, "fs": d.fs, "total": d.total, "used": d.used, "percent": percent(d.used, d.total) }))
        .collect();
    let before: HashMap<&str, (u64, u64)> = previous
        .map(|p| p.interfaces.iter().map(|(name, rx, tx)| (name.as_str(), (*rx, *tx))).collect())
        .unwrap_or_default();
    let (mut rx_bps, mut tx_bps) = (0.0, 0.0);
    let interfaces: Vec<Value> = now
        .interfaces
        .iter()
        .map(|(name, rx, tx)| {
            let (rx_before, tx_before) = before.get(name.as_str()).copied().unwrap_or((*rx, *tx));
            let (rx, tx) = (per_sec(*rx, rx_before, secs), per_sec(*tx, tx_before, secs));
            rx_bps += rx;
            tx_bps += tx;
            json!({ "name": name, "rx_bps": rx, "tx_bps": tx })
        })
        .collect();
    let (read, written) = previous.map_or(now.disk_io, |p| p.disk_io);
    json!({
        "ts": ts,
        "host": host,
        "cpu": { "total": usage(now.cpu_total), "cores": now.cores.iter().map(|&c| usage(c)).collect::<Vec<_>>() },
        "memory": {
            "total": now.memory_total, "used": now.memory_used, "available": now.memory_available,
            "percent": percent(now.memory_used, now.memory_total),
        },
        "swap": { "total": now.swap_total, "used": now.swap_used, "percent": percent(now.swap_used, now.swap_total) },
        "load": now.load.map(|l| round_to(l, 2)),
        "uptime_secs": now.uptime_secs,
        "processes": now.processes,
        "disks": disks,
        "disk_io": { "read_bps": per_sec(now.disk_io.0, read, secs), "write_bps": per_sec(now.disk_io.1, written, secs) },
        "network": { "rx_bps": round_to(rx_bps, 1), "tx_bps": round_to(tx_bps, 1), "interfaces": interfaces },
        "livehub": livehub,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use livehub_core::{NodeConfig, Payload};

    use super::*;

    fn space(mount: &str, fs: &str, total: u64) -> DiskSpace {
        DiskSpace { mount: mount.into(), fs: fs.into(), total, used: total / 2 }
    }

    #[test]
    fn real_disks_leave_out_pseudo_and_duplicate_mounts() {
        let disks = vec![
            ("vda".to_string(), space("/", "ext4", 100), (1, 2)),
            ("tmpfs".to_string(), space("/dev/shm", "tmpfs", 50), (0, 0)),
            ("vda".to_string(), space("/etc/hosts", "ext4", 100), (1, 2)),
            ("overlay".to_string(), space("/var/lib/docker/overlay2/x/merged", "overlay", 100), (0, 0)),
            ("vdb".to_string(), space("/data", "xfs", 300), (3, 4)),
            ("none".to_string(), space("/empty", "ext4", 0), (0, 0)),
        ];
        let kept: Vec<String> = real_disks(disks).into_iter().map(|(d, _)| d.mount).collect();
        assert_eq!(kept, ["/", "/data"]);
    }

    #[test]
    fn rates_are_per_second_and_never_negative() {
        assert_eq!(per_sec(3000, 1000, 2.0), 1000.0);
        assert_eq!(per_sec(1000, 3000, 2.0), 0.0, "counter reset");
        assert_eq!(per_sec(3000, 1000, 0.0), 0.0, "no time passed");
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(5, 0), 0.0);
    }

    #[tokio::test]
    async fn reads_the_real_host() {
        let node = Node::new(NodeConfig::default());
        let mut source = SystemSource::new(node.clone()).expect("valid channel");

        let first = source.produce().await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].channel.as_str(), "metrics/system");
        let d = &first[0].data;
        assert!(d["cpu"]["cores"].as_array().is_some_and(|c| !c.is_empty()), "cores: {d}");
        assert!(d["memory"]["total"].as_u64().is_some_and(|t| t > 0), "memory: {d}");
        assert!(d["processes"].as_u64().is_some_and(|p| p > 0), "processes: {d}");
        assert!(d["livehub"]["memory_rss"].as_u64().is_some_and(|m| m > 0), "rss: {d}");
        assert!(d["host"].as_str().is_some_and(|h| !h.is_empty()), "host: {d}");
        assert!(d.get("simulated").is_none(), "real data is not marked simulated");
        assert_eq!(d["network"]["rx_bps"], 0.0, "first sample has no rates");
        assert_eq!(d["livehub"]["publications_per_sec"], 0.0, "first sample has no rates");

        let channel = ChannelName::new("test/load").expect("valid name");
        for n in 0..5 {
            node.publish_internal(&channel, Payload::from_value(&json!({ "n": n })), None)
                .await
                .expect("publish");
        }
        // CPU usage needs a short gap between two refreshes to mean anything.
        tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL + Duration::from_millis(50)).await;

        let second = source.produce().await;
        let d = &second[0].data;
        assert!(d["livehub"]["publications_per_sec"].as_f64().is_some_and(|r| r > 0.0), "rate: {d}");
        let pct = |v: &Value| v.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p));
        assert!(pct(&d["cpu"]["total"]), "{d}");
        assert!(d["cpu"]["cores"].as_array().is_some_and(|c| c.iter().all(pct)), "{d}");
        assert!(pct(&d["memory"]["percent"]) && pct(&d["swap"]["percent"]), "{d}");
        assert!(
            d["disks"].as_array().is_some_and(|disks| disks.iter().all(|disk| pct(&disk["percent"]))),
            "{d}"
        );
        for rate in [&d["disk_io"]["read_bps"], &d["disk_io"]["write_bps"], &d["network"]["rx_bps"]] {
            assert!(rate.as_f64().is_some_and(|r| r >= 0.0), "{d}");
        }
        assert!(d["load"].as_array().is_some_and(|l| l.len() == 3), "{d}");
        let interfaces = d["network"]["interfaces"].as_array().expect("interfaces");
        assert!(interfaces.iter().all(|i| i["name"] != "lo"), "no loopback: {d}");
    }
}
