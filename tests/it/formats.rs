//! `/metrics` by content negotiation (SPEC section 10, "Exposition formats"):
//! the exact `Accept` headers of Prometheus 3.x, Prometheus 2.x and curl,
//! no header, every format and escaping; each answer's Content-Type,
//! `Vary`, HEAD and gzip, and its body read by an independent parser (the
//! Python `prometheus_client` OpenMetrics and text parsers; `promtool check
//! metrics` for text 0.0.4, the only format it reads).

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{FakeTarget, Remora, Reply, Start};

pub const PROM3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
pub const PROM2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

fn om_type(escaping: &str) -> String {
    format!("application/openmetrics-text; version=1.0.0; charset=utf-8; escaping={escaping}")
}

fn text_100(escaping: &str) -> String {
    format!("text/plain; version=1.0.0; charset=utf-8; escaping={escaping}")
}

/// An app serving text 0.0.4 with a histogram, a summary, a counter without
/// `_total`, an untyped family and a timestamp.
pub const APP_004: &str = "# HELP rpc_seconds RPC latency.
# TYPE rpc_seconds histogram
rpc_seconds_bucket{le=\"0.1\"} 1
rpc_seconds_bucket{le=\"+Inf\"} 3
rpc_seconds_sum 0.7
rpc_seconds_count 3
# TYPE gc_seconds summary
gc_seconds{quantile=\"0.5\"} 0.01
gc_seconds_sum 0.2
gc_seconds_count 9
# TYPE http_requests counter
http_requests{code=\"200\"} 12 1700000000123
# TYPE legacy_thing untyped
legacy_thing 4
";

pub fn config(app: &FakeTarget) -> String {
    format!(
        r#"
global: {{interval: 1s, timeout: 900ms}}
host: {{collectors: [cpu, memory]}}
targets:
  - name: json
    url: {json}
    metrics:
      - name: app.build_info
        kind: info
        description: Version of the app
        labels: {{version: "{{$.version}}"}}
      - name: app.health
        kind: stateset
        states: [up, down]
        path: $.status
      - name: app.latency
        unit: s
        path: $.latency
      - name: app.jobs
        kind: counter
        path: $.jobs
  - name: prom
    url: {prom}
    format: prometheus
"#,
        json = app.url("/status"),
        prom = app.url("/metrics"),
    )
}

pub async fn app() -> FakeTarget {
    let app = FakeTarget::start().await;
    app.set(
        "/status",
        Reply::json(r#"{"version": "1.2.3", "status": "up", "latency": 0.25, "jobs": 7}"#),
    );
    app.set(
        "/metrics",
        Reply::Body(200, "text/plain; version=0.0.4", APP_004.to_string()),
    );
    app
}

/// One answer of `/metrics`.
struct Answer {
    content_type: String,
    vary: String,
    body: String,
}

/// Scrapes with `accept` until the answer has Content-Type `want` (the
/// first ask for a format is answered in text 0.0.4 until its first render
/// exists) and every target was polled; fails after 20 s.
async fn scrape(r: &Remora, accept: Option<&str>, want: &str) -> Answer {
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut req = client.get(r.url("/metrics"));
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = req.send().await.unwrap();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (content_type, vary) = (header("content-type"), header("vary"));
        let body = resp.text().await.unwrap();
        // Under every escaping: the JSON rule's counter and the app's histogram.
        let polled = body.contains("jobs") && body.contains("bucket");
        let done = content_type == want && polled;
        if done || Instant::now() > deadline {
            assert_eq!(content_type, want, "accept {accept:?}:\n{body}");
            assert!(polled, "targets never polled:\n{body}");
            return Answer {
                content_type,
                vary,
                body,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const PARSE: &str = r#"
import json, sys
if sys.argv[1] == "om":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(sys.stdin.read()))
names = [f.name for f in families]
twice = sorted({n for n in names if names.count(n) > 1})
if twice:
    sys.exit("families twice: %s" % twice)
print(json.dumps([[f.name, f.type, f.unit, [[s.name, s.labels, repr(s.value)] for s in f.samples]] for f in families]))
"#;

/// (family, type, unit, samples as (name, labels, value)).
type PyFamily = (
    String,
    String,
    String,
    Vec<(String, BTreeMap<String, String>, String)>,
);

/// The Python parser's families (`om`: the OpenMetrics parser); `None`
/// without Python.
fn python(text: &str, om: bool) -> Option<Vec<PyFamily>> {
    let python = common::tool("python3")?;
    let out = common::pipe(
        &python,
        &["-c", PARSE, if om { "om" } else { "text" }],
        text,
    );
    assert!(
        out.status.success(),
        "prometheus_client ({}) rejects the exposition: {}\n{text}",
        if om { "OpenMetrics" } else { "text" },
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn family<'a>(fams: &'a [PyFamily], name: &str) -> &'a PyFamily {
    fams.iter().find(|f| f.0 == name).unwrap_or_else(|| {
        panic!(
            "no family {name}: {:?}",
            fams.iter().map(|f| &f.0).collect::<Vec<_>>()
        )
    })
}

#[tokio::test]
async fn every_scraper_gets_its_format_parsed_by_an_independent_parser() {
    let app = app().await;
    let r = Remora::start(&config(&app)).await;

    // curl (`*/*`) and no Accept: text 0.0.4, as before negotiation.
    for accept in [None, Some("*/*")] {
        let a = scrape(&r, accept, TEXT_004).await;
        assert!(
            a.vary.contains("Accept") && a.vary.contains("Accept-Encoding"),
            "{}",
            a.vary
        );
        assert!(!a.body.contains("# EOF"));
        assert!(
            a.body.contains("# TYPE app_build_info gauge\n"),
            "{}",
            a.body
        );
        common::promtool_parses(&a.body);
        python(&a.body, false);
    }

    // Prometheus 2.x: OpenMetrics, underscores.
    let a = scrape(&r, Some(PROM2), &om_type("underscores")).await;
    assert!(a.body.ends_with("# EOF\n"), "{}", a.body);
    if let Some(fams) = python(&a.body, true) {
        assert_eq!(family(&fams, "app_build").1, "info");
        let build = &family(&fams, "app_build").3[0];
        assert_eq!(build.0, "app_build_info");
        assert_eq!(build.1.get("version").map(String::as_str), Some("1.2.3"));
        let health = family(&fams, "app_health");
        assert_eq!(health.1, "stateset");
        assert!(health
            .3
            .iter()
            .all(|s| s.1.get("app_health") == s.1.get("state")));
        let latency = family(&fams, "app_latency_seconds");
        assert_eq!(
            (latency.1.as_str(), latency.2.as_str()),
            ("gauge", "seconds")
        );
        let jobs = family(&fams, "app_jobs");
        assert_eq!(jobs.1, "counter");
        assert_eq!(jobs.3[0].0, "app_jobs_total");
        let polls = family(&fams, "remora_target_polls");
        assert!(polls.3.iter().any(|s| s.0 == "remora_target_polls_created"));
        assert_eq!(family(&fams, "rpc_seconds").1, "histogram");
        assert_eq!(family(&fams, "gc_seconds").1, "summary");
        // A counter without `_total` keeps its series name: unknown.
        assert_eq!(family(&fams, "http_requests").1, "unknown");
        assert_eq!(family(&fams, "legacy_thing").1, "unknown");
        let cpu = family(&fams, "system_cpu_time_seconds");
        assert_eq!((cpu.1.as_str(), cpu.2.as_str()), ("counter", "seconds"));
    }
    assert!(
        a.body
            .contains("http_requests{code=\"200\",target=\"prom\"} 12 1700000000.123\n"),
        "{}",
        a.body
    );

    // Prometheus 3.x: OpenMetrics, `allow-utf-8` echoed, and (without
    // --web.utf8-names) the underscored names of text 0.0.4, the names the
    // kit's dashboard and alerts query.
    let a = scrape(&r, Some(PROM3), &om_type("allow-utf-8")).await;
    assert!(
        a.body.contains(
            "# TYPE system_cpu_time_seconds counter\n# UNIT system_cpu_time_seconds seconds\n"
        ),
        "{}",
        a.body
    );
    assert!(!a.body.contains("system.cpu"), "{}", a.body);
    assert!(!a.body.contains("cpu.mode"), "{}", a.body);
    if let Some(fams) = python(&a.body, true) {
        let cpu = family(&fams, "system_cpu_time_seconds");
        assert!(cpu
            .3
            .iter()
            .all(|s| s.0 == "system_cpu_time_seconds_total" && s.1.contains_key("cpu_mode")));
        assert_eq!(family(&fams, "app_build").1, "info");
    }
    // Prometheus 3.x falling back to text 1.0.0: the 0.0.4 names too.
    let accept = "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let a = scrape(&r, Some(accept), &text_100("allow-utf-8")).await;
    assert!(
        a.body
            .contains("# TYPE system_cpu_time_seconds_total counter\n"),
        "{}",
        a.body
    );
    common::promtool_parses(&a.body);

    every_escaping_parses(&r, false).await;
    r.stop().await;
}

/// Every format and escaping, each body read by the Python parsers
/// (`utf8`: remora runs with --web.utf8-names).
async fn every_escaping_parses(r: &Remora, utf8: bool) {
    for escaping in ["underscores", "allow-utf-8", "dots", "values"] {
        let accept = format!("text/plain;version=1.0.0;escaping={escaping}");
        let a = scrape(r, Some(&accept), &text_100(escaping)).await;
        assert!(!a.body.contains("# EOF"));
        python(&a.body, false);
        if escaping == "underscores" || !utf8 {
            common::promtool_parses(&a.body);
        }
        let accept = format!("application/openmetrics-text;version=1.0.0;escaping={escaping}");
        let a = scrape(r, Some(&accept), &om_type(escaping)).await;
        assert_eq!(a.content_type, om_type(escaping));
        python(&a.body, true);
    }
}

#[tokio::test]
async fn with_utf8_names_prometheus_3_gets_the_semantic_convention_names() {
    let app = app().await;
    let opts = Start {
        utf8_names: true,
        ..Default::default()
    };
    let r = Remora::start_with(&config(&app), opts).await;
    // Prometheus 2.x asks for no escaping: underscores, as without the flag.
    let a = scrape(&r, Some(PROM2), &om_type("underscores")).await;
    assert!(
        a.body.contains("# TYPE system_cpu_time_seconds counter\n"),
        "{}",
        a.body
    );
    let a = scrape(&r, Some(PROM3), &om_type("allow-utf-8")).await;
    if let Some(fams) = python(&a.body, true) {
        let cpu = family(&fams, "system.cpu.time_seconds");
        assert_eq!((cpu.1.as_str(), cpu.2.as_str()), ("counter", "seconds"));
        assert!(cpu
            .3
            .iter()
            .all(|s| s.0 == "system.cpu.time_seconds_total" && s.1.contains_key("cpu.mode")));
        assert_eq!(family(&fams, "app.build").1, "info");
        let health = family(&fams, "app.health");
        assert!(health
            .3
            .iter()
            .all(|s| s.1.get("app.health") == s.1.get("state")));
        // remora's own names are the same in every escaping.
        family(&fams, "remora_target_up");
    }
    every_escaping_parses(&r, true).await;
    // `dots` escapes the whole sample name; the family is that less `_total`.
    let a = scrape(
        &r,
        Some("application/openmetrics-text;escaping=dots"),
        &om_type("dots"),
    )
    .await;
    for want in [
        "# TYPE system_dot_cpu_dot_time__seconds_ counter\n",
        "system_dot_cpu_dot_time__seconds__total{",
        "remora_target_up{",
    ] {
        assert!(a.body.contains(want), "{want:?} missing in\n{}", a.body);
    }
    r.stop().await;
}

#[tokio::test]
async fn head_and_gzip_carry_the_negotiated_type() {
    let app = app().await;
    let r = Remora::start(&config(&app)).await;
    let om = om_type("underscores");
    // Until the first OpenMetrics render: text 0.0.4; then OpenMetrics.
    scrape(&r, Some(PROM2), &om).await;
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let head = client
        .head(r.url("/metrics"))
        .header("accept", PROM2)
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["content-type"], om.as_str());
    let len: usize = head.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(len > 100);
    let gz = client
        .get(r.url("/metrics"))
        .header("accept", PROM2)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-type"], om.as_str());
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let bytes = gz.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    assert!(text.ends_with("# EOF\n"));
    r.stop().await;
}

#[tokio::test]
async fn a_pinned_format_ignores_the_accept_type_but_keeps_its_escaping() {
    let app = app().await;
    let opts = Start {
        exposition_format: "text-1.0.0".parse().unwrap(),
        ..Default::default()
    };
    let r = Remora::start_with(&config(&app), opts).await;
    scrape(&r, Some(PROM3), &text_100("allow-utf-8")).await;
    scrape(&r, None, &text_100("underscores")).await;
    r.stop().await;
    let opts = Start {
        exposition_format: "text-0.0.4".parse().unwrap(),
        ..Default::default()
    };
    let r = Remora::start_with(&config(&app), opts).await;
    scrape(&r, Some(PROM2), TEXT_004).await;
    r.stop().await;
}

/// An app serving OpenMetrics: counter with `_created` and an exemplar,
/// info, stateset, a gauge with a unit, gaugehistogram, unknown, a
/// timestamp in seconds.
const APP_OM: &str = "# TYPE om_jobs counter
# HELP om_jobs Jobs \\\"done\\\".
om_jobs_total{q=\"a\"} 3 # {trace_id=\"abc\"} 1 1700000000
om_jobs_created{q=\"a\"} 1690000000
# TYPE om_build info
om_build_info{version=\"9\"} 1
# TYPE om_state stateset
om_state{om_state=\"up\"} 1
om_state{om_state=\"down\"} 0
# TYPE om_wait_seconds gauge
# UNIT om_wait_seconds seconds
om_wait_seconds 0.5
# TYPE om_queue gaugehistogram
om_queue_bucket{le=\"+Inf\"} 2
om_queue_gsum 3
om_queue_gcount 2
# TYPE om_other unknown
om_other 5 1700000000.25
# EOF
";

#[tokio::test]
async fn an_openmetrics_app_is_passed_through() {
    let app = FakeTarget::start().await;
    app.set(
        "/om",
        Reply::Body(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            APP_OM.to_string(),
        ),
    );
    let config = format!(
        "global: {{interval: 1s, timeout: 900ms}}\ntargets:\n  - name: om\n    url: {}\n    format: prometheus\n",
        app.url("/om")
    );
    let r = Remora::start(&config).await;
    let text = r.metrics_until(20, |m| m.contains("om_jobs_total")).await;
    for want in [
        "# TYPE om_jobs_total counter\n",
        "om_jobs_total{q=\"a\",target=\"om\"} 3\n",
        "# TYPE om_build_info gauge\nom_build_info{version=\"9\",target=\"om\"} 1\n",
        "om_state{om_state=\"up\",target=\"om\"} 1\n",
        "om_queue_gsum{target=\"om\"} 3\n",
        "om_other{target=\"om\"} 5 1700000000250\n",
        "remora_target_up{target=\"om\"} 1\n",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }
    assert!(!text.contains("om_jobs_created"), "{text}");
    assert!(!text.contains("trace_id"), "{text}");
    assert!(!text.contains("# UNIT"), "{text}");
    common::promtool_parses(&text);
    python(&text, false);
    // remora asked for OpenMetrics first, as Prometheus 2.x does.
    let seen = app.seen("/om");
    let accept = seen[0].headers.get("accept").cloned().unwrap_or_default();
    assert!(
        accept.starts_with("application/openmetrics-text;version=1.0.0"),
        "{accept}"
    );
    // And serves it again as OpenMetrics, with the app's info, stateset and unit.
    let a = scrape_until(&r, PROM2, &om_type("underscores"), "om_jobs_total").await;
    for want in [
        "# TYPE om_jobs counter\n",
        "# TYPE om_build info\nom_build_info{version=\"9\",target=\"om\"} 1\n",
        "# TYPE om_state stateset\nom_state{om_state=\"up\",target=\"om\"} 1\n",
        "# TYPE om_wait_seconds gauge\n# UNIT om_wait_seconds seconds\n",
    ] {
        assert!(a.body.contains(want), "{want:?} missing in\n{}", a.body);
    }
    if let Some(fams) = python(&a.body, true) {
        assert_eq!(family(&fams, "om_build").1, "info");
        assert_eq!(family(&fams, "om_state").1, "stateset");
        assert_eq!(family(&fams, "om_wait_seconds").2, "seconds");
    }
    r.stop().await;
}

/// Scrapes with `accept` until the Content-Type is `want` and the body holds `has`.
async fn scrape_until(r: &Remora, accept: &str, want: &str, has: &str) -> Answer {
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = client
            .get(r.url("/metrics"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        let body = resp.text().await.unwrap();
        if (content_type == want && body.contains(has)) || Instant::now() > deadline {
            assert_eq!(content_type, want, "{body}");
            return Answer {
                content_type,
                vary: String::new(),
                body,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `remora once --format --escaping` prints the chosen format (names as
/// `--web.utf8-names` says).
#[test]
fn once_prints_the_chosen_format() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "host: {collectors: [memory]}\n").unwrap();
    let once = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_remora"))
            .arg("once")
            .arg(format!("--config.file={}", cfg.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = once(&[]);
    assert!(
        text.contains("# TYPE system_memory_usage_bytes gauge\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"));
    let om = once(&["--format=openmetrics"]);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# UNIT system_memory_usage_bytes bytes\n"),
        "{om}"
    );
    python(&om, true);
    // Without --web.utf8-names every escaping keeps the legacy names.
    let legacy = once(&["--format=openmetrics", "--escaping=allow-utf-8"]);
    assert!(
        legacy.contains("# TYPE system_memory_usage_bytes gauge\n"),
        "{legacy}"
    );
    let utf8 = once(&[
        "--format=openmetrics",
        "--escaping=allow-utf-8",
        "--web.utf8-names",
    ]);
    assert!(
        utf8.contains("# TYPE \"system.memory.usage_bytes\" gauge\n"),
        "{utf8}"
    );
    python(&utf8, true);
    let text = once(&["--format=1.0.0", "--escaping=values", "--web.utf8-names"]);
    assert!(
        text.contains("# TYPE U__system_2e_memory_2e_usage__bytes gauge\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"));
}
