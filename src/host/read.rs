//! Reading pseudo files into reused buffers, and the collectors' error type.

use std::fs::File;
use std::io::{self, Read};
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

/// A byte buffer reused for every read of one collector.
#[derive(Debug, Default)]
pub(crate) struct FileBuf {
    buf: Vec<u8>,
}

impl FileBuf {
    pub(crate) fn new() -> Self {
        FileBuf {
            buf: Vec::with_capacity(4096),
        }
    }

    /// Reads the whole file and returns its bytes.
    pub(crate) fn read_bytes(&mut self, path: &Path) -> Result<&[u8], HostError> {
        self.buf.clear();
        let mut f = File::open(path).map_err(|e| HostError::io(path, e))?;
        f.read_to_end(&mut self.buf)
            .map_err(|e| HostError::io(path, e))?;
        Ok(&self.buf)
    }

    /// Reads the whole file as text. Pseudo files are ASCII; anything else is
    /// an error rather than a lossy copy.
    pub(crate) fn read(&mut self, path: &Path) -> Result<&str, HostError> {
        self.read_bytes(path)?;
        std::str::from_utf8(&self.buf).map_err(|_| HostError::parse(path, "not UTF-8"))
    }
}

/// Parses an unsigned integer field.
pub(crate) fn parse_u64(path: &Path, s: &str, what: &str) -> Result<u64, HostError> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| HostError::parse(path, format!("{what}: {s:?} is not an unsigned integer")))
}

/// Parses a float field.
pub(crate) fn parse_f64(path: &Path, s: &str, what: &str) -> Result<f64, HostError> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| HostError::parse(path, format!("{what}: {s:?} is not a number")))
}

/// Looks up `key` in a "key value" per line file (`memory.stat`, `cpu.stat`).
pub(crate) fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut it = line.split_ascii_whitespace();
        if it.next()? == key {
            it.next()?.parse().ok()
        } else {
            None
        }
    })
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
    fn flat_keyed_finds_exact_keys() {
        let t = "usage_usec 10\nuser_usec 7\nthrottled_usec 3\n";
        assert_eq!(flat_keyed(t, "usage_usec"), Some(10));
        assert_eq!(flat_keyed(t, "throttled_usec"), Some(3));
        assert_eq!(flat_keyed(t, "usage"), None);
    }

    #[test]
    fn parse_errors_name_the_file() {
        let e = parse_u64(Path::new("/x/y"), "abc", "field").unwrap_err();
        assert!(e.to_string().contains("/x/y"));
        assert!(parse_f64(Path::new("/x"), " 1.5 ", "f").unwrap() == 1.5);
    }
}
