//! json_exporter's own test cases, translated into remora configs: the same
//! samples come out (names, label sets, values; `_total` on counters aside),
//! through YAML, polling and rendering. The cases are read from
//! ../shared/peers/json_exporter/ and never copied here.

use std::collections::BTreeSet;

use crate::common::{has, has_label, has_name, sample, shared, FakeTarget, Remora, Reply};

/// (name, sorted labels without `target`, value) of every sample line.
fn samples(text: &str, names: &BTreeSet<String>) -> BTreeSet<(String, String, String)> {
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

fn names_of(expected: &str) -> BTreeSet<String> {
    expected
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// Serves `json` and runs remora with `rules` against it; returns the exposition.
async fn run(json: &str, rules: &str) -> String {
    let app = FakeTarget::start().await;
    app.set("/data", Reply::json(json));
    let config = format!(
        "global: {{interval: 10s, timeout: 2s}}\nhost: {{enabled: false}}\ntargets:\n  - name: peer\n    url: {}\n    metrics:\n{rules}",
        app.url("/data")
    );
    let r = Remora::start(&config).await;
    let m = r.metrics().await;
    r.stop().await;
    m
}

const GOOD_RULES: &str = r#"
      - name: example_global_value
        description: Example of a top-level global value scrape in the json
        path: $.counter
        labels: {environment: beta, location: "planet-{$.location}"}
      - name: example_value
        description: Example of sub-level value scrapes from a json
        kind: counter
        each: '$.values[?@.state == "ACTIVE"]'
        labels: {environment: beta, id: "{$.id}"}
        values: {active: 1, count: $.count, boolean: $.some_boolean}
"#;

#[tokio::test]
async fn good_json_matches_json_exporter() {
    let dir = shared("peers/json_exporter");
    let json = std::fs::read_to_string(dir.join("test/serve/good.json")).unwrap();
    let expected = std::fs::read_to_string(dir.join("test/response/good.txt")).unwrap();
    let names = names_of(&expected);
    let m = run(&json, GOOD_RULES).await;
    assert_eq!(samples(&m, &names), samples(&expected, &names), "{m}");
    assert!(
        m.contains("# TYPE example_value_count_total counter"),
        "{m}"
    );
}

/// json_exporter answers 500 for the whole scrape; remora serves every other
/// series, keeps the first of the repeated ones and counts the rest.
#[tokio::test]
async fn repeated_metric_keeps_everything_else() {
    let dir = shared("peers/json_exporter");
    let json = std::fs::read_to_string(dir.join("test/serve/repeat-metric.json")).unwrap();
    let expected = std::fs::read_to_string(dir.join("test/response/good.txt")).unwrap();
    let names = names_of(&expected);
    let m = run(&json, GOOD_RULES).await;
    // What good.json gives, but id-C is the first of its two occurrences in
    // this document (some_boolean true, count 3); the second is dropped.
    let expected = expected.replace(
        "example_value_boolean{environment=\"beta\",id=\"id-C\"} 0",
        "example_value_boolean{environment=\"beta\",id=\"id-C\"} 1",
    );
    assert_eq!(samples(&m, &names), samples(&expected, &names), "{m}");
    assert!(
        sample(&m, "remora_target_up{target=\"peer\"}") == Some(1.0),
        "{m}"
    );
    assert!(
        has(&m, "remora_extraction_errors_total{metric=\"example_value\",reason=\"duplicate_series\",target=\"peer\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn readme_default_module() {
    let dir = shared("peers/json_exporter");
    let json = std::fs::read_to_string(dir.join("examples/data.json")).unwrap();
    let expected = std::fs::read_to_string(
        dir.join("expected_from_readme/default_module__examples_data.json.txt"),
    )
    .unwrap();
    let names = names_of(&expected);
    let rules = r#"
      - name: example_global_value
        path: $.counter
        labels: {environment: beta, location: "planet-{$.location}"}
      - name: example_timestamped_value
        each: '$.values[?@.state == "INACTIVE"]'
        labels: {environment: beta}
        values: {count: $.count}
      - name: example_value
        each: '$.values[?@.state == "ACTIVE"]'
        labels: {environment: beta, id: "{$.id}"}
        values: {active: 1, count: $.count, boolean: $.some_boolean}
      - name: example_missing_key
        path: $.missing_key
        optional: true
"#;
    let m = run(&json, rules).await;
    assert_eq!(samples(&m, &names), samples(&expected, &names), "{m}");
    assert!(!m.contains("example_missing_key"), "{m}");
    assert!(
        !has_name(&m, "remora_extraction_errors_total"),
        "an optional missing key is no error: {m}"
    );
}

#[tokio::test]
async fn readme_animals_module() {
    let dir = shared("peers/json_exporter");
    let json = std::fs::read_to_string(dir.join("examples/animal-data.json")).unwrap();
    let expected = std::fs::read_to_string(
        dir.join("expected_from_readme/animals_module__examples_animal-data.json.txt"),
    )
    .unwrap();
    let names = names_of(&expected);
    let rules = r#"
      - name: animal
        each: $[*]
        labels: {name: "{$.noun}", predator: "{$.predator}"}
        values: {population: $.population}
"#;
    let m = run(&json, rules).await;
    assert_eq!(samples(&m, &names), samples(&expected, &names), "{m}");
}

/// allow_missing_key: true is `optional: true`; without it json_exporter
/// fails the scrape, remora counts a `missing` extraction error and serves the rest.
#[tokio::test]
async fn missing_keys() {
    let dir = shared("peers/json_exporter");
    let json = std::fs::read_to_string(dir.join("test/serve/good.json")).unwrap();
    let rules = r#"
      - {name: example_global_value_missing_ok, path: $.missing_value, optional: true}
      - {name: example_global_value_missing, path: $.missing_value}
      - {name: example_value_in_object_missing_ok, each: '$.values[0]', optional: true, values: {missing_value: $.missing_value}}
      - {name: example_value_in_object_missing, each: '$.values[0]', values: {missing_value: $.missing_value}}
      - {name: still_served, path: $.counter}
"#;
    let m = run(&json, rules).await;
    assert!(
        sample(&m, "still_served{target=\"peer\"}") == Some(1234.0),
        "{m}"
    );
    assert!(
        !crate::common::samples(&m)
            .iter()
            .any(|s| s.name.ends_with("_missing") || s.name.ends_with("_missing_value")),
        "{m}"
    );
    assert!(sample(&m, "remora_extraction_errors_total{metric=\"example_global_value_missing\",reason=\"missing\",target=\"peer\"}") == Some(1.0), "{m}");
    assert!(sample(&m, "remora_extraction_errors_total{metric=\"example_value_in_object_missing\",reason=\"missing\",target=\"peer\"}") == Some(1.0), "{m}");
    assert!(
        !has_label(&m, "metric", "example_global_value_missing_ok"),
        "{m}"
    );
    assert!(
        !has_label(&m, "metric", "example_value_in_object_missing_ok"),
        "{m}"
    );
    assert!(
        sample(&m, "remora_target_up{target=\"peer\"}") == Some(1.0),
        "{m}"
    );
}
