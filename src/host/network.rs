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

use super::read::{u64_reason, utf8_lines, FileBuf, HostError, Reason, Tally};
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

/// Parses one interface line of `/proc/net/dev`; `None` for the header lines
/// (they hold `|`). The name ends at the LAST colon: older kernels list
/// aliases such as `ibr10:30:`, and a counter may touch the colon (`eth0:123`).
/// An odd line is a [`HostError::Entry`].
pub(crate) fn parse_line<'a>(
    path: &Path,
    line: &'a str,
) -> Result<Option<(&'a str, IfStats)>, HostError> {
    if line.contains('|') {
        return Ok(None);
    }
    let Some((iface, rest)) = line.rsplit_once(':') else {
        return Err(HostError::entry(path, Reason::MalformedLine, line));
    };
    let iface = iface.trim();
    if iface.is_empty() {
        return Err(HostError::entry(path, Reason::MalformedLine, line));
    }
    let mut f = [0u64; 16];
    let mut n = 0;
    for (slot, v) in f.iter_mut().zip(rest.split_ascii_whitespace()) {
        *slot = v.parse().map_err(|_| {
            HostError::entry(
                path,
                u64_reason(v),
                format!("{iface}: {v:?} is not a counter"),
            )
        })?;
        n += 1;
    }
    if n < 12 {
        return Err(HostError::entry(
            path,
            Reason::MissingColumn,
            format!("{iface}: {n} fields"),
        ));
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
            buf: FileBuf::kept(),
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

    fn max_series(&self) -> usize {
        // Two directions per interface line (the two header lines count too).
        2 * super::count_lines(&self.path, |l| l.contains(&b':'))
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

    fn collect(&mut self, out: &mut Vec<Family>, tally: &mut Tally) -> Result<(), HostError> {
        let text = self.buf.read_bytes(&self.path)?;
        let mut series: [Vec<Series>; 4] = Default::default();
        let mut seen: Vec<&str> = Vec::new();
        for line in utf8_lines(text) {
            let Some(line) = line else {
                tally.drop_entry(&self.path, Reason::NonUtf8, "line");
                continue;
            };
            let (iface, st) = match parse_line(&self.path, line) {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                Err(e) => {
                    tally.absorb(e)?;
                    continue;
                }
            };
            if self.devices_exclude.is_match(iface) {
                continue;
            }
            if seen.contains(&iface) {
                tally.drop_entry(&self.path, Reason::Duplicate, iface);
                continue;
            }
            seen.push(iface);
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
        if self.names.len() > 2 * seen.len() + 16 {
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
        let reason = |line| match parse_line(p, line).unwrap_err() {
            HostError::Entry { reason, .. } => reason,
            e => panic!("{e}"),
        };
        assert_eq!(reason("eth0: 1 2 3"), Reason::MissingColumn);
        assert_eq!(
            reason("eth0: 1 2 3 x 5 6 7 8 9 10 11 12"),
            Reason::InvalidNumber
        );
        assert_eq!(
            reason("eth0: 1 2 3 18446744073709551616 5 6 7 8 9 10 11 12"),
            Reason::Overflow
        );
        assert_eq!(reason("  eth0"), Reason::MalformedLine);
        assert_eq!(
            reason("  : 1 2 3 4 5 6 7 8 9 10 11 12"),
            Reason::MalformedLine
        );
        // An alias line of older kernels: the name ends at the last colon.
        let (i, s) = parse_line(p, "ibr10:30: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16")
            .unwrap()
            .unwrap();
        assert_eq!(i, "ibr10:30");
        assert_eq!(s.tx, [9, 10, 11, 12]);
        // A counter touching the colon.
        let (i, s) = parse_line(p, "eth0:123 2 3 4 5 6 7 8 9 10 11 12")
            .unwrap()
            .unwrap();
        assert_eq!((i, s.rx[0]), ("eth0", 123));
    }

    #[test]
    fn odd_lines_drop_one_interface_each() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        let mut text = DEV.as_bytes().to_vec();
        text.extend_from_slice(
            b"ibr10:30: 5 6 7 8 0 0 0 0 9 10 11 12 0 0 0 0\n\
  eth1: 1 2 3\n\
  eth2: 18446744073709551616 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
  eth\xff3: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
  eth0: 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n\
  eth4\n",
        );
        std::fs::write(dir.path().join("net/dev"), text).unwrap();
        let mut c = NetworkCollector::new(dir.path(), Regex::new("^lo$").unwrap());
        let mut out = Vec::new();
        let mut t = Tally::default();
        c.collect(&mut out, &mut t).unwrap();
        let ifaces: Vec<String> = out[0]
            .series
            .iter()
            .map(|s| s.attributes[0].value.as_str().into_owned())
            .collect();
        assert_eq!(ifaces, ["eth0", "eth0", "ibr10:30", "ibr10:30"]);
        assert_eq!(out[0].series[0].value, 306504844.0);
        assert_eq!(out[0].series[2].value, 5.0);
        assert_eq!(out[3].series[3].value, 12.0);
        assert_eq!(t.get(Reason::MissingColumn), 1);
        assert_eq!(t.get(Reason::Overflow), 1);
        assert_eq!(t.get(Reason::NonUtf8), 1);
        assert_eq!(t.get(Reason::Duplicate), 1);
        assert_eq!(t.get(Reason::MalformedLine), 1);
    }

    #[test]
    fn families_with_exclusion() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("net/dev"), DEV).unwrap();
        let mut c = NetworkCollector::new(dir.path(), Regex::new("^lo$").unwrap());
        let mut out = Vec::new();
        c.collect(&mut out, &mut Tally::default()).unwrap();
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
