//! `load` (`<proc>/loadavg`) and `uptime` (`<proc>/uptime`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::read::{parse_f64, series0, FileBuf, HostError, Reason, Tally};
use super::{name, under, Collector};
use crate::model::{Family, InstrumentKind, InstrumentSpec};

pub(crate) const LOAD_1M: &str = "system.cpu.load_average.1m";
pub(crate) const LOAD_5M: &str = "system.cpu.load_average.5m";
pub(crate) const LOAD_15M: &str = "system.cpu.load_average.15m";
pub(crate) const UPTIME: &str = "system.uptime";

/// Reads the first whitespace-separated field of `<proc>/uptime` (seconds).
/// An odd file is a [`HostError::Entry`].
pub(crate) fn read_uptime(buf: &mut FileBuf, path: &Path) -> Result<f64, HostError> {
    let text = buf.read(path)?;
    let first = text
        .split_ascii_whitespace()
        .next()
        .ok_or_else(|| HostError::entry(path, Reason::MissingColumn, "empty"))?;
    parse_f64(path, first, "uptime")
}

pub(crate) struct LoadCollector {
    path: PathBuf,
    buf: FileBuf,
    names: [Arc<str>; 3],
}

impl LoadCollector {
    pub(crate) fn new(proc: &Path) -> Self {
        LoadCollector {
            path: under(proc, "loadavg"),
            buf: FileBuf::kept(),
            names: [name(LOAD_1M), name(LOAD_5M), name(LOAD_15M)],
        }
    }
}

impl Collector for LoadCollector {
    fn name(&self) -> &'static str {
        "load"
    }

    fn specs(&self) -> Vec<InstrumentSpec> {
        [(LOAD_1M, "1"), (LOAD_5M, "5"), (LOAD_15M, "15")]
            .iter()
            .map(|(n, m)| {
                InstrumentSpec::new(
                    n,
                    InstrumentKind::Gauge,
                    "{thread}",
                    &format!("Node load average over {m} minute(s)."),
                )
            })
            .collect()
    }

    /// Each of the three averages is an entry: an odd one is dropped and
    /// counted, the others are reported.
    fn collect(&mut self, out: &mut Vec<Family>, tally: &mut Tally) -> Result<(), HostError> {
        let text = match self.buf.read(&self.path) {
            Ok(t) => t,
            Err(e) => {
                tally.absorb(e)?;
                return Err(HostError::parse(&self.path, "no usable load average"));
            }
        };
        let mut it = text.split_ascii_whitespace();
        let mut any = false;
        for n in &self.names {
            let v = match it.next() {
                Some(f) => parse_f64(&self.path, f, "load average"),
                None => Err(HostError::entry(&self.path, Reason::MissingColumn, &**n)),
            };
            match v {
                Ok(v) => {
                    any = true;
                    out.push(Family {
                        name: n.clone(),
                        series: vec![series0(v)],
                    });
                }
                Err(e) => tally.absorb(e)?,
            }
        }
        if !any {
            return Err(HostError::parse(&self.path, "no usable load average"));
        }
        Ok(())
    }
}

pub(crate) struct UptimeCollector {
    path: PathBuf,
    buf: FileBuf,
    n_uptime: Arc<str>,
}

impl UptimeCollector {
    pub(crate) fn new(proc: &Path) -> Self {
        UptimeCollector {
            path: under(proc, "uptime"),
            buf: FileBuf::kept(),
            n_uptime: name(UPTIME),
        }
    }
}

impl Collector for UptimeCollector {
    fn name(&self) -> &'static str {
        "uptime"
    }

    fn specs(&self) -> Vec<InstrumentSpec> {
        vec![InstrumentSpec::new(
            UPTIME,
            InstrumentKind::Gauge,
            "s",
            "Time the node has been running.",
        )]
    }

    fn collect(&mut self, out: &mut Vec<Family>, tally: &mut Tally) -> Result<(), HostError> {
        let up = match read_uptime(&mut self.buf, &self.path) {
            Ok(up) => up,
            Err(e) => {
                tally.absorb(e)?;
                return Err(HostError::parse(&self.path, "no usable uptime"));
            }
        };
        out.push(Family {
            name: self.n_uptime.clone(),
            series: vec![series0(up)],
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_and_uptime() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("loadavg"), "1.50 0.75 0.25 2/300 4242\n").unwrap();
        std::fs::write(dir.path().join("uptime"), "12345.67 20000.00\n").unwrap();
        let mut out = Vec::new();
        let t = &mut Tally::default();
        LoadCollector::new(dir.path()).collect(&mut out, t).unwrap();
        UptimeCollector::new(dir.path())
            .collect(&mut out, t)
            .unwrap();
        assert!(t.is_empty());
        let got: Vec<(&str, f64)> = out.iter().map(|f| (&*f.name, f.series[0].value)).collect();
        assert_eq!(
            got,
            vec![
                (LOAD_1M, 1.5),
                (LOAD_5M, 0.75),
                (LOAD_15M, 0.25),
                (UPTIME, 12345.67)
            ]
        );
    }

    #[test]
    fn malformed_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("loadavg"), "1.50\n").unwrap();
        std::fs::write(dir.path().join("uptime"), "\n").unwrap();
        let mut out = Vec::new();
        let mut t = Tally::default();
        // One usable average out of three: reported, the others counted.
        LoadCollector::new(dir.path())
            .collect(&mut out, &mut t)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((&*out[0].name, out[0].series[0].value), (LOAD_1M, 1.5));
        assert_eq!(t.get(Reason::MissingColumn), 2);
        assert!(UptimeCollector::new(dir.path())
            .collect(&mut out, &mut t)
            .is_err());
        assert_eq!(t.get(Reason::MissingColumn), 3);

        std::fs::write(dir.path().join("loadavg"), "x 1e999 0.25 1/2 3\n").unwrap();
        std::fs::write(dir.path().join("uptime"), b"\xff 1\n").unwrap();
        let mut out = Vec::new();
        let mut t = Tally::default();
        LoadCollector::new(dir.path())
            .collect(&mut out, &mut t)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((&*out[0].name, out[0].series[0].value), (LOAD_15M, 0.25));
        assert_eq!(t.get(Reason::InvalidNumber), 1);
        assert_eq!(t.get(Reason::Overflow), 1);
        assert!(UptimeCollector::new(dir.path())
            .collect(&mut out, &mut t)
            .is_err());
        assert_eq!(t.get(Reason::NonUtf8), 1);
    }
}
