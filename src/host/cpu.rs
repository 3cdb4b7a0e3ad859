//! `cpu`: time per logical CPU and mode, utilization between polls and the
//! logical CPU count, from `<proc>/stat`.
//!
//! Modes follow the semantic conventions: `user`, `nice`, `system`, `idle`,
//! `iowait`, `interrupt` (hard + soft interrupts) and `steal`. Guest time is
//! already part of `user`/`nice` in the kernel's accounting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use opentelemetry::{Key, KeyValue, Value};

use super::read::{
    clock_ticks, series0, u64_reason, utf8_lines, FileBuf, HostError, Reason, Tally,
};
use super::{name, under, Collector};
use crate::model::{Family, InstrumentKind, InstrumentSpec, Series};

pub(crate) const TIME: &str = "system.cpu.time";
pub(crate) const UTILIZATION: &str = "system.cpu.utilization";
pub(crate) const LOGICAL_COUNT: &str = "system.cpu.logical.count";

/// The modes, in the order of [`CpuTimes`].
pub(crate) const MODES: [&str; 7] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "interrupt",
    "steal",
];

/// Ticks per mode of one CPU, in the order of [`MODES`].
pub(crate) type CpuTimes = [u64; 7];

/// Parses the `cpuN` lines of `/proc/stat` into `out` as (N, times). An odd
/// `cpuN` line is dropped and counted in `tally`; no usable line at all is an error.
pub(crate) fn parse_stat(
    path: &Path,
    text: &[u8],
    out: &mut Vec<(u32, CpuTimes)>,
    tally: &mut Tally,
) -> Result<(), HostError> {
    out.clear();
    for line in utf8_lines(text) {
        let Some(line) = line else {
            tally.drop_entry(path, Reason::NonUtf8, "line");
            continue;
        };
        let mut fields = line.split_ascii_whitespace();
        let Some(num) = fields.next().and_then(|f| f.strip_prefix("cpu")) else {
            continue;
        };
        // "cpu" (the total) has no number; other keys are not CPUs.
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(n) = num.parse::<u32>() else {
            tally.drop_entry(path, Reason::Overflow, line);
            continue;
        };
        let mut raw = [0u64; 8];
        let mut count = 0;
        let mut bad = None;
        for (slot, f) in raw.iter_mut().zip(fields) {
            match f.parse() {
                Ok(v) => *slot = v,
                Err(_) => {
                    bad = Some(u64_reason(f));
                    break;
                }
            }
            count += 1;
        }
        if let Some(reason) = bad {
            tally.drop_entry(path, reason, line);
            continue;
        }
        if count < 4 {
            tally.drop_entry(path, Reason::MissingColumn, line);
            continue;
        }
        if out.iter().any(|&(m, _)| m == n) {
            tally.drop_entry(path, Reason::Duplicate, line);
            continue;
        }
        // user nice system idle iowait irq softirq steal
        let t = [
            raw[0],
            raw[1],
            raw[2],
            raw[3],
            raw[4],
            raw[5].saturating_add(raw[6]),
            raw[7],
        ];
        out.push((n, t));
    }
    if out.is_empty() {
        return Err(HostError::parse(path, "no usable cpuN line"));
    }
    Ok(())
}

pub(crate) struct CpuCollector {
    stat: PathBuf,
    buf: FileBuf,
    ticks: f64,
    cur: Vec<(u32, CpuTimes)>,
    /// Previous poll's times, indexed by CPU number.
    prev: Vec<Option<CpuTimes>>,
    mode_values: [Value; 7],
    n_time: Arc<str>,
    n_util: Arc<str>,
    n_count: Arc<str>,
}

impl CpuCollector {
    pub(crate) fn new(proc: &Path) -> Self {
        CpuCollector {
            stat: under(proc, "stat"),
            buf: FileBuf::kept(),
            ticks: clock_ticks(),
            cur: Vec::new(),
            prev: Vec::new(),
            mode_values: MODES.map(Value::from),
            n_time: name(TIME),
            n_util: name(UTILIZATION),
            n_count: name(LOGICAL_COUNT),
        }
    }

    fn attrs(&self, cpu: u32, mode: usize) -> Vec<KeyValue> {
        vec![
            KeyValue::new(Key::from_static_str("cpu.logical_number"), i64::from(cpu)),
            KeyValue::new(
                Key::from_static_str("cpu.mode"),
                self.mode_values[mode].clone(),
            ),
        ]
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn max_series(&self) -> usize {
        let cpus = super::count_lines(&self.stat, |l| l.starts_with(b"cpu"));
        cpus.max(1) * MODES.len()
    }

    fn specs(&self) -> Vec<InstrumentSpec> {
        vec![
            InstrumentSpec::new(
                TIME,
                InstrumentKind::Counter,
                "s",
                "Seconds each logical CPU spent on each mode.",
            ),
            InstrumentSpec::new(
                UTILIZATION,
                InstrumentKind::Gauge,
                "1",
                "Fraction of time each logical CPU spent on each mode since the previous poll.",
            ),
            InstrumentSpec::new(
                LOGICAL_COUNT,
                InstrumentKind::UpDownCounter,
                "{cpu}",
                "Number of online logical CPUs of the node.",
            ),
        ]
    }

    fn collect(&mut self, out: &mut Vec<Family>, tally: &mut Tally) -> Result<(), HostError> {
        let text = self.buf.read_bytes(&self.stat)?;
        parse_stat(&self.stat, text, &mut self.cur, tally)?;

        let mut time = Vec::with_capacity(self.cur.len() * MODES.len());
        let mut util = Vec::new();
        for &(n, t) in &self.cur {
            for (m, &ticks) in t.iter().enumerate() {
                time.push(Series::new(self.attrs(n, m), ticks as f64 / self.ticks));
            }
            let idx = n as usize;
            if let Some(Some(p)) = self.prev.get(idx) {
                let mut deltas = [0u64; 7];
                for ((d, c), p) in deltas.iter_mut().zip(&t).zip(p) {
                    *d = c.saturating_sub(*p);
                }
                let total: u64 = deltas.iter().sum();
                if total > 0 {
                    for (m, d) in deltas.iter().enumerate() {
                        util.push(Series::new(self.attrs(n, m), *d as f64 / total as f64));
                    }
                }
            }
        }
        for p in self.prev.iter_mut() {
            *p = None;
        }
        for &(n, t) in &self.cur {
            let idx = n as usize;
            if self.prev.len() <= idx {
                self.prev.resize(idx + 1, None);
            }
            self.prev[idx] = Some(t);
        }

        out.push(Family {
            name: self.n_time.clone(),
            series: time,
        });
        if !util.is_empty() {
            out.push(Family {
                name: self.n_util.clone(),
                series: util,
            });
        }
        out.push(Family {
            name: self.n_count.clone(),
            series: vec![series0(self.cur.len() as f64)],
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  30 0 6 20 2 1 1 0 0 0\n\
cpu0 10 0 2 10 1 1 0 0 0 0\n\
cpu1 20 0 4 10 1 0 1 0 0 0\n\
intr 1 2 3\nctxt 5\nbtime 1700000000\n";

    fn value(f: &Family, cpu: i64, mode: &str) -> f64 {
        f.series
            .iter()
            .find(|s| {
                s.attributes.iter().any(|kv| {
                    kv.key.as_str() == "cpu.logical_number" && kv.value == Value::I64(cpu)
                }) && s
                    .attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "cpu.mode" && kv.value.as_str() == mode)
            })
            .unwrap()
            .value
    }

    #[test]
    fn parses_per_cpu_lines() {
        let mut out = Vec::new();
        let p = Path::new("stat");
        let mut t = Tally::default();
        parse_stat(p, STAT.as_bytes(), &mut out, &mut t).unwrap();
        assert_eq!(
            out,
            vec![(0, [10, 0, 2, 10, 1, 1, 0]), (1, [20, 0, 4, 10, 1, 1, 0])]
        );
        assert!(t.is_empty());
        assert!(parse_stat(p, b"cpu0 x y\n", &mut out, &mut t).is_err());
        assert!(parse_stat(p, b"intr 1\n", &mut out, &mut t).is_err());
        // Old kernels: only four fields.
        parse_stat(p, b"cpu0 1 2 3 4\n", &mut out, &mut t).unwrap();
        assert_eq!(out, vec![(0, [1, 2, 3, 4, 0, 0, 0])]);
    }

    #[test]
    fn odd_lines_drop_one_cpu_each() {
        let text: &[u8] = b"cpu  1 1 1 1\n\
cpu0 10 0 2 10 1 1 0 0 0 0\n\
cpu1 20 0\n\
cpu2 1 2 x 4 5\n\
cpu3 1 2 18446744073709551616 4\n\
cpu99999999999 1 2 3 4\n\
cpu0 9 9 9 9\n\
cpu\xff4 1 2 3 4\n\
cpu5 1 2 3 4 5 18446744073709551615 1 0\n\
intr 1 2 3\n";
        let mut out = Vec::new();
        let mut t = Tally::default();
        parse_stat(Path::new("stat"), text, &mut out, &mut t).unwrap();
        let cpus: Vec<u32> = out.iter().map(|&(n, _)| n).collect();
        assert_eq!(cpus, vec![0, 5]);
        // irq + softirq saturate rather than wrap.
        assert_eq!(out[1].1[5], u64::MAX);
        assert_eq!(t.get(Reason::MissingColumn), 1);
        assert_eq!(t.get(Reason::InvalidNumber), 1);
        assert_eq!(t.get(Reason::Overflow), 2);
        assert_eq!(t.get(Reason::Duplicate), 1);
        assert_eq!(t.get(Reason::NonUtf8), 1);
    }

    #[test]
    fn times_then_utilization_from_deltas() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stat"), STAT).unwrap();
        let mut c = CpuCollector::new(dir.path());
        c.ticks = 100.0;
        let mut out = Vec::new();
        c.collect(&mut out, &mut Tally::default()).unwrap();
        let names: Vec<&str> = out.iter().map(|f| &*f.name).collect();
        assert_eq!(names, vec![TIME, LOGICAL_COUNT]);
        assert_eq!(out[0].series.len(), 14);
        assert_eq!(value(&out[0], 1, "user"), 0.2);
        assert_eq!(value(&out[0], 0, "interrupt"), 0.01);
        assert_eq!(out[1].series[0].value, 2.0);

        // cpu0: +10 user, +30 idle -> 0.25 / 0.75.
        std::fs::write(
            dir.path().join("stat"),
            "cpu0 20 0 2 40 1 1 0 0 0 0\ncpu1 20 0 4 10 1 0 1 0 0 0\n",
        )
        .unwrap();
        out.clear();
        c.collect(&mut out, &mut Tally::default()).unwrap();
        let names: Vec<&str> = out.iter().map(|f| &*f.name).collect();
        assert_eq!(names, vec![TIME, UTILIZATION, LOGICAL_COUNT]);
        assert_eq!(value(&out[1], 0, "user"), 0.25);
        assert_eq!(value(&out[1], 0, "idle"), 0.75);
        // cpu1 did not move: no utilization for it.
        assert_eq!(out[1].series.len(), 7);
    }
}
