//! `process`: the app's processes, matched by regex on their command line, and
//! remora's own process metrics (the classic Prometheus client set).
//!
//! For each `host.processes` entry, every process whose command line
//! (`<proc>/PID/cmdline`, arguments joined by spaces) matches the regex is
//! summed: CPU time by mode, resident and virtual memory, threads, open file
//! descriptors. `process.uptime` is the age of the oldest matching process and
//! `process.count` the number of matches (0, always emitted, when the app is
//! not running). Processes without a command line (kernel threads, zombies) and
//! remora itself are never matched.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use opentelemetry::{Key, KeyValue, Value};

use super::read::{clock_ticks, page_size, parse_u64, series0, FileBuf, HostError, Reason, Tally};
use super::system::read_uptime;
use super::{name, under, Collector};
use crate::config::ProcessMatcher;
use crate::model::{Family, InstrumentKind, InstrumentSpec, Series};

pub(crate) const CPU_TIME: &str = "process.cpu.time";
pub(crate) const MEM_USAGE: &str = "process.memory.usage";
pub(crate) const MEM_VIRTUAL: &str = "process.memory.virtual";
pub(crate) const THREADS: &str = "process.thread.count";
pub(crate) const FDS: &str = "process.unix.file_descriptor.count";
pub(crate) const UPTIME: &str = "process.uptime";
pub(crate) const COUNT: &str = "process.count";

/// The fields of `/proc/PID/stat` remora uses (ticks and pages as the kernel gives them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PidStat {
    pub utime: u64,
    pub stime: u64,
    pub threads: u64,
    pub starttime: u64,
    pub vsize: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces,
/// parentheses and any byte, so fields are counted from the last `)`. An odd
/// file is a [`HostError::Entry`].
pub(crate) fn parse_pid_stat(path: &Path, text: &[u8]) -> Result<PidStat, HostError> {
    let close = text
        .iter()
        .rposition(|&b| b == b')')
        .ok_or_else(|| HostError::entry(path, Reason::MalformedLine, "no ')'"))?;
    let rest = std::str::from_utf8(&text[close + 1..])
        .map_err(|_| HostError::entry(path, Reason::NonUtf8, "fields"))?;
    let mut f = [0u64; 22];
    let mut n = 0;
    for (i, field) in rest.split_ascii_whitespace().take(22).enumerate() {
        // Fields 0 (state) and 5 (tpgid, may be -1) are not numbers we need.
        if matches!(i, 11 | 12 | 17 | 19 | 20) {
            f[i] = parse_u64(path, field, "stat field")?;
        }
        n += 1;
    }
    if n < 22 {
        return Err(HostError::entry(
            path,
            Reason::MissingColumn,
            "too few fields",
        ));
    }
    Ok(PidStat {
        utime: f[11],
        stime: f[12],
        threads: f[17],
        starttime: f[19],
        vsize: f[20],
    })
}

/// Resident pages from `/proc/PID/statm`. (The rss field of `/proc/PID/stat`
/// is an approximate per-CPU counter on recent kernels; `statm` is what
/// `VmRSS` in `/proc/PID/status` shows.)
pub(crate) fn parse_statm_resident(path: &Path, text: &str) -> Result<u64, HostError> {
    let f = text
        .split_ascii_whitespace()
        .nth(1)
        .ok_or_else(|| HostError::entry(path, Reason::MissingColumn, "too few fields"))?;
    parse_u64(path, f, "resident")
}

/// Turns a NUL-separated `cmdline` into one space-separated string in `out`.
pub(crate) fn join_cmdline(raw: &[u8], out: &mut String) {
    out.clear();
    // Programs that rewrite their title (nginx, postgres) leave NUL padding.
    let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let raw = &raw[..end];
    if raw.is_empty() {
        return;
    }
    for (i, arg) in raw.split(|&b| b == 0).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&String::from_utf8_lossy(arg));
    }
}

/// Counts the entries of a directory (`<proc>/PID/fd`).
fn count_dir(path: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(path)? {
        if e.is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Sums over the processes matched by one matcher.
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    count: u64,
    utime: u64,
    stime: u64,
    rss_pages: u64,
    vsize: u64,
    threads: u64,
    fds: u64,
    fds_unknown: bool,
    oldest_start: Option<u64>,
}

struct Matcher {
    label: Value,
    name: String,
    re: regex::Regex,
    warned_fds: bool,
}

pub(crate) struct ProcessCollector {
    proc: PathBuf,
    uptime_path: PathBuf,
    own_pid: u32,
    ticks: f64,
    page: f64,
    buf: FileBuf,
    path: PathBuf,
    cmd: String,
    matchers: Vec<Matcher>,
    sums: Vec<Sum>,
    hits: Vec<usize>,
    names: [Arc<str>; 7],
}

impl ProcessCollector {
    pub(crate) fn new(proc: &Path, matchers: &[ProcessMatcher]) -> Self {
        ProcessCollector {
            proc: proc.to_path_buf(),
            uptime_path: under(proc, "uptime"),
            own_pid: std::process::id(),
            ticks: clock_ticks(),
            page: page_size(),
            buf: FileBuf::new(),
            path: PathBuf::new(),
            cmd: String::new(),
            matchers: matchers
                .iter()
                .map(|m| Matcher {
                    label: Value::from(Arc::<str>::from(m.name.as_str())),
                    name: m.name.clone(),
                    re: m.cmdline.clone(),
                    warned_fds: false,
                })
                .collect(),
            sums: Vec::new(),
            hits: Vec::new(),
            names: [
                name(CPU_TIME),
                name(MEM_USAGE),
                name(MEM_VIRTUAL),
                name(THREADS),
                name(FDS),
                name(UPTIME),
                name(COUNT),
            ],
        }
    }

    /// Sets `self.path` to `<proc>/<pid>/<file>` without a new allocation.
    fn set_path(&mut self, pid: &std::ffi::OsStr, file: &str) {
        let s: &mut OsString = self.path.as_mut_os_string();
        s.clear();
        s.push(self.proc.as_os_str());
        s.push("/");
        s.push(pid);
        s.push("/");
        s.push(file);
    }

    /// Adds one process to the sums of the matchers in `self.hits`. A process
    /// with an odd `stat` or `statm` is left out and counted.
    fn add_process(&mut self, pid: &std::ffi::OsStr, tally: &mut Tally) -> Result<(), HostError> {
        self.set_path(pid, "stat");
        let st = match self.buf.read_bytes(&self.path) {
            Ok(t) => parse_pid_stat(&self.path, t),
            Err(e) if e.is_gone() => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(st) = tally.keep(st)? else {
            return Ok(());
        };
        self.set_path(pid, "statm");
        let rss_pages = match self.buf.read(&self.path) {
            Ok(t) => parse_statm_resident(&self.path, t),
            Err(e) if e.is_gone() => return Ok(()),
            Err(e) => Err(e),
        };
        let Some(rss_pages) = tally.keep(rss_pages)? else {
            return Ok(());
        };
        self.set_path(pid, "fd");
        let fds = match count_dir(&self.path) {
            Ok(n) => Some(n),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(0),
            Err(_) => None,
        };
        for &i in &self.hits {
            let s = &mut self.sums[i];
            s.count += 1;
            s.utime += st.utime;
            s.stime += st.stime;
            s.rss_pages += rss_pages;
            s.vsize += st.vsize;
            s.threads += st.threads;
            match fds {
                Some(n) => s.fds += n,
                None => s.fds_unknown = true,
            }
            s.oldest_start = Some(s.oldest_start.map_or(st.starttime, |o| o.min(st.starttime)));
        }
        Ok(())
    }
}

impl Collector for ProcessCollector {
    fn name(&self) -> &'static str {
        "process"
    }

    fn max_series(&self) -> usize {
        // Two CPU modes per matcher, one of each other figure.
        2 * self.matchers.len().max(1)
    }

    fn specs(&self) -> Vec<InstrumentSpec> {
        vec![
            InstrumentSpec::new(
                CPU_TIME,
                InstrumentKind::Counter,
                "s",
                "CPU time of the app's matching processes by mode (summed).",
            ),
            InstrumentSpec::new(
                MEM_USAGE,
                InstrumentKind::UpDownCounter,
                "By",
                "Resident memory of the app's matching processes (summed).",
            ),
            InstrumentSpec::new(
                MEM_VIRTUAL,
                InstrumentKind::UpDownCounter,
                "By",
                "Virtual memory of the app's matching processes (summed).",
            ),
            InstrumentSpec::new(
                THREADS,
                InstrumentKind::UpDownCounter,
                "{thread}",
                "Threads of the app's matching processes (summed).",
            ),
            InstrumentSpec::new(
                FDS,
                InstrumentKind::UpDownCounter,
                "{file_descriptor}",
                "Open file descriptors of the app's matching processes (summed).",
            ),
            InstrumentSpec::new(
                UPTIME,
                InstrumentKind::Gauge,
                "s",
                "Age of the oldest of the app's matching processes.",
            ),
            InstrumentSpec::new(
                COUNT,
                InstrumentKind::UpDownCounter,
                "{process}",
                "Number of processes matching the command line (0: the app is not running).",
            ),
        ]
    }

    fn collect(&mut self, out: &mut Vec<Family>, tally: &mut Tally) -> Result<(), HostError> {
        let uptime = read_uptime(&mut self.buf, &self.uptime_path);
        let uptime = tally.keep(uptime)?;
        self.sums.clear();
        self.sums.resize(self.matchers.len(), Sum::default());
        let dir = std::fs::read_dir(&self.proc).map_err(|e| HostError::io(&self.proc, e))?;
        for entry in dir {
            let Ok(entry) = entry else { continue };
            let pid_os = entry.file_name();
            let Some(pid) = pid_os.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == self.own_pid {
                continue;
            }
            self.set_path(&pid_os, "cmdline");
            let raw = match self.buf.read_bytes(&self.path) {
                Ok(r) => r,
                // Gone, or hidden from us: not a process we can match.
                Err(_) => continue,
            };
            join_cmdline(raw, &mut self.cmd);
            if self.cmd.is_empty() {
                continue;
            }
            self.hits.clear();
            for (i, m) in self.matchers.iter().enumerate() {
                if m.re.is_match(&self.cmd) {
                    self.hits.push(i);
                }
            }
            if !self.hits.is_empty() {
                self.add_process(&pid_os, tally)?;
            }
        }

        let n = self.matchers.len();
        let mut fam: [Vec<Series>; 7] = Default::default();
        fam[0].reserve(2 * n);
        for (m, s) in self.matchers.iter_mut().zip(&self.sums) {
            let lv = m.label.clone();
            let label = || KeyValue::new(Key::from_static_str("process_name"), lv.clone());
            let one = |v: f64| Series::new(vec![label()], v);
            for (mode, t) in [("user", s.utime), ("system", s.stime)] {
                fam[0].push(Series::new(
                    vec![
                        label(),
                        KeyValue::new(Key::from_static_str("cpu.mode"), mode),
                    ],
                    t as f64 / self.ticks,
                ));
            }
            fam[1].push(one(s.rss_pages as f64 * self.page));
            fam[2].push(one(s.vsize as f64));
            fam[3].push(one(s.threads as f64));
            if s.fds_unknown {
                if !m.warned_fds {
                    tracing::warn!(
                        process_name = %m.name,
                        "cannot list the open files of a matching process (permission denied); \
                         process.unix.file_descriptor.count is not exported for it"
                    );
                    m.warned_fds = true;
                }
            } else {
                fam[4].push(one(s.fds as f64));
            }
            if let (Some(start), Some(uptime)) = (s.oldest_start, uptime) {
                fam[5].push(one((uptime - start as f64 / self.ticks).max(0.0)));
            }
            fam[6].push(one(s.count as f64));
        }
        for (name, series) in self.names.iter().zip(fam) {
            out.push(Family {
                name: name.clone(),
                series,
            });
        }
        Ok(())
    }
}

const SELF_CPU: &str = "process.cpu";
const SELF_RSS: &str = "process.resident_memory";
const SELF_VSIZE: &str = "process.virtual_memory";
const SELF_FDS: &str = "process.open_fds";
const SELF_MAX_FDS: &str = "process.max_fds";
const SELF_START: &str = "process.start_time";

/// remora's own process metrics, named so that the Prometheus exporter serves
/// the classic client set (`process_cpu_seconds_total`, ...).
pub fn self_process_specs() -> Vec<InstrumentSpec> {
    vec![
        InstrumentSpec::new(
            SELF_CPU,
            InstrumentKind::Counter,
            "s",
            "Total user and system CPU time spent in seconds.",
        ),
        InstrumentSpec::new(
            SELF_RSS,
            InstrumentKind::Gauge,
            "By",
            "Resident memory size in bytes.",
        ),
        InstrumentSpec::new(
            SELF_VSIZE,
            InstrumentKind::Gauge,
            "By",
            "Virtual memory size in bytes.",
        ),
        InstrumentSpec::new(
            SELF_FDS,
            InstrumentKind::Gauge,
            "",
            "Number of open file descriptors.",
        ),
        InstrumentSpec::new(
            SELF_MAX_FDS,
            InstrumentKind::Gauge,
            "",
            "Maximum number of open file descriptors.",
        ),
        InstrumentSpec::new(
            SELF_START,
            InstrumentKind::Gauge,
            "s",
            "Start time of the process since unix epoch in seconds.",
        ),
    ]
}

/// Reads remora's own process metrics from `<proc>/self` (and the boot time
/// from `<proc>/stat`) once.
pub fn self_process_families(proc_root: &Path) -> Result<Vec<Family>, HostError> {
    SelfProcess::new(proc_root).read()
}

/// remora's own process metrics, read at every host round: the files under
/// `<proc>/self` kept open between rounds, the boot time read once (it does
/// not change; `<proc>/stat` is the costliest file of the round to make).
pub struct SelfProcess {
    proc_root: PathBuf,
    ticks: f64,
    btime: Option<u64>,
    stat: FileBuf,
    statm: FileBuf,
    limits: FileBuf,
}

impl SelfProcess {
    pub fn new(proc_root: &Path) -> Self {
        SelfProcess {
            proc_root: proc_root.to_path_buf(),
            ticks: clock_ticks(),
            btime: None,
            stat: FileBuf::kept(),
            statm: FileBuf::kept(),
            limits: FileBuf::kept(),
        }
    }

    /// The boot time (`btime` of `<proc>/stat`), read the first time.
    fn btime(&mut self) -> Result<u64, HostError> {
        if let Some(b) = self.btime {
            return Ok(b);
        }
        let p = self.proc_root.join("stat");
        let text = FileBuf::new().read(&p)?.to_owned();
        let btime = text
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .ok_or_else(|| HostError::parse(&p, "no btime"))?;
        let btime = parse_u64(&p, btime, "btime")?;
        self.btime = Some(btime);
        Ok(btime)
    }

    /// One reading of the process's families.
    pub fn read(&mut self) -> Result<Vec<Family>, HostError> {
        let btime = self.btime()?;
        let ticks = self.ticks;

        let p = self.proc_root.join("self/stat");
        let st = parse_pid_stat(&p, self.stat.read_bytes(&p)?)?;

        let p = self.proc_root.join("self/statm");
        let rss_pages = parse_statm_resident(&p, self.statm.read(&p)?)?;

        let p = self.proc_root.join("self/fd");
        let fds = count_dir(&p).map_err(|e| HostError::io(&p, e))?;

        let p = self.proc_root.join("self/limits");
        let max_fds = self.limits.read(&p)?.lines().find_map(|l| {
            let rest = l.strip_prefix("Max open files")?;
            rest.split_ascii_whitespace().next()?.parse::<u64>().ok()
        });

        let fam = |n: &'static str, v: f64| Family {
            name: Arc::from(n),
            series: vec![series0(v)],
        };
        let mut out = vec![
            fam(SELF_CPU, (st.utime + st.stime) as f64 / ticks),
            fam(SELF_RSS, rss_pages as f64 * page_size()),
            fam(SELF_VSIZE, st.vsize as f64),
            fam(SELF_FDS, fds as f64),
        ];
        if let Some(m) = max_fds {
            out.push(fam(SELF_MAX_FDS, m as f64));
        }
        out.push(fam(SELF_START, btime as f64 + st.starttime as f64 / ticks));
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
