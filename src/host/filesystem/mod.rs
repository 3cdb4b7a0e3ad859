//! `filesystem`: space by state per mounted file system, from `<proc>/mounts`
//! and `statvfs(3)`.
//!
//! States: `used` = (blocks - bfree) x frsize, `free` = bavail x frsize (what
//! unprivileged users can still write), `reserved` = (bfree - bavail) x frsize
//! (kept for root). The three add up to the file system's size.
//! `system.filesystem.utilization` is used / (used + free), like `df`'s `Use%`:
//! 1 means unprivileged writes fail.
//!
//! Mount points are resolved under the root file system (`--path.rootfs`, as
//! node_exporter does): `/data` is sized at `<rootfs>/data` and labelled `/data`.
//! Mount points matching `mount_points_exclude`, types matching
//! `fs_types_exclude`, mount points that are not directories (files
//! bind-mounted by container runtimes, such as `/etc/hosts`) and file systems
//! of size 0 are skipped. When a mount point is mounted over, only the last
//! mount is reported. An odd line of the mounts file (too few fields, a name
//! that is not UTF-8) is dropped and counted.
//!
//! **Stuck mounts.** `stat`/`statvfs` of a hard-mounted network share whose
//! server is gone blocks for ever. Mounts are probed in order on a worker
//! thread; the collector waits at most [`MOUNT_DEADLINE`] for each answer. A
//! mount that does not answer is abandoned with its thread, logged once, counted
//! (reason `timeout`) and skipped, without a second thread, at every poll until
//! its call returns; then it is probed again. A fresh worker carries on with the
//! remaining mounts, and the whole pass never waits more than [`PASS_DEADLINE`].
//! A worker that is not stuck is kept for the next poll (no thread is started
//! per poll).

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::{Key, KeyValue, Value};
use regex::Regex;

use super::read::{FileBuf, HostError, Reason, Tally};
use super::{name, under, Collector};
use crate::model::{Family, InstrumentKind, InstrumentSpec, Series};

/// How long one mount may take to answer before it is treated as stuck.
pub(crate) const MOUNT_DEADLINE: Duration = Duration::from_secs(1);
/// The longest a whole pass over the mounts may wait.
pub(crate) const PASS_DEADLINE: Duration = Duration::from_secs(5);

pub(crate) const USAGE: &str = "system.filesystem.usage";
pub(crate) const UTILIZATION: &str = "system.filesystem.utilization";

/// One mounted file system to report.
#[derive(Debug, Clone)]
struct Mount {
    device: Value,
    mountpoint: Value,
    fstype: Value,
    /// The mount point resolved under the root file system.
    cpath: CString,
}

/// Sizes one mount: `Ok(None)` when it is not to be reported (not a
/// directory, size 0). Blocking; may block for ever on a stuck mount.
pub(crate) type ProbeFn = Arc<dyn Fn(&CStr) -> io::Result<Option<FsSpace>> + Send + Sync>;

/// The real probe: skips non-directories, then `statvfs`.
pub(crate) fn probe(path: &CStr) -> io::Result<Option<FsSpace>> {
    let p = Path::new(OsStr::from_bytes(path.to_bytes()));
    if let Ok(meta) = std::fs::metadata(p) {
        if !meta.is_dir() {
            return Ok(None);
        }
    }
    statvfs_space(path)
}

/// Paths whose probe has not returned yet. Process-wide: a reload builds a new
/// collector, and a stuck thread outlives the collector that started it.
fn in_flight() -> &'static Mutex<HashSet<CString>> {
    static IN_FLIGHT: OnceLock<Mutex<HashSet<CString>>> = OnceLock::new();
    IN_FLIGHT.get_or_init(Default::default)
}

fn in_flight_set() -> std::sync::MutexGuard<'static, HashSet<CString>> {
    in_flight().lock().unwrap_or_else(|e| e.into_inner())
}

/// True while a probe of `path` has not returned.
#[cfg(test)]
pub(crate) fn is_stuck(path: &CStr) -> bool {
    in_flight_set().contains(path)
}

type ProbeResult = io::Result<Option<FsSpace>>;

/// One pass's mounts for the worker: it probes them in order and sends each
/// answer, until the pass stops waiting (`stop`, or `results` dropped).
struct Batch {
    items: Vec<(usize, CString)>,
    stop: Arc<AtomicBool>,
    results: mpsc::Sender<(usize, ProbeResult)>,
}

/// The worker thread: probes each batch of the queue, and ends when the
/// queue's sender is dropped (the collector is gone, or gave the worker up
/// as stuck).
fn work(probe: &ProbeFn, queue: &mpsc::Receiver<Batch>) {
    for batch in queue {
        for (i, path) in batch.items {
            if batch.stop.load(Ordering::Acquire) {
                break;
            }
            in_flight_set().insert(path.clone());
            let r = probe(&path);
            in_flight_set().remove(&path);
            if batch.stop.load(Ordering::Acquire) || batch.results.send((i, r)).is_err() {
                break;
            }
        }
    }
}

/// Probes mounts with a deadline each, on a worker thread kept from pass to
/// pass and abandoned when a mount holds it.
pub(crate) struct Prober {
    probe: ProbeFn,
    /// The worker's queue, while it is not stuck.
    worker: Option<mpsc::Sender<Batch>>,
    deadline: Duration,
    pass_deadline: Duration,
    /// Stuck mounts already logged by this collector.
    logged: HashSet<CString>,
}

impl Prober {
    pub(crate) fn new(probe: ProbeFn, deadline: Duration, pass_deadline: Duration) -> Self {
        Prober {
            probe,
            worker: None,
            deadline,
            pass_deadline,
            logged: HashSet::new(),
        }
    }

    /// Probes `paths` in order; `None` for a mount skipped (stuck, or the pass
    /// ran out of time). Stuck mounts are counted in `tally`.
    pub(crate) fn run(
        &mut self,
        paths: &[CString],
        tally: &mut Tally,
        file: &Path,
    ) -> Vec<Option<ProbeResult>> {
        let mut results: Vec<Option<ProbeResult>> = paths.iter().map(|_| None).collect();
        let mut todo: Vec<usize> = Vec::with_capacity(paths.len());
        {
            let busy = in_flight_set();
            self.logged.retain(|p| {
                let still = busy.contains(p);
                if !still {
                    tracing::info!(mountpoint = %p.to_string_lossy(), "mount answers again");
                }
                still
            });
            for (i, p) in paths.iter().enumerate() {
                if busy.contains(p) {
                    self.stuck(p, tally, file);
                } else {
                    todo.push(i);
                }
            }
        }
        let start = Instant::now();
        while !todo.is_empty() {
            let left = self.pass_deadline.saturating_sub(start.elapsed());
            if left.is_zero() {
                tracing::warn!(
                    skipped = todo.len(),
                    "file system pass out of time; mounts skipped this round"
                );
                break;
            }
            let (tx, rx) = mpsc::channel();
            let abandoned = Arc::new(AtomicBool::new(false));
            let batch = Batch {
                items: todo.iter().map(|&i| (i, paths[i].clone())).collect(),
                stop: abandoned.clone(),
                results: tx,
            };
            if !self.send(batch) {
                break;
            }
            let mut done = 0;
            let mut stuck = None;
            while done < todo.len() {
                let wait = self
                    .deadline
                    .min(self.pass_deadline.saturating_sub(start.elapsed()));
                match rx.recv_timeout(wait) {
                    Ok((i, r)) => {
                        results[i] = Some(r);
                        done += 1;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        // The worker is stuck in a call: left to it.
                        abandoned.store(true, Ordering::Release);
                        self.worker = None;
                        stuck = Some(done);
                        break;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        self.worker = None;
                        break;
                    }
                }
            }
            match stuck {
                Some(k) => {
                    self.stuck(&paths[todo[k]], tally, file);
                    todo.drain(..=k);
                }
                None => break,
            }
        }
        results
    }

    /// Hands `batch` to the worker, started first if there is none (or it
    /// is gone). False when no thread can be started.
    fn send(&mut self, batch: Batch) -> bool {
        let batch = match &self.worker {
            Some(worker) => match worker.send(batch) {
                Ok(()) => return true,
                Err(mpsc::SendError(batch)) => batch,
            },
            None => batch,
        };
        let (jobs, queue) = mpsc::channel::<Batch>();
        let probe = self.probe.clone();
        let spawned = std::thread::Builder::new()
            .name("remora-statvfs".into())
            .spawn(move || work(&probe, &queue));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a statvfs thread");
            self.worker = None;
            return false;
        }
        // The thread holds the queue until this sender is dropped.
        let sent = jobs.send(batch).is_ok();
        self.worker = Some(jobs);
        sent
    }

    fn stuck(&mut self, path: &CStr, tally: &mut Tally, file: &Path) {
        if self.logged.insert(path.to_owned()) {
            tracing::warn!(
                mountpoint = %path.to_string_lossy(),
                deadline = ?self.deadline,
                "mount does not answer statvfs; skipped until it does"
            );
        }
        tally.drop_entry(file, Reason::Timeout, &path.to_string_lossy());
    }
}

/// Sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FsSpace {
    pub used: u64,
    pub free: u64,
    pub reserved: u64,
}

/// `statvfs(3)` turned into [`FsSpace`]; `Ok(None)` for a file system of size 0.
pub(crate) fn statvfs_space(path: &CStr) -> io::Result<Option<FsSpace>> {
    let mut st = MaybeUninit::<libc::statvfs>::uninit();
    loop {
        // SAFETY: `path` is NUL-terminated and `st` is a valid out-pointer.
        let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
        if rc == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    let (frsize, bsize, blocks, bfree, bavail) = (
        u64::from(st.f_frsize),
        u64::from(st.f_bsize),
        u64::from(st.f_blocks),
        u64::from(st.f_bfree),
        u64::from(st.f_bavail),
    );
    let unit = if frsize > 0 { frsize } else { bsize };
    if blocks == 0 || unit == 0 {
        return Ok(None);
    }
    let bfree = bfree.min(blocks);
    let bavail = bavail.min(bfree);
    Ok(Some(FsSpace {
        used: (blocks - bfree).saturating_mul(unit),
        free: bavail.saturating_mul(unit),
        reserved: (bfree - bavail).saturating_mul(unit),
    }))
}

/// Undoes the octal escapes of `/proc/mounts` (`\040` for a space, ...).
pub(crate) fn unescape(field: &[u8]) -> Vec<u8> {
    let b = field;
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

pub(crate) struct FilesystemCollector {
    path: PathBuf,
    rootfs: PathBuf,
    buf: FileBuf,
    mount_points_exclude: Regex,
    fs_types_exclude: Regex,
    /// The mounts file as last parsed, what it gave, and the odd lines it had.
    last: Vec<u8>,
    mounts: Vec<Mount>,
    parse_tally: Tally,
    prober: Prober,
    n_usage: Arc<str>,
    n_util: Arc<str>,
}

impl FilesystemCollector {
    pub(crate) fn new(
        proc: &Path,
        rootfs: &Path,
        mount_points_exclude: Regex,
        fs_types_exclude: Regex,
    ) -> Self {
        FilesystemCollector {
            path: under(proc, "mounts"),
            rootfs: rootfs.to_path_buf(),
            buf: FileBuf::kept(),
            mount_points_exclude,
            fs_types_exclude,
            last: Vec::new(),
            mounts: Vec::new(),
            parse_tally: Tally::default(),
            prober: Prober::new(Arc::new(probe), MOUNT_DEADLINE, PASS_DEADLINE),
            n_usage: name(USAGE),
            n_util: name(UTILIZATION),
        }
    }

    /// Replaces the probe and its deadline (tests).
    #[cfg(test)]
    pub(crate) fn with_probe(mut self, probe: ProbeFn, deadline: Duration) -> Self {
        self.prober = Prober::new(probe, deadline, deadline * 5);
        self
    }

    fn parse_mounts(&mut self, text: &[u8]) {
        self.mounts.clear();
        self.parse_tally = Tally::default();
        let t = &mut self.parse_tally;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let mut it = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|f| !f.is_empty());
            let (Some(dev), Some(mp), Some(fstype)) = (it.next(), it.next(), it.next()) else {
                t.drop_entry(
                    &self.path,
                    Reason::MissingColumn,
                    &String::from_utf8_lossy(line),
                );
                continue;
            };
            let (Ok(dev), Ok(mp), Ok(fstype)) = (
                String::from_utf8(unescape(dev)),
                String::from_utf8(unescape(mp)),
                std::str::from_utf8(fstype),
            ) else {
                t.drop_entry(&self.path, Reason::NonUtf8, &String::from_utf8_lossy(line));
                continue;
            };
            if self.fs_types_exclude.is_match(fstype) || self.mount_points_exclude.is_match(&mp) {
                continue;
            }
            let resolved = self.rootfs.join(mp.trim_start_matches('/'));
            let Ok(cpath) = CString::new(resolved.into_os_string().into_vec()) else {
                t.drop_entry(&self.path, Reason::MalformedLine, &mp);
                continue;
            };
            // A later mount on the same point hides the earlier one.
            self.mounts.retain(|m| m.cpath != cpath);
            self.mounts.push(Mount {
                device: Value::from(Arc::<str>::from(dev)),
                mountpoint: Value::from(Arc::<str>::from(mp)),
                fstype: Value::from(Arc::<str>::from(fstype)),
                cpath,
            });
        }
    }
}

fn attrs(m: &Mount, state: Option<&'static str>) -> Vec<KeyValue> {
    let mut v = Vec::with_capacity(4);
    v.push(KeyValue::new(
        Key::from_static_str("system.device"),
        m.device.clone(),
    ));
    v.push(KeyValue::new(
        Key::from_static_str("system.filesystem.mountpoint"),
        m.mountpoint.clone(),
    ));
    v.push(KeyValue::new(
        Key::from_static_str("system.filesystem.type"),
        m.fstype.clone(),
    ));
    if let Some(s) = state {
        v.push(KeyValue::new(
            Key::from_static_str("system.filesystem.state"),
            s,
        ));
    }
    v
}

impl Collector for FilesystemCollector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn max_series(&self) -> usize {
        // Three states (used, free, reserved) per mount line.
        3 * super::count_lines(&self.path, |l| !l.is_empty())
    }

    fn specs(&self) -> Vec<InstrumentSpec> {
        vec![
            InstrumentSpec::new(
                USAGE,
                InstrumentKind::UpDownCounter,
                "By",
                "File system space by state (used, free for unprivileged users, reserved for root).",
            ),
            InstrumentSpec::new(
                UTILIZATION,
                InstrumentKind::Gauge,
                "1",
                "Fraction of file system space used, as df computes it: used / (used + free).",
            ),
        ]
    }

    fn collect(&mut self, out: &mut Vec<Family>, tally: &mut Tally) -> Result<(), HostError> {
        // The mount table is made again only when the kernel says a mount
        // changed it (or when it is a plain file, in a fixture tree).
        if self.last.is_empty() || !self.buf.mounts_unchanged() {
            let text = self.buf.read_bytes(&self.path)?;
            if text != self.last.as_slice() || self.last.is_empty() {
                let text = text.to_vec();
                self.parse_mounts(&text);
                self.last = text;
            }
        }
        tally.add(&self.parse_tally);
        let paths: Vec<CString> = self.mounts.iter().map(|m| m.cpath.clone()).collect();
        let results = self.prober.run(&paths, tally, &self.path);
        let mut usage = Vec::with_capacity(self.mounts.len() * 3);
        let mut util = Vec::with_capacity(self.mounts.len());
        let mut first_err = None;
        let mut ok = 0usize;
        for (m, r) in self.mounts.iter().zip(results) {
            let space = match r {
                Some(Ok(Some(s))) => s,
                Some(Ok(None)) | None => continue,
                Some(Err(e)) => {
                    tracing::debug!(mountpoint = %m.mountpoint, error = %e, "statvfs failed");
                    first_err.get_or_insert_with(|| {
                        HostError::io(Path::new(m.mountpoint.as_str().as_ref()), e)
                    });
                    continue;
                }
            };
            ok += 1;
            usage.push(Series::new(attrs(m, Some("used")), space.used as f64));
            usage.push(Series::new(attrs(m, Some("free")), space.free as f64));
            usage.push(Series::new(
                attrs(m, Some("reserved")),
                space.reserved as f64,
            ));
            let denom = space.used.saturating_add(space.free);
            if denom > 0 {
                util.push(Series::new(
                    attrs(m, None),
                    space.used as f64 / denom as f64,
                ));
            }
        }
        // Every mount failing means something is wrong with all of them.
        if ok == 0 {
            if let Some(e) = first_err {
                return Err(e);
            }
        }
        out.push(Family {
            name: self.n_usage.clone(),
            series: usage,
        });
        out.push(Family {
            name: self.n_util.clone(),
            series: util,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
