//! `cpu`: time per logical CPU and mode, utilization between polls and the
//! logical CPU count, from `<proc>/stat`.
//!
//! Modes follow the semantic conventions: `user`, `nice`, `system`, `idle`,
//! `iowait`, `interrupt` (hard + soft interrupts) and `steal`. Guest time is
//! already part of `user`/`nice` in the kernel's accounting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use opentelemetry::{Key, KeyValue, Value};

use super::read::{clock_ticks, series0, FileBuf, HostError};
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

/// Parses the `cpuN` lines of `/proc/stat` into `out` as (N, times).
pub(crate) fn parse_stat(
    path: &Path,
    text: &str,
    out: &mut Vec<(u32, CpuTimes)>,
) -> Result<(), HostError> {
    out.clear();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let Some((num, fields)) = rest.split_once(' ') else {
            continue;
        };
        // "cpu " (the total) has an empty number.
        let Ok(n) = num.parse::<u32>() else {
            continue;
        };
        let mut raw = [0u64; 8];
        let mut count = 0;
        for (slot, f) in raw.iter_mut().zip(fields.split_ascii_whitespace()) {
            *slot = f
                .parse()
                .map_err(|_| HostError::parse(path, format!("cpu{n}: {f:?} is not a number")))?;
            count += 1;
        }
        if count < 4 {
            return Err(HostError::parse(path, format!("cpu{n}: too few fields")));
        }
        // user nice system idle iowait irq softirq steal
        let t = [
            raw[0],
            raw[1],
            raw[2],
            raw[3],
            raw[4],
            raw[5] + raw[6],
            raw[7],
        ];
        out.push((n, t));
    }
    if out.is_empty() {
        return Err(HostError::parse(path, "no cpuN lines"));
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
            buf: FileBuf::new(),
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

    fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), HostError> {
        let text = self.buf.read(&self.stat)?;
        parse_stat(&self.stat, text, &mut self.cur)?;

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
        parse_stat(Path::new("stat"), STAT, &mut out).unwrap();
        assert_eq!(
            out,
            vec![(0, [10, 0, 2, 10, 1, 1, 0]), (1, [20, 0, 4, 10, 1, 1, 0])]
        );
        assert!(parse_stat(Path::new("stat"), "cpu0 x y\n", &mut out).is_err());
        assert!(parse_stat(Path::new("stat"), "intr 1\n", &mut out).is_err());
        // Old kernels: only four fields.
        parse_stat(Path::new("stat"), "cpu0 1 2 3 4\n", &mut out).unwrap();
        assert_eq!(out, vec![(0, [1, 2, 3, 4, 0, 0, 0])]);
    }

    #[test]
    fn times_then_utilization_from_deltas() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stat"), STAT).unwrap();
        let mut c = CpuCollector::new(dir.path());
        c.ticks = 100.0;
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
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
        c.collect(&mut out).unwrap();
        let names: Vec<&str> = out.iter().map(|f| &*f.name).collect();
        assert_eq!(names, vec![TIME, UTILIZATION, LOGICAL_COUNT]);
        assert_eq!(value(&out[1], 0, "user"), 0.25);
        assert_eq!(value(&out[1], 0, "idle"), 0.75);
        // cpu1 did not move: no utilization for it.
        assert_eq!(out[1].series.len(), 7);
    }
}
