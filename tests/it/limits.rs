//! Issue 28, limits of the machine: the OTLP push at shutdown and under
//! `Retry-After`, a target pointing at remora itself, huge configs, and
//! remora under a low open-file limit. Collectors and targets here are real
//! local servers; timing is checked only as lower bounds that the protocol
//! sets (a `Retry-After` wait) or by counting, never as "within N seconds".

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::common::{FakeTarget, Remora, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_remora");

/// How a [`Collector`] answers.
#[derive(Clone)]
enum Mode {
    /// Accepts, then closes with a reset (SO_LINGER 0) before reading.
    Reset,
    /// Answers each request with `answer(n, now)` (n counts from 0): a
    /// status and its `Retry-After`, if any.
    Script(Arc<dyn Fn(usize, SystemTime) -> (u16, Option<String>) + Send + Sync>),
}

/// A local OTLP/HTTP collector that records when each connection (Reset) or
/// request (Script) arrived.
struct Collector {
    port: u16,
    seen: Arc<Mutex<Vec<(Instant, SystemTime)>>>,
}

impl Collector {
    fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<(Instant, SystemTime)>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (log, mode) = (log.clone(), mode.clone());
                std::thread::spawn(move || serve(stream, &mode, &log));
            }
        });
        Collector { port, seen }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<(Instant, SystemTime)> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (at most `secs`) until `n` arrivals were recorded.
    fn wait_for(&self, n: usize, secs: u64) -> Vec<(Instant, SystemTime)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests in {secs}s",
                seen.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(mut stream: TcpStream, mode: &Mode, log: &Mutex<Vec<(Instant, SystemTime)>>) {
    let answer = match mode {
        Mode::Reset => {
            log.lock()
                .unwrap()
                .push((Instant::now(), SystemTime::now()));
            reset(&stream);
            return;
        }
        Mode::Script(answer) => answer,
    };
    let mut buf = Vec::new();
    loop {
        // One request: headers, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + len);
        let n = {
            let mut log = log.lock().unwrap();
            log.push((Instant::now(), SystemTime::now()));
            log.len() - 1
        };
        let (status, retry_after) = answer(n, SystemTime::now());
        let ra = retry_after
            .map(|v| format!("retry-after: {v}\r\n"))
            .unwrap_or_default();
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n{ra}\r\n"
        );
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Closes `stream` with a TCP reset.
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn otlp_config(app: &FakeTarget, collector: &Collector, otlp: &str) -> String {
    format!(
        "global: {{interval: 1s, timeout: 900ms}}\nhost: {{enabled: false}}\ntargets:\n  - name: app\n    url: {}\n    metrics: [{{name: app.jobs, kind: counter, path: $.jobs}}]\notlp: {{endpoint: {}, {otlp}}}\n",
        app.url("/health"),
        collector.endpoint()
    )
}

/// A 429 with `Retry-After: 2` (seconds): the push is tried again no
/// sooner than 2 s after the answer (the exporter's own retry came after
/// 100-200 ms: the header never reached it).
#[tokio::test]
async fn otlp_retry_after_seconds_is_honoured() {
    let collector = Collector::start(Mode::Script(Arc::new(|n, _| match n {
        0 => (429, Some("2".into())),
        _ => (200, None),
    })));
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"jobs": 5}"#));
    let r = Remora::start(&otlp_config(&app, &collector, "interval: 5s, timeout: 5s")).await;
    let seen = tokio::task::spawn_blocking(move || collector.wait_for(2, 30))
        .await
        .unwrap();
    let gap = seen[1].0 - seen[0].0;
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    r.stop().await;
}

/// A 503 with `Retry-After` as an HTTP-date: the next attempt comes at
/// that date or later.
#[tokio::test]
async fn otlp_retry_after_http_date_is_honoured() {
    let dates: Arc<Mutex<Vec<SystemTime>>> = Arc::default();
    let d = dates.clone();
    let collector = Collector::start(Mode::Script(Arc::new(move |n, now| match n {
        0 => {
            let at = now + Duration::from_secs(3);
            let text = httpdate::fmt_http_date(at);
            d.lock()
                .unwrap()
                .push(httpdate::parse_http_date(&text).unwrap());
            (503, Some(text))
        }
        _ => (200, None),
    })));
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"jobs": 5}"#));
    let r = Remora::start(&otlp_config(&app, &collector, "interval: 5s, timeout: 5s")).await;
    let seen = tokio::task::spawn_blocking(move || collector.wait_for(2, 30))
        .await
        .unwrap();
    let date = dates.lock().unwrap()[0];
    // The system clock and the timer may differ by a few milliseconds.
    assert!(
        seen[1].1 + Duration::from_millis(20) >= date,
        "retried {:?} before the date",
        date.duration_since(seen[1].1).unwrap_or_default()
    );
    r.stop().await;
}

/// A `Retry-After` far longer than the interval is honoured only up to the
/// interval: pushes go on.
#[tokio::test]
async fn otlp_retry_after_is_capped_at_the_interval() {
    let collector = Collector::start(Mode::Script(Arc::new(|_, _| (429, Some("3600".into())))));
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"jobs": 5}"#));
    let r = Remora::start(&otlp_config(&app, &collector, "interval: 1s, timeout: 1s")).await;
    let seen = tokio::task::spawn_blocking(move || collector.wait_for(3, 30))
        .await
        .unwrap();
    // Never sooner than the interval after a throttled answer.
    for w in seen.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(gap >= Duration::from_millis(990), "{gap:?}");
    }
    r.stop().await;
}

/// Waits (at most `secs`) for `child` to exit; its exit code.
fn wait_exit(child: &mut std::process::Child, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("remora did not exit within {secs}s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most 20 s) until `port` answers `/-/ready` with 200.
fn wait_ready(child: &mut std::process::Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("remora did not become ready");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIGTERM with a collector that resets every connection, pushes every
/// 100 ms, and a scrape whose request is half sent (the drain waits for it):
/// after SIGTERM only the final push reaches the collector (its first
/// attempt and at most 3 retries; one more for an attempt already under
/// way when the signal came), and remora exits 0. Before, scheduled pushes
/// went on through the whole drain (13-15 connections).
#[test]
fn otlp_no_scheduled_push_after_sigterm_with_a_resetting_collector() {
    let collector = Collector::start(Mode::Reset);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{interval: 1s, timeout: 900ms}}\nhost: {{enabled: false}}\ntargets: []\notlp: {{endpoint: {}, interval: 100ms}}\n",
            collector.endpoint()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&mut child, port);
    // Pushes are failing on schedule.
    collector.wait_for(3, 20);
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let before = collector.seen().len();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let code = wait_exit(&mut child, 20);
    let after = collector.seen().len() - before;
    assert_eq!(code, Some(0));
    assert!(
        after <= 5,
        "{after} connections reached the collector after SIGTERM"
    );
    drop(half);
}

/// A target at remora's own address given by `--web.listen-address` (the
/// config's `server.listen` says another) is refused at start, at its `url:`.
#[test]
fn a_target_polling_remora_itself_through_the_listen_flag_is_refused() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("host: {{enabled: false}}\ntargets:\n  - name: me\n    url: http://localhost:{port}/metrics\n    format: prometheus\n"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=0.0.0.0:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait_exit(&mut child, 20);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "c.yaml:4:10: targets[0].url: http://localhost:{port}/metrics is remora's own listen address"
        )),
        "{stderr}"
    );
}

/// Issue 28: remora's output scraped back through remora twice over would
/// nest `exported_` prefixes without end; past the cap the sample is
/// dropped and counted.
#[tokio::test]
async fn a_deep_exported_prefix_is_dropped_and_counted() {
    let app = FakeTarget::start().await;
    let labels: Vec<String> = (0..6)
        .map(|i| format!("{}target=\"{i}\"", "exported_".repeat(i)))
        .collect();
    app.set(
        "/metrics",
        Reply::Body(
            200,
            "text/plain",
            format!(
                "# TYPE deep gauge\ndeep{{{}}} 1\n# TYPE fine gauge\nfine 1\n",
                labels.join(",")
            ),
        ),
    );
    let r = Remora::start(&format!(
        "host: {{enabled: false}}\ntargets:\n  - {{name: app, url: {}, format: prometheus}}\n",
        app.url("/metrics")
    ))
    .await;
    let m = r
        .metrics_until(10, |m| m.contains("reason=\"exported_prefix_depth\""))
        .await;
    assert!(m.contains("fine{target=\"app\"} 1"), "{m}");
    assert!(!m.contains("deep{"), "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("remora_extraction_errors_total{")
                && l.contains("metric=\"deep\"")
                && l.contains("reason=\"exported_prefix_depth\"")
                && l.ends_with(" 1")),
        "{m}"
    );
    r.stop().await;
}

/// One HTTP/1.0 GET with a deadline on each read and write: the status
/// line's code.
fn get_status(port: u16, path: &str, secs: u64) -> Result<u16, String> {
    get(port, path, secs).map(|(status, _)| status)
}

/// One HTTP/1.0 GET with a deadline on each read and write: the status
/// line's code and the body.
fn get(port: u16, path: &str, secs: u64) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(secs)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(secs)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {:?}", &text[..text.len().min(80)]))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_string()))
}

/// Issue 28: 400 targets under an open-file limit of 256 (soft and hard):
/// every `/metrics` and `/-/healthy` is answered (before, target connections
/// took every descriptor and 10 of 10 scrapes timed out), and the polls that
/// found no descriptor are counted as `fd_limit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_targets_under_a_256_descriptor_limit_leave_scrapes_served() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"jobs": 5}"#));
    let mut config =
        String::from("global: {interval: 1s, timeout: 900ms}\nhost: {enabled: false}\ntargets:\n");
    for i in 0..400 {
        config.push_str(&format!(
            "  - {{name: t{i}, url: '{}?t={i}', metrics: [{{name: app.jobs, path: $.jobs}}]}}\n",
            app.url("/health")
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, config).unwrap();
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let results = tokio::task::spawn_blocking(move || {
        // Up (the listener answers) first; then scrape rounds until every
        // target has been polled three times on average (at least 10 rounds).
        let deadline = Instant::now() + Duration::from_secs(20);
        while get_status(port, "/-/healthy", 5).is_err() {
            assert!(Instant::now() < deadline, "remora never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut results = Vec::new();
        loop {
            let (status, metrics) = match get(port, "/metrics", 5) {
                Ok((status, body)) => (Ok(status), body),
                Err(e) => (Err(e), String::new()),
            };
            results.push(("/metrics", status));
            results.push(("/-/healthy", get(port, "/-/healthy", 5).map(|(s, _)| s)));
            let polls: f64 = metrics
                .lines()
                .filter(|l| l.starts_with("remora_target_polls_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if (polls >= 1200.0 && results.len() >= 20) || Instant::now() > deadline {
                return (results, metrics, polls);
            }
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let (results, metrics, polls) = results.unwrap();
    let failed: Vec<_> = results.iter().filter(|(_, r)| *r != Ok(200)).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        results.len()
    );
    assert!(polls >= 1200.0, "only {polls} polls in 60 s");
    eprintln!(
        "{} scrapes answered 200 of {}, {polls} polls",
        results.len() - failed.len(),
        results.len()
    );
    assert!(
        metrics.contains("remora_target_polls_total{result=\"fd_limit\""),
        "the fd_limit result is served"
    );
}

/// A child remora: killed when dropped, its stderr (the logs) in a file.
struct Child {
    proc: crate::common::Proc,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Child {
    /// Starts remora with `config` on `listen_host:port` and waits for
    /// `/-/ready`.
    fn start(config: &str, listen_host: &str, port: u16) -> Child {
        Child::start_with(config, listen_host, port, None, "/-/ready")
    }

    /// Starts remora; `nofile` sets its open-file limit (soft and hard)
    /// before it runs. Waits until `wait_path` answers 200.
    fn start_with(
        config: &str,
        listen_host: &str,
        port: u16,
        nofile: Option<u64>,
        wait_path: &str,
    ) -> Child {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yaml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.path().join("stderr.log");
        let mut cmd = Command::new(BIN);
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--web.listen-address={listen_host}:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let proc = crate::common::Proc(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while get_status(port, wait_path, 5) != Ok(200) {
            assert!(
                Instant::now() < deadline,
                "remora never answered {wait_path}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Child {
            proc,
            port,
            log,
            _dir: dir,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Scrapes `/metrics` until `pred` holds (at most `secs`): the last body.
    fn metrics_until(&self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let body = get(self.port, "/metrics", 5).map_or(String::new(), |(_, b)| b);
            if pred(&body) {
                return body;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not within {secs}s\n--- logs\n{}\n--- /metrics\n{body}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the exit (its logs complete).
    fn stop(mut self) -> String {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.proc.0.id() as i32, libc::SIGTERM) };
        wait_exit(&mut self.proc.0, 20);
        self.logs()
    }
}

/// A TCP forwarder on 127.0.0.1: every connection to its port is relayed to
/// `upstream` (both ways, until either side closes). Its port.
fn forwarder(upstream: std::net::SocketAddr) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for down in listener.incoming() {
            let Ok(down) = down else { return };
            let Ok(up) = TcpStream::connect(upstream) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            };
            pipe(down.try_clone().unwrap(), up.try_clone().unwrap());
            pipe(up, down);
        }
    });
    port
}

/// The response head of one GET (status line and headers, lowercased).
fn head_of(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    text.split_once("\r\n\r\n")
        .map_or(text.clone(), |(h, _)| h.to_string())
}

/// The `x-remora-instance` token in a response head.
fn instance_token(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("x-remora-instance:"))
        .map(|v| v.trim().to_string())
}

fn self_scrape_config(url: &str) -> String {
    format!(
        "global: {{interval: 300ms, timeout: 250ms}}\nhost: {{enabled: false}}\ntargets:\n  - {{name: me, url: '{url}', format: prometheus}}\n"
    )
}

/// remora's polls of `me` (at `url`, which leads back to it) are refused
/// at runtime: `remora_target_up 0`, counted as `self_scrape`, logged once
/// for the URL, and no `exported_` series appears. Its logs.
fn assert_self_scrape_refused(me: Child) -> String {
    let m = me.metrics_until(30, "three self_scrape polls", |m| {
        crate::common::sample(
            m,
            "remora_target_polls_total{result=\"self_scrape\",target=\"me\"}",
        )
        .is_some_and(|n| n >= 3.0)
    });
    assert_eq!(
        crate::common::sample(&m, "remora_target_up{target=\"me\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        crate::common::sample(
            &m,
            "remora_target_polls_total{result=\"success\",target=\"me\"}"
        ),
        Some(0.0),
        "{m}"
    );
    assert!(
        !m.contains("exported_"),
        "remora served itself back to itself:\n{m}"
    );
    let logs = me.stop();
    let told = logs
        .lines()
        .filter(|l| l.contains("own X-Remora-Instance token"))
        .count();
    assert_eq!(told, 1, "logged {told} times:\n{logs}");
    logs
}

/// Issue 28: a target that reaches remora's own `/metrics` through a TCP
/// forwarder (an address the load check cannot know) is refused at runtime
/// by the `X-Remora-Instance` token of the response; a second remora
/// process polled through the same forwarder has another token and is
/// polled as usual. Before, each poll nested `exported_` one level deeper
/// (thousands of `exported_` series within seconds).
#[test]
fn a_target_reaching_remora_itself_through_a_forwarder_is_refused_and_another_remora_is_not() {
    let port = free_port();
    let fwd = forwarder(([127, 0, 0, 1], port).into());
    let me = Child::start(
        &self_scrape_config(&format!("http://127.0.0.1:{fwd}/metrics")),
        "127.0.0.1",
        port,
    );
    let peer_port = free_port();
    let peer = Child::start(
        &format!(
            "global: {{interval: 300ms, timeout: 250ms}}\nhost: {{enabled: false}}\ntargets:\n  - {{name: other, url: 'http://127.0.0.1:{fwd}/metrics', format: prometheus}}\n"
        ),
        "127.0.0.1",
        peer_port,
    );
    // Each process says who it is, on /metrics and on its pages.
    let (a, b) = (head_of(port, "/metrics"), head_of(peer_port, "/metrics"));
    let token = instance_token(&a).expect("no x-remora-instance on /metrics");
    assert_eq!(token.len(), 32, "{a}");
    assert_eq!(instance_token(&head_of(port, "/")), Some(token.clone()));
    let other = instance_token(&b).expect("no x-remora-instance on the other's /metrics");
    assert_ne!(other, token, "two processes, one token");
    // The other remora polls this one through the forwarder, as usual.
    let m = peer.metrics_until(30, "the other remora polled", |m| {
        crate::common::sample(
            m,
            "remora_target_polls_total{result=\"success\",target=\"other\"}",
        )
        .is_some_and(|n| n >= 2.0)
    });
    assert_eq!(
        crate::common::sample(&m, "remora_target_up{target=\"other\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        crate::common::sample(
            &m,
            "remora_target_polls_total{result=\"self_scrape\",target=\"other\"}"
        ),
        Some(0.0),
        "{m}"
    );
    assert_self_scrape_refused(me);
    let logs = peer.stop();
    assert!(!logs.contains("X-Remora-Instance"), "{logs}");
}

/// A non-loopback IPv4 address of this machine's interfaces, if any.
fn non_loopback_ipv4() -> Option<std::net::Ipv4Addr> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = addrs;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null()
            // SAFETY: ifa_addr points to a sockaddr of at least its family's size.
            && i32::from(unsafe { (*ifa.ifa_addr).sa_family }) == libc::AF_INET
        {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            if !ip.is_loopback() && !ip.is_unspecified() {
                found = Some(ip);
                break;
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: the list getifaddrs allocated, freed once.
    unsafe { libc::freeifaddrs(addrs) };
    found
}

/// Issue 28: remora listening on 0.0.0.0, with a target at a non-loopback
/// address of the machine and its own port and path (the load check knows
/// loopback names only): refused at runtime by the token. A machine without
/// such an address (some CI containers) skips this case with a notice, even
/// under REMORA_TEST_STRICT; the forwarder case covers the same check.
#[test]
fn a_target_reaching_remora_itself_through_a_non_loopback_address_is_refused() {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("SKIP: this machine has no non-loopback IPv4 address; the forwarder case covers the runtime self-scrape check");
        return;
    };
    let port = free_port();
    let me = Child::start(
        &self_scrape_config(&format!("http://{ip}:{port}/metrics")),
        "0.0.0.0",
        port,
    );
    assert_self_scrape_refused(me);
}

/// A local HTTP/1.1 server for the descriptor test: `/gated` answers only
/// once [`Gated::release`] was called, `/quick` at once; both close the
/// connection after answering. It counts the `/gated` connections open at
/// once (from the request until the answer is written or remora closes it)
/// and the most ever open.
#[derive(Clone)]
struct Gated {
    port: u16,
    released: Arc<std::sync::atomic::AtomicBool>,
    /// (open now, most at once) of `/gated` connections.
    open: Arc<Mutex<(usize, usize)>>,
}

impl Gated {
    fn start() -> Gated {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let g = Gated {
            port: listener.local_addr().unwrap().port(),
            released: Arc::default(),
            open: Arc::default(),
        };
        let server = g.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let g = server.clone();
                std::thread::spawn(move || g.serve(stream));
            }
        });
        g
    }

    fn serve(&self, mut stream: TcpStream) {
        use std::sync::atomic::Ordering;
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        if head.starts_with(b"GET /gated") {
            {
                let mut open = self.open.lock().unwrap();
                open.0 += 1;
                open.1 = open.1.max(open.0);
            }
            // Until released, or until remora gives up and closes.
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let closed = loop {
                if self.released.load(Ordering::Acquire) {
                    break false;
                }
                let mut byte = [0u8; 1];
                match stream.read(&mut byte) {
                    Ok(0) => break true,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break true,
                }
            };
            // Counted out before the answer: remora cannot take the
            // connection's permit for another before this.
            self.open.lock().unwrap().0 -= 1;
            if closed {
                return;
            }
        }
        let body = r#"{"jobs": 5}"#;
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }

    fn open(&self) -> (usize, usize) {
        *self.open.lock().unwrap()
    }

    fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Issue 28: the descriptor permits bound the target connections and count
/// what they refuse. remora under an open-file limit of 128 with 128
/// targets whose server holds every connection until released, and 4 quick
/// targets: the held connections never outnumber the permits (counted on
/// the server), once they hold every permit each quick target's polls are
/// refused as `result="fd_limit"` (logged once, with the permits), and
/// every `/metrics` scrape is answered meanwhile. Once the server answers,
/// every target is polled successfully. Without the permits, the held
/// connections took every descriptor and nothing was counted.
#[test]
fn polls_past_the_descriptor_permits_are_refused_counted_and_never_connect() {
    const GATED: usize = 128;
    const QUICK: usize = 4;
    let server = Gated::start();
    let mut config = String::from(
        "global: {interval: 500ms, timeout: 300ms}\nhost: {enabled: false}\ntargets:\n",
    );
    let rule = "metrics: [{name: app.jobs, path: $.jobs}]";
    for i in 0..GATED {
        // A held poll keeps its connection (and permit) for the whole test.
        config.push_str(&format!(
            "  - {{name: g{i}, url: 'http://127.0.0.1:{}/gated?t={i}', interval: 60s, timeout: 60s, {rule}}}\n",
            server.port
        ));
    }
    for i in 0..QUICK {
        config.push_str(&format!(
            "  - {{name: q{i}, url: 'http://127.0.0.1:{}/quick?t={i}', {rule}}}\n",
            server.port
        ));
    }
    let port = free_port();
    // Not ready until the held polls end: up is enough.
    let me = Child::start_with(&config, "127.0.0.1", port, Some(128), "/-/healthy");
    let scrapes = std::cell::Cell::new(0);
    let scrape = |what: &str| -> String {
        scrapes.set(scrapes.get() + 1);
        match get(port, "/metrics", 5) {
            Ok((200, body)) => body,
            other => panic!(
                "scrape {} ({what}) not served: {other:?}\n{}",
                scrapes.get(),
                me.logs()
            ),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let wait = |what: &str, done: &mut dyn FnMut(&str) -> bool| loop {
        let m = scrape(what);
        if done(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 40s (held connections {:?})\n--- logs\n{}\n--- /metrics\n{m}",
            server.open(),
            me.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The first refusal is logged with the number of permits.
    let refused_line = "open-file limit reached";
    wait("the refusal logged", &mut |_| {
        me.logs().contains(refused_line)
    });
    let logs = me.logs();
    let permits: usize = logs
        .lines()
        .find(|l| l.contains(refused_line))
        .and_then(|l| l.split_once("permits=")?.1.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no permits= in the refusal:\n{logs}"));
    assert!(permits < GATED, "{permits} permits");
    // The held polls take every permit, and no more.
    wait("every permit held", &mut |_| server.open().0 == permits);
    // From then on each quick target's polls wait for a permit in vain.
    let fd_limit = |m: &str, i: usize| {
        crate::common::sample(
            m,
            &format!("remora_target_polls_total{{result=\"fd_limit\",target=\"q{i}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let before: Vec<f64> = {
        let m = scrape("the refusals so far");
        (0..QUICK).map(|i| fd_limit(&m, i)).collect()
    };
    let m = wait("two more refusals per quick target", &mut |m| {
        (0..QUICK).all(|i| fd_limit(m, i) >= before[i] + 2.0)
    });
    for i in 0..QUICK {
        assert_eq!(
            crate::common::sample(&m, &format!("remora_target_up{{target=\"q{i}\"}}")),
            Some(0.0),
            "{m}"
        );
    }
    let (open, most) = server.open();
    assert_eq!(open, permits, "held connections changed without a release");
    assert!(
        most <= permits,
        "{most} connections held at once, over {permits} permits"
    );
    eprintln!(
        "{permits} permits, at most {most} held connections, {} fd_limit polls of quick targets, {} scrapes answered",
        (0..QUICK).map(|i| fd_limit(&m, i)).sum::<f64>(),
        scrapes.get()
    );
    // Released: every target is polled successfully.
    server.release();
    let success = |m: &str, name: String| {
        crate::common::sample(
            m,
            &format!("remora_target_polls_total{{result=\"success\",target=\"{name}\"}}"),
        )
        .unwrap_or(0.0)
    };
    wait("every target polled once released", &mut |m| {
        (0..GATED).all(|i| success(m, format!("g{i}")) >= 1.0)
            && (0..QUICK).all(|i| success(m, format!("q{i}")) >= 1.0)
    });
    assert!(server.open().1 <= permits, "{:?}", server.open());
    let logs = me.stop();
    assert_eq!(
        logs.lines().filter(|l| l.contains(refused_line)).count(),
        1,
        "{logs}"
    );
}
