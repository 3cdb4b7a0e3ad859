//! `memory`: node memory by state, its limit and utilization, available
//! memory and swap, from `<proc>/meminfo` (values in kB, meaning KiB).
//!
//! States follow the semantic conventions: `used` is `MemTotal - MemAvailable`
//! (older kernels without `MemAvailable`: `MemTotal - MemFree - Buffers -
//! Cached`), `free` is `MemFree`, `buffers` is `Buffers`, `cached` is `Cached`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::read::{series0, series1, u64_reason, utf8_lines, FileBuf, HostError, Reason, Tally};
use super::{name, under, Collector};
use crate::model::{Family, InstrumentKind, InstrumentSpec};

pub(crate) const USAGE: &str = "system.memory.usage";
pub(crate) const LIMIT: &str = "system.memory.limit";
pub(crate) const UTILIZATION: &str = "system.memory.utilization";
pub(crate) const AVAILABLE: &str = "system.memory.linux.available";
pub(crate) const PAGING_USAGE: &str = "system.paging.usage";

/// The fields of `/proc/meminfo` remora uses, in bytes; `None` when the line
/// is absent or was dropped as odd.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct MemInfo {
    pub total: u64,
    pub free: Option<u64>,
    pub available: Option<u64>,
    pub buffers: Option<u64>,
    pub cached: Option<u64>,
    pub swap_total: Option<u64>,
    pub swap_free: Option<u64>,
}

/// Parses `/proc/meminfo`. An odd line of a field remora uses is dropped and
/// counted in `tally` (that field's series disappear); without `MemTotal`
/// nothing can be reported, which is an error.
pub(crate) fn parse_meminfo(
    path: &Path,
    text: &[u8],
    tally: &mut Tally,
) -> Result<MemInfo, HostError> {
    let mut m = MemInfo::default();
    let mut total = None;
    for line in utf8_lines(text) {
        let Some(line) = line else {
            tally.drop_entry(path, Reason::NonUtf8, "line");
            continue;
        };
        let Some((key, rest)) = line.split_once(':') else {
            tally.drop_entry(path, Reason::MalformedLine, line);
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemFree" => &mut m.free,
            "MemAvailable" => &mut m.available,
            "Buffers" => &mut m.buffers,
            "Cached" => &mut m.cached,
            "SwapTotal" => &mut m.swap_total,
            "SwapFree" => &mut m.swap_free,
            _ => continue,
        };
        if slot.is_some() {
            tally.drop_entry(path, Reason::Duplicate, line);
            continue;
        }
        let mut it = rest.split_ascii_whitespace();
        let Some(v) = it.next() else {
            tally.drop_entry(path, Reason::MissingColumn, line);
            continue;
        };
        let v: u64 = match v.parse() {
            Ok(v) => v,
            Err(_) => {
                tally.drop_entry(path, u64_reason(v), line);
                continue;
            }
        };
        let bytes = match it.next() {
            Some("kB") => v.checked_mul(1024),
            _ => Some(v),
        };
        match bytes {
            Some(b) => *slot = Some(b),
            None => tally.drop_entry(path, Reason::Overflow, line),
        }
    }
    m.total = total.ok_or_else(|| HostError::parse(path, "no usable MemTotal line"))?;
    Ok(m)
}

impl MemInfo {
    /// Bytes in use: `MemTotal - MemAvailable` (without `MemAvailable`:
    /// `MemTotal - MemFree - Buffers - Cached`).
    pub(crate) fn used(&self) -> Option<u64> {
        match self.available {
            Some(a) => Some(self.total.saturating_sub(a)),
            None => Some(
                self.total
                    .saturating_sub(self.free?)
                    .saturating_sub(self.buffers?)
                    .saturating_sub(self.cached?),
            ),
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
            buf: FileBuf::kept(),
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

    fn collect(&mut self, out: &mut Vec<Family>, tally: &mut Tally) -> Result<(), HostError> {
        let text = self.buf.read_bytes(&self.meminfo)?;
        let m = parse_meminfo(&self.meminfo, text, tally)?;
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
                .filter_map(|&(s, v)| Some(series1(KEY, s, v? as f64)))
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
                    .filter_map(|&(s, v)| Some(series1(KEY, s, v? as f64 / total)))
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
        let mut paging = Vec::with_capacity(2);
        if let (Some(t), Some(f)) = (m.swap_total, m.swap_free) {
            paging.push(series1(PKEY, "used", t.saturating_sub(f) as f64));
        }
        if let Some(f) = m.swap_free {
            paging.push(series1(PKEY, "free", f as f64));
        }
        out.push(Family {
            name: self.n_paging.clone(),
            series: paging,
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
        let t = &mut Tally::default();
        let m = parse_meminfo(Path::new("meminfo"), MEMINFO.as_bytes(), t).unwrap();
        assert_eq!(m.total, 1_024_000);
        assert_eq!(m.available, Some(614_400));
        assert_eq!(m.used(), Some(400 * 1024));
        assert_eq!(m.swap_free, Some(150 * 1024));
        assert!(t.is_empty());
        assert!(parse_meminfo(Path::new("m"), b"MemFree: 1 kB\n", t).is_err());
        assert!(parse_meminfo(Path::new("m"), b"MemTotal: x kB\n", t).is_err());
    }

    #[test]
    fn odd_lines_drop_one_field_each() {
        let text: &[u8] = b"MemTotal: 1000 kB\n\
MemFree:\n\
MemAvailable: 18014398509481984 kB\n\
Buffers: 5x kB\n\
Cached: 300 kB\n\
Cached: 301 kB\n\
garbage line\n\
Swap\xffTotal: 1 kB\n\
SwapTotal: 99999999999999999999 kB\n\
SwapFree: 150 kB\n";
        let mut t = Tally::default();
        let m = parse_meminfo(Path::new("meminfo"), text, &mut t).unwrap();
        assert_eq!(
            m,
            MemInfo {
                total: 1_024_000,
                free: None,
                available: None,
                buffers: None,
                cached: Some(307_200),
                swap_total: None,
                swap_free: Some(153_600),
            }
        );
        // Without MemFree and Buffers, "used" cannot be computed.
        assert_eq!(m.used(), None);
        assert_eq!(t.get(Reason::MissingColumn), 1);
        assert_eq!(t.get(Reason::Overflow), 2);
        assert_eq!(t.get(Reason::InvalidNumber), 1);
        assert_eq!(t.get(Reason::Duplicate), 1);
        assert_eq!(t.get(Reason::MalformedLine), 1);
        assert_eq!(t.get(Reason::NonUtf8), 1);
    }

    #[test]
    fn used_without_memavailable() {
        let m = parse_meminfo(
            Path::new("m"),
            b"MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 300 kB\n",
            &mut Tally::default(),
        )
        .unwrap();
        assert_eq!(m.used(), Some(550 * 1024));
    }

    #[test]
    fn families() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meminfo"), MEMINFO).unwrap();
        let mut c = MemoryCollector::new(dir.path());
        let mut out = Vec::new();
        c.collect(&mut out, &mut Tally::default()).unwrap();
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
