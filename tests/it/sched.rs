//! Which threads run at which priority: the tokio blocking pool at the
//! process's, the render and drop threads at the background nice
//! (`remora::sched`).

use std::time::{Duration, Instant};

use crate::common::{FakeTarget, Remora, Reply, Start};

/// A JSON body over the 64 KiB parsed inline, so that each poll's parse
/// runs on the blocking pool; and the config that polls it every second.
fn big_target(t: &FakeTarget, host: bool) -> String {
    let items: Vec<String> = (0..3000)
        .map(|i| format!("{{\"id\": \"item-{i:05}\", \"v\": {i}}}"))
        .collect();
    let body = format!("{{\"items\": [{}]}}", items.join(","));
    assert!(body.len() > 64 * 1024);
    t.set("/big", Reply::json(&body));
    format!(
        "global: {{interval: 1s, timeout: 1s}}\nhost: {{enabled: {host}}}\nlimits: {{max_series_per_target: 5000}}\ntargets:\n  - name: big\n    url: {}\n    metrics:\n      - {{name: item, each: '$.items[*]', path: $.v, labels: {{id: \"{{$.id}}\"}}}}\n",
        t.url("/big")
    )
}

/// Waits until the target was asked `n` times (polls never overlap: the
/// `n`th request means the poll before it was parsed and published).
async fn wait_hits(t: &FakeTarget, path: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.hits(path) < n {
        assert!(
            Instant::now() < deadline,
            "{path} polled {} times",
            t.hits(path)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After large-body polls (parsed on the blocking pool) and the drops of
/// what they replaced, a task on the pool's only thread still runs under
/// the process's policy and nice.
#[cfg(target_os = "linux")]
#[test]
fn large_body_polls_leave_the_blocking_pool_at_normal_priority() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap();
    let normal = remora::sched::current().unwrap();
    let (first, last) = rt.block_on(async {
        let on_pool = || {
            tokio::task::spawn_blocking(|| (std::thread::current().id(), remora::sched::current()))
        };
        let first = on_pool().await.unwrap();
        let t = FakeTarget::start().await;
        let r = Remora::start_with(&big_target(&t, false), Start::default()).await;
        wait_hits(&t, "/big", 3).await;
        let last = on_pool().await.unwrap();
        r.stop().await;
        (first, last)
    });
    assert_eq!(first.0, last.0, "the pool's one thread was replaced");
    assert_eq!(last.1.unwrap(), normal);
    assert_eq!(normal.policy, libc::SCHED_OTHER);
}

/// A thread of a running remora, from /proc/PID/task/TID/stat.
#[derive(Debug)]
struct Task {
    name: String,
    nice: i32,
    policy: i32,
}

fn tasks(pid: u32) -> Vec<Task> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(stat) = std::fs::read_to_string(entry.unwrap().path().join("stat")) else {
            continue; // the thread ended
        };
        let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
        // Fields after the name: the 3rd (state) first; nice is the 19th,
        // policy the 41st.
        let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        out.push(Task {
            name: stat[open + 1..close].to_string(),
            nice: rest[19 - 3].parse().unwrap(),
            policy: rest[41 - 3].parse().unwrap(),
        });
    }
    out
}

/// The binary polling a large body with the host collectors on: its render
/// and drop threads run under `SCHED_OTHER` at the background nice, every
/// other thread (async workers, blocking pool, ...) as the process.
#[cfg(target_os = "linux")]
#[test]
fn only_the_render_and_drop_threads_run_at_the_background_nice() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = rt.block_on(FakeTarget::start());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, big_target(&t, true)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_remora"))
        .args([
            format!("--config.file={}", cfg.display()),
            "--web.listen-address=127.0.0.1:0".into(),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    rt.block_on(wait_hits(&t, "/big", 4));
    let all = tasks(pid);
    let _ = child.kill();
    let _ = child.wait();

    let process = all
        .iter()
        .find(|t| t.name == "remora")
        .expect("the main thread");
    let background = (process.nice + 10).min(19);
    for name in ["remora-render", "remora-drop"] {
        let t = all.iter().find(|t| t.name == name);
        let t = t.unwrap_or_else(|| panic!("no {name} thread in {all:?}"));
        assert_eq!((t.policy, t.nice), (libc::SCHED_OTHER, background), "{t:?}");
    }
    for t in all
        .iter()
        .filter(|t| t.name != "remora-render" && t.name != "remora-drop")
    {
        assert_eq!(
            (t.policy, t.nice),
            (process.policy, process.nice),
            "{t:?} in {all:?}"
        );
    }
}
