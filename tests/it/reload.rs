//! Trust under change: config file faults at reload (POST, SIGHUP, the file
//! watcher, a ConfigMap swap), sources removed or stopped while a poll hangs,
//! and what `check` and `once` say about the config.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{has_label, sample, FakeTarget, Remora, Reply, Start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_remora");

fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
global: {{interval: 1s, timeout: 500ms}}
host: {{enabled: false}}
targets:
  - name: app
    url: {url}
    metrics: [{{name: app.value, path: $.v}}]
{extra}"#
    )
}

async fn status(r: &Remora) -> serde_json::Value {
    let text = reqwest::get(r.url("/-/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Waits until `pred` holds for `/-/status` (at most `secs` seconds); returns the last one.
async fn status_until(
    r: &Remora,
    secs: u64,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status(r).await;
        if pred(&s) || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `pred` holds (at most `secs` seconds); returns whether it did.
async fn until(secs: u64, pred: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !pred() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn successes(m: &str, target: &str) -> f64 {
    sample(
        m,
        &format!("remora_target_polls_total{{result=\"success\",target=\"{target}\"}}"),
    )
    .unwrap_or(0.0)
}

/// An HTTP server whose every request waits for a gate. It counts the
/// requests it got, the answers it wrote, and the requests the client gave
/// up (closed the connection) while waiting.
struct Gated {
    addr: SocketAddr,
    gate: tokio::sync::watch::Sender<bool>,
    received: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    abandoned: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Gated {
    async fn start(body: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (gate, open) = tokio::sync::watch::channel(false);
        let received = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let abandoned = Arc::new(AtomicUsize::new(0));
        let (rc, an, ab) = (received.clone(), answered.clone(), abandoned.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let (rc, an, ab, mut open) = (rc.clone(), an.clone(), ab.clone(), open.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    rc.fetch_add(1, Ordering::SeqCst);
                    tokio::select! {
                        _ = async { let _ = open.wait_for(|o| *o).await; } => {
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            if s.write_all(resp.as_bytes()).await.is_ok() && s.flush().await.is_ok() {
                                an.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        // The client sends nothing more: EOF or an error means it gave up.
                        _ = s.read(&mut buf) => {
                            ab.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        Gated {
            addr,
            gate,
            received,
            answered,
            abandoned,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn open(&self) {
        let _ = self.gate.send(true);
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    fn abandoned(&self) -> usize {
        self.abandoned.load(Ordering::SeqCst)
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Point 1: a missing, unreadable or empty file is a failed reload by
/// `POST /-/reload`: 500 with the error, flag 0, the error on `/-/status`,
/// the old config keeps running (its counters too); the good file back
/// makes the next reload succeed again.
#[tokio::test]
async fn post_reload_of_a_missing_unreadable_or_empty_file_fails() {
    let app = FakeTarget::start().await;
    app.set("/v", Reply::json(r#"{"v": 7}"#));
    let text = config(&app.url("/v"), "");
    let r = Remora::start_with(
        &text,
        Start {
            lifecycle: true,
            ..Default::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let path = r.config_path.clone();
    let mut polls = successes(&r.metrics().await, "app");

    type Fault = (&'static str, fn(&std::path::Path));
    let faults: [Fault; 5] = [
        ("missing", |p| std::fs::remove_file(p).unwrap()),
        ("a directory", |p| {
            std::fs::remove_file(p).unwrap();
            std::fs::create_dir(p).unwrap();
        }),
        ("not UTF-8", |p| {
            std::fs::write(p, b"targets: \xff\xfe\n").unwrap()
        }),
        ("empty", |p| std::fs::write(p, "").unwrap()),
        ("only comments", |p| {
            std::fs::write(p, "# all commented out\n\n   # targets:\n").unwrap()
        }),
    ];
    for (what, break_it) in faults {
        break_it(&path);
        let resp = client.post(r.url("/-/reload")).send().await.unwrap();
        let code = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(code, 500, "{what}: {body}");
        assert!(body.contains(&path.display().to_string()), "{what}: {body}");
        let m = r.metrics().await;
        assert_eq!(
            sample(&m, "remora_config_last_reload_successful"),
            Some(0.0),
            "{what}"
        );
        let s = status(&r).await;
        assert_eq!(s["last_reload"]["successful"], false, "{what}: {s}");
        assert!(s["last_reload"]["error"].is_string(), "{what}: {s}");
        // The old config keeps running: the target is still polled.
        let m = r.metrics_until(10, |m| successes(m, "app") > polls).await;
        assert!(successes(&m, "app") > polls, "{what}: {m}");
        assert!(
            sample(&m, "app_value{target=\"app\"}") == Some(7.0),
            "{what}: {m}"
        );
        polls = successes(&m, "app");

        if path.is_dir() {
            std::fs::remove_dir(&path).unwrap();
        }
        std::fs::write(&path, &text).unwrap();
        let resp = client.post(r.url("/-/reload")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{what}");
        let m = r.metrics().await;
        assert_eq!(
            sample(&m, "remora_config_last_reload_successful"),
            Some(1.0),
            "{what}"
        );
        assert_eq!(
            status(&r).await["last_reload"]["error"],
            serde_json::Value::Null
        );
        // A kept target keeps its counters across a reload.
        assert!(successes(&m, "app") >= polls, "{what}: counter reset: {m}");
    }
    r.stop().await;
}

/// Point 1 with the file watcher: a non-atomic save (truncate, then write)
/// never makes the target vanish; the empty file is a failed reload, and the
/// running config's content back sets the flag to 1 again by itself.
#[tokio::test]
async fn truncated_file_fails_the_reload_and_restoring_it_clears_the_failure() {
    let app = FakeTarget::start().await;
    app.set("/v", Reply::json(r#"{"v": 7}"#));
    let text = config(&app.url("/v"), "");
    let r = Remora::start_with(
        &text,
        Start {
            watch: true,
            ..Default::default()
        },
    )
    .await;
    let polls = successes(&r.metrics().await, "app");

    // Truncated: the editor has not written the new content yet.
    std::fs::File::create(&r.config_path).unwrap();
    let s = status_until(&r, 10, |s| s["last_reload"]["successful"] == false).await;
    assert_eq!(s["last_reload"]["successful"], false, "{s}");
    let error = s["last_reload"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("empty"), "{s}");
    let m = r.metrics_until(10, |m| successes(m, "app") > polls).await;
    assert_eq!(
        sample(&m, "remora_config_last_reload_successful"),
        Some(0.0)
    );
    assert!(sample(&m, "app_value{target=\"app\"}") == Some(7.0), "{m}");
    assert!(successes(&m, "app") > polls, "{m}");

    // The same content as the running config: the failure is over.
    std::fs::write(&r.config_path, &text).unwrap();
    let s = status_until(&r, 10, |s| s["last_reload"]["successful"] == true).await;
    assert_eq!(s["last_reload"]["successful"], true, "{s}");
    assert_eq!(s["last_reload"]["error"], serde_json::Value::Null, "{s}");
    let m = r.metrics().await;
    assert_eq!(
        sample(&m, "remora_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(sample(&m, "app_value{target=\"app\"}") == Some(7.0), "{m}");
    r.stop().await;
}

/// Point 1 with a ConfigMap: `..data` swapped to a version without the file
/// is a failed reload; swapped back to the running content, the flag is 1.
#[tokio::test]
async fn configmap_swap_to_a_missing_file_fails_and_back_recovers() {
    let app = FakeTarget::start().await;
    app.set("/v", Reply::json(r#"{"v": 7}"#));
    let text = config(&app.url("/v"), "");
    let r = Remora::start_with(
        &text,
        Start {
            watch: true,
            configmap: true,
            ..Default::default()
        },
    )
    .await;
    let dir = r.dir.path();
    let swap = |version: &str, content: Option<&str>| {
        let v = dir.join(version);
        std::fs::create_dir(&v).unwrap();
        if let Some(c) = content {
            std::fs::write(v.join("exporter.yaml"), c).unwrap();
        }
        std::os::unix::fs::symlink(version, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    };

    swap("..2026_11_21_v2", None);
    let s = status_until(&r, 10, |s| s["last_reload"]["successful"] == false).await;
    assert_eq!(s["last_reload"]["successful"], false, "{s}");
    let m = r.metrics().await;
    assert!(sample(&m, "app_value{target=\"app\"}") == Some(7.0), "{m}");

    swap("..2026_11_21_v3", Some(&text));
    let s = status_until(&r, 10, |s| s["last_reload"]["successful"] == true).await;
    assert_eq!(s["last_reload"]["successful"], true, "{s}");
    assert_eq!(s["last_reload"]["error"], serde_json::Value::Null, "{s}");
    r.stop().await;
}

/// Point 1: a broken config is parsed once per change of its content, not
/// at every event in its directory (a log file written beside it) nor when
/// it is rewritten with the same content.
#[tokio::test]
async fn broken_config_is_parsed_once_per_content() {
    let r = Remora::start_with(
        "host: {enabled: false}\n",
        Start {
            watch: true,
            ..Default::default()
        },
    )
    .await;
    let broken = "host: {enabled: false}\nglobal: {intreval: 5s}\n";
    std::fs::write(&r.config_path, broken).unwrap();
    let s = status_until(&r, 10, |s| {
        s["last_reload"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("intreval"))
    })
    .await;
    let first = s["last_reload"]["last_attempt_timestamp_seconds"].clone();
    assert!(first.is_f64(), "{s}");

    // A log file beside the config, and the same broken content saved again.
    let log = r.dir.path().join("remora.log");
    for i in 0..5 {
        std::fs::write(&log, format!("line {i}\n")).unwrap();
    }
    std::fs::write(&r.config_path, broken).unwrap();
    let s = status_until(&r, 2, |s| {
        s["last_reload"]["last_attempt_timestamp_seconds"] != first
    })
    .await;
    assert_eq!(
        s["last_reload"]["last_attempt_timestamp_seconds"], first,
        "parsed again without a change of content: {s}"
    );

    // A new content is tried.
    std::fs::write(&r.config_path, format!("{broken}# edited\n")).unwrap();
    let s = status_until(&r, 10, |s| {
        s["last_reload"]["last_attempt_timestamp_seconds"] != first
    })
    .await;
    assert_ne!(s["last_reload"]["last_attempt_timestamp_seconds"], first);
    r.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Point 1 by SIGHUP (the real binary: a signal reaches the whole process).
#[tokio::test]
async fn sighup_with_a_missing_file_fails_the_reload() {
    let app = FakeTarget::start().await;
    app.set("/v", Reply::json(r#"{"v": 7}"#));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.yaml");
    std::fs::write(&path, config(&app.url("/v"), "")).unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg(format!("--config.file={}", path.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let scrape = || async { reqwest::get(&url).await.ok()?.text().await.ok() };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut m = String::new();
    while Instant::now() < deadline && sample(&m, "app_value{target=\"app\"}") != Some(7.0) {
        m = scrape().await.unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sample(&m, "app_value{target=\"app\"}") == Some(7.0), "{m}");

    std::fs::remove_file(&path).unwrap();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && sample(&m, "remora_config_last_reload_successful") != Some(0.0)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = scrape().await.unwrap_or_default();
    }
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert_eq!(
        sample(&m, "remora_config_last_reload_successful"),
        Some(0.0),
        "{m}"
    );
    assert!(sample(&m, "app_value{target=\"app\"}") == Some(7.0), "{m}");
}

/// Point 2: a target removed by a reload while its first poll hangs never
/// comes back, even when that poll's response arrives afterwards.
#[tokio::test]
async fn target_removed_while_its_first_poll_hangs_never_comes_back() {
    let app = FakeTarget::start().await;
    app.set("/v", Reply::json(r#"{"v": 7}"#));
    let gated = Gated::start(r#"{"v": 42}"#).await;
    let text = config(&app.url("/v"), "");
    let gone = format!(
        "  - name: gone\n    url: {}\n    interval: 60s\n    timeout: 30s\n    metrics: [{{name: gone.value, path: $.v}}]\n",
        gated.url("/slow")
    );
    let r = Remora::start_with(
        &format!("{text}{gone}"),
        Start {
            lifecycle: true,
            no_wait: true,
            ..Default::default()
        },
    )
    .await;
    assert!(until(10, || gated.received() == 1).await, "no poll of gone");
    r.metrics_until(10, |m| successes(m, "app") >= 1.0).await;

    std::fs::write(&r.config_path, &text).unwrap();
    let resp = reqwest::Client::new()
        .post(r.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The hung route answers now; wait until that request is settled
    // (answered, or given up by remora), then for two more polls of `app`.
    gated.open();
    assert!(
        until(10, || gated.answered() + gated.abandoned() == 1).await,
        "the gone request neither answered nor abandoned"
    );
    let polls = successes(&r.metrics().await, "app");
    let m = r
        .metrics_until(10, |m| successes(m, "app") >= polls + 2.0)
        .await;
    assert!(successes(&m, "app") >= polls + 2.0, "{m}");
    assert!(
        !has_label(&m, "target", "gone"),
        "the removed target is back: {m}"
    );
    let s = status(&r).await;
    assert!(s["targets"].get("gone").is_none(), "{s}");
    assert_eq!(
        gated.answered(),
        0,
        "the removed target's poll was not cancelled"
    );
    r.stop().await;
}

fn hanging_targets(gated: &Gated, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "  - name: hang{i}\n    url: {}\n    interval: 60s\n    timeout: 30s\n    metrics: [{{name: hang.value, path: $.v}}]\n",
                gated.url(&format!("/hang{i}"))
            )
        })
        .collect()
}

/// Point 2: a reload stops the hanging polls of the targets it removes,
/// all of them, at once (none is left running in the background).
#[tokio::test]
async fn reload_cancels_every_hanging_poll_of_removed_targets() {
    let app = FakeTarget::start().await;
    app.set("/v", Reply::json(r#"{"v": 7}"#));
    let gated = Gated::start(r#"{"v": 1}"#).await;
    let text = config(&app.url("/v"), "");
    let r = Remora::start_with(
        &format!("{text}{}", hanging_targets(&gated, 10)),
        Start {
            lifecycle: true,
            no_wait: true,
            ..Default::default()
        },
    )
    .await;
    assert!(
        until(10, || gated.received() == 10).await,
        "polls not all in flight"
    );
    std::fs::write(&r.config_path, &text).unwrap();
    let resp = reqwest::Client::new()
        .post(r.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        until(5, || gated.abandoned() == 10).await,
        "{} of 10 hanging polls were given up",
        gated.abandoned()
    );
    let m = r.metrics().await;
    assert!(
        !crate::common::samples(&m).iter().any(|s| s
            .labels
            .get("target")
            .is_some_and(|t| t.starts_with("hang"))),
        "{m}"
    );
    r.stop().await;
}

/// Point 2 and SPEC section 9: a shutdown stops every hanging poll, the
/// first ones included; nothing is left running once remora has returned.
#[tokio::test]
async fn shutdown_cancels_every_hanging_first_poll() {
    let gated = Gated::start(r#"{"v": 1}"#).await;
    let text = format!(
        "host: {{enabled: false}}\ntargets:\n{}",
        hanging_targets(&gated, 10)
    );
    let r = Remora::start_with(
        &text,
        Start {
            no_wait: true,
            ..Default::default()
        },
    )
    .await;
    assert!(
        until(10, || gated.received() == 10).await,
        "polls not all in flight"
    );
    r.stop().await;
    assert!(
        until(5, || gated.abandoned() == 10).await,
        "{} of 10 hanging polls were given up after remora returned",
        gated.abandoned()
    );
}

/// Point 1 at start-up: `remora check` of an empty file fails with `FILE: ...`.
#[test]
fn check_rejects_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [("empty.yaml", ""), ("comments.yaml", "# nothing yet\n\n")] {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        let out = Command::new(BIN)
            .args(["check", &format!("--config.file={}", p.display())])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!("{}: ", p.display())) && stderr.contains("empty"),
            "{name}: {stderr}"
        );
    }
}

/// Point 5: `remora once` reports the config it loaded as loaded.
#[test]
fn once_reports_the_config_as_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.yaml");
    std::fs::write(&p, "host: {enabled: false}\n").unwrap();
    let out = Command::new(BIN)
        .args(["once", &format!("--config.file={}", p.display())])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        sample(&stdout, "remora_config_last_reload_successful "),
        Some(1.0),
        "{stdout}"
    );
}
