//! Unit tests of the poll loop (under paused time) and its helpers.

use super::*;

#[test]
fn redact_strips_credentials() {
    let u = reqwest::Url::parse("http://user:pw@127.0.0.1:8080/health?x=1").unwrap();
    assert_eq!(redact(&u), "http://127.0.0.1:8080/health?x=…");
}

#[test]
fn jitter_is_bounded_and_stable() {
    let i = Duration::from_secs(10);
    for name in ["a", "checkout", "payments-api"] {
        let j = jitter(name, i);
        assert!(j < Duration::from_secs(1));
        assert_eq!(j, jitter(name, i));
    }
    assert_ne!(jitter("a", i), jitter("b", i));
}

/// A fake poll for [`drive`] under paused time: the virtual times at
/// which polls start and end, and how many are in flight at once.
#[derive(Default)]
struct Log {
    starts: Vec<Duration>,
    ends: Vec<Duration>,
    in_flight: usize,
    most_in_flight: usize,
}

/// A poll closure whose `n`th poll takes `took[n]` (virtual) and that
/// ends the loop after the last one.
fn fake_polls(
    t0: tokio::time::Instant,
    log: &std::rc::Rc<std::cell::RefCell<Log>>,
    took: Vec<Duration>,
) -> impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool>>> {
    let log = log.clone();
    move || {
        let log = log.clone();
        let took = took.clone();
        Box::pin(async move {
            let n = {
                let mut l = log.borrow_mut();
                l.starts.push(t0.elapsed());
                l.in_flight += 1;
                l.most_in_flight = l.most_in_flight.max(l.in_flight);
                l.starts.len()
            };
            tokio::time::sleep(took[n - 1]).await;
            let mut l = log.borrow_mut();
            l.in_flight -= 1;
            l.ends.push(t0.elapsed());
            n < took.len()
        })
    }
}

fn secs(s: &[u64]) -> Vec<Duration> {
    s.iter().map(|s| Duration::from_secs(*s)).collect()
}

#[tokio::test(start_paused = true)]
async fn first_poll_at_once_then_every_interval_after_the_jitter() {
    let interval = Duration::from_secs(10);
    let j = jitter("checkout", interval);
    assert!(j > Duration::ZERO, "pick a name with a non-zero jitter");
    let log = Default::default();
    let done_at = std::cell::Cell::new(None);
    let (_tx, rx) = watch::channel(false);
    let t0 = tokio::time::Instant::now();
    let polls = fake_polls(t0, &log, secs(&[1, 1, 1, 1]));
    drive(interval, j, polls, || done_at.set(Some(t0.elapsed())), rx).await;

    let l = log.borrow();
    assert_eq!(
        l.starts,
        [
            Duration::ZERO,
            interval + j,
            2 * interval + j,
            3 * interval + j
        ]
    );
    // The readiness callback runs once, when the first poll is done.
    assert_eq!(done_at.get(), Some(Duration::from_secs(1)));
    assert_eq!(l.most_in_flight, 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_poll_delays_the_next_and_polls_never_overlap() {
    let interval = Duration::from_secs(10);
    let j = jitter("checkout", interval);
    let log = Default::default();
    let (_tx, rx) = watch::channel(false);
    let t0 = tokio::time::Instant::now();
    // The second poll takes 25s: the ticks at 20s+j and 30s+j pass while
    // it runs. The next poll starts when it ends (35s+j), and the one
    // after a full interval later (45s+j): not in a burst right after
    // (36s+j, MissedTickBehavior::Burst) nor on the old grid (40s+j, Skip).
    let polls = fake_polls(t0, &log, secs(&[1, 25, 1, 1]));
    drive(interval, j, polls, || {}, rx).await;

    let l = log.borrow();
    let s = Duration::from_secs;
    assert_eq!(l.starts, [s(0), s(10) + j, s(35) + j, s(45) + j]);
    assert_eq!(l.ends, [s(1), s(35) + j, s(36) + j, s(46) + j]);
    for (next, end) in l.starts.iter().skip(1).zip(&l.ends) {
        assert!(
            next >= end,
            "a poll started at {next:?} before the previous ended at {end:?}"
        );
    }
    assert_eq!(l.most_in_flight, 1);
}

#[tokio::test(start_paused = true)]
async fn stop_cancels_a_poll_in_flight() {
    let interval = Duration::from_secs(10);
    let log = Default::default();
    let done = std::cell::Cell::new(false);
    let (tx, rx) = watch::channel(false);
    let t0 = tokio::time::Instant::now();
    // The first poll would take an hour; stop comes at 5s.
    let polls = fake_polls(t0, &log, secs(&[3600, 1]));
    let stop = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.send(true).unwrap();
    };
    tokio::join!(
        drive(interval, Duration::ZERO, polls, || done.set(true), rx),
        stop
    );

    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(5),
        "the loop returned at the stop"
    );
    let l = log.borrow();
    assert_eq!(l.starts, [Duration::ZERO]);
    assert!(
        l.ends.is_empty(),
        "the poll in flight was dropped, not finished"
    );
    assert!(!done.get(), "a cancelled first poll does not count as done");
}

#[tokio::test(start_paused = true)]
async fn stop_between_polls_ends_the_loop_without_another_poll() {
    let interval = Duration::from_secs(10);
    let log = Default::default();
    let (tx, rx) = watch::channel(false);
    let t0 = tokio::time::Instant::now();
    let polls = fake_polls(t0, &log, secs(&[1, 1, 1]));
    let stop = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(tx); // the sender gone counts as a stop too
    };
    tokio::join!(drive(interval, Duration::ZERO, polls, || {}, rx), stop);

    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    assert_eq!(log.borrow().starts, [Duration::ZERO]);
}

#[test]
fn what_a_poll_replaces_is_dropped_off_the_async_threads() {
    struct Sentinel(std::sync::mpsc::Sender<std::thread::ThreadId>);
    impl Drop for Sentinel {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().id());
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let here = std::thread::current().id();
    rt.block_on(async { super::drop_off_async(Sentinel(tx.clone())) });
    let there = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_ne!(there, here, "dropped on the runtime's thread");
    // Outside a runtime: dropped at once.
    super::drop_off_async(Sentinel(tx));
    assert_eq!(rx.try_recv(), Ok(here));
}

/// The blocking pool's only thread, after the drops of what polls replaced
/// were handed off: it keeps the process's policy and nice (the drops ran
/// on the drop thread, never on the pool).
#[cfg(target_os = "linux")]
#[test]
fn drops_leave_the_blocking_pool_at_normal_priority() {
    struct Sentinel(std::sync::mpsc::Sender<Option<String>>);
    impl Drop for Sentinel {
        fn drop(&mut self) {
            let _ = self
                .0
                .send(std::thread::current().name().map(str::to_string));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .thread_keep_alive(Duration::from_secs(3600))
        .build()
        .unwrap();
    let pool_thread =
        || tokio::task::spawn_blocking(|| (std::thread::current().id(), crate::sched::current()));
    let normal = crate::sched::current().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (before, after, dropped_on) = rt.block_on(async {
        let before = pool_thread().await.unwrap();
        for _ in 0..8 {
            super::drop_off_async(Sentinel(tx.clone()));
        }
        let dropped_on: Vec<_> = (0..8)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        (before, pool_thread().await.unwrap(), dropped_on)
    });
    assert_eq!(before.0, after.0, "the pool's one thread was replaced");
    let after = after.1.unwrap();
    assert_eq!(after, normal);
    assert_eq!(after.policy, libc::SCHED_OTHER);
    for on in dropped_on {
        assert_eq!(on.as_deref(), Some(crate::sched::drops::THREAD_NAME));
    }
}

/// A record of one poll with `rules` (the same for every poll of a steady
/// target), its families new.
fn record(rules: usize) -> Record {
    let info = Arc::new(crate::model::explain::RuleInfo {
        metric: "app.m".into(),
        each: None,
        each_inner: Vec::new(),
        aggregate: None,
        age: false,
        paths: vec![("app.m".into(), "$.m".into())],
    });
    Record {
        families: Arc::new(Vec::new()),
        base_len: 1,
        spans: vec![(0, 0, 1); rules],
        rules: (0..rules)
            .map(|i| crate::model::explain::RuleRecord {
                info: info.clone(),
                nodes: 1,
                level_nodes: Vec::new(),
                aggregated: None,
                spans: i..i + 1,
                series_total: 1,
                failures: Vec::new(),
            })
            .collect(),
    }
}

#[test]
fn a_steady_target_keeps_its_state_and_only_its_families_are_new() {
    let config = crate::config::load::load_text(
        "targets:\n  - name: t\n    url: http://127.0.0.1:1/\n    metrics:\n      - {name: app.m, path: $.m}\n",
        std::path::Path::new("t.yaml"),
        &|_| None,
    )
    .unwrap();
    let target = config.targets[0].clone();
    let store = Arc::new(crate::store::Store::default());
    let slot = store.claim(vec![crate::store::SlotKey::Target("t".into())]);
    let poll = |rules: usize| {
        let mut outcome = Outcome::succeeded(200, 1);
        outcome.labels = Arc::from(vec![KeyValue::new("target", "t")]);
        outcome.explain = Some(record(rules));
        let families = record(0).families;
        outcome.families = families.clone();
        if let Some(e) = &mut outcome.explain {
            e.families = families.clone();
        }
        assert!(publish(&slot.writer(), &target, outcome));
        let inner = store.read();
        let state = &inner.targets["t"];
        let explain = state.explain.clone().unwrap();
        assert!(
            Arc::ptr_eq(&explain.families, &families),
            "the poll's families"
        );
        (
            state.labels.clone(),
            explain.rules.as_ptr(),
            state.url.as_ptr(),
        )
    };
    let first = poll(3);
    let second = poll(3);
    assert!(Arc::ptr_eq(&first.0, &second.0), "the same labels, kept");
    assert_eq!(first.1, second.1, "the same rules' records, kept");
    assert_eq!(first.2, second.2, "the same URL, kept");
    let third = poll(4);
    assert_ne!(second.1, third.1, "other rules' records, replaced");
    assert_eq!(
        store.read().targets["t"]
            .explain
            .as_ref()
            .unwrap()
            .rules
            .len(),
        4
    );
}
