//! `memory`: node memory by state, its limit and utilization, available
//! memory and swap, from `<proc>/meminfo` (values in kB, meaning KiB).
//!
//! States follow the semantic conventions: `used` is `MemTotal - MemAvailable`
//! (older kernels without `MemAvailable`: `MemTotal - MemFree - Buffers -
//! Cached`), `free` is `MemFree`, `buffers` is `Buffers`, `cached` is `Cached`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::read::{series0, series1, FileBuf, HostError};
use super::{name, under, Collector};
use crate::model::{Family, InstrumentKind, InstrumentSpec};

pub(crate) const USAGE: &str = "system.memory.usage";
pub(crate) const LIMIT: &str = "system.memory.limit";
pub(crate) const UTILIZATION: &str = "system.memory.utilization";
pub(crate) const AVAILABLE: &str = "system.memory.linux.available";
pub(crate) const PAGING_USAGE: &str = "system.paging.usage";

/// The fields of `/proc/meminfo` remora uses, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct MemInfo {
    pub total: u64,
    pub free: u64,
    pub available: Option<u64>,
    pub buffers: u64,
    pub cached: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

/// Parses `/proc/meminfo`.
pub(crate) fn parse_meminfo(path: &Path, text: &str) -> Result<MemInfo, HostError> {
    let mut m = MemInfo::default();
    let mut have_total = false;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => {
                have_total = true;
                &mut m.total
            }
            "MemFree" => &mut m.free,
            "MemAvailable" => m.available.insert(0),
            "Buffers" => &mut m.buffers,
            "Cached" => &mut m.cached,
            "SwapTotal" => &mut m.swap_total,
            "SwapFree" => &mut m.swap_free,
            _ => continue,
        };
        let mut it = rest.split_ascii_whitespace();
        let v: u64 = it
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| HostError::parse(path, format!("{key}: not a number")))?;
        *slot = match it.next() {
            Some("kB") => v.saturating_mul(1024),
            _ => v,
        };
    }
    if !have_total {
        return Err(HostError::parse(path, "no MemTotal"));
    }
    Ok(m)
}

impl MemInfo {
    /// Bytes in use: `MemTotal - MemAvailable`.
    pub(crate) fn used(&self) -> u64 {
        match self.available {
            Some(a) => self.total.saturating_sub(a),
            None => self
                .total
                .saturating_sub(self.free)
                .saturating_sub(self.buffers)
                .saturating_sub(self.cached),
        }
    }
}

pub(crate) struct MemoryCollector {
    meminfo: PathBuf,
    buf: FileBuf,
    n_usage: Arc<str>,
    n_limit: Arc<str>,
    n_util: Arc<str>,
    n_avail: Arc<str>,
    n_paging: Arc<str>,
}

impl MemoryCollector {
    pub(crate) fn new(proc: &Path) -> Self {
        MemoryCollector {
            meminfo: under(proc, "meminfo"),
            buf: FileBuf::new(),
            n_usage: name(USAGE),
            n_limit: name(LIMIT),
            n_util: name(UTILIZATION),
            n_avail: name(AVAILABLE),
            n_paging: name(PAGING_USAGE),
        }
    }
}

impl Collector for MemoryCollector {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn specs(&self) -> Vec<InstrumentSpec> {
        vec![
            InstrumentSpec::new(
                USAGE,
                InstrumentKind::UpDownCounter,
                "By",
                "Node memory in use by state.",
            ),
            InstrumentSpec::new(
                LIMIT,
                InstrumentKind::UpDownCounter,
                "By",
                "Total memory of the node.",
            ),
            InstrumentSpec::new(
                UTILIZATION,
                InstrumentKind::Gauge,
                "1",
                "Fraction of node memory by state.",
            ),
            InstrumentSpec::new(
                AVAILABLE,
                InstrumentKind::UpDownCounter,
                "By",
                "Estimate of node memory available for starting new applications (MemAvailable).",
            ),
            InstrumentSpec::new(
                PAGING_USAGE,
                InstrumentKind::UpDownCounter,
                "By",
                "Node swap space by state.",
            ),
        ]
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), HostError> {
        let text = self.buf.read(&self.meminfo)?;
        let m = parse_meminfo(&self.meminfo, text)?;
        let states = [
            ("used", m.used()),
            ("free", m.free),
            ("buffers", m.buffers),
            ("cached", m.cached),
        ];
        const KEY: &str = "system.memory.state";
        out.push(Family {
            name: self.n_usage.clone(),
            series: states
                .iter()
                .map(|&(s, v)| series1(KEY, s, v as f64))
                .collect(),
        });
        out.push(Family {
            name: self.n_limit.clone(),
            series: vec![series0(m.total as f64)],
        });
        if m.total > 0 {
            let total = m.total as f64;
            out.push(Family {
                name: self.n_util.clone(),
                series: states
                    .iter()
                    .map(|&(s, v)| series1(KEY, s, v as f64 / total))
                    .collect(),
            });
        }
        if let Some(a) = m.available {
            out.push(Family {
                name: self.n_avail.clone(),
                series: vec![series0(a as f64)],
            });
        }
        const PKEY: &str = "system.paging.state";
        out.push(Family {
            name: self.n_paging.clone(),
            series: vec![
                series1(
                    PKEY,
                    "used",
                    m.swap_total.saturating_sub(m.swap_free) as f64,
                ),
                series1(PKEY, "free", m.swap_free as f64),
            ],
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:        1000 kB\n\
MemFree:          100 kB\n\
MemAvailable:     600 kB\n\
Buffers:           50 kB\n\
Cached:           300 kB\n\
SwapCached:         0 kB\n\
SwapTotal:        200 kB\n\
SwapFree:         150 kB\n\
HugePages_Total:    0\n";

    #[test]
    fn parses_kib() {
        let m = parse_meminfo(Path::new("meminfo"), MEMINFO).unwrap();
        assert_eq!(m.total, 1_024_000);
        assert_eq!(m.available, Some(614_400));
        assert_eq!(m.used(), 400 * 1024);
        assert_eq!(m.swap_free, 150 * 1024);
        assert!(parse_meminfo(Path::new("m"), "MemFree: 1 kB\n").is_err());
        assert!(parse_meminfo(Path::new("m"), "MemTotal: x kB\n").is_err());
    }

    #[test]
    fn used_without_memavailable() {
        let m = parse_meminfo(
            Path::new("m"),
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 300 kB\n",
        )
        .unwrap();
        assert_eq!(m.used(), 550 * 1024);
    }

    #[test]
    fn families() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meminfo"), MEMINFO).unwrap();
        let mut c = MemoryCollector::new(dir.path());
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        let names: Vec<&str> = out.iter().map(|f| &*f.name).collect();
        assert_eq!(
            names,
            vec![USAGE, LIMIT, UTILIZATION, AVAILABLE, PAGING_USAGE]
        );
        assert_eq!(out[0].series[0].attributes[0].value.as_str(), "used");
        assert_eq!(out[0].series[0].value, 409_600.0);
        assert_eq!(out[2].series[0].value, 0.4);
        assert_eq!(out[4].series[0].value, 51_200.0);
    }
}
