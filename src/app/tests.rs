//! Unit tests of sources stopping.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::build::{prepare, Compiled};
use super::sources::Sources;
use crate::config::{self, Config};
use crate::host::Roots;
use crate::readiness::Readiness;
use crate::store::{SlotKey, Store};

fn config(text: &str) -> Config {
    config::load_text(text, Path::new("t.yaml"), &|_| None).unwrap()
}

/// N sources that ignore the stop signal cost one deadline, not N: they
/// are joined together and the rest is aborted; their slots are freed
/// before anything waits.
#[tokio::test(start_paused = true)]
async fn stopping_stuck_sources_costs_one_deadline() {
    let store = Store::new();
    let mut sources = Sources::new();
    for i in 0..10 {
        let slot = store.claim(vec![SlotKey::Target(format!("t{i}"))]);
        slot.writer()
            .write()
            .unwrap()
            .targets
            .insert(format!("t{i}"), Default::default());
        sources.spawn(slot, std::future::pending());
    }
    assert_eq!(store.read().targets.len(), 10);
    let deadline = Duration::from_secs(5);
    let start = tokio::time::Instant::now();
    let store2 = store.clone();
    let check = tokio::spawn(async move { store2.read().targets.len() });
    let aborted = sources.stop(start + deadline).await;
    assert_eq!(aborted, 10);
    assert_eq!(tokio::time::Instant::now() - start, deadline);
    assert_eq!(check.await.unwrap(), 0, "slots freed before the wait");
    assert!(store.read().targets.is_empty());
}

/// The writing end of a FIFO, opened once a reader is stuck on it; dropping
/// it writes a line, so the reader goes on (a blocking thread left stuck
/// would hang the runtime's drop).
struct Unblock(std::fs::File);

impl Unblock {
    /// Waits (10 s at most) until a reader has the FIFO open, then holds it
    /// open for writing without writing: the reader stays stuck in `read`.
    fn when_read(path: &Path) -> Self {
        use std::os::unix::fs::OpenOptionsExt;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            // Without a reader, a non-blocking open for writing fails (ENXIO).
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
            {
                Ok(f) => return Unblock(f),
                Err(e) => assert!(std::time::Instant::now() < deadline, "no reader: {e}"),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Unblock {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = self.0.write_all(b"0.50 0.25 0.10 1/100 42\n");
    }
}

/// Hanging polls (the first ones) and a host round stuck in a blocking
/// read all stop on the signal: none is left for the deadline to abort,
/// and nothing they held stays in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_polls_and_a_stuck_host_round_stop_at_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted_tx, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
            let _ = accepted_tx.send(());
        }
    });
    let proc_dir = tempfile::tempdir().unwrap();
    let fifo = proc_dir.path().join("loadavg");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string and mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let roots = Roots {
        proc: proc_dir.path().to_path_buf(),
        sys: proc_dir.path().join("sys"),
        cgroup: proc_dir.path().join("cgroup"),
        rootfs: proc_dir.path().to_path_buf(),
    };
    let targets: String = (0..5)
        .map(|i| format!("  - {{name: t{i}, url: 'http://{addr}/{i}', interval: 1h, timeout: 1h, metrics: [{{name: m, path: $.a}}]}}\n"))
        .collect();
    let cfg = config(&format!(
        "host: {{collectors: [load]}}\ntargets:\n{targets}"
    ));
    let store = Store::new();
    let ready = Arc::new(Readiness::default());
    let prepared = prepare(cfg, &roots, &Compiled::new()).unwrap();
    let sources = Sources::launch(prepared, &roots, &store, &ready);
    // Every poll hangs and the host round is stuck reading the FIFO.
    let unblock = tokio::task::spawn_blocking(move || {
        for _ in 0..5 {
            accepted.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        Unblock::when_read(&fifo)
    })
    .await
    .unwrap();
    let aborted = sources
        .stop(tokio::time::Instant::now() + Duration::from_secs(30))
        .await;
    assert_eq!(aborted, 0);
    assert!(!ready.is_ready());
    {
        let inner = store.read();
        assert!(inner.targets.is_empty() && inner.collectors.is_empty());
    }
    // Let the stuck host round finish: its result has nowhere to go.
    drop(unblock);
    assert!(store.read().collectors.is_empty());
}

/// Pollers of equal rules share one compiled extractor (issue 28), which
/// the last of them frees when the sources stop; a target of other rules
/// has its own.
#[tokio::test(start_paused = true)]
async fn equal_rules_share_one_extractor_freed_at_stop() {
    let rules = "[{name: app.a, path: $.a}, {name: app.b, path: $.b}]";
    let cfg = config(&format!(
        "host: {{enabled: false}}\ntargets:\n\
         - {{name: t0, url: 'http://127.0.0.1:1/0', interval: 1h, metrics: {rules}}}\n\
         - {{name: t1, url: 'http://127.0.0.1:1/1', interval: 1h, metrics: {rules}}}\n\
         - {{name: t2, url: 'http://127.0.0.1:1/2', interval: 1h, metrics: [{{name: app.a, path: $.a}}]}}\n"
    ));
    let prepared = prepare(cfg, &Roots::default(), &Compiled::new()).unwrap();
    let x: Vec<_> = prepared
        .pollers
        .iter()
        .map(|p| p.extractor.clone())
        .collect();
    assert!(Arc::ptr_eq(&x[0], &x[1]));
    assert!(!Arc::ptr_eq(&x[0], &x[2]));
    // The two pollers, `x`'s two clones and the generation's compiled
    // lists (what a reload reuses; `Sources::launch` drops them).
    assert_eq!(Arc::strong_count(&x[0]), 5);
    assert_eq!(Arc::strong_count(&x[2]), 3);
    let weak: Vec<_> = x.iter().map(Arc::downgrade).collect();
    drop(x);
    let store = Store::new();
    let ready = Arc::new(Readiness::default());
    let sources = Sources::launch(prepared, &Roots::default(), &store, &ready);
    assert_eq!(weak[0].strong_count(), 2);
    let aborted = sources
        .stop(tokio::time::Instant::now() + Duration::from_secs(5))
        .await;
    assert_eq!(aborted, 0);
    assert!(weak.iter().all(|w| w.upgrade().is_none()));
}

/// A reload's generation takes the running generation's rule lists and
/// compiled extractors where the rules did not change (issue 28: with
/// distinct rules per target, each reload compiled 2,000 extractors beside
/// the live ones and memory rose x1.26 over 6 reloads); changed rules get
/// their own, and nothing of the old generation is kept for a list the new
/// one no longer has.
#[test]
fn a_reload_reuses_the_extractors_of_unchanged_rules() {
    let gen = |label: &str, t1: &str| {
        config(&format!(
            "host: {{enabled: false}}\nglobal: {{labels: {{generation: {label}}}}}\ntargets:\n\
             - {{name: t0, url: 'http://127.0.0.1:1/0', interval: 1h, metrics: [{{name: app.a, path: $.a}}]}}\n\
             - {{name: t1, url: 'http://127.0.0.1:1/1', interval: 1h, metrics: [{t1}]}}\n\
             - {{name: t2, url: 'http://127.0.0.1:1/2', interval: 1h, metrics: [{{name: app.a, path: $.a, scale: 2}}]}}\n"
        ))
    };
    let first = prepare(
        gen("g0", "{name: app.b, path: $.b}"),
        &Roots::default(),
        &Compiled::new(),
    )
    .unwrap();
    assert_eq!(first.compiled.len(), 3);
    // t1's rules change; t0's and t2's do not (the global label does).
    let second = prepare(
        gen("g1", "{name: app.b, path: $.c}"),
        &Roots::default(),
        &first.compiled,
    )
    .unwrap();
    let same = |i: usize| {
        let (a, b) = (&first.pollers[i], &second.pollers[i]);
        let list = config::Rules::ptr_eq(&a.target.metrics, &b.target.metrics);
        assert_eq!(list, Arc::ptr_eq(&a.extractor, &b.extractor));
        list
    };
    assert!(same(0));
    assert!(!same(1));
    assert!(same(2));
    let source = format!("{:?}", second.pollers[1].target.metrics[0].values[0].source);
    assert!(source.contains("DotName(\"c\")"), "{source}");
    // The second generation holds its own three lists, two of them the first's.
    assert_eq!(second.compiled.len(), 3);
    let old_t1 = Arc::downgrade(&first.pollers[1].extractor);
    drop(first);
    assert!(old_t1.upgrade().is_none());
    assert_eq!(Arc::strong_count(&second.pollers[0].extractor), 2);
}

/// A config of more than `sched::polls::MAX_IN_FLIGHT` targets polls that
/// many at once (issue 28: the burst of thousands of polls in flight stayed
/// in the heap); the others wait for a place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_targets_poll_a_bounded_number_at_once() {
    use crate::sched::polls::{Gate, MAX_IN_FLIGHT};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    // Holds every connection without answering: each poll stays in flight.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let n = MAX_IN_FLIGHT + 72;
    let targets: String = (0..n)
        .map(|i| format!("  - {{name: t{i}, url: 'http://{addr}/{i}', interval: 1h, timeout: 1h, metrics: [{{name: m, path: $.a}}]}}\n"))
        .collect();
    let cfg = config(&format!("host: {{enabled: false}}\ntargets:\n{targets}"));
    let store = Store::new();
    let ready = Arc::new(Readiness::default());
    let prepared = prepare(cfg, &Roots::default(), &Compiled::new()).unwrap();
    let sources = Sources::launch(prepared, &Roots::default(), &store, &ready);
    let gate = Gate::for_targets(n);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while gate.free() != Some(0) || accepted.load(Ordering::SeqCst) < MAX_IN_FLIGHT {
        assert!(
            std::time::Instant::now() < deadline,
            "places free: {:?}, connections: {}",
            gate.free(),
            accepted.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), MAX_IN_FLIGHT);
    let aborted = sources
        .stop(tokio::time::Instant::now() + Duration::from_secs(30))
        .await;
    assert_eq!(aborted, 0);
    assert_eq!(gate.free(), Some(MAX_IN_FLIGHT));
}
