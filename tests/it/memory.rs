//! Memory bounded by the body limit: `remora once` polls hostile JSON bodies
//! just under the default `limits.max_body_bytes` (4 MiB, with the default
//! `max_series_per_target` of 2000) from a local target, and
//! the child's peak RSS (getrusage of that child after it exits) must stay
//! within its idle figure (the same config on a tiny body) plus 3 x the
//! limit, whatever the rules. The served numbers show nothing is lost
//! silently: every node is a series, an extraction error or a dropped series.

use std::process::{Command, Stdio};

use crate::common::{self, FakeTarget, Reply};

const MAX_BODY: u64 = 4 << 20;
/// Bodies just under the limit.
const SIZE: usize = 4_000_000;

/// `[0,0,...]`: the densest JSON there is (one value per 2 bytes).
fn zeros() -> (String, u64) {
    let n = (SIZE - 2) / 2;
    (format!("[{}]", vec!["0"; n].join(",")), n as u64)
}

/// One object with as many short keys as fit.
fn many_keys() -> (String, u64) {
    let mut parts = Vec::new();
    let mut size = 2;
    while size < SIZE - 20 {
        let p = format!("\"k{:07}\":0", parts.len());
        size += p.len() + 1;
        parts.push(p);
    }
    let n = parts.len() as u64;
    (format!("{{{}}}", parts.join(",")), n)
}

/// Arrays nested 100 deep, side by side.
fn deep() -> String {
    let item = format!("{}0{}", "[".repeat(100), "]".repeat(100));
    let n = (SIZE - 2) / (item.len() + 1);
    format!("[{}]", vec![item; n].join(","))
}

fn config(url: &str, rules: &str) -> String {
    format!(
        "host: {{enabled: false}}\ntargets:\n  - name: t\n    url: {url}\n    timeout: 30s\n    interval: 60s\n    metrics:\n{rules}"
    )
}

/// Reports the peak RSS of a command run as its child, in KiB, into a file.
/// The child's figure must not include its parent's memory: a process's
/// `ru_maxrss` starts from the memory of the process that forked it, so the
/// command is started from a small process (GNU time, else a Python
/// one-liner of about 14 MB, below remora's own idle figure).
fn measured(args: &[&str], rss_file: &std::path::Path) -> Command {
    let time = std::path::Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.args(["-f", "%M", "-o"]).arg(rss_file);
        c
    } else {
        let mut c = Command::new(common::tool("python3").expect("python3"));
        c.args([
            "-c",
            "import resource, subprocess, sys\n\
             subprocess.run(sys.argv[2:])\n\
             open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))",
        ])
        .arg(rss_file);
        c
    };
    cmd.args(args);
    cmd
}

/// Runs `remora once` on `url`; returns its peak RSS in bytes and its output.
fn once(url: &str, rules: &str) -> (u64, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("remora.yaml");
    std::fs::write(&cfg, config(url, rules)).unwrap();
    let out = dir.path().join("out.txt");
    let rss = dir.path().join("rss.txt");
    let flag = format!("--config.file={}", cfg.display());
    let status = measured(&[env!("CARGO_BIN_EXE_remora"), "once", &flag], &rss)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.code().is_some(), "remora was killed: {status}");
    let kib: u64 = std::fs::read_to_string(&rss)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (kib * 1024, std::fs::read_to_string(&out).unwrap())
}

fn value(metrics: &str, prefix: &str) -> u64 {
    common::sample(metrics, prefix).map_or(0, |v| v as u64)
}

/// Serves `body` and a tiny body; checks the peak against the idle figure
/// and returns the exposition of the big one.
async fn bounded(body: String, rules: &'static str) -> String {
    let target = FakeTarget::start().await;
    target.set("/tiny", Reply::json("{\"a\": 0}"));
    target.set("/big", Reply::json(&body));
    let (tiny, big) = (target.url("/tiny"), target.url("/big"));
    let ((idle, _), (peak, metrics)) =
        tokio::task::spawn_blocking(move || (once(&tiny, rules), once(&big, rules)))
            .await
            .unwrap();
    assert!(
        metrics.contains("remora_target_up{target=\"t\"} 1"),
        "{metrics}"
    );
    eprintln!(
        "idle {idle} B, peak {peak} B, (peak - idle) / limit = {:.2}",
        (peak - idle) as f64 / MAX_BODY as f64
    );
    assert!(
        peak <= idle + 3 * MAX_BODY,
        "peak RSS {peak} B is over idle {idle} B + 3 x {MAX_BODY} B (body {} B)",
        body.len()
    );
    metrics
}

#[tokio::test]
async fn zeros_no_rule_reaches_are_skipped() {
    let (body, _) = zeros();
    let m = bounded(body, "      - {name: x, path: $.nope, optional: true}\n").await;
    assert_eq!(value(&m, "remora_series_dropped_total{target=\"t\"}"), 0);
}

#[tokio::test]
async fn zeros_each_succeeds() {
    let (body, n) = zeros();
    let rules = "      - {name: x, each: '$[*]', path: $, labels: {i: '{@key}'}}\n";
    let m = bounded(body, rules).await;
    let series = value(&m, "remora_target_series{target=\"t\"}");
    assert_eq!(series, 2000, "the default cap");
    assert_eq!(
        series + value(&m, "remora_series_dropped_total{target=\"t\"}"),
        n
    );
}

#[tokio::test]
async fn zeros_each_every_node_fails() {
    let (body, n) = zeros();
    let rules = "      - {name: x, each: '$[*]', path: $.v}\n";
    let m = bounded(body, rules).await;
    let errors = value(
        &m,
        "remora_extraction_errors_total{metric=\"x\",reason=\"missing\",target=\"t\"}",
    );
    let dropped = value(&m, "remora_series_dropped_total{target=\"t\"}");
    assert!(errors > 1000, "{m}");
    assert_eq!(errors + dropped, n, "{m}");
}

#[tokio::test]
async fn zeros_recursive_descent_with_keys() {
    let (body, _) = zeros();
    let rules = "      - {name: x, each: '$..*', path: $, labels: {i: '{@key}'}}\n";
    let m = bounded(body, rules).await;
    assert_eq!(value(&m, "remora_target_series{target=\"t\"}"), 2000);
}

#[tokio::test]
async fn strings_every_node_fails_with_labels() {
    let n = (SIZE - 2) / 4;
    let body = format!("[{}]", vec!["\"x\""; n].join(","));
    let rules = "      - {name: x, each: '$[*]', path: $, labels: {v: '{$}'}}\n";
    let m = bounded(body, rules).await;
    assert!(m.contains("remora_extraction_errors_total{metric=\"x\",reason=\"not_a_number\""));
}

#[tokio::test]
async fn many_keys_each_and_filter() {
    let (body, n) = many_keys();
    let rules = "      - {name: x, each: '$.*', path: $, labels: {k: '{@key}'}}\n      - {name: y, each: '$[?@ == 0]', path: $.v, labels: {k: '{@key}'}}\n";
    let m = bounded(body, rules).await;
    let y = value(
        &m,
        "remora_extraction_errors_total{metric=\"y\",reason=\"missing\",target=\"t\"}",
    );
    assert!(y > 1000, "{m}");
    assert!(
        value(&m, "remora_series_dropped_total{target=\"t\"}") + 2000 >= n,
        "{n} {m}"
    );
}

#[tokio::test]
async fn deep_nesting_recursive_descent() {
    let rules = "      - {name: x, each: '$..*', path: $, labels: {i: '{@key}'}}\n";
    bounded(deep(), rules).await;
}

#[tokio::test]
async fn huge_string_as_value_and_labels() {
    let body = format!("{{\"s\": \"{}\"}}", "x".repeat(SIZE - 12));
    let rules = "      - {name: x, path: $.s}\n      - {name: y, path: 1, labels: {s: '{$.s}'}}\n      - {name: z, path: 1, labels: {s: '{$.s}{$.s}'}}\n";
    let m = bounded(body, rules).await;
    assert!(m.contains("remora_extraction_errors_total{metric=\"x\",reason=\"not_a_number\""));
}
