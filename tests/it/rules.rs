//! The rule language on real products' documented health bodies
//! (tests/fixtures/apps/, healthy AND failing forms): a list `each:` with
//! the outer levels' keys as labels, aggregations (`aggregate:`,
//! `count_by:`, `parse: age`) and a stateset's `other` state, each through
//! the config loader, the extraction of the body's text and the
//! `--explain` text.

use std::path::Path;
use std::sync::Arc;

use remora::store::TargetState;
use remora::targets::extract::{Extraction, Extractor, Limits};
use remora::targets::report::write_target;

use crate::common::fixture;

/// One rule set run on one body: its series (`name{labels} value`), its
/// errors (`metric reason ×count`) and its `--explain` text.
struct Run {
    series: Vec<String>,
    errors: Vec<String>,
    explain: String,
}

/// Loads `rules` (YAML list items at 6 spaces) as the metrics of a target
/// and extracts them from `body`, with `extractor` adjusted by `setup`.
fn run_with(rules: &str, body: &str, setup: impl FnOnce(Extractor) -> Extractor) -> Run {
    let text =
        format!("targets:\n  - name: app\n    url: http://127.0.0.1:1/\n    metrics:\n{rules}");
    let config = remora::config::parse_str(&text, Path::new("exporter.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
    let target = &config.targets[0];
    let extractor = setup(Extractor::new(target));
    let limits = Limits {
        max_series: 10_000,
        max_bytes: 1 << 20,
    };
    let x: Extraction = extractor
        .extract_body(body.as_bytes(), limits, &[])
        .unwrap();
    let mut series = Vec::new();
    for f in &x.families {
        for s in &f.series {
            let labels: Vec<String> = s
                .attributes
                .iter()
                .map(|kv| format!("{}=\"{}\"", kv.key, kv.value))
                .collect();
            series.push(format!("{}{{{}}} {}", f.name, labels.join(","), s.value));
        }
    }
    let errors = x
        .errors
        .iter()
        .map(|e| format!("{} {} ×{}", e.metric, e.reason.as_str(), e.count))
        .collect();
    let families = Arc::new(x.families.clone());
    let record = extractor.explain(
        families.clone(),
        x.trace.clone(),
        &x.errors,
        Some(body.as_bytes()),
        0,
    );
    let state = TargetState {
        url: "http://127.0.0.1:1/".into(),
        polled: true,
        up: true,
        http_status: 200,
        series: x.series,
        families,
        explain: Some(Arc::new(record)),
        ..TargetState::default()
    };
    let mut explain = String::new();
    write_target(&mut explain, "app", &state);
    Run {
        series,
        errors,
        explain,
    }
}

fn run(rules: &str, body: &str) -> Run {
    run_with(rules, body, |x| x)
}

fn app(product: &str, form: &str) -> String {
    fixture(&format!("apps/{product}/{form}.json"))
}

/// The value of the series `want` (exactly as [`Run::series`] writes it, less the value).
fn value(r: &Run, want: &str) -> Option<f64> {
    r.series.iter().find_map(|s| {
        let (k, v) = s.rsplit_once(' ')?;
        (k == want).then(|| v.parse().ok()).flatten()
    })
}

const SPRING_COMPOSITE: &str = r#"      - name: app.component.health
        kind: stateset
        states: [UP, DOWN, OUT_OF_SERVICE, UNKNOWN]
        each: ['$.components.*', '$.components.*']
        path: $.status
        labels: {group: "{@key:1}", component: "{@key}"}
"#;

#[test]
fn spring_boot_composite_health_is_one_family_labelled_group_and_component() {
    let healthy = run(SPRING_COMPOSITE, &app("spring-boot-actuator", "healthy"));
    assert!(healthy.errors.is_empty(), "{:?}", healthy.errors);
    // db holds two datasources, 4 states each; the other components are leaves.
    assert_eq!(healthy.series.len(), 8, "{:#?}", healthy.series);
    let s = |c: &str, st: &str| {
        format!("app.component.health{{group=\"db\",component=\"{c}\",state=\"{st}\"}}")
    };
    assert_eq!(value(&healthy, &s("ordersDataSource", "UP")), Some(1.0));
    assert_eq!(value(&healthy, &s("reportingDataSource", "UP")), Some(1.0));
    assert_eq!(
        value(&healthy, &s("reportingDataSource", "DOWN")),
        Some(0.0)
    );
    assert!(
        healthy.explain.contains(
            "rule app.component.health: each $.components.* matched 7 node(s), then $.components.* matched 2 node(s); path $.status: 8 series"
        ),
        "{}",
        healthy.explain
    );

    let failing = run(SPRING_COMPOSITE, &app("spring-boot-actuator", "failing"));
    assert!(failing.errors.is_empty(), "{:?}", failing.errors);
    assert_eq!(failing.series.len(), 8);
    assert_eq!(
        value(&failing, &s("reportingDataSource", "DOWN")),
        Some(1.0)
    );
    assert_eq!(value(&failing, &s("reportingDataSource", "UP")), Some(0.0));
    assert_eq!(value(&failing, &s("ordersDataSource", "UP")), Some(1.0));
}

#[test]
fn spring_boot_custom_status_is_served_as_other() {
    // A custom status (Spring allows any upper-case code) on a component.
    let body = app("spring-boot-actuator", "failing").replacen("\"DOWN\"", "\"FATAL\"", 3);
    let r = run(SPRING_COMPOSITE, &body);
    let other =
        "app.component.health{group=\"db\",component=\"reportingDataSource\",state=\"other\"}";
    assert_eq!(value(&r, other), Some(1.0), "{:#?}", r.series);
    assert_eq!(r.errors, ["app.component.health unmapped_value ×1"]);
    assert!(
        r.explain
            .contains("FAILED unmapped_value ×1, value \"FATAL\""),
        "{}",
        r.explain
    );
}

#[test]
fn ietf_health_checks_nested_each_reads_the_check_name_and_component() {
    let rules = r#"      - name: app.check.status
        kind: stateset
        states: [pass, warn, fail]
        each: ['$.checks.*', '$[*]']
        path: $.status
        labels: {check: "{@key:1}", component: "{$.componentId}"}
        optional: true
"#;
    for (form, fails) in [("healthy", 0.0), ("failing", 2.0)] {
        let r = run(rules, &app("ietf-health-json", form));
        assert!(r.errors.is_empty(), "{form}: {:?}", r.errors);
        let failing: f64 = r
            .series
            .iter()
            .filter(|s| s.contains("state=\"fail\"} 1"))
            .count() as f64;
        assert_eq!(failing, fails, "{form}: {:#?}", r.series);
        assert!(
            r.series.iter().any(|s| s.starts_with(
                "app.check.status{check=\"cpu:utilization\",component=\"node-2\",state=\"pass\"}"
            )),
            "{form}: {:#?}",
            r.series
        );
    }
}

/// Runs `rules` on each form of `product`: per form, its series and errors.
fn forms(rules: &str, product: &str, names: &[&str]) -> Vec<Run> {
    names.iter().map(|f| run(rules, &app(product, f))).collect()
}

#[test]
fn microprofile_checks_count_by_state_and_count() {
    let rules = r#"      - name: app.checks
        description: Health checks per state
        count_by: state
        states: [UP, DOWN]
        each: $.checks[*]
        labels: {state: "{$.status}"}
      - name: app.checks.total
        aggregate: count
        each: $.checks[*]
"#;
    let [healthy, failing, empty] = <[Run; 3]>::try_from(forms(
        rules,
        "microprofile-health",
        &["healthy", "failing", "empty"],
    ))
    .ok()
    .unwrap();
    for (r, up, down) in [
        (&healthy, 3.0, 0.0),
        (&failing, 1.0, 2.0),
        (&empty, 0.0, 0.0),
    ] {
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            value(r, "app.checks{state=\"UP\"}"),
            Some(up),
            "{:#?}",
            r.series
        );
        assert_eq!(value(r, "app.checks{state=\"DOWN\"}"), Some(down));
        // An empty checks list counts 0, not absent.
        assert_eq!(value(r, "app.checks.total{}"), Some(up + down));
    }
    assert!(
        failing.explain.contains(
            "rule app.checks: each $.checks[*] matched 3 node(s); count_by state over 3 node(s): 2 series"
        ),
        "{}",
        failing.explain
    );
    assert!(
        empty.explain.contains(
            "rule app.checks.total: each $.checks[*] matched 0 node(s); aggregate count over 0 node(s): 1 series"
        ),
        "{}",
        empty.explain
    );
}

const CONSUL_BY_STATUS: &str = r#"      - name: consul.checks
        count_by: status
        states: [passing, warning, critical]
        each: $[*]
        labels: {status: "{$.Status}"}
"#;

#[test]
fn consul_health_checks_count_by_status_healthy_failing_empty() {
    let runs = forms(
        CONSUL_BY_STATUS,
        "consul-health-checks",
        &["healthy", "failing", "empty"],
    );
    let want = [(2.0, 0.0, 0.0), (0.0, 1.0, 2.0), (0.0, 0.0, 0.0)];
    for (r, (passing, warning, critical)) in runs.iter().zip(want) {
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.series.len(), 3, "{:#?}", r.series);
        assert_eq!(
            value(r, "consul.checks{status=\"passing\"}"),
            Some(passing),
            "{:#?}",
            r.series
        );
        assert_eq!(value(r, "consul.checks{status=\"warning\"}"), Some(warning));
        assert_eq!(
            value(r, "consul.checks{status=\"critical\"}"),
            Some(critical)
        );
    }
    // The agent's checks are an object keyed by check id: each $.* counts them the same way.
    let agent = CONSUL_BY_STATUS.replace("$[*]", "$.*");
    let failing = run(&agent, &app("consul-agent-checks", "failing"));
    assert!(failing.errors.is_empty(), "{:?}", failing.errors);
    assert_eq!(
        value(&failing, "consul.checks{status=\"critical\"}"),
        Some(1.0),
        "{:#?}",
        failing.series
    );
    assert_eq!(
        value(&failing, "consul.checks{status=\"warning\"}"),
        Some(1.0)
    );
}

#[test]
fn kafka_connect_tasks_count_by_state_and_per_connector_with_nested_each() {
    let rules = r#"      - name: connect.tasks
        count_by: state
        states: [UNASSIGNED, RUNNING, PAUSED, FAILED, RESTARTING, STOPPED]
        each: $.tasks[*]
        labels: {connector: "{$.name}", state: "{$.state}"}
"#;
    // The connector label reads the document root, not the node: rejected.
    let text =
        format!("targets:\n  - name: app\n    url: http://127.0.0.1:1/\n    metrics:\n{rules}");
    let e = remora::config::parse_str(&text, Path::new("exporter.yaml"), &|_| None).unwrap_err();
    assert!(
        e[0].to_string().starts_with("exporter.yaml:9:18: targets[0].metrics[0].labels.connector: \"{$.name}\" reads the node: only the count_by label may read the nodes"),
        "{e:#?}"
    );
    let rules = rules.replace("{connector: \"{$.name}\", ", "{");
    let runs = forms(&rules, "kafka-connect", &["healthy", "failing"]);
    for (r, running, failed) in [(&runs[0], 3.0, 0.0), (&runs[1], 2.0, 1.0)] {
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.series.len(), 6);
        assert_eq!(value(r, "connect.tasks{state=\"RUNNING\"}"), Some(running));
        assert_eq!(value(r, "connect.tasks{state=\"FAILED\"}"), Some(failed));
    }
    // ?expand=status: connectors keyed by name, tasks inside; the connector
    // name is the outer level's key.
    let expand = r#"      - name: connect.tasks
        count_by: state
        each: ['$.*', '$.status.tasks[*]']
        labels: {state: "{@key:1}/{$.state}"}
"#;
    let r = run(expand, &app("kafka-connect", "expand-status"));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        r.series,
        [
            "connect.tasks{state=\"orders-jdbc-sink/RUNNING\"} 1",
            "connect.tasks{state=\"orders-jdbc-sink/FAILED\"} 1"
        ]
    );
}

#[test]
fn elasticsearch_shards_not_active_sum_and_opensearch_zone_max() {
    let rules = r#"      - name: es.shards.not_active
        aggregate: sum
        path: "$['unassigned_shards', 'initializing_shards', 'relocating_shards']"
"#;
    let runs = forms(rules, "elasticsearch", &["healthy", "failing"]);
    assert_eq!(runs[0].series, ["es.shards.not_active{} 0"]);
    assert_eq!(runs[1].series, ["es.shards.not_active{} 447"]);
    assert!(runs.iter().all(|r| r.errors.is_empty()));
    assert!(
        runs[1]
            .explain
            .contains("; aggregate sum over 3 node(s): 1 series"),
        "{}",
        runs[1].explain
    );
    // Per awareness zone, the worst; the bodies without awareness give no
    // series (a max over nothing) and no error.
    let rules = r#"      - name: os.zone.unassigned.max
        aggregate: max
        each: $.awareness_attributes.zone.*
        path: $.unassigned_shards
"#;
    let runs = forms(rules, "opensearch", &["healthy", "failing", "awareness"]);
    assert!(runs[0].series.is_empty() && runs[1].series.is_empty());
    assert_eq!(runs[2].series, ["os.zone.unassigned.max{} 0"]);
    assert!(runs.iter().all(|r| r.errors.is_empty()));
}

#[test]
fn ietf_checks_age_of_the_oldest_check_with_an_injected_clock() {
    let rules = r#"      - name: app.check.age.max
        description: Seconds since the oldest check ran
        unit: s
        aggregate: max
        parse: age
        each: ['$.checks.*', '$[*]']
        path: $.time
      - name: app.checks
        count_by: status
        states: [pass, warn, fail]
        each: ['$.checks.*', '$[*]']
        labels: {status: "{$.status}"}
"#;
    // 2024-06-10T15:01:44Z, the failing body's latest check.
    let now = 1_718_031_704.0;
    let healthy = run_with(rules, &app("ietf-health-json", "healthy"), |x| {
        x.with_clock(move || now)
    });
    let failing = run_with(rules, &app("ietf-health-json", "failing"), |x| {
        x.with_clock(move || now)
    });
    for r in [&healthy, &failing] {
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }
    // The oldest check of both ran at 14:52:05.
    assert_eq!(
        value(&healthy, "app.check.age.max{}"),
        Some(579.0),
        "{:#?}",
        healthy.series
    );
    assert_eq!(value(&failing, "app.check.age.max{}"), Some(579.0));
    assert_eq!(value(&healthy, "app.checks{status=\"fail\"}"), Some(0.0));
    assert_eq!(value(&failing, "app.checks{status=\"fail\"}"), Some(2.0));
    assert_eq!(value(&failing, "app.checks{status=\"pass\"}"), Some(4.0));
    assert!(
        failing.explain.contains(
            "rule app.check.age.max: each $.checks.* matched 5 node(s), then $[*] matched 6 node(s); path $.time (age: now - timestamp, s); aggregate max over 6 node(s): 1 series"
        ),
        "{}",
        failing.explain
    );
}

/// `remora once --explain` itself (the binary, a fake app answering the
/// failing MicroProfile body with its 503): the levels and the folds are on
/// stderr, the series on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_explain_shows_levels_and_aggregations() {
    use crate::common::{sample, FakeTarget, Reply};
    let fake = FakeTarget::start().await;
    fake.set(
        "/q/health/ready",
        Reply::Body(
            503,
            "application/json",
            app("microprofile-health", "failing"),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("exporter.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"host: {{enabled: false}}
targets:
  - name: mp
    url: {}
    accept_status: [200, 503]
    metrics:
      - name: app.checks
        count_by: state
        states: [UP, DOWN]
        each: $.checks[*]
        labels: {{state: "{{$.status}}"}}
      - name: app.check.data
        kind: info
        each: ['$.checks[*]', '$.data.*']
        labels: {{check: "{{@1$.name}}", key: "{{@key}}"}}
"#,
            fake.url("/q/health/ready")
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_remora"))
            .args([
                "once",
                "--explain",
                &format!("--config.file={}", cfg.display()),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("  rule app.checks: each $.checks[*] matched 3 node(s); count_by state over 3 node(s): 2 series"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  rule app.check.data: each $.checks[*] matched 3 node(s), then $.data.* matched 7 node(s); path 1: 7 series"),
        "{stderr}"
    );
    assert_eq!(
        sample(&stdout, r#"app_checks{state="DOWN",target="mp"}"#),
        Some(2.0),
        "{stdout}"
    );
    assert_eq!(
        sample(
            &stdout,
            r#"app_check_data{check="payment-gateway",key="circuitOpen",target="mp"}"#
        ),
        Some(1.0),
        "{stdout}"
    );
}

/// Every rule set of this file on each product's healthy and failing
/// bodies: no extraction error, and the table of the closing note (run with
/// `--nocapture` to print it).
#[test]
fn every_rule_set_runs_on_healthy_and_failing_bodies_without_error() {
    let sets: &[(&str, String, &[&str])] = &[
        (
            "spring-boot-actuator",
            SPRING_COMPOSITE.to_string(),
            &["healthy", "failing", "unknown", "out-of-service"],
        ),
        (
            "microprofile-health",
            MICROPROFILE.to_string(),
            &["healthy", "failing", "empty"],
        ),
        (
            "consul-health-checks",
            CONSUL_BY_STATUS.to_string(),
            &["healthy", "failing", "empty"],
        ),
        (
            "consul-agent-checks",
            CONSUL_BY_STATUS.replace("$[*]", "$.*"),
            &["healthy", "failing"],
        ),
        (
            "kafka-connect",
            KAFKA.to_string(),
            &[
                "healthy",
                "failing",
                "connector-failed",
                "paused",
                "rebalancing",
            ],
        ),
        (
            "elasticsearch",
            ES.to_string(),
            &["healthy", "yellow", "failing", "timeout"],
        ),
        (
            "opensearch",
            OS.to_string(),
            &["healthy", "failing", "awareness"],
        ),
        (
            "ietf-health-json",
            IETF.to_string(),
            &["healthy", "warn", "failing", "alias-up"],
        ),
    ];
    println!("| product | form | series | errors |\n|---|---|---|---|");
    for (product, rules, names) in sets {
        for form in *names {
            let r = run_with(rules, &app(product, form), |x| {
                x.with_clock(|| 1_718_031_704.0)
            });
            println!(
                "| {product} | {form} | {} | {} |",
                r.series.len(),
                if r.errors.is_empty() {
                    "none".to_string()
                } else {
                    r.errors.join(", ")
                }
            );
            // The IETF alias form uses `ok`/`up`, outside pass/warn/fail: shown as other.
            if (*product, *form) == ("ietf-health-json", "alias-up") {
                assert!(
                    r.series.iter().any(|s| s.contains("state=\"other\"} 1")),
                    "{:#?}",
                    r.series
                );
                continue;
            }
            assert!(r.errors.is_empty(), "{product} {form}: {:?}", r.errors);
        }
    }
}

const MICROPROFILE: &str = r#"      - name: app.checks
        count_by: state
        states: [UP, DOWN]
        each: $.checks[*]
        labels: {state: "{$.status}"}
      - name: app.checks.total
        aggregate: count
        each: $.checks[*]
"#;

const KAFKA: &str = r#"      - name: connect.tasks
        count_by: state
        states: [UNASSIGNED, RUNNING, PAUSED, FAILED, RESTARTING, STOPPED]
        each: $.tasks[*]
        labels: {state: "{$.state}"}
      - name: connect.connector
        kind: stateset
        states: [UNASSIGNED, RUNNING, PAUSED, FAILED, RESTARTING, STOPPED]
        path: $.connector.state
"#;

const ES: &str = r#"      - name: es.shards.not_active
        aggregate: sum
        path: "$['unassigned_shards', 'initializing_shards', 'relocating_shards']"
      - name: es.status
        kind: stateset
        states: [green, yellow, red]
        path: $.status
"#;

const OS: &str = r#"      - name: os.zone.unassigned.max
        aggregate: max
        each: $.awareness_attributes.zone.*
        path: $.unassigned_shards
      - name: os.zones
        aggregate: count
        each: $.awareness_attributes.zone.*
"#;

const IETF: &str = r#"      - name: app.check.status
        kind: stateset
        states: [pass, warn, fail]
        each: ['$.checks.*', '$[*]']
        path: $.status
        labels: {check: "{@key:1}", component: "{$.componentId}"}
        optional: true
      - name: app.check.age.max
        unit: s
        aggregate: max
        parse: age
        each: ['$.checks.*', '$[*]']
        path: $.time
      - name: app.checks
        count_by: status
        states: [pass, warn, fail]
        each: ['$.checks.*', '$[*]']
        labels: {status: "{$.status}"}
"#;
