//! Reading pseudo files into reused buffers, and the collectors' error type.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use opentelemetry::{Key, KeyValue, Value};

use crate::model::Series;

/// Why a collector failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file or directory could not be read (vanished, permission denied...).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file did not have the expected format.
    #[error("cannot parse {}: {what}", path.display())]
    Parse { path: PathBuf, what: String },
    /// One entry of a file is unusable (counted in a [`Tally`], never fatal
    /// when the caller can go on without it).
    #[error("cannot parse {}: {what} ({})", path.display(), reason.as_str())]
    Entry {
        path: PathBuf,
        reason: Reason,
        what: String,
    },
    /// Nothing usable was found (e.g. no cgroup hierarchy).
    #[error("{0}")]
    NotFound(String),
}

impl HostError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        HostError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parse(path: &Path, what: impl Into<String>) -> Self {
        HostError::Parse {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    pub(crate) fn entry(path: &Path, reason: Reason, what: impl Into<String>) -> Self {
        HostError::Entry {
            path: path.to_path_buf(),
            reason,
            what: what.into(),
        }
    }

    /// True when the file is gone (a process that exited between listing and reading).
    pub(crate) fn is_gone(&self) -> bool {
        match self {
            HostError::Io { source, .. } => {
                source.kind() == io::ErrorKind::NotFound
                    || source.raw_os_error() == Some(libc::ESRCH)
            }
            _ => false,
        }
    }
}

/// Why one entry (a line, a field, a mount) was dropped: the label `reason` of
/// `remora_collector_errors_total{collector,reason}`. A fixed vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The line lacks the shape of its file (no `:` where one is expected,
    /// no `)` after a process name, an empty file).
    MalformedLine,
    /// The line ends before a column remora needs (a truncated line).
    MissingColumn,
    /// A field that should be a number is not one.
    InvalidNumber,
    /// A number too large for 64 bits.
    Overflow,
    /// A name (interface, mount point) that is not UTF-8, so it cannot be a label value.
    NonUtf8,
    /// A second line for an entry already read (the first one is kept).
    Duplicate,
    /// A mount whose `statvfs` did not answer within its deadline.
    Timeout,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::MalformedLine,
        Reason::MissingColumn,
        Reason::InvalidNumber,
        Reason::Overflow,
        Reason::NonUtf8,
        Reason::Duplicate,
        Reason::Timeout,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedLine => "malformed_line",
            Reason::MissingColumn => "missing_column",
            Reason::InvalidNumber => "invalid_number",
            Reason::Overflow => "overflow",
            Reason::NonUtf8 => "non_utf8",
            Reason::Duplicate => "duplicate",
            Reason::Timeout => "timeout",
        }
    }
}

/// Entries a collector dropped in one poll, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    counts: [u64; Reason::ALL.len()],
}

impl Tally {
    /// Counts one dropped entry (and logs it at debug level).
    pub(crate) fn drop_entry(&mut self, path: &Path, reason: Reason, what: &str) {
        tracing::debug!(file = %path.display(), reason = reason.as_str(), entry = what, "entry dropped");
        self.counts[reason as usize] += 1;
    }

    /// Counts `err` if it is a per-entry problem; returns it back otherwise.
    pub(crate) fn absorb(&mut self, err: HostError) -> Result<(), HostError> {
        match err {
            HostError::Entry { path, reason, what } => {
                self.drop_entry(&path, reason, &what);
                Ok(())
            }
            other => Err(other),
        }
    }

    /// `Some(v)` for `Ok(v)`; `None` for an entry error, counted; other errors pass.
    pub(crate) fn keep<T>(&mut self, r: Result<T, HostError>) -> Result<Option<T>, HostError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => self.absorb(e).map(|()| None),
        }
    }

    /// Adds the counts of `other`.
    pub(crate) fn add(&mut self, other: &Tally) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    /// The count for one reason.
    pub fn get(&self, reason: Reason) -> u64 {
        self.counts[reason as usize]
    }

    /// The reasons with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&n| n == 0)
    }
}

/// A byte buffer reused for every read of one collector.
///
/// Made with [`FileBuf::kept`], it also keeps the last file it read open
/// when that file is a pseudo file (procfs, sysfs, cgroupfs), and reads it
/// again from offset 0: such a file makes its content anew at each read
/// from 0, so the next poll costs a read and not an open, a path walk and
/// a close. A regular file (a fixture tree) is opened at each read, so that
/// a file replaced under its path is seen.
#[derive(Debug, Default)]
pub(crate) struct FileBuf {
    /// Zeroed once when it grows; the last file's bytes are `buf[..len]`.
    buf: Vec<u8>,
    len: usize,
    /// Whether to keep a pseudo file open ([`FileBuf::kept`]).
    keep: bool,
    /// The pseudo file kept open, and its path.
    kept: Option<(PathBuf, File)>,
}

impl FileBuf {
    pub(crate) fn new() -> Self {
        FileBuf {
            buf: vec![0; 4096],
            len: 0,
            keep: false,
            kept: None,
        }
    }

    /// A buffer for a collector that reads the same pseudo file at every
    /// poll: the file is kept open between reads.
    pub(crate) fn kept() -> Self {
        FileBuf {
            keep: true,
            ..FileBuf::new()
        }
    }

    /// The descriptor of the file kept open (tests).
    #[cfg(test)]
    pub(crate) fn kept_fd(&self) -> Option<i32> {
        self.kept.as_ref().map(|(_, f)| f.as_raw_fd())
    }

    /// For a kept mount table (`<proc>/mounts`, `mountinfo`), which the kernel
    /// marks with `POLLPRI` when a mount or unmount changes it: true when it
    /// has not changed since it was opened or last found changed. False when
    /// no file is kept (a fixture tree), so the caller reads it. Other pseudo
    /// files never signal a change: this answer means nothing for them.
    pub(crate) fn mounts_unchanged(&self) -> bool {
        let Some((_, file)) = &self.kept else {
            return false;
        };
        let mut fd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a timeout of 0: it does not wait.
        unsafe { libc::poll(&mut fd, 1, 0) == 0 }
    }

    /// Reads the whole file and returns its bytes. Reads until end of file
    /// into the buffer as it is, growing it when full: a pseudo file has no
    /// size to ask for first (`read_to_end` would `statx` and `lseek` each
    /// time).
    pub(crate) fn read_bytes(&mut self, path: &Path) -> Result<&[u8], HostError> {
        if let Some((kept_path, file)) = self.kept.take() {
            if kept_path == path && self.fill(&file).is_ok() {
                self.kept = Some((kept_path, file));
                return Ok(&self.buf[..self.len]);
            }
            // Another path, or the kept file failed (its object went
            // away): opened again below, and its error is the one told.
        }
        let file = File::open(path).map_err(|e| HostError::io(path, e))?;
        self.fill(&file).map_err(|e| HostError::io(path, e))?;
        if self.keep && is_pseudo(&file) {
            self.kept = Some((path.to_path_buf(), file));
        }
        Ok(&self.buf[..self.len])
    }

    /// Reads `file` from offset 0 to its end into the buffer.
    fn fill(&mut self, file: &File) -> io::Result<()> {
        self.len = 0;
        loop {
            if self.len == self.buf.len() {
                let more = self.buf.len().max(4096);
                self.buf.resize(self.buf.len() + more, 0);
            }
            match file.read_at(&mut self.buf[self.len..], self.len as u64) {
                Ok(0) => return Ok(()),
                Ok(n) => self.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the whole file as text. Pseudo files are ASCII; anything else is
    /// an error rather than a lossy copy.
    pub(crate) fn read(&mut self, path: &Path) -> Result<&str, HostError> {
        self.read_bytes(path)?;
        std::str::from_utf8(&self.buf[..self.len])
            .map_err(|_| HostError::entry(path, Reason::NonUtf8, "file is not UTF-8"))
    }
}

/// Whether `file` lies on a file system whose files make their content at
/// each read (procfs, sysfs, cgroup v1 and v2).
fn is_pseudo(file: &File) -> bool {
    // SAFETY: statfs is plain data; fstatfs writes it or fails.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for as long as `file` lives.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    [
        libc::PROC_SUPER_MAGIC,
        libc::SYSFS_MAGIC,
        libc::CGROUP_SUPER_MAGIC,
        libc::CGROUP2_SUPER_MAGIC,
    ]
    .contains(&st.f_type)
}

/// The lines of a pseudo file; `None` for a line that is not UTF-8 (the
/// caller drops it as [`Reason::NonUtf8`]), so one odd line never hides the others.
pub(crate) fn utf8_lines(bytes: &[u8]) -> impl Iterator<Item = Option<&str>> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| std::str::from_utf8(l).ok())
}

/// Why `s` is not a u64: [`Reason::Overflow`] for a run of digits too long,
/// [`Reason::InvalidNumber`] otherwise.
pub(crate) fn u64_reason(s: &str) -> Reason {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Reason::Overflow
    } else {
        Reason::InvalidNumber
    }
}

/// Parses an unsigned integer field; an error is a [`HostError::Entry`].
pub(crate) fn parse_u64(path: &Path, s: &str, what: &str) -> Result<u64, HostError> {
    s.trim().parse::<u64>().map_err(|_| {
        HostError::entry(
            path,
            u64_reason(s),
            format!("{what}: {s:?} is not an unsigned integer"),
        )
    })
}

/// Parses a finite float field; an error is a [`HostError::Entry`]
/// (`inf`, `NaN` and numbers beyond f64 are [`Reason::Overflow`] or invalid).
pub(crate) fn parse_f64(path: &Path, s: &str, what: &str) -> Result<f64, HostError> {
    let bad = |r| HostError::entry(path, r, format!("{what}: {s:?} is not a number"));
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) if v.is_infinite() && s.trim().bytes().any(|b| b.is_ascii_digit()) => {
            Err(bad(Reason::Overflow))
        }
        _ => Err(bad(Reason::InvalidNumber)),
    }
}

/// Looks up `key` in a "key value" per line file (`memory.stat`, `cpu.stat`):
/// `Ok(None)` when absent, an entry error when its value is not a u64.
pub(crate) fn flat_keyed(path: &Path, text: &str, key: &str) -> Result<Option<u64>, HostError> {
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        if it.next() != Some(key) {
            continue;
        }
        return match it.next() {
            Some(v) => parse_u64(path, v, key).map(Some),
            None => Err(HostError::entry(path, Reason::MissingColumn, key)),
        };
    }
    Ok(None)
}

/// A series with one attribute.
pub(crate) fn series1(key: &'static str, value: impl Into<Value>, v: f64) -> Series {
    Series::new(vec![KeyValue::new(Key::from_static_str(key), value)], v)
}

/// A series without attributes.
pub(crate) fn series0(v: f64) -> Series {
    Series::new(Vec::new(), v)
}

/// The kernel's clock tick (`USER_HZ`), used by `/proc/stat` and `/proc/PID/stat`.
pub(crate) fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The page size, used by `/proc/PID/stat`'s rss.
pub(crate) fn page_size() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as f64
    } else {
        4096.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reuses_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "hello\n").unwrap();
        let mut b = FileBuf::new();
        assert_eq!(b.read(&a).unwrap(), "hello\n");
        assert_eq!(b.read(&a).unwrap(), "hello\n");
        let err = b.read(&dir.path().join("missing")).unwrap_err();
        assert!(err.is_gone());
        assert!(err.to_string().contains("missing"));
    }

    #[test]
    fn a_kept_pseudo_file_is_read_again_from_its_start_on_one_descriptor() {
        // This thread's name: a procfs file whose content the test sets.
        let comm = Path::new("/proc/thread-self/comm");
        std::fs::write(comm, "remora-kept-a").unwrap();
        let mut b = FileBuf::kept();
        assert_eq!(b.read(comm).unwrap(), "remora-kept-a\n");
        let fd = b.kept_fd().expect("a procfs file is kept open");
        std::fs::write(comm, "remora-kept-bb").unwrap();
        assert_eq!(b.read(comm).unwrap(), "remora-kept-bb\n");
        assert_eq!(b.kept_fd(), Some(fd), "read again, not opened again");
        // A file larger than the buffer's first size, read to its end twice.
        let maps = Path::new("/proc/self/maps");
        let first = b.read(maps).unwrap().len();
        assert!(first > 0);
        assert_ne!(b.kept_fd(), None);
        assert!(b.read(maps).unwrap().ends_with('\n'));
    }

    #[test]
    fn a_regular_file_is_opened_at_each_read_so_a_replaced_one_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("stat");
        std::fs::write(&a, "one\n").unwrap();
        let mut b = FileBuf::kept();
        assert_eq!(b.read(&a).unwrap(), "one\n");
        assert_eq!(b.kept_fd(), None);
        let tmp = dir.path().join("stat.new");
        std::fs::write(&tmp, "two\n").unwrap();
        std::fs::rename(&tmp, &a).unwrap();
        assert_eq!(b.read(&a).unwrap(), "two\n");
    }

    #[test]
    fn a_kept_file_whose_process_ended_is_an_error_of_a_gone_file() {
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let stat = PathBuf::from(format!("/proc/{}/stat", child.id()));
        let mut b = FileBuf::kept();
        assert!(b.read(&stat).unwrap().contains("(sleep)"));
        assert_ne!(b.kept_fd(), None);
        child.kill().unwrap();
        child.wait().unwrap();
        let err = b.read(&stat).unwrap_err();
        assert!(err.is_gone(), "{err}");
        assert_eq!(b.kept_fd(), None);
    }

    #[test]
    fn a_kept_mount_table_tells_when_a_mount_changed_it() {
        let mounts = Path::new("/proc/self/mounts");
        let mut b = FileBuf::kept();
        assert!(!b.mounts_unchanged(), "nothing kept yet: read it");
        let before = b.read(mounts).unwrap().to_owned();
        assert!(b.mounts_unchanged());
        assert!(b.mounts_unchanged());
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root: the mount half of this test needs CAP_SYS_ADMIN");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        let tmpfs = c"tmpfs";
        // SAFETY: valid C strings; a tmpfs on a fresh directory of our own.
        let mounted = unsafe {
            libc::mount(
                tmpfs.as_ptr(),
                target.as_ptr(),
                tmpfs.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if mounted != 0 {
            eprintln!(
                "mount failed ({}): the mount half skipped",
                io::Error::last_os_error()
            );
            return;
        }
        let changed = !b.mounts_unchanged();
        let after = b.read(mounts).unwrap().to_owned();
        let unchanged_after_read = b.mounts_unchanged();
        // SAFETY: the mount made above.
        unsafe { libc::umount(target.as_ptr()) };
        assert!(changed, "a new mount is signalled");
        assert_ne!(before, after);
        assert!(after.contains(dir.path().to_str().unwrap()));
        assert!(unchanged_after_read);
    }

    #[test]
    fn a_file_not_kept_is_never_called_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("mounts");
        std::fs::write(&a, "x / tmpfs rw 0 0\n").unwrap();
        let mut b = FileBuf::kept();
        b.read(&a).unwrap();
        assert!(!b.mounts_unchanged());
    }

    #[test]
    fn flat_keyed_finds_exact_keys() {
        let t = "usage_usec 10\nuser_usec 7\nthrottled_usec 3\n";
        let p = Path::new("cpu.stat");
        assert_eq!(flat_keyed(p, t, "usage_usec").unwrap(), Some(10));
        assert_eq!(flat_keyed(p, t, "throttled_usec").unwrap(), Some(3));
        assert_eq!(flat_keyed(p, t, "usage").unwrap(), None);
        let odd = "usage_usec\nuser_usec x\nsystem_usec 99999999999999999999999\n";
        let reason = |k| match flat_keyed(p, odd, k).unwrap_err() {
            HostError::Entry { reason, .. } => reason,
            e => panic!("{e}"),
        };
        assert_eq!(reason("usage_usec"), Reason::MissingColumn);
        assert_eq!(reason("user_usec"), Reason::InvalidNumber);
        assert_eq!(reason("system_usec"), Reason::Overflow);
    }

    #[test]
    fn parse_errors_name_the_file() {
        let e = parse_u64(Path::new("/x/y"), "abc", "field").unwrap_err();
        assert!(e.to_string().contains("/x/y"));
        assert!(parse_f64(Path::new("/x"), " 1.5 ", "f").unwrap() == 1.5);
        let mut t = Tally::default();
        for (s, r) in [
            ("18446744073709551616", Reason::Overflow),
            ("-1", Reason::InvalidNumber),
            ("", Reason::InvalidNumber),
        ] {
            t.absorb(parse_u64(Path::new("/x"), s, "f").unwrap_err())
                .unwrap();
            assert_eq!(u64_reason(s), r);
        }
        t.absorb(parse_f64(Path::new("/x"), "1e999", "f").unwrap_err())
            .unwrap();
        t.absorb(parse_f64(Path::new("/x"), "nan", "f").unwrap_err())
            .unwrap();
        assert_eq!(t.get(Reason::Overflow), 2);
        assert_eq!(t.get(Reason::InvalidNumber), 3);
        assert!(t.absorb(HostError::NotFound("x".into())).is_err());
    }
}
