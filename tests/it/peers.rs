//! json_exporter's cases, as facts established by bodies of our own
//! (`tests/fixtures/peers/`, whose README says which case each stands for):
//! the same samples come out (names, label sets, values; `_total` on
//! counters aside), through YAML, polling and rendering.

use std::collections::BTreeSet;

use crate::common::{fixture, has, has_label, sample, FakeTarget, Remora, Reply};

type Sample = (String, String, String);

/// (name, sorted labels without `target`, value) of every sample line whose
/// name (without `_total`) is one of `names`.
fn samples(text: &str, names: &BTreeSet<String>) -> BTreeSet<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let name = name.strip_suffix("_total").unwrap_or(name).to_string();
            if !names.contains(&name) {
                return None;
            }
            let mut labels: Vec<&str> = labels
                .split(',')
                .filter(|p| !p.is_empty() && !p.starts_with("target="))
                .collect();
            labels.sort();
            let value: f64 = value.parse().ok()?;
            Some((name, labels.join(","), value.to_string()))
        })
        .collect()
}

/// The expected file's family names and samples; an expected file without
/// samples fails the test (a comparison of two empty sets proves nothing).
fn expected(file: &str) -> (BTreeSet<String>, BTreeSet<Sample>) {
    let text = fixture(&format!("peers/{file}"));
    let names: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    let want = samples(&text, &names);
    assert!(!want.is_empty(), "{file} has no samples");
    (names, want)
}

/// Serves the fixture `body` and runs remora with `rules` against it; returns
/// the exposition.
async fn run(body: &str, rules: &str) -> String {
    let app = FakeTarget::start().await;
    app.set("/data", Reply::json(&fixture(&format!("peers/{body}"))));
    let config = format!(
        "global: {{interval: 10s, timeout: 2s}}\nhost: {{enabled: false}}\ntargets:\n  - name: peer\n    url: {}\n    metrics:\n{rules}",
        app.url("/data")
    );
    let r = Remora::start(&config).await;
    let m = r.metrics().await;
    r.stop().await;
    m
}

/// json_exporter's `good.yml` module, over our workers list.
const WORKER_RULES: &str = r#"
      - name: pool_requests
        description: Requests the pool has taken, from the top level
        path: $.requests
        labels: {environment: staging, region: "zone-{$.region}"}
      - name: worker
        description: Running workers, one series each
        kind: counter
        each: '$.workers[?@.state == "RUNNING"]'
        labels: {environment: staging, id: "{$.id}"}
        values: {up: 1, jobs: $.jobs, busy: $.busy}
"#;

#[tokio::test]
async fn a_filtered_object_list_gives_json_exporters_series() {
    let (names, want) = expected("workers.expected.txt");
    let m = run("workers.json", WORKER_RULES).await;
    assert_eq!(samples(&m, &names), want, "{m}");
    assert!(m.contains("# TYPE worker_jobs_total counter"), "{m}");
}

/// json_exporter answers 500 for the whole scrape; remora serves every other
/// series, keeps the first of the repeated ones and counts the rest.
#[tokio::test]
async fn a_repeated_item_keeps_everything_else() {
    let (names, want) = expected("workers.expected.txt");
    let m = run("workers-repeated.json", WORKER_RULES).await;
    // w-3's first occurrence (12 jobs, not busy) is kept, its second dropped.
    assert_eq!(samples(&m, &names), want, "{m}");
    assert_eq!(
        sample(&m, "remora_target_up{target=\"peer\"}"),
        Some(1.0),
        "{m}"
    );
    assert!(
        has(&m, "remora_extraction_errors_total{metric=\"worker\",reason=\"duplicate_series\",target=\"peer\"}"),
        "{m}"
    );
}

/// The README's `default` module: a filter with one match and static labels
/// only, and an optional missing key that is no series and no error.
#[tokio::test]
async fn a_single_match_and_an_optional_missing_key() {
    let (names, want) = expected("workers-paused.expected.txt");
    let rules = format!(
        "{WORKER_RULES}{}",
        r#"
      - name: paused_worker
        description: The paused worker
        each: '$.workers[?@.state == "PAUSED"]'
        labels: {environment: staging}
        values: {jobs: $.jobs}
      - name: pool_missing_key
        path: $.missing_key
        optional: true
"#
    );
    let m = run("workers.json", &rules).await;
    assert_eq!(samples(&m, &names), want, "{m}");
    assert!(!m.contains("pool_missing_key"), "{m}");
    assert!(
        !m.contains("remora_extraction_errors_total{"),
        "an optional missing key is no error: {m}"
    );
}

/// The README's `animals` module: a top-level array, labels from a string
/// and a boolean field.
#[tokio::test]
async fn a_top_level_array_with_boolean_labels() {
    let (names, want) = expected("hosts.expected.txt");
    let rules = r#"
      - name: node
        description: Top-level list items, one series each
        each: $[*]
        labels: {name: "{$.host}", primary: "{$.primary}"}
        values: {load: $.load}
"#;
    let m = run("hosts.json", rules).await;
    assert_eq!(samples(&m, &names), want, "{m}");
}

/// `allow_missing_key: true` is `optional: true`; without it json_exporter
/// fails the scrape, remora counts a `missing` extraction error and serves
/// the rest.
#[tokio::test]
async fn missing_keys_with_and_without_optional() {
    let rules = r#"
      - {name: pool_missing_ok, path: $.missing_value, optional: true}
      - {name: pool_missing, path: $.missing_value}
      - {name: worker_missing_ok, each: '$.workers[0]', optional: true, values: {missing_value: $.missing_value}}
      - {name: worker_missing, each: '$.workers[0]', values: {missing_value: $.missing_value}}
      - {name: still_served, path: $.requests}
"#;
    let m = run("workers.json", rules).await;
    assert_eq!(
        sample(&m, "still_served{target=\"peer\"}"),
        Some(9876.0),
        "{m}"
    );
    assert!(
        !crate::common::samples(&m)
            .iter()
            .any(|s| s.name.contains("_missing")),
        "{m}"
    );
    for metric in ["pool_missing", "worker_missing"] {
        let errors = format!(
            "remora_extraction_errors_total{{metric=\"{metric}\",reason=\"missing\",target=\"peer\"}}"
        );
        assert_eq!(sample(&m, &errors), Some(1.0), "{m}");
    }
    for metric in ["pool_missing_ok", "worker_missing_ok"] {
        assert!(!has_label(&m, "metric", metric), "{m}");
    }
    assert_eq!(
        sample(&m, "remora_target_up{target=\"peer\"}"),
        Some(1.0),
        "{m}"
    );
}
