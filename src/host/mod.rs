//! Host, container and app-process collectors. `runner` is the host loop:
//! one round per `host.interval` on the blocking pool, published through its
//! store slot.
//!
//! Everything is read from Linux pseudo files under [`Roots`] (`/proc`, `/sys`,
//! `/sys/fs/cgroup` by default), so tests can point the collectors at fake
//! trees. File systems are sized with `statvfs(3)`.
//!
//! Which series describe what, inside a Kubernetes pod:
//! - `system.*` (cpu, memory, load, filesystem, uptime) read `/proc`, which
//!   describes the **node**; `system.network.*` reads `/proc/net/dev`, which
//!   describes the network namespace remora runs in (the **pod**'s).
//! - `container.*` reads remora's own cgroup: **remora's container**.
//! - `process.*` sums the processes matched by `host.processes`: the **app**
//!   (needs `shareProcessNamespace: true`).
//! - `k8s.container.*.limit` come from the config (`host.app_container`): the
//!   **app container**'s limits, usually from the Downward API.
//!
//! [`HostCollectors::poll`] is blocking; each collector reports its own result,
//! duration and families, and a failing collector never stops the others.

mod app_container;
mod cgroup;
mod cpu;
mod filesystem;
mod memory;
mod network;
mod process;
mod read;
pub(crate) mod runner;
mod system;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{CollectorName, HostConfig};
use crate::model::{Family, InstrumentSpec};

pub use process::{self_process_families, self_process_specs, SelfProcess};
pub use read::{HostError, Reason, Tally};

/// Where the pseudo file systems and the root file system are mounted
/// (`--path.procfs`, `--path.sysfs`, `--path.rootfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// procfs, normally `/proc`.
    pub proc: PathBuf,
    /// sysfs, normally `/sys`.
    pub sys: PathBuf,
    /// The cgroup mount, `<sysfs>/fs/cgroup`.
    pub cgroup: PathBuf,
    /// The root file system the mount points of `<proc>/mounts` are resolved
    /// under, normally `/` (node_exporter's `--path.rootfs`).
    pub rootfs: PathBuf,
}

impl Roots {
    /// Roots from the three command-line paths; the cgroup tree is `<sysfs>/fs/cgroup`.
    pub fn new(procfs: &Path, sysfs: &Path, rootfs: &Path) -> Self {
        Roots {
            proc: procfs.to_path_buf(),
            sys: sysfs.to_path_buf(),
            cgroup: sysfs.join("fs/cgroup"),
            rootfs: rootfs.to_path_buf(),
        }
    }
}

impl Default for Roots {
    fn default() -> Self {
        Roots::new(Path::new("/proc"), Path::new("/sys"), Path::new("/"))
    }
}

/// The outcome of one collector in one poll.
#[derive(Debug)]
pub struct CollectorReport {
    /// Collector name: `cpu`, `memory`, `load`, `filesystem`, `network`,
    /// `uptime`, `container`, `process` or `app_container`.
    pub collector: &'static str,
    /// Why the collector failed (then `families` is empty).
    pub result: Result<(), HostError>,
    /// How long the collector took.
    pub duration: Duration,
    /// The latest series of each instrument the collector produced.
    pub families: Vec<Family>,
    /// Entries dropped in this poll (odd lines, stuck mounts), by reason.
    pub errors: Tally,
}

/// One collector: declares its instruments and reads them on demand.
trait Collector: Send {
    fn name(&self) -> &'static str;
    fn specs(&self) -> Vec<InstrumentSpec>;
    /// Appends this poll's families to `out`, counting dropped entries in
    /// `tally`. An error means the collector had nothing usable to report.
    fn collect(&mut self, out: &mut Vec<Family>, tally: &mut Tally) -> Result<(), HostError>;
    /// The most series any one of its instruments can have on this host, as
    /// far as a cheap look at the host tells (CPUs, interfaces, mounts). The
    /// pipeline sizes each instrument's table from it.
    fn max_series(&self) -> usize {
        FIXED_SERIES
    }
}

/// [`Collector::max_series`] of a collector whose series do not depend on
/// the host (memory states, load averages, container figures).
const FIXED_SERIES: usize = 16;

/// The lines of `path` (0 when it cannot be read): a cheap count of the
/// CPUs, interfaces or mounts a collector will report.
pub(crate) fn count_lines(path: &Path, pred: impl Fn(&[u8]) -> bool) -> usize {
    std::fs::read(path).map_or(0, |b| b.split(|&c| c == b'\n').filter(|l| pred(l)).count())
}

/// Every enabled host collector, with the state kept between polls.
pub struct HostCollectors {
    collectors: Vec<Box<dyn Collector>>,
}

impl std::fmt::Debug for HostCollectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.collectors.iter().map(|c| c.name()).collect();
        f.debug_struct("HostCollectors")
            .field("collectors", &names)
            .finish()
    }
}

impl HostCollectors {
    /// Builds the collectors `cfg` enables (none when `host.enabled` is false).
    /// `process` runs when `host.processes` is not empty, `app_container` when
    /// `host.app_container` is set.
    pub fn new(cfg: &HostConfig, roots: Roots) -> Self {
        let mut collectors: Vec<Box<dyn Collector>> = Vec::new();
        if !cfg.enabled {
            return HostCollectors { collectors };
        }
        let mut seen = Vec::new();
        for &name in &cfg.collectors {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let c: Box<dyn Collector> = match name {
                CollectorName::Cpu => Box::new(cpu::CpuCollector::new(&roots.proc)),
                CollectorName::Memory => Box::new(memory::MemoryCollector::new(&roots.proc)),
                CollectorName::Load => Box::new(system::LoadCollector::new(&roots.proc)),
                CollectorName::Filesystem => Box::new(filesystem::FilesystemCollector::new(
                    &roots.proc,
                    &roots.rootfs,
                    cfg.mount_points_exclude.clone(),
                    cfg.fs_types_exclude.clone(),
                )),
                CollectorName::Network => Box::new(network::NetworkCollector::new(
                    &roots.proc,
                    cfg.devices_exclude.clone(),
                )),
                CollectorName::Uptime => Box::new(system::UptimeCollector::new(&roots.proc)),
                CollectorName::Container => {
                    Box::new(cgroup::ContainerCollector::new(&roots.proc, &roots.cgroup))
                }
            };
            collectors.push(c);
        }
        if !cfg.processes.is_empty() {
            collectors.push(Box::new(process::ProcessCollector::new(
                &roots.proc,
                &cfg.processes,
            )));
        }
        if let Some(app) = &cfg.app_container {
            collectors.push(Box::new(app_container::AppContainerCollector::new(app)));
        }
        HostCollectors { collectors }
    }

    /// Names of the enabled collectors, in poll order.
    pub fn collector_names(&self) -> Vec<&'static str> {
        self.collectors.iter().map(|c| c.name()).collect()
    }

    /// Every instrument the enabled collectors can produce (declared once at start).
    pub fn specs(&self) -> Vec<InstrumentSpec> {
        self.collectors.iter().flat_map(|c| c.specs()).collect()
    }

    /// The cardinality limit of each host instrument: twice what the host
    /// shows now plus some room, so interfaces or mounts that appear later
    /// still fit, without sizing every table for thousands of series.
    pub fn limits(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for c in &self.collectors {
            let limit = 2 * c.max_series() + FIXED_SERIES;
            out.extend(c.specs().into_iter().map(|s| (s.name, limit)));
        }
        out
    }

    /// One poll of every enabled collector. Blocking: call it from a blocking
    /// thread. A failing collector gives its [`HostError`] and no families, and
    /// never stops the others.
    pub fn poll(&mut self) -> Vec<CollectorReport> {
        let mut reports = Vec::with_capacity(self.collectors.len());
        for c in &mut self.collectors {
            let start = Instant::now();
            let mut families = Vec::new();
            let mut errors = Tally::default();
            let result = c.collect(&mut families, &mut errors);
            if result.is_err() {
                families.clear();
            }
            reports.push(CollectorReport {
                collector: c.name(),
                result,
                duration: start.elapsed(),
                families,
                errors,
            });
        }
        reports
    }
}

/// An instrument name shared by every family of one collector.
pub(crate) fn name(s: &'static str) -> Arc<str> {
    Arc::from(s)
}

/// `<root>/<rel>` as an owned path (built once, at construction).
pub(crate) fn under(root: &Path, rel: &str) -> PathBuf {
    root.join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppContainer, ProcessMatcher};
    use regex::Regex;
    use std::time::Duration;

    pub(crate) fn host_config(collectors: Vec<CollectorName>) -> HostConfig {
        HostConfig {
            enabled: true,
            interval: Duration::from_secs(15),
            collectors,
            mount_points_exclude: Regex::new("^/(dev|proc|sys|run)($|/)").unwrap(),
            fs_types_exclude: Regex::new("^(proc|sysfs|cgroup2?|devpts|devtmpfs|mqueue)$").unwrap(),
            devices_exclude: Regex::new("^lo$").unwrap(),
            processes: vec![],
            app_container: None,
        }
    }

    #[test]
    fn disabled_host_has_no_collectors() {
        let mut cfg = host_config(CollectorName::ALL.to_vec());
        cfg.enabled = false;
        let mut h = HostCollectors::new(&cfg, Roots::default());
        assert!(h.specs().is_empty());
        assert!(h.poll().is_empty());
    }

    #[test]
    fn collectors_follow_config_and_names_are_the_contract() {
        let mut cfg = host_config(vec![
            CollectorName::Memory,
            CollectorName::Cpu,
            CollectorName::Memory,
        ]);
        cfg.processes = vec![ProcessMatcher {
            name: "api".into(),
            cmdline: Regex::new("x").unwrap(),
        }];
        cfg.app_container = Some(AppContainer {
            name: "app".into(),
            memory_limit: Some(1.0),
            cpu_limit: None,
        });
        let h = HostCollectors::new(&cfg, Roots::default());
        assert_eq!(
            h.collector_names(),
            vec!["memory", "cpu", "process", "app_container"]
        );
        let all = HostCollectors::new(&host_config(CollectorName::ALL.to_vec()), Roots::default());
        assert_eq!(
            all.collector_names(),
            vec![
                "cpu",
                "memory",
                "load",
                "filesystem",
                "network",
                "uptime",
                "container"
            ]
        );
        // Instrument names are unique.
        let specs = all.specs();
        let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }

    #[test]
    fn a_failing_collector_does_not_stop_the_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("loadavg"), "0.50 0.25 0.10 1/100 42\n").unwrap();
        let roots = Roots::new(dir.path(), &dir.path().join("sys"), Path::new("/"));
        let cfg = host_config(vec![CollectorName::Memory, CollectorName::Load]);
        let mut h = HostCollectors::new(&cfg, roots);
        let reports = h.poll();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].collector, "memory");
        let err = reports[0].result.as_ref().unwrap_err().to_string();
        assert!(err.contains("meminfo"), "{err}");
        assert!(reports[0].families.is_empty());
        assert_eq!(reports[1].collector, "load");
        assert!(reports[1].result.is_ok());
        assert_eq!(reports[1].families.len(), 3);
    }

    /// Every instrument's limit holds the series a poll gives, on this
    /// machine and on both fixture trees, yet stays far below the SDK's
    /// flat 4096 that every reload used to allocate.
    #[test]
    fn limits_hold_every_series_a_poll_gives_and_stay_small() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host");
        let mut roots = vec![Roots::default()];
        for tree in ["v1", "v2"] {
            let t = fixtures.join(tree);
            roots.push(Roots::new(&t.join("proc"), &t.join("sys"), &t.join("root")));
        }
        let any = Regex::new(".").unwrap();
        for r in roots {
            let mut cfg = host_config(CollectorName::ALL.to_vec());
            cfg.processes = vec![ProcessMatcher {
                name: "any".into(),
                cmdline: any.clone(),
            }];
            let mut h = HostCollectors::new(&cfg, r.clone());
            let limits: std::collections::BTreeMap<String, usize> =
                h.limits().into_iter().collect();
            assert_eq!(limits.len(), h.specs().len(), "{r:?}");
            for report in h.poll() {
                for f in report.families {
                    let limit = limits[&*f.name];
                    assert!(
                        f.series.len() <= limit,
                        "{r:?} {}: {} > {limit}",
                        f.name,
                        f.series.len()
                    );
                    assert!(limit < 1024, "{r:?} {}: {limit}", f.name);
                }
            }
        }
    }
}
