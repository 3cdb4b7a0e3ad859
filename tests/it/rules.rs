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
