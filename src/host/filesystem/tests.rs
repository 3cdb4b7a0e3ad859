//! Unit tests of the filesystem collector.

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
    assert_eq!(unescape(b"/mnt/my\\040disk"), b"/mnt/my disk");
    assert_eq!(unescape(b"/a\\134b"), b"/a\\b");
    assert_eq!(unescape(b"/plain"), b"/plain");
    assert_eq!(unescape(b"/bad\\09"), b"/bad\\09");
    assert_eq!(unescape(b"/end\\"), b"/end\\");
    assert_eq!(unescape(b"/x\\377"), b"/x\xff");
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
        Path::new("/"),
        Regex::new("excluded$").unwrap(),
        Regex::new("^(proc|tmpfs)$").unwrap(),
    );
    let mut out = Vec::new();
    c.collect(&mut out, &mut Tally::default()).unwrap();
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
    c.collect(&mut again, &mut Tally::default()).unwrap();
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
        Path::new("/"),
        Regex::new("^$").unwrap(),
        Regex::new("^$").unwrap(),
    );
    let err = c
        .collect(&mut Vec::new(), &mut Tally::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/remora-test"),
        "{err}"
    );
}

/// A probe that blocks on one path until released, and counts its calls there.
struct Gate {
    path: CString,
    calls: std::sync::atomic::AtomicUsize,
    open: Mutex<bool>,
    cv: std::sync::Condvar,
}

fn gated_probe(gate: Arc<Gate>) -> ProbeFn {
    Arc::new(move |p: &CStr| {
        if p == gate.path.as_c_str() {
            gate.calls.fetch_add(1, Ordering::SeqCst);
            let mut open = gate.open.lock().unwrap();
            while !*open {
                open = gate.cv.wait(open).unwrap();
            }
        }
        probe(p)
    })
}

fn mountpoints(out: &[Family]) -> Vec<String> {
    let mut v: Vec<String> = out[0]
        .series
        .iter()
        .map(|s| get(s, "system.filesystem.mountpoint").into_owned())
        .collect();
    v.dedup();
    v
}

/// One poll on another thread; fails if it does not finish in 10 s (the
/// deadline under test is 100 ms), instead of hanging the test.
fn collect_within(mut c: FilesystemCollector) -> (FilesystemCollector, Vec<Family>, Tally) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut out, mut t) = (Vec::new(), Tally::default());
        c.collect(&mut out, &mut t).unwrap();
        let _ = tx.send((c, out, t));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the poll waited on a stuck mount")
}

#[test]
fn a_stuck_mount_is_skipped_until_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["a", "b", "c"];
    let mut mounts = String::new();
    for n in names {
        std::fs::create_dir(dir.path().join(n)).unwrap();
        mounts += &format!("/dev/{n} {} ext4 rw 0 0\n", dir.path().join(n).display());
    }
    std::fs::write(dir.path().join("mounts"), mounts).unwrap();
    let b = dir.path().join("b");
    let gate = Arc::new(Gate {
        path: CString::new(b.to_str().unwrap()).unwrap(),
        calls: Default::default(),
        open: Mutex::new(false),
        cv: Default::default(),
    });
    let new = || {
        FilesystemCollector::new(
            dir.path(),
            Path::new("/"),
            Regex::new("^$").unwrap(),
            Regex::new("^$").unwrap(),
        )
        .with_probe(gated_probe(gate.clone()), Duration::from_millis(100))
    };
    let a_c = vec![
        dir.path().join("a").display().to_string(),
        dir.path().join("c").display().to_string(),
    ];

    // The round finishes; a and c are served, b is skipped and counted.
    let (c, out, t) = collect_within(new());
    assert_eq!(mountpoints(&out), a_c);
    assert_eq!(t.get(Reason::Timeout), 1);
    assert!(is_stuck(&gate.path));

    // Still stuck: skipped at once, without a second call, even by a new
    // collector (a reload).
    let (mut c, out, t) = collect_within(c);
    assert_eq!(mountpoints(&out), a_c);
    assert_eq!(t.get(Reason::Timeout), 1);
    let (_, out, t) = collect_within(new());
    assert_eq!(mountpoints(&out), a_c);
    assert_eq!(t.get(Reason::Timeout), 1);
    assert_eq!(gate.calls.load(Ordering::SeqCst), 1);

    // It answers: probed again and served.
    *gate.open.lock().unwrap() = true;
    gate.cv.notify_all();
    let until = Instant::now() + Duration::from_secs(10);
    while is_stuck(&gate.path) {
        assert!(Instant::now() < until, "the stuck call never returned");
        std::thread::yield_now();
    }
    let (mut out, mut t) = (Vec::new(), Tally::default());
    c.collect(&mut out, &mut t).unwrap();
    assert_eq!(mountpoints(&out).len(), 3);
    assert!(t.is_empty());
    assert_eq!(gate.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn odd_mount_lines_are_dropped_and_counted_at_every_poll() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::fs::create_dir(&a).unwrap();
    let mut mounts = format!("/dev/a {} ext4 rw 0 0\n/dev/short\n", a.display()).into_bytes();
    mounts
        .extend_from_slice(b"/dev/x /mnt/caf\xe9 ext4 rw 0 0\n/dev/y /mnt/caf\\351 ext4 rw 0 0\n");
    std::fs::write(dir.path().join("mounts"), mounts).unwrap();
    let mut c = FilesystemCollector::new(
        dir.path(),
        Path::new("/"),
        Regex::new("^$").unwrap(),
        Regex::new("^$").unwrap(),
    );
    for _ in 0..2 {
        let (mut out, mut t) = (Vec::new(), Tally::default());
        c.collect(&mut out, &mut t).unwrap();
        assert_eq!(mountpoints(&out), vec![a.display().to_string()]);
        assert_eq!(t.get(Reason::MissingColumn), 1);
        assert_eq!(t.get(Reason::NonUtf8), 2);
    }
}

#[test]
fn mount_points_are_resolved_under_rootfs() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("data/x")).unwrap();
    std::fs::write(
        root.path().join("mounts"),
        "/dev/d /data/x ext4 rw 0 0\n/dev/e /nothere ext4 rw 0 0\n",
    )
    .unwrap();
    let mut c = FilesystemCollector::new(
        root.path(),
        root.path(),
        Regex::new("^$").unwrap(),
        Regex::new("^$").unwrap(),
    );
    let (mut out, mut t) = (Vec::new(), Tally::default());
    c.collect(&mut out, &mut t).unwrap();
    assert_eq!(mountpoints(&out), vec!["/data/x".to_string()]);
}

#[test]
fn one_worker_probes_every_poll_until_a_mount_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut mounts = String::new();
    for n in ["a", "b", "c"] {
        std::fs::create_dir(dir.path().join(n)).unwrap();
        mounts += &format!("/dev/{n} {} ext4 rw 0 0\n", dir.path().join(n).display());
    }
    std::fs::write(dir.path().join("mounts"), mounts).unwrap();
    let gate = Arc::new(Gate {
        path: CString::new(dir.path().join("b").to_str().unwrap()).unwrap(),
        calls: Default::default(),
        open: Mutex::new(true),
        cv: Default::default(),
    });
    // Which thread probed which mount, in order.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gated = gated_probe(gate.clone());
    let record = {
        let seen = seen.clone();
        Arc::new(move |p: &CStr| {
            let name = p.to_string_lossy().rsplit('/').next().unwrap().to_string();
            seen.lock()
                .unwrap()
                .push((name, std::thread::current().id()));
            gated(p)
        })
    };
    let mut c = FilesystemCollector::new(
        dir.path(),
        Path::new("/"),
        Regex::new("^$").unwrap(),
        Regex::new("^$").unwrap(),
    )
    .with_probe(record, Duration::from_millis(100));
    let take = || std::mem::take(&mut *seen.lock().unwrap());

    // Three polls, one worker thread for all of them.
    for _ in 0..3 {
        let (mut out, mut t) = (Vec::new(), Tally::default());
        c.collect(&mut out, &mut t).unwrap();
        assert_eq!(mountpoints(&out).len(), 3);
    }
    let calls = take();
    assert_eq!(calls.len(), 9);
    assert!(calls.iter().all(|(_, id)| *id == calls[0].1), "{calls:?}");

    // b holds the worker: a fresh one probes c, and is kept for the next poll.
    *gate.open.lock().unwrap() = false;
    let (c, _, t) = collect_within(c);
    assert_eq!(t.get(Reason::Timeout), 1);
    let (_, _, t) = collect_within(c);
    assert_eq!(t.get(Reason::Timeout), 1);
    let calls = take();
    let names: Vec<&str> = calls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "a", "c"]);
    assert_eq!(calls[0].1, calls[1].1);
    assert_ne!(calls[1].1, calls[2].1);
    assert!(
        calls[2..].iter().all(|(_, id)| *id == calls[2].1),
        "{calls:?}"
    );
    *gate.open.lock().unwrap() = true;
    gate.cv.notify_all();
}
