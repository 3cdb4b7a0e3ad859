//! `network`: bytes, packets, errors and drops per interface and direction,
//! from `<proc>/net/dev`.
//!
//! `/proc/net/dev` lists the interfaces of the reader's network namespace: in
//! a pod these are the pod's interfaces (shared by all its containers), not the
//! node's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use opentelemetry::{Key, KeyValue, Value};
use regex::Regex;

use super::read::{FileBuf, HostError};
use super::{name, under, Collector};
use crate::model::{Family, InstrumentKind, InstrumentSpec, Series};

pub(crate) const IO: &str = "system.network.io";
pub(crate) const PACKETS: &str = "system.network.packet.count";
pub(crate) const ERRORS: &str = "system.network.errors";
pub(crate) const DROPPED: &str = "system.network.packet.dropped";

/// Counters of one interface: [bytes, packets, errors, dropped] x [receive, transmit].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct IfStats {
    pub rx: [u64; 4],
    pub tx: [u64; 4],
}

/// Parses one interface line of `/proc/net/dev`; `None` for header lines.
pub(crate) fn parse_line<'a>(
    path: &Path,
    line: &'a str,
) -> Result<Option<(&'a str, IfStats)>, HostError> {
    let Some((iface, rest)) = line.split_once(':') else {
        return Ok(None);
    };
    let iface = iface.trim();
    let mut f = [0u64; 16];
    let mut n = 0;
    for (slot, v) in f.iter_mut().zip(rest.split_ascii_whitespace()) {
        *slot = v
            .parse()
            .map_err(|_| HostError::parse(path, format!("{iface}: {v:?} is not a number")))?;
        n += 1;
    }
    if n < 12 {
        return Err(HostError::parse(path, format!("{iface}: too few fields")));
    }
    // rx: bytes packets errs drop fifo frame compressed multicast, then tx: bytes packets errs drop ...
    Ok(Some((
        iface,
        IfStats {
            rx: [f[0], f[1], f[2], f[3]],
            tx: [f[8], f[9], f[10], f[11]],
        },
    )))
}

pub(crate) struct NetworkCollector {
    path: PathBuf,
    buf: FileBuf,
    devices_exclude: Regex,
    /// Interned interface names.
    names: HashMap<Box<str>, Value>,
    families: [Arc<str>; 4],
}

impl NetworkCollector {
    pub(crate) fn new(proc: &Path, devices_exclude: Regex) -> Self {
        NetworkCollector {
            path: under(proc, "net/dev"),
            buf: FileBuf::new(),
            devices_exclude,
            names: HashMap::new(),
            families: [name(IO), name(PACKETS), name(ERRORS), name(DROPPED)],
        }
    }
}

impl Collector for NetworkCollector {
    fn name(&self) -> &'static str {
        "network"
    }

    fn specs(&self) -> Vec<InstrumentSpec> {
        vec![
            InstrumentSpec::new(
                IO,
                InstrumentKind::Counter,
                "By",
                "Bytes transmitted and received per interface.",
            ),
            InstrumentSpec::new(
                PACKETS,
                InstrumentKind::Counter,
                "{packet}",
                "Packets transmitted and received per interface.",
            ),
            InstrumentSpec::new(
                ERRORS,
                InstrumentKind::Counter,
                "{error}",
                "Network errors per interface.",
            ),
            InstrumentSpec::new(
                DROPPED,
                InstrumentKind::Counter,
                "{packet}",
                "Packets dropped without an error per interface.",
            ),
        ]
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), HostError> {
        let text = self.buf.read(&self.path)?;
        let mut series: [Vec<Series>; 4] = Default::default();
        let mut seen = 0usize;
        for line in text.lines() {
            let Some((iface, st)) = parse_line(&self.path, line)? else {
                continue;
            };
            if self.devices_exclude.is_match(iface) {
                continue;
            }
            seen += 1;
            let value = match self.names.get(iface) {
                Some(v) => v.clone(),
                None => {
                    let v = Value::from(Arc::<str>::from(iface));
                    self.names.insert(iface.into(), v.clone());
                    v
                }
            };
            for (dir, vals) in [("receive", st.rx), ("transmit", st.tx)] {
                for (s, v) in series.iter_mut().zip(vals) {
                    s.push(Series::new(
                        vec![
                            KeyValue::new(
                                Key::from_static_str("network.interface.name"),
                                value.clone(),
                            ),
                            KeyValue::new(Key::from_static_str("network.io.direction"), dir),
                        ],
                        v as f64,
                    ));
                }
            }
        }
        // Interfaces come and go (veth pairs): forget names no longer seen.
        if self.names.len() > 2 * seen + 16 {
            self.names.clear();
        }
        for (n, s) in self.families.iter().zip(series) {
            out.push(Family {
                name: n.clone(),
                series: s,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:    3293      31    0    0    0     0          0         0     3293      31    0    0    0     0       0          0\n  \
eth0: 306504844   15457    1    2    0     0          0         0  1089615   12599    3    4    0     0       0          0\n";

    #[test]
    fn parses_lines() {
        let p = Path::new("dev");
        assert_eq!(parse_line(p, "Inter-|   Receive").unwrap(), None);
        let (i, s) = parse_line(p, DEV.lines().nth(3).unwrap()).unwrap().unwrap();
        assert_eq!(i, "eth0");
        assert_eq!(s.rx, [306504844, 15457, 1, 2]);
        assert_eq!(s.tx, [1089615, 12599, 3, 4]);
        assert!(parse_line(p, "eth0: 1 2 3").is_err());
        assert!(parse_line(p, "eth0: 1 2 3 x 5 6 7 8 9 10 11 12").is_err());
    }

    #[test]
    fn families_with_exclusion() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("net/dev"), DEV).unwrap();
        let mut c = NetworkCollector::new(dir.path(), Regex::new("^lo$").unwrap());
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        let names: Vec<&str> = out.iter().map(|f| &*f.name).collect();
        assert_eq!(names, vec![IO, PACKETS, ERRORS, DROPPED]);
        for f in &out {
            assert_eq!(f.series.len(), 2);
            assert_eq!(f.series[0].attributes[0].value.as_str(), "eth0");
            assert_eq!(f.series[0].attributes[1].value.as_str(), "receive");
            assert_eq!(f.series[1].attributes[1].value.as_str(), "transmit");
        }
        assert_eq!(out[0].series[1].value, 1089615.0);
        assert_eq!(out[3].series[0].value, 2.0);
    }
}
