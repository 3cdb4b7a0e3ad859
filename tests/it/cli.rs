//! The binary: `check`, `once`, `--version`, SIGTERM drain, log formats,
//! and `promtool check metrics` on real output.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_remora");

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn version() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("remora "));
}

#[test]
fn check_good_and_bad() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        &dir,
        "good.yaml",
        "targets:\n  - {name: a, url: http://127.0.0.1:1/, metrics: [{name: m, path: $.a}]}\n",
    );
    let out = Command::new(BIN)
        .args(["check", &format!("--config.file={}", good.display())])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("OK: 1 target(s), 1 metric rule(s)"),
        "{stdout}"
    );

    let bad = write(
        &dir,
        "bad.yaml",
        "global:\n  intreval: 10s\n  timeout: soon\ntargets:\n  - name: a\n",
    );
    let out = Command::new(BIN)
        .args(["check", "--config.file", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let p = bad.display();
    assert!(
        stderr.contains(&format!(
            "{p}:2:3: global.intreval: unknown key (did you mean \"interval\"?"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{p}:3:12: global.timeout: \"soon\" is not a duration"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}:5:5: targets[0].url: missing")),
        "{stderr}"
    );
    assert!(stderr.contains("targets[0].metrics: missing"), "{stderr}");

    let out = Command::new(BIN)
        .args(["check", "--config.file=/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.yaml: cannot read"));
}

/// A YAML syntax error is reported at its exact line and column (the `:` of
/// `b: 3`, inside the unclosed flow sequence), not merely on some line.
#[test]
fn check_reports_yaml_syntax_error_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "syntax.yaml", "a: [1, 2\nb: 3\n");
    let out = Command::new(BIN)
        .args(["check", "--config.file", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:2:2: ", bad.display())),
        "{stderr}"
    );
}

#[test]
fn repository_config_checks() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/exporter.yaml");
    let out = Command::new(BIN)
        .args(["check", &format!("--config.file={path}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn once_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "c.yaml", "host: {collectors: [memory]}\n");
    let out = Command::new(BIN)
        .args(["once", &format!("--config.file={}", cfg.display())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(common::has_name(&text, "remora_build_info"));
    assert!(
        common::has_name(&text, "system_memory_usage_bytes"),
        "{text}"
    );

    let cfg = write(&dir, "d.yaml", "host: {enabled: false}\ntargets:\n  - {name: a, url: http://127.0.0.1:1/, metrics: [{name: m, path: $.a}]}\n");
    let out = Command::new(BIN)
        .args(["once", &format!("--config.file={}", cfg.display())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        common::sample(
            &String::from_utf8_lossy(&out.stdout),
            "remora_target_up{target=\"a\"}"
        ),
        Some(0.0)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the binary; returns it once `/-/ready` answers 200 (the caller waits for it).
#[allow(clippy::zombie_processes)]
fn spawn(args: &[String]) -> (std::process::Child, u16) {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                return (child, port);
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

#[test]
fn sigterm_drains_and_exits_zero_with_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "c.yaml", "host: {enabled: false}\ntargets:\n  - {name: a, url: 'http://user:hunter2@127.0.0.1:1/', metrics: [{name: m, path: $.a}]}\n");
    let (mut child, _port) = spawn(&[
        format!("--config.file={}", cfg.display()),
        "--log.format=json".into(),
    ]);
    let pid = child.id() as i32;
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "remora did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let stderr = child.stderr.take().unwrap();
    let lines: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(
            v["ts"].is_string() && v["level"].is_string() && v["msg"].is_string(),
            "{line}"
        );
        assert!(!line.contains("hunter2"), "a secret was logged: {line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"target down\"") && l.contains("\"target\":\"a\"")),
        "{lines:#?}"
    );
}

#[test]
fn logfmt_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "c.yaml", "host: {enabled: false}\n");
    let (mut child, _) = spawn(&[format!("--config.file={}", cfg.display())]);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("ts=") && first.contains(" level=info msg="),
        "{first}"
    );
}

/// These semantic-convention names end in `.count`; promtool's lint wants
/// `_count` only on histograms and summaries. remora keeps the names the
/// contract gives (see docs/design.md, "`_count` names"); everything else must be clean.
const SEMCONV_COUNT_NAMES: [&str; 4] = [
    "process_count",
    "process_thread_count",
    "process_unix_file_descriptor_count",
    "system_cpu_logical_count",
];

#[test]
fn promtool_finds_nothing_to_complain_about() {
    let Some(promtool) = common::tool("promtool") else {
        return;
    };
    let out = Command::new(BIN)
        .args([
            "once",
            concat!(
                "--config.file=",
                env!("CARGO_MANIFEST_DIR"),
                "/exporter.yaml"
            ),
        ])
        .output()
        .unwrap();
    let text = out.stdout;
    assert!(!text.is_empty());
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let complaints: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !SEMCONV_COUNT_NAMES
                .iter()
                .any(|n| l.starts_with(&format!("{n} non-histogram")))
        })
        .collect();
    assert!(complaints.is_empty(), "promtool: {complaints:#?}");
}

/// SIGHUP reloads even when the file did not change (the directory watch
/// only reacts to changes, so this exercises the signal alone).
#[test]
fn sighup_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "c.yaml", "host: {enabled: false}\n");
    let (mut child, port) = spawn(&[format!("--config.file={}", cfg.display())]);
    let stamp = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let (_, body) = buf.split_once("\r\n\r\n").expect("an HTTP response");
        common::sample(body, "remora_config_last_reload_success_timestamp_seconds").unwrap()
    };
    let before = stamp();
    // The reload's stamp must be able to differ from `before`: wait (with a
    // deadline) until the clock has moved past it.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while now() <= before + 0.001 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = stamp();
    while after == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = stamp();
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(
        after > before,
        "SIGHUP did not reload ({before} -> {after})"
    );
}

/// A SIGHUP that arrives once remora has logged that it listens, before the
/// reload loop runs, is not the default "hang up" exit: the handler is
/// installed with SIGTERM's, before the listener is bound.
#[test]
fn early_sighup_does_not_end_the_process() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "c.yaml", "host: {enabled: false}\n");
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("remora listening"));
    assert!(listening, "remora never logged that it listens");
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    // Ready after the signal: the process lived through it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("remora ended on an early SIGHUP: {status}");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                break true;
            }
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(ready, "remora did not become ready after an early SIGHUP");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn telemetry_path_flag_moves_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "c.yaml", "host: {enabled: false}\n");
    let (mut child, port) = spawn(&[
        format!("--config.file={}", cfg.display()),
        "--web.telemetry-path=/custom".into(),
    ]);
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    };
    let custom = get("/custom");
    let old = get("/metrics");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(
        custom.starts_with("HTTP/1.0 200") && custom.contains("remora_build_info"),
        "{custom}"
    );
    assert!(old.starts_with("HTTP/1.0 404"), "{old}");
}
