//! One valid exposition, whatever the apps serve (SPEC section 5): every
//! family name once, pass-through families merged with remora's own when the
//! types agree and dropped (`name_collision`) when not, app labels renamed
//! `exported_...` until free, malformed bodies turned into a down target.
//! The response is checked three ways: `promtool check metrics`, the Python
//! `prometheus_client` parser, and a real Prometheus scraping it.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{has, has_name, sample, FakeTarget, Remora, Reply};

/// An app that serves remora's own names, a JSON rule's names, labels remora
/// adds, HELP escapes and a family split in two blocks.
const ODD_APP: &str = r#"# HELP process_cpu_seconds_total The app's CPU.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 4.5
# TYPE process_open_fds gauge
process_open_fds 9
# HELP app_jobs_total Jobs, as the app counts them.
# TYPE app_jobs_total counter
app_jobs_total{queue="a"} 3
# TYPE app_depth untyped
app_depth 5
# TYPE odd_labels gauge
odd_labels{target="inner",exported_target="outer"} 1
# HELP odd_help A \d in HELP text.
# TYPE odd_help gauge
odd_help 1
# TYPE odd_split gauge
odd_split{part="1"} 1
# TYPE odd_other gauge
odd_other 1
odd_split{part="2"} 2
"#;

fn config(app: &FakeTarget) -> String {
    format!(
        r#"
global: {{interval: 1s, timeout: 900ms}}
host: {{collectors: [memory]}}
targets:
  - name: odd
    url: {odd}
    format: prometheus
  - name: bad-escape
    url: {bad_escape}
    format: prometheus
  - name: dup-labels
    url: {dup_labels}
    format: prometheus
  - name: json
    url: {json}
    metrics:
      - name: app.jobs
        kind: counter
        description: Jobs done, as remora reads them.
        path: $.jobs
      - name: app.depth
        description: Queue depth, as remora reads it.
        path: $.depth
"#,
        odd = app.url("/odd"),
        bad_escape = app.url("/bad-escape"),
        dup_labels = app.url("/dup-labels"),
        json = app.url("/status"),
    )
}

async fn odd_app() -> FakeTarget {
    let app = FakeTarget::start().await;
    let text = |s: &str| Reply::Body(200, "text/plain; version=0.0.4", s.to_string());
    app.set("/odd", text(ODD_APP));
    app.set(
        "/bad-escape",
        text("# TYPE esc gauge\nesc{path=\"C:\\dir\"} 1\n"),
    );
    app.set(
        "/dup-labels",
        text("# TYPE dup gauge\ndup{a=\"1\",a=\"2\"} 1\n"),
    );
    app.set("/status", Reply::json(r#"{"jobs": 7, "depth": 2}"#));
    app
}

/// Scrapes until every target has been polled.
async fn polled(r: &Remora) -> String {
    let m = r
        .metrics_until(20, |m| {
            ["odd", "bad-escape", "dup-labels", "json"]
                .iter()
                .all(|t| has(m, &format!("remora_target_up{{target=\"{t}\"}}")))
        })
        .await;
    assert!(
        has(&m, "remora_target_up{target=\"json\"}"),
        "targets never polled:\n{m}"
    );
    m
}

/// Family names from `# TYPE` and `# HELP` lines, each of which must come once.
fn family_lines_once(text: &str) {
    for prefix in ["# TYPE ", "# HELP "] {
        let mut seen = BTreeMap::new();
        for l in text.lines().filter_map(|l| l.strip_prefix(prefix)) {
            let name = l.split(' ').next().unwrap_or("");
            *seen.entry(name.to_string()).or_insert(0) += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{prefix}twice: {twice:?}\n{text}");
    }
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(sys.stdin.read()))
names = [f.name for f in families]
twice = sorted({n for n in names if names.count(n) > 1})
if twice:
    sys.exit("families twice: %s" % twice)
print(json.dumps([[f.name, f.type, [[s.name, s.labels, repr(s.value)] for s in f.samples]] for f in families]))
"#;

/// (family, type, samples as (name, labels, value)) from the Python parser.
type PyFamily = (
    String,
    String,
    Vec<(String, BTreeMap<String, String>, String)>,
);

/// The Python `prometheus_client` parser: it raises on a label named twice;
/// the script also refuses a family name seen twice (the parser itself
/// yields such a family twice).
fn python_parses(text: &str) -> Option<Vec<PyFamily>> {
    let python = common::tool("python3")?;
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejects the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn py_sample(families: &[PyFamily], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families
        .iter()
        .flat_map(|f| &f.2)
        .find(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .and_then(|(_, _, v)| v.parse().ok())
}

#[tokio::test]
async fn odd_apps_give_one_valid_exposition() {
    let app = odd_app().await;
    let r = Remora::start(&config(&app)).await;
    let m = polled(&r).await;

    family_lines_once(&m);
    // remora's own process_* and the app's: one family, told apart by `target`.
    assert!(
        m.contains("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\n"),
        "remora's HELP wins:\n{m}"
    );
    assert!(sample(&m, "process_cpu_seconds_total ").is_some(), "{m}");
    assert_eq!(
        sample(&m, "process_cpu_seconds_total{target=\"odd\"}"),
        Some(4.5),
        "{m}"
    );
    assert_eq!(sample(&m, "process_open_fds{target=\"odd\"}"), Some(9.0));
    // A JSON rule's name and type: merged, with remora's HELP.
    assert!(
        m.contains("# HELP app_jobs_total Jobs done, as remora reads them.\n"),
        "{m}"
    );
    assert_eq!(sample(&m, "app_jobs_total{target=\"json\"}"), Some(7.0));
    assert_eq!(
        sample(&m, "app_jobs_total{queue=\"a\",target=\"odd\"}"),
        Some(3.0),
        "{m}"
    );
    // A JSON rule's name with another type: the app's family is dropped and counted.
    assert_eq!(sample(&m, "app_depth{target=\"json\"}"), Some(2.0));
    assert!(!has(&m, "app_depth{target=\"odd\"}"), "{m}");
    assert!(!m.contains("# TYPE app_depth untyped"), "{m}");
    assert!(
        sample(&m, "remora_extraction_errors_total{metric=\"app_depth\",reason=\"name_collision\",target=\"odd\"}")
            .is_some_and(|v| v >= 1.0),
        "{m}"
    );
    // The app's `target` and `exported_target`: the prefix repeats.
    assert_eq!(
        sample(
            &m,
            "odd_labels{exported_exported_target=\"inner\",exported_target=\"outer\",target=\"odd\"}"
        ),
        Some(1.0),
        "{m}"
    );
    // A family in two blocks is served as one.
    assert!(
        m.contains("# TYPE odd_split gauge\nodd_split{part=\"1\",target=\"odd\"} 1\nodd_split{part=\"2\",target=\"odd\"} 2\n"),
        "{m}"
    );
    assert!(m.contains("# HELP odd_help A \\\\d in HELP text.\n"), "{m}");
    assert_eq!(sample(&m, "remora_target_up{target=\"odd\"}"), Some(1.0));

    common::promtool_parses(&m);
    if let Some(families) = python_parses(&m) {
        assert_eq!(
            py_sample(
                &families,
                "odd_labels",
                &[
                    ("exported_target", "outer"),
                    ("exported_exported_target", "inner"),
                    ("target", "odd")
                ]
            ),
            Some(1.0)
        );
        assert_eq!(
            py_sample(&families, "process_cpu_seconds_total", &[("target", "odd")]),
            Some(4.5)
        );
    }
    r.stop().await;
}

#[tokio::test]
async fn malformed_bodies_take_the_target_down_never_the_response() {
    let app = odd_app().await;
    let r = Remora::start(&config(&app)).await;
    let m = polled(&r).await;
    // Bad escapes and a label named twice: the target is down, never the response.
    for t in ["bad-escape", "dup-labels"] {
        assert_eq!(
            sample(&m, &format!("remora_target_up{{target=\"{t}\"}}")),
            Some(0.0),
            "{m}"
        );
        assert!(
            sample(
                &m,
                &format!("remora_target_polls_total{{result=\"invalid_body\",target=\"{t}\"}}")
            )
            .is_some_and(|v| v >= 1.0),
            "{m}"
        );
    }
    assert!(!has_name(&m, "esc") && !has_name(&m, "dup"), "{m}");
    common::promtool_parses(&m);
    python_parses(&m);
    r.stop().await;
}

/// Queries until the result is not empty, at most `secs`.
async fn wait_for(
    client: &reqwest::Client,
    prom: &str,
    q: &str,
    secs: u64,
) -> Vec<serde_json::Value> {
    common::prom_wait_for(client, prom, q, secs, |r| !r.is_empty()).await
}

#[tokio::test]
async fn prometheus_keeps_scraping_remora_beside_an_odd_app() {
    let Some(prometheus) = common::tool("prometheus") else {
        return;
    };
    let app = odd_app().await;
    let r = Remora::start(&config(&app)).await;
    polled(&r).await;

    let dir = tempfile::tempdir().unwrap();
    let (_prom, prom) = common::start_prometheus(&prometheus, dir.path(), &r.addr.to_string());
    let client = reqwest::Client::new();

    // A series from the odd app, with its renamed labels, shows through the API...
    let s = wait_for(
        &client,
        &prom,
        "odd_labels{exported_exported_target=\"inner\",exported_target=\"outer\"}",
        60,
    )
    .await;
    assert_eq!(s[0]["metric"]["target"], "odd");
    let s = wait_for(
        &client,
        &prom,
        "process_cpu_seconds_total{target=\"odd\"}",
        10,
    )
    .await;
    assert_eq!(s[0]["value"][1], "4.5");
    wait_for(&client, &prom, "app_jobs_total{target=\"odd\"}", 10).await;
    // ...and the scrape of remora is up.
    let up = wait_for(&client, &prom, "up{job=\"remora\"}", 10).await;
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    r.stop().await;
}

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let p = dir.path().join("exporter.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn rule_named_like_a_host_or_own_instrument_is_a_config_error_at_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "host: {collectors: [memory]}
targets:
  - name: a
    url: http://127.0.0.1:1/status
    metrics:
      - name: app.fine
        path: $.a
      - name: system.memory.usage
        unit: By
        path: $.b
      - {name: process.cpu, kind: counter, unit: s, path: $.c}
",
    );
    let file = path.display().to_string();
    for sub in ["check", "once"] {
        let out = Command::new(env!("CARGO_BIN_EXE_remora"))
            .args([sub, &format!("--config.file={file}")])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{sub}: {err}");
        assert!(
            err.contains(&format!("{file}:8:15: targets[0].metrics[1].name: \"system.memory.usage\" is served as system_memory_usage_bytes")),
            "{sub}: {err}"
        );
        assert!(
            err.contains(&format!("{file}:11:16: targets[0].metrics[2].name: \"process.cpu\" is served as process_cpu_seconds_total")),
            "{sub}: {err}"
        );
    }
    // Without the memory collector, the host name is free; remora's own never is.
    let path = write(
        &dir,
        "host: {enabled: false}
targets:
  - name: a
    url: http://127.0.0.1:1/status
    metrics:
      - {name: system.memory.usage, unit: By, path: $.b}
      - {name: remora_target_up, path: $.c}
",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_remora"))
        .args(["check", &format!("--config.file={}", path.display())])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(
            ":7:16: targets[0].metrics[1].name: \"remora_target_up\" is served as remora_target_up"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_reload_to_a_rule_named_like_remoras_own_fails_with_its_position() {
    let app = odd_app().await;
    let r = Remora::start_with(
        &config(&app),
        common::Start {
            lifecycle: true,
            ..Default::default()
        },
    )
    .await;
    std::fs::write(
        &r.config_path,
        format!(
            "{}      - name: remora_target_up\n        path: $.jobs\n",
            config(&app)
        ),
    )
    .unwrap();
    let resp = reqwest::Client::new()
        .post(r.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.unwrap();
    assert!(body.contains("targets[3].metrics[2].name"), "{body}");
    r.stop().await;
}
