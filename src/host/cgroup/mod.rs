//! `container`: remora's own cgroup (v2 first, v1 as fallback).
//!
//! The cgroup is found from `<proc>/self/cgroup` relative to the cgroup mount.
//! Inside a container with its own cgroup namespace the path is `/`, the mount
//! itself; when the listed path does not exist under the mount (a container
//! that sees its cgroup mounted at the root without a namespace), the mount
//! itself is used too.
//!
//! | series | v2 | v1 |
//! |---|---|---|
//! | `container.cpu.time` | `cpu.stat` usage_usec | `cpuacct.usage` (ns) |
//! | `container.cpu.throttled.time` | `cpu.stat` throttled_usec | `cpu.stat` throttled_time (ns) |
//! | `container.cpu.limit` | `cpu.max` quota / period | `cpu.cfs_quota_us` / `cpu.cfs_period_us` |
//! | `container.memory.usage` | `memory.current` | `memory.usage_in_bytes` |
//! | `container.memory.limit` | `memory.max` | `memory.limit_in_bytes` |
//! | `container.memory.working_set` | usage - `memory.stat` inactive_file | usage - total_inactive_file |
//!
//! No limit (`max`, a quota of -1, or v1's huge sentinel) means no limit series.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::read::{
    flat_keyed, parse_u64, series0, u64_reason, utf8_lines, FileBuf, HostError, Reason, Tally,
};
use super::{name, Collector};
use crate::model::{Family, InstrumentKind, InstrumentSpec};

pub(crate) const CPU_TIME: &str = "container.cpu.time";
pub(crate) const CPU_THROTTLED: &str = "container.cpu.throttled.time";
pub(crate) const CPU_LIMIT: &str = "container.cpu.limit";
pub(crate) const MEM_USAGE: &str = "container.memory.usage";
pub(crate) const MEM_LIMIT: &str = "container.memory.limit";
pub(crate) const MEM_WORKING_SET: &str = "container.memory.working_set";

/// v1 memory limits at or above this mean "no limit" (the kernel's sentinel is
/// `PAGE_COUNTER_MAX` pages, 0x7FFFFFFFFFFFF000 with 4 KiB pages).
const V1_UNLIMITED: u64 = 1 << 62;

/// Where remora's cgroup files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    V2 {
        dir: PathBuf,
    },
    V1 {
        cpu: Option<PathBuf>,
        cpuacct: PathBuf,
        memory: PathBuf,
    },
}

/// One reading of the cgroup; `None` when the file does not have the value,
/// or its line was odd (dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct CgroupStats {
    /// Seconds.
    pub cpu_time: Option<f64>,
    /// Seconds.
    pub throttled: Option<f64>,
    /// Cores.
    pub cpu_limit: Option<f64>,
    pub mem_usage: Option<u64>,
    pub mem_limit: Option<u64>,
    pub working_set: Option<u64>,
}

/// `<mount>/<path>` when it exists, else the mount itself.
fn resolve(mount: &Path, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == "..") {
        return mount.to_path_buf();
    }
    let candidate = mount.join(rel);
    if candidate.is_dir() {
        candidate
    } else {
        mount.to_path_buf()
    }
}

/// Finds remora's cgroup from `<proc>/self/cgroup` and the cgroup mount.
/// Odd lines are dropped and counted.
pub(crate) fn detect(
    buf: &mut FileBuf,
    proc: &Path,
    root: &Path,
    tally: &mut Tally,
) -> Result<Layout, HostError> {
    let self_cgroup = proc.join("self/cgroup");
    let text = buf.read_bytes(&self_cgroup)?;
    let mut v2_path = None;
    let (mut cpu, mut cpuacct, mut memory) = (None, None, None);
    for line in utf8_lines(text) {
        let Some(line) = line else {
            tally.drop_entry(&self_cgroup, Reason::NonUtf8, "line");
            continue;
        };
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            tally.drop_entry(&self_cgroup, Reason::MalformedLine, line);
            continue;
        };
        if id == "0" && ctrls.is_empty() {
            v2_path = Some(path.to_string());
            continue;
        }
        for ctrl in ctrls.split(',') {
            let slot = match ctrl {
                "cpu" => &mut cpu,
                "cpuacct" => &mut cpuacct,
                "memory" => &mut memory,
                _ => continue,
            };
            // The mount is named after the controller list ("cpu,cpuacct"), often with per-controller symlinks.
            for mount in [root.join(ctrls), root.join(ctrl)] {
                if mount.is_dir() {
                    *slot = Some(resolve(&mount, path));
                    break;
                }
            }
        }
    }
    if let Some(p) = &v2_path {
        if root.join("cgroup.controllers").is_file() {
            return Ok(Layout::V2 {
                dir: resolve(root, p),
            });
        }
    }
    if let (Some(cpuacct), Some(memory)) = (cpuacct, memory) {
        return Ok(Layout::V1 {
            cpu,
            cpuacct,
            memory,
        });
    }
    // Hybrid layout without v1 cpu/memory controllers.
    if let Some(p) = &v2_path {
        let unified = root.join("unified");
        if unified.join("cgroup.controllers").is_file() {
            return Ok(Layout::V2 {
                dir: resolve(&unified, p),
            });
        }
    }
    Err(HostError::NotFound(format!(
        "no cgroup v2 or v1 (cpuacct and memory) hierarchy for this process under {}",
        root.display()
    )))
}

/// Reads a file that may legitimately be absent (a limit file of the root cgroup).
fn read_optional<'a>(buf: &'a mut FileBuf, path: &Path) -> Result<Option<&'a str>, HostError> {
    match buf.read(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_gone() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses v2 `cpu.max` ("max 100000" or "50000 100000") into cores.
pub(crate) fn parse_cpu_max(path: &Path, text: &str) -> Result<Option<f64>, HostError> {
    let mut it = text.split_ascii_whitespace();
    let quota = it
        .next()
        .ok_or_else(|| HostError::entry(path, Reason::MissingColumn, "empty"))?;
    if quota == "max" {
        return Ok(None);
    }
    let quota = parse_u64(path, quota, "quota")?;
    let period = match it.next() {
        Some(p) => parse_u64(path, p, "period")?,
        None => 100_000,
    };
    if period == 0 {
        return Ok(None);
    }
    Ok(Some(quota as f64 / period as f64))
}

/// `usage - inactive` when both are known.
fn working_set(usage: Option<u64>, inactive: Option<u64>) -> Option<u64> {
    Some(usage?.saturating_sub(inactive?))
}

/// A limit file holding a byte count, or `max` (no limit).
fn parse_limit(path: &Path, text: &str) -> Result<Option<u64>, HostError> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    parse_u64(path, t, "limit").map(Some)
}

/// Reads the stats of a cgroup. A file that cannot be read is an error; an
/// odd value drops that value (and what is computed from it) and is counted.
pub(crate) fn read_stats(
    buf: &mut FileBuf,
    layout: &Layout,
    tally: &mut Tally,
) -> Result<CgroupStats, HostError> {
    let mut s = CgroupStats::default();
    match layout {
        Layout::V2 { dir } => {
            let p = dir.join("cpu.stat");
            let t = tally.keep(buf.read(&p))?.unwrap_or("");
            let usage = flat_keyed(&p, t, "usage_usec");
            let throttled = flat_keyed(&p, t, "throttled_usec");
            s.cpu_time = tally.keep(usage)?.flatten().map(|v| v as f64 / 1e6);
            s.throttled = tally.keep(throttled)?.flatten().map(|v| v as f64 / 1e6);

            let p = dir.join("cpu.max");
            if let Some(t) = read_optional(buf, &p)? {
                let limit = parse_cpu_max(&p, t);
                s.cpu_limit = tally.keep(limit)?.flatten();
            }

            let p = dir.join("memory.current");
            let usage = buf
                .read(&p)
                .and_then(|t| parse_u64(&p, t, "memory.current"));
            s.mem_usage = tally.keep(usage)?;

            let p = dir.join("memory.max");
            if let Some(t) = read_optional(buf, &p)? {
                let limit = parse_limit(&p, t);
                s.mem_limit = tally.keep(limit)?.flatten();
            }

            let p = dir.join("memory.stat");
            let inactive = buf
                .read(&p)
                .and_then(|t| flat_keyed(&p, t, "inactive_file"))
                .map(|v| v.unwrap_or(0));
            s.working_set = working_set(s.mem_usage, tally.keep(inactive)?);
        }
        Layout::V1 {
            cpu,
            cpuacct,
            memory,
        } => {
            let p = cpuacct.join("cpuacct.usage");
            let usage = buf.read(&p).and_then(|t| parse_u64(&p, t, "cpuacct.usage"));
            s.cpu_time = tally.keep(usage)?.map(|v| v as f64 / 1e9);

            if let Some(cpu) = cpu {
                let p = cpu.join("cpu.stat");
                if let Some(t) = read_optional(buf, &p)? {
                    let throttled = flat_keyed(&p, t, "throttled_time");
                    s.throttled = tally.keep(throttled)?.flatten().map(|v| v as f64 / 1e9);
                }
                let p = cpu.join("cpu.cfs_quota_us");
                let quota = match read_optional(buf, &p)? {
                    Some(t) => {
                        let t = t.trim();
                        let q = t.parse::<i64>().map_err(|_| {
                            HostError::entry(&p, u64_reason(t.trim_start_matches('-')), t)
                        });
                        tally.keep(q)?
                    }
                    None => None,
                };
                if let Some(quota) = quota.filter(|&q| q > 0) {
                    let p = cpu.join("cpu.cfs_period_us");
                    let period = buf.read(&p).and_then(|t| parse_u64(&p, t, "cfs_period_us"));
                    if let Some(period) = tally.keep(period)?.filter(|&p| p > 0) {
                        s.cpu_limit = Some(quota as f64 / period as f64);
                    }
                }
            }

            let p = memory.join("memory.usage_in_bytes");
            let usage = buf
                .read(&p)
                .and_then(|t| parse_u64(&p, t, "memory.usage_in_bytes"));
            s.mem_usage = tally.keep(usage)?;

            let p = memory.join("memory.limit_in_bytes");
            if let Some(t) = read_optional(buf, &p)? {
                let limit = parse_u64(&p, t, "memory.limit_in_bytes");
                s.mem_limit = tally.keep(limit)?.filter(|&l| l < V1_UNLIMITED);
            }

            let p = memory.join("memory.stat");
            let inactive = buf.read(&p).and_then(|t| {
                Ok(match flat_keyed(&p, t, "total_inactive_file")? {
                    Some(v) => v,
                    None => flat_keyed(&p, t, "inactive_file")?.unwrap_or(0),
                })
            });
            s.working_set = working_set(s.mem_usage, tally.keep(inactive)?);
        }
    }
    Ok(s)
}

pub(crate) struct ContainerCollector {
    proc: PathBuf,
    root: PathBuf,
    buf: FileBuf,
    layout: Option<Layout>,
    names: [Arc<str>; 6],
}

impl ContainerCollector {
    pub(crate) fn new(proc: &Path, cgroup_root: &Path) -> Self {
        ContainerCollector {
            proc: proc.to_path_buf(),
            root: cgroup_root.to_path_buf(),
            buf: FileBuf::new(),
            layout: None,
            names: [
                name(CPU_TIME),
                name(CPU_THROTTLED),
                name(CPU_LIMIT),
                name(MEM_USAGE),
                name(MEM_LIMIT),
                name(MEM_WORKING_SET),
            ],
        }
    }

    /// The layout found (after the first successful poll).
    #[cfg(test)]
    pub(crate) fn layout(&self) -> Option<&Layout> {
        self.layout.as_ref()
    }
}

impl Collector for ContainerCollector {
    fn name(&self) -> &'static str {
        "container"
    }

    fn specs(&self) -> Vec<InstrumentSpec> {
        vec![
            InstrumentSpec::new(
                CPU_TIME,
                InstrumentKind::Counter,
                "s",
                "CPU time consumed by remora's container (its cgroup).",
            ),
            InstrumentSpec::new(
                CPU_THROTTLED,
                InstrumentKind::Counter,
                "s",
                "Time remora's container was throttled by its CPU limit.",
            ),
            InstrumentSpec::new(
                CPU_LIMIT,
                InstrumentKind::UpDownCounter,
                "{cpu}",
                "CPU limit of remora's container in cores (absent when unlimited).",
            ),
            InstrumentSpec::new(
                MEM_USAGE,
                InstrumentKind::UpDownCounter,
                "By",
                "Memory used by remora's container, page cache included.",
            ),
            InstrumentSpec::new(
                MEM_LIMIT,
                InstrumentKind::UpDownCounter,
                "By",
                "Memory limit of remora's container (absent when unlimited).",
            ),
            InstrumentSpec::new(
                MEM_WORKING_SET,
                InstrumentKind::UpDownCounter,
                "By",
                "Working set of remora's container: usage minus inactive file pages, as the kubelet computes it.",
            ),
        ]
    }

    fn collect(&mut self, out: &mut Vec<Family>, tally: &mut Tally) -> Result<(), HostError> {
        let layout = match self.layout.take() {
            Some(l) => l,
            None => detect(&mut self.buf, &self.proc, &self.root, tally)?,
        };
        let s = read_stats(&mut self.buf, &layout, tally)?;
        // Keep the layout only while it works; a failure re-detects next time.
        self.layout = Some(layout);
        let [cpu_time, throttled, cpu_limit, usage, limit, ws] = &self.names;
        let mut push = |n: &Arc<str>, v: f64| {
            out.push(Family {
                name: n.clone(),
                series: vec![series0(v)],
            })
        };
        let values = [
            (cpu_time, s.cpu_time),
            (throttled, s.throttled),
            (cpu_limit, s.cpu_limit),
            (usage, s.mem_usage.map(|v| v as f64)),
            (limit, s.mem_limit.map(|v| v as f64)),
            (ws, s.working_set.map(|v| v as f64)),
        ];
        for (n, v) in values {
            if let Some(v) = v {
                push(n, v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
