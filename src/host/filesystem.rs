//! `filesystem`: space by state per mounted file system, from `<proc>/mounts`
//! and `statvfs(3)`.
//!
//! States: `used` = (blocks - bfree) x frsize, `free` = bavail x frsize (what
//! unprivileged users can still write), `reserved` = (bfree - bavail) x frsize
//! (kept for root). The three add up to the file system's size.
//! `system.filesystem.utilization` is used / (used + free), like `df`'s `Use%`:
//! 1 means unprivileged writes fail.
//!
//! Mount points matching `mount_points_exclude`, types matching
//! `fs_types_exclude`, mount points that are not directories (files
//! bind-mounted by container runtimes, such as `/etc/hosts`) and file systems
//! of size 0 are skipped. When a mount point is mounted over, only the last
//! mount is reported.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use opentelemetry::{Key, KeyValue, Value};
use regex::Regex;

use super::read::{FileBuf, HostError};
use super::{name, under, Collector};
use crate::model::{Family, InstrumentKind, InstrumentSpec, Series};

pub(crate) const USAGE: &str = "system.filesystem.usage";
pub(crate) const UTILIZATION: &str = "system.filesystem.utilization";

/// One mounted file system to report.
#[derive(Debug, Clone)]
struct Mount {
    device: Value,
    mountpoint: Value,
    fstype: Value,
    cpath: CString,
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
pub(crate) fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let b = field.as_bytes();
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
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) struct FilesystemCollector {
    path: PathBuf,
    buf: FileBuf,
    mount_points_exclude: Regex,
    fs_types_exclude: Regex,
    /// The mounts file as last parsed, and what it gave.
    last: Vec<u8>,
    mounts: Vec<Mount>,
    n_usage: Arc<str>,
    n_util: Arc<str>,
}

impl FilesystemCollector {
    pub(crate) fn new(proc: &Path, mount_points_exclude: Regex, fs_types_exclude: Regex) -> Self {
        FilesystemCollector {
            path: under(proc, "mounts"),
            buf: FileBuf::new(),
            mount_points_exclude,
            fs_types_exclude,
            last: Vec::new(),
            mounts: Vec::new(),
            n_usage: name(USAGE),
            n_util: name(UTILIZATION),
        }
    }

    fn parse_mounts(&mut self, text: &[u8]) {
        self.mounts.clear();
        let text = String::from_utf8_lossy(text);
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(dev), Some(mp), Some(fstype)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let mp = unescape(mp);
            if self.fs_types_exclude.is_match(fstype) || self.mount_points_exclude.is_match(&mp) {
                continue;
            }
            if let Ok(meta) = std::fs::metadata(&mp) {
                if !meta.is_dir() {
                    continue;
                }
            }
            let Ok(cpath) = CString::new(mp.as_bytes()) else {
                continue;
            };
            // A later mount on the same point hides the earlier one.
            self.mounts.retain(|m| m.cpath != cpath);
            self.mounts.push(Mount {
                device: Value::from(Arc::<str>::from(unescape(dev))),
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

    fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), HostError> {
        let text = self.buf.read_bytes(&self.path)?;
        if text != self.last.as_slice() || self.last.is_empty() {
            let text = text.to_vec();
            self.parse_mounts(&text);
            self.last = text;
        }
        let mut usage = Vec::with_capacity(self.mounts.len() * 3);
        let mut util = Vec::with_capacity(self.mounts.len());
        let mut first_err = None;
        let mut ok = 0usize;
        for m in &self.mounts {
            let space = match statvfs_space(&m.cpath) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
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
mod tests {
    use super::*;

    fn get<'a>(s: &'a Series, key: &str) -> std::borrow::Cow<'a, str> {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str())
            .unwrap()
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape("/a\\134b"), "/a\\b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/bad\\09"), "/bad\\09");
        assert_eq!(unescape("/end\\"), "/end\\");
    }

    #[test]
    fn reports_real_dirs_with_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a dir");
        std::fs::create_dir(&a).unwrap();
        let file = dir.path().join("hosts");
        std::fs::write(&file, "x").unwrap();
        let a_esc = a.to_str().unwrap().replace(' ', "\\040");
        let mounts = format!(
            "proc /proc proc rw 0 0\n\
/dev/old {a_esc} ext4 rw 0 0\n\
/dev/vdb {a_esc} xfs rw 0 0\n\
/dev/vdc {} ext4 rw 0 0\n\
/dev/vdd {}/excluded ext4 rw 0 0\n\
tmpfs /tmp/never-there tmpfs rw 0 0\n\
garbage\n",
            file.display(),
            dir.path().display()
        );
        let proc = dir.path().join("proc");
        std::fs::create_dir(&proc).unwrap();
        std::fs::write(proc.join("mounts"), mounts).unwrap();
        let mut c = FilesystemCollector::new(
            &proc,
            Regex::new("excluded$").unwrap(),
            Regex::new("^(proc|tmpfs)$").unwrap(),
        );
        let mut out = Vec::new();
        c.collect(&mut out).unwrap();
        assert_eq!(&*out[0].name, USAGE);
        assert_eq!(out[0].series.len(), 3, "{:?}", out[0].series);
        let s = &out[0].series[0];
        assert_eq!(get(s, "system.device"), "/dev/vdb");
        assert_eq!(get(s, "system.filesystem.mountpoint"), a.to_str().unwrap());
        assert_eq!(get(s, "system.filesystem.type"), "xfs");
        assert_eq!(get(s, "system.filesystem.state"), "used");
        let total: f64 = out[0].series.iter().map(|s| s.value).sum();
        assert!(total > 0.0);
        assert_eq!(out[1].series.len(), 1);
        let u = out[1].series[0].value;
        assert!((0.0..=1.0).contains(&u));
        assert_eq!(out[1].series[0].attributes.len(), 3);

        // Unchanged mounts are not parsed again; the results are the same.
        let mut again = Vec::new();
        c.collect(&mut again).unwrap();
        assert_eq!(again[0].series.len(), 3);
    }

    #[test]
    fn all_mounts_failing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mounts"),
            "/dev/x /nonexistent/remora-test ext4 rw 0 0\n",
        )
        .unwrap();
        let mut c = FilesystemCollector::new(
            dir.path(),
            Regex::new("^$").unwrap(),
            Regex::new("^$").unwrap(),
        );
        let err = c.collect(&mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/remora-test"),
            "{err}"
        );
    }
}
