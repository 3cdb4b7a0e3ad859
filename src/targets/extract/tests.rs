use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use serde_json_path::JsonPath;

use super::path::SimplePath;
use super::*;
use crate::config::{
    Aggregate, Format, Method, MetricRule, Parse, RuleKind, RuleValue, Template, TemplatePart,
    TlsConfig, ValueSource,
};
use crate::model::InstrumentKind;

// ----- helpers: build compiled rules by hand -----

fn path(s: &str) -> JsonPath {
    JsonPath::parse(s).unwrap()
}

/// A tiny stand-in for the loader's template compiler.
fn tmpl(s: &str) -> Template {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(TemplatePart::Literal(rest[..open].to_string()));
        }
        let close = open + rest[open..].find('}').unwrap();
        let inner = &rest[open + 1..close];
        parts.push(if inner == "@key" {
            TemplatePart::Key
        } else if let Some(n) = inner.strip_prefix("@key:") {
            TemplatePart::OuterKey(n.parse().unwrap())
        } else if let Some((n, p)) = inner.strip_prefix('@').and_then(|r| r.split_once('$')) {
            TemplatePart::OuterPath(n.parse().unwrap(), path(&format!("${p}")))
        } else {
            TemplatePart::Path(path(inner))
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.to_string()));
    }
    Template {
        source: s.to_string(),
        parts,
    }
}

/// A number literal is a constant, anything else a JSONPath.
fn source(s: &str) -> ValueSource {
    match s.parse::<f64>() {
        Ok(c) => ValueSource::Const(c),
        Err(_) => ValueSource::Path(path(s)),
    }
}

/// A gauge rule `name` with `path:`.
fn rule(name: &str, value: &str) -> MetricRule {
    MetricRule {
        name: name.to_string(),
        description: format!("{name} help"),
        kind: RuleKind::Gauge,
        unit: String::new(),
        each: None,
        each_inner: Vec::new(),
        values: vec![RuleValue {
            name: name.to_string(),
            source: source(value),
        }],
        labels: Vec::new(),
        scale: None,
        parse: Parse::Auto,
        map: BTreeMap::new(),
        optional: false,
        aggregate: None,
    }
}

/// A rule with `values:` (instrument names `NAME.KEY`).
fn values_rule(name: &str, values: &[(&str, &str)]) -> MetricRule {
    let mut r = rule(name, "1");
    r.values = values
        .iter()
        .map(|(k, v)| RuleValue {
            name: format!("{name}.{k}"),
            source: source(v),
        })
        .collect();
    r
}

fn each(mut r: MetricRule, each: &str) -> MetricRule {
    r.each = Some(path(each));
    r
}

fn labels(mut r: MetricRule, labels: &[(&str, &str)]) -> MetricRule {
    r.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), tmpl(v)))
        .collect();
    r
}

fn map(mut r: MetricRule, entries: &[(&str, f64)]) -> MetricRule {
    r.map = entries.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    r
}

fn target(rules: Vec<MetricRule>) -> Target {
    Target {
        name: "app".to_string(),
        url: "http://127.0.0.1:8080/health".parse().unwrap(),
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(5),
        method: Method::Get,
        body: None,
        headers: Vec::new(),
        bearer_token_file: None,
        basic_auth: None,
        tls: TlsConfig::default(),
        accept_status: Vec::new(),
        format: Format::Json,
        follow_redirects: Default::default(),
        labels: BTreeMap::new(),
        metrics: rules.into(),
    }
}

/// [`super::extract`], checked against [`Extractor::extract_body`] on
/// the document's text: the parse that keeps only what the rules reach
/// must give the same series, errors (with examples) and drops.
fn extract(t: &Target, doc: &Value, max_series: usize, base: &[KeyValue]) -> Extraction {
    let x = super::extract(t, doc, max_series, base);
    let limits = Limits {
        max_series,
        max_bytes: 1 << 40,
    };
    for text in [doc.to_string(), serde_json::to_string_pretty(doc).unwrap()] {
        let y = Extractor::new(t)
            .extract_body(text.as_bytes(), limits, base)
            .unwrap();
        assert_eq!(samples(&x), samples(&y), "{text}");
        assert_eq!(x.errors, y.errors, "{text}");
        assert_eq!((x.series, x.dropped, y.unread), (y.series, y.dropped, 0));
    }
    x
}

fn run(rules: Vec<MetricRule>, doc: &Value) -> Extraction {
    extract(&target(rules), doc, 10_000, &[])
}

/// Every kept series as `name{k="v",...} value`, in output order.
fn samples(x: &Extraction) -> Vec<String> {
    let mut out = Vec::new();
    for f in &x.families {
        for s in &f.series {
            let labels: Vec<String> = s
                .attributes
                .iter()
                .map(|kv| format!("{}=\"{}\"", kv.key, kv.value))
                .collect();
            out.push(format!("{}{{{}}} {}", f.name, labels.join(","), s.value));
        }
    }
    out
}

/// Errors one by one (counts expanded), in the order first met.
fn errors(x: &Extraction) -> Vec<(String, &'static str)> {
    x.errors
        .iter()
        .flat_map(|e| std::iter::repeat_n((e.metric.clone(), e.reason.as_str()), e.count as usize))
        .collect()
}

fn err(metric: &str, reason: &'static str) -> (String, &'static str) {
    (metric.to_string(), reason)
}

/// A seed-like `/health/ready` document. Object members are written in key
/// order: serde_json iterates them so unless its `preserve_order` is on.
fn health() -> Value {
    json!({
        "status": "healthy",
        "version": "1.0.0",
        "uptime": "2h15m30s",
        "region": "eu",
        "checks": {
            "clickhouse": {"status": "degraded", "latency_ms": 5.5, "healthy": false},
            "postgres": {"status": "healthy", "latency_ms": 2, "healthy": true},
            "redis": {"status": "healthy", "latency_ms": 1, "healthy": true}
        },
        "workers": [{"name": "a", "jobs": 3}, {"name": "b", "jobs": 4}]
    })
}

// ----- rules -----

#[test]
fn path_from_root_and_constant() {
    let x = run(
        vec![rule("up", "1"), rule("jobs.first", "$.workers[0].jobs")],
        &health(),
    );
    assert_eq!(samples(&x), ["up{} 1", "jobs.first{} 3"]);
    assert!(x.errors.is_empty());
    assert_eq!(x.series, 2);
}

#[test]
fn each_over_object_members_with_key() {
    let r = labels(
        each(rule("dep.latency", "$.latency_ms"), "$.checks.*"),
        &[("dependency", "{@key}")],
    );
    let x = run(vec![r], &health());
    assert_eq!(
        samples(&x),
        [
            "dep.latency{dependency=\"clickhouse\"} 5.5",
            "dep.latency{dependency=\"postgres\"} 2",
            "dep.latency{dependency=\"redis\"} 1",
        ]
    );
}

#[test]
fn each_over_array_with_index_key() {
    let r = labels(
        each(rule("worker.jobs", "$.jobs"), "$.workers[*]"),
        &[("index", "{@key}"), ("name", "{$.name}")],
    );
    let x = run(vec![r], &health());
    assert_eq!(
        samples(&x),
        [
            "worker.jobs{index=\"0\",name=\"a\"} 3",
            "worker.jobs{index=\"1\",name=\"b\"} 4",
        ]
    );
}

#[test]
fn each_with_filter_and_relative_dollar() {
    // `$` inside labels and path means the each node, not the document.
    let r = labels(
        each(
            rule("dep.latency", "$.latency_ms"),
            "$.checks[?@.status == 'healthy']",
        ),
        &[("status", "{$.status}")],
    );
    let x = run(vec![r], &health());
    assert_eq!(samples(&x), ["dep.latency{status=\"healthy\"} 2"]);
    // The second healthy check has the same labels: a duplicate.
    assert_eq!(errors(&x), [err("dep.latency", "duplicate_series")]);
}

#[test]
fn each_matching_nothing_is_no_error() {
    let r = each(rule("x", "$.v"), "$.nothing.*");
    let x = run(vec![r], &health());
    assert!(samples(&x).is_empty());
    assert!(x.errors.is_empty());
    assert_eq!(x.families.len(), 1, "the family is still reported, empty");
}

#[test]
fn templates_mix_literals_paths_and_key() {
    let r = labels(
        each(rule("dep.up", "$.healthy"), "$.checks.*"),
        &[("id", "dep-{@key}/{$.status}!"), ("env", "prod")],
    );
    let x = run(vec![r], &health());
    assert_eq!(
        samples(&x)[0],
        "dep.up{id=\"dep-clickhouse/degraded!\",env=\"prod\"} 0"
    );
}

#[test]
fn labels_without_each_read_the_root_and_key_is_empty() {
    let r = labels(
        rule("app.up", "1"),
        &[("region", "eu-{$.region}"), ("k", "{@key}")],
    );
    let x = run(vec![r], &health());
    assert_eq!(samples(&x), ["app.up{region=\"eu-eu\",k=\"\"} 1"]);
}

#[test]
fn values_share_each_and_labels() {
    let r = labels(
        each(
            values_rule("dep", &[("latency", "$.latency_ms"), ("checked", "1")]),
            "$.checks.*",
        ),
        &[("dependency", "{@key}")],
    );
    let x = run(vec![r], &health());
    assert_eq!(
        samples(&x),
        [
            "dep.latency{dependency=\"clickhouse\"} 5.5",
            "dep.latency{dependency=\"postgres\"} 2",
            "dep.latency{dependency=\"redis\"} 1",
            "dep.checked{dependency=\"clickhouse\"} 1",
            "dep.checked{dependency=\"postgres\"} 1",
            "dep.checked{dependency=\"redis\"} 1",
        ]
    );
    assert_eq!(x.series, 6);
}

#[test]
fn specs_follow_values_kinds_and_dedupe_names() {
    let mut c = values_rule("jobs", &[("done", "1"), ("running", "2")]);
    c.kind = RuleKind::Counter;
    c.unit = "{job}".into();
    let mut u = rule("queue", "3");
    u.kind = RuleKind::UpDownCounter;
    let mut i = rule("build", "1");
    i.kind = RuleKind::Info;
    let mut s = rule("state", "$.status");
    s.kind = RuleKind::StateSet(vec!["healthy".into()]);
    let again = rule("queue", "4");
    let t = target(vec![c, u, i, s, again]);
    let specs = specs(&t);
    let got: Vec<(&str, InstrumentKind, &str)> = specs
        .iter()
        .map(|s| (s.name.as_str(), s.kind, s.unit.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("jobs.done", InstrumentKind::Counter, "{job}"),
            ("jobs.running", InstrumentKind::Counter, "{job}"),
            ("queue", InstrumentKind::UpDownCounter, ""),
            ("build", InstrumentKind::Gauge, ""),
            ("state", InstrumentKind::Gauge, ""),
        ]
    );
    assert_eq!(specs[0].description, "jobs help");
    // Families line up with specs; two rules of one name share a family.
    let x = extract(&t, &health(), 100, &[]);
    let names: Vec<&str> = x.families.iter().map(|f| &*f.name).collect();
    assert_eq!(
        names,
        ["jobs.done", "jobs.running", "queue", "build", "state"]
    );
    assert_eq!(
        x.families[2].series.len(),
        1,
        "second `queue` is a duplicate"
    );
    assert_eq!(errors(&x), [err("queue", "duplicate_series")]);
}

#[test]
fn base_labels_come_first() {
    let base = [KeyValue::new("target", "app"), KeyValue::new("team", "pay")];
    let r = labels(rule("v", "1"), &[("a", "b")]);
    let x = extract(&target(vec![r]), &health(), 100, &base);
    assert_eq!(samples(&x), ["v{target=\"app\",team=\"pay\",a=\"b\"} 1"]);
}

#[test]
fn info_is_one_with_string_labels() {
    let mut r = labels(rule("app.build", "1"), &[("version", "{$.version}")]);
    r.kind = RuleKind::Info;
    let x = run(vec![r.clone()], &health());
    assert_eq!(samples(&x), ["app.build{version=\"1.0.0\"} 1"]);

    // A path is only checked for presence.
    r.values[0].source = source("$.status");
    assert_eq!(
        samples(&run(vec![r.clone()], &health())),
        ["app.build{version=\"1.0.0\"} 1"]
    );
    r.values[0].source = source("$.nope");
    let x = run(vec![r.clone()], &health());
    assert!(samples(&x).is_empty());
    assert_eq!(errors(&x), [err("app.build", "missing")]);
}

#[test]
fn missing_label_path_is_missing_unless_optional() {
    let mut r = labels(
        rule("app.build", "1"),
        &[("version", "{$.version}"), ("commit", "{$.commit}")],
    );
    r.kind = RuleKind::Info;
    let x = run(vec![r.clone()], &health());
    assert!(samples(&x).is_empty());
    assert_eq!(errors(&x), [err("app.build", "missing")]);

    r.optional = true;
    let x = run(vec![r], &health());
    assert_eq!(samples(&x), ["app.build{version=\"1.0.0\",commit=\"\"} 1"]);
    assert!(x.errors.is_empty());
}

#[test]
fn one_label_error_per_node_whatever_the_values() {
    let r = labels(
        each(values_rule("w", &[("a", "1"), ("b", "2")]), "$.workers[*]"),
        &[("x", "{$.missing}")],
    );
    let x = run(vec![r], &health());
    assert_eq!(errors(&x), [err("w", "missing"), err("w", "missing")]);
}

#[test]
fn stateset_one_series_per_state() {
    let mut r = labels(
        each(rule("dep.status", "$.status"), "$.checks.*"),
        &[("dependency", "{@key}")],
    );
    r.kind = RuleKind::StateSet(vec!["healthy".into(), "degraded".into()]);
    let x = run(vec![r], &health());
    assert_eq!(
        samples(&x),
        [
            "dep.status{dependency=\"clickhouse\",state=\"healthy\"} 0",
            "dep.status{dependency=\"clickhouse\",state=\"degraded\"} 1",
            "dep.status{dependency=\"postgres\",state=\"healthy\"} 1",
            "dep.status{dependency=\"postgres\",state=\"degraded\"} 0",
            "dep.status{dependency=\"redis\",state=\"healthy\"} 1",
            "dep.status{dependency=\"redis\",state=\"degraded\"} 0",
        ]
    );
    assert!(x.errors.is_empty());
}

#[test]
fn stateset_unknown_state_is_unmapped_and_served_as_other() {
    let mut r = rule("app.status", "$.status");
    r.kind = RuleKind::StateSet(vec!["ok".into(), "down".into()]);
    let x = run(vec![r.clone()], &health());
    assert_eq!(
        samples(&x),
        [
            "app.status{state=\"ok\"} 0",
            "app.status{state=\"down\"} 0",
            "app.status{state=\"other\"} 1"
        ]
    );
    assert_eq!(errors(&x), [err("app.status", "unmapped_value")]);
    // A known state serves no `other`.
    let x = run(vec![r.clone()], &json!({"status": "down"}));
    assert_eq!(
        samples(&x),
        ["app.status{state=\"ok\"} 0", "app.status{state=\"down\"} 1"]
    );
    // An object is outside the states too.
    let x = run(vec![r.clone()], &json!({"status": {"a": 1}}));
    assert_eq!(samples(&x).last().unwrap(), "app.status{state=\"other\"} 1");
    assert_eq!(errors(&x), [err("app.status", "unmapped_value")]);

    // Booleans and numbers compare by their text; missing and null as for values.
    r.kind = RuleKind::StateSet(vec!["true".into(), "false".into()]);
    let x = run(vec![r.clone()], &json!({"status": false}));
    assert_eq!(
        samples(&x),
        [
            "app.status{state=\"true\"} 0",
            "app.status{state=\"false\"} 1"
        ]
    );
    let x = run(vec![r.clone()], &json!({"status": null}));
    assert!(samples(&x).is_empty() && x.errors.is_empty());
    let x = run(vec![r.clone()], &json!({}));
    assert_eq!(errors(&x), [err("app.status", "missing")]);
    r.optional = true;
    assert!(run(vec![r], &json!({})).errors.is_empty());
}

#[test]
fn auto_parse_rules() {
    let doc = json!({
        "int": 42, "float": -1.5, "t": true, "f": false,
        "s_int": "42", "s_exp": "1.5e3", "s_ws": " 7 ",
        "word": "healthy", "inf": "inf", "nan": "NaN",
        "obj": {"a": 1}, "arr": [1], "null": null
    });
    let mut rules = Vec::new();
    for key in [
        "int", "float", "t", "f", "s_int", "s_exp", "s_ws", "word", "inf", "nan", "obj", "arr",
        "null", "absent",
    ] {
        rules.push(rule(key, &format!("$.{key}")));
    }
    let x = run(rules, &doc);
    assert_eq!(
        samples(&x),
        [
            "int{} 42",
            "float{} -1.5",
            "t{} 1",
            "f{} 0",
            "s_int{} 42",
            "s_exp{} 1500",
            "s_ws{} 7",
        ]
    );
    assert_eq!(
        errors(&x),
        [
            err("word", "not_a_number"),
            err("inf", "not_a_number"),
            err("nan", "not_a_number"),
            err("obj", "not_a_number"),
            err("arr", "not_a_number"),
            err("absent", "missing"),
        ]
    );
}

#[test]
fn optional_missing_is_silent_and_null_is_never_an_error() {
    let mut r = rule("x", "$.absent");
    r.optional = true;
    let x = run(vec![r, rule("y", "$.n")], &json!({"n": null}));
    assert!(samples(&x).is_empty());
    assert!(x.errors.is_empty());
}

#[test]
fn map_strings_booleans_and_numbers() {
    let m = [
        ("healthy", 1.0),
        ("degraded", 0.5),
        ("true", 0.0),
        ("200", 1.0),
        ("7", 70.0),
    ];
    let doc = json!({
        "a": "healthy", "b": "degraded", "c": "broken", "d": true, "e": false,
        "f": 200, "g": 503, "h": "7", "i": "12"
    });
    let rules = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .map(|k| map(rule(k, &format!("$.{k}")), &m))
        .collect();
    let x = run(rules, &doc);
    assert_eq!(
        samples(&x),
        [
            "a{} 1", "b{} 0.5", // strings through the map
            "d{} 0", "e{} 0", // `true` mapped, `false` natural
            "f{} 1", "g{} 503", // 200 mapped, 503 natural
            "h{} 70", "i{} 12", // the map wins over numeric parsing
        ]
    );
    assert_eq!(errors(&x), [err("c", "unmapped_value")]);
}

#[test]
fn map_applies_in_other_parse_modes() {
    let mut r = map(rule("up", "$.uptime"), &[("never", -1.0)]);
    r.parse = Parse::Duration;
    let x = run(vec![r.clone()], &json!({"uptime": "never"}));
    assert_eq!(samples(&x), ["up{} -1"]);
    let x = run(vec![r], &json!({"uptime": "soon"}));
    assert_eq!(errors(&x), [err("up", "unmapped_value")]);
}

#[test]
fn scale_multiplies_parsed_values_not_constants() {
    let mut r = values_rule("dep", &[("latency", "$.latency_ms"), ("up", "1")]);
    r.scale = Some(0.001);
    let x = run(vec![r], &json!({"latency_ms": 250}));
    assert_eq!(samples(&x), ["dep.latency{} 0.25", "dep.up{} 1"]);

    let mut r = map(rule("m", "$.s"), &[("half", 0.5)]);
    r.scale = Some(10.0);
    assert_eq!(samples(&run(vec![r], &json!({"s": "half"}))), ["m{} 5"]);
}

#[test]
fn non_finite_results_are_not_a_number() {
    let mut r = rule("big", "$.v");
    r.scale = Some(1e10);
    let x = run(vec![r], &json!({"v": 1e300}));
    assert!(samples(&x).is_empty());
    assert_eq!(errors(&x), [err("big", "not_a_number")]);
}

#[test]
fn parse_duration_timestamp_bytes() {
    let doc = json!({
        "uptime": "2h15m30s", "secs": 12, "ts": "2026-02-16T19:15:00.000Z",
        "epoch": 1657568506, "free": "10.50GB", "mem": 1024, "bad": "soon", "flag": true
    });
    let with = |name: &str, p: Parse| {
        let mut r = rule(name, &format!("$.{name}"));
        r.parse = p;
        r
    };
    let x = run(
        vec![
            with("uptime", Parse::Duration),
            with("secs", Parse::Duration),
            with("ts", Parse::Timestamp),
            with("epoch", Parse::Timestamp),
            with("free", Parse::Bytes),
            with("mem", Parse::Bytes),
            with("bad", Parse::Duration),
            with("flag", Parse::Duration),
        ],
        &doc,
    );
    assert_eq!(
        samples(&x),
        [
            "uptime{} 8130",
            "secs{} 12",
            "ts{} 1771269300",
            "epoch{} 1657568506",
            "free{} 10500000000",
            "mem{} 1024",
        ]
    );
    assert_eq!(
        errors(&x),
        [err("bad", "not_a_number"), err("flag", "not_a_number")]
    );
}

#[test]
fn label_values_render_as_the_json_wrote_them() {
    let doc: Value = serde_json::from_str(
        r#"{"items": [
                {"v": 1655371}, {"v": -3}, {"v": 18446744073709551615}, {"v": 1.5},
                {"v": 1655371.0}, {"v": 0.1}, {"v": true}, {"v": false}, {"v": null},
                {"v": "text with \"quotes\" and ünïcode"}
            ]}"#,
    )
    .unwrap();
    let r = labels(each(rule("x", "1"), "$.items[*]"), &[("v", "{$.v}")]);
    let x = run(vec![r], &doc);
    let got: Vec<String> = x.families[0]
        .series
        .iter()
        .map(|s| s.attributes[0].value.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "1655371",
            "-3",
            "18446744073709551615",
            "1.5",
            "1655371.0",
            "0.1",
            "true",
            "false",
            "",
            "text with \"quotes\" and ünïcode",
        ]
    );
}

#[test]
fn object_or_array_label_is_invalid_label() {
    let doc = json!({"items": [{"v": {"a": 1}}, {"v": [1]}, {"v": "ok"}]});
    let r = labels(each(rule("x", "1"), "$.items[*]"), &[("v", "{$.v}")]);
    let x = run(vec![r], &doc);
    assert_eq!(samples(&x), ["x{v=\"ok\"} 1"]);
    assert_eq!(
        errors(&x),
        [err("x", "invalid_label"), err("x", "invalid_label")]
    );
}

#[test]
fn several_matches_use_the_first() {
    let r = labels(
        rule("x", "$.workers[*].jobs"),
        &[("name", "{$.workers[*].name}")],
    );
    assert_eq!(samples(&run(vec![r], &health())), ["x{name=\"a\"} 3"]);
}

#[test]
fn duplicates_keep_the_first_and_count_once_per_node() {
    let doc = json!({"items": [
        {"id": "a", "n": 1, "m": 10},
        {"id": "b", "n": 2, "m": 20},
        {"id": "a", "n": 3, "m": 30},
        {"id": "a", "n": 4, "m": 40}
    ]});
    let r = labels(
        each(
            values_rule("it", &[("n", "$.n"), ("m", "$.m")]),
            "$.items[*]",
        ),
        &[("id", "{$.id}")],
    );
    let x = run(vec![r], &doc);
    assert_eq!(
        samples(&x),
        [
            "it.n{id=\"a\"} 1",
            "it.n{id=\"b\"} 2",
            "it.m{id=\"a\"} 10",
            "it.m{id=\"b\"} 20",
        ]
    );
    assert_eq!(
        errors(&x),
        [err("it", "duplicate_series"), err("it", "duplicate_series")]
    );
    assert_eq!(x.series, 4);
    assert_eq!(x.dropped, 0);
}

#[test]
fn same_labels_in_different_instruments_are_not_duplicates() {
    let x = run(vec![rule("a", "1"), rule("b", "2")], &json!({}));
    assert_eq!(x.series, 2);
    assert!(x.errors.is_empty());
}

#[test]
fn cap_drops_and_counts_the_rest() {
    let doc = json!({"items": [1, 2, 3, 4, 5]});
    let r = labels(each(rule("x", "$"), "$.items[*]"), &[("i", "{@key}")]);
    let mut s = rule("s", "$.state");
    s.kind = RuleKind::StateSet(vec!["a".into(), "b".into()]);
    let t = target(vec![r, s, rule("x", "$.items[0]")]);
    let x = extract(&t, &doc, 3, &[]);
    assert_eq!(
        samples(&x),
        ["x{i=\"0\"} 1", "x{i=\"1\"} 2", "x{i=\"2\"} 3"]
    );
    assert_eq!(x.series, 3);
    // 2 more items; the stateset's missing path is an error, not a drop;
    // the last `x` is dropped, not a duplicate (its label set differs).
    assert_eq!(x.dropped, 3);
    assert_eq!(errors(&x), [err("s", "missing")]);

    // Stateset series count one by one.
    let mut s = rule("s", "$.state");
    s.kind = RuleKind::StateSet(vec!["a".into(), "b".into(), "c".into()]);
    let x = extract(&target(vec![s]), &json!({"state": "b"}), 2, &[]);
    assert_eq!((x.series, x.dropped), (2, 1));

    let x = extract(&target(vec![rule("x", "1")]), &doc, 0, &[]);
    assert_eq!((x.series, x.dropped), (0, 1));
}

#[test]
fn duplicates_are_errors_even_at_the_cap() {
    let r = labels(each(rule("x", "1"), "$.items[*]"), &[("k", "same")]);
    let x = extract(&target(vec![r]), &json!({"items": [1, 2, 3]}), 1, &[]);
    assert_eq!((x.series, x.dropped), (1, 0));
    assert_eq!(errors(&x), vec![err("x", "duplicate_series"); 2]);
}

#[test]
fn an_extractor_is_reusable_and_shareable() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let r = labels(
        each(rule("dep.latency", "$.latency_ms"), "$.checks.*"),
        &[("dependency", "{@key}")],
    );
    let t = target(vec![r]);
    let extractor = Extractor::new(&t);
    shareable(&extractor);
    let first = extractor.extract(&health(), 100, &[]);
    let second = extractor.extract(&health(), 100, &[]);
    assert_eq!(samples(&first), samples(&second));
    assert_eq!(samples(&first), samples(&extract(&t, &health(), 100, &[])));
    let other = extractor.extract(&json!({"checks": {"x": {"latency_ms": 1}}}), 100, &[]);
    assert_eq!(samples(&other), ["dep.latency{dependency=\"x\"} 1"]);
}

#[test]
fn error_reason_names() {
    let names: Vec<&str> = ErrorReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        names,
        [
            "missing",
            "not_a_number",
            "unmapped_value",
            "duplicate_series",
            "invalid_label"
        ]
    );
}

#[test]
fn hostile_documents_do_not_panic() {
    let r = labels(
        each(values_rule("x", &[("a", "$.a"), ("b", "$..b")]), "$..*"),
        &[("k", "{@key}"), ("v", "{$.a}")],
    );
    let mut s = rule("s", "$.a");
    s.kind = RuleKind::StateSet(vec![]);
    let t = target(vec![r, s]);
    for doc in [
        json!(null),
        json!([]),
        json!("x"),
        json!({"a": [[[[{"b": {"a": 1}}]]]]}),
        json!([{"a": 1e308, "b": -0.0}, {"a": "1e999"}]),
    ] {
        let x = extract(&t, &doc, 50, &[]);
        assert!(x.series <= 50);
    }
}

#[test]
fn simple_paths_agree_with_the_general_query() {
    let doc = json!({
        "a": {"b": [10, 20, {"c": "x"}], "d.e": 1, "it's": 2, "']['": 3},
        "x": null,
        "": 4
    });
    for p in [
        "$",
        "$.a",
        "$.a.b",
        "$.a.b[0]",
        "$.a.b[-1]",
        "$.a.b[2].c",
        "$.a.b[5]",
        "$.a.b[-9]",
        "$.a.nope",
        "$.x",
        "$.x.y",
        "$.a.b.c",
        "$[0]",
    ] {
        let jp = path(p);
        let fast = SimplePath::parse(&jp, false).unwrap_or_else(|| panic!("{p}"));
        assert_eq!(fast.get(&doc), jp.query(&doc).first(), "{p}");
    }
    for p in [
        "$['a']",
        "$.a['d.e']",
        "$.a[\"it's\"]",
        "$.a[\"']['\"]",
        "$..c",
        "$.a.*",
        "$.a.b[*]",
        "$.a.b[0,1]",
        "$.a.b[0:1]",
        "$.a.b[?@ > 10]",
        "$['']",
    ] {
        assert!(SimplePath::parse(&path(p), false).is_none(), "{p}");
    }
    for (p, container) in [
        ("$.a.*", "$.a"),
        ("$.a.b[*]", "$.a.b"),
        ("$.*", "$"),
        ("$[*]", "$"),
    ] {
        let fast = SimplePath::parse(&path(p), true).unwrap_or_else(|| panic!("{p}"));
        assert_eq!(fast.get(&doc), path(container).query(&doc).first(), "{p}");
    }
    for p in ["$.a", "$..*", "$.a[*].b", "$.a[?@.x]", "$.a.b[0:2]"] {
        assert!(SimplePath::parse(&path(p), true).is_none(), "{p}");
    }
}

#[test]
fn fast_and_general_each_agree() {
    let doc = health();
    let rule_with = |each_path: &str| {
        let mut r = labels(
            each(
                values_rule("dep", &[("ms", "$.latency_ms"), ("up", "$.healthy")]),
                each_path,
            ),
            &[("dependency", "{@key}"), ("status", "s-{$.status}")],
        );
        r.kind = RuleKind::Gauge;
        r
    };
    // `[?@]` matches every member but is not a plain wildcard.
    let fast = run(vec![rule_with("$.checks.*")], &doc);
    let general = run(vec![rule_with("$.checks[?@]")], &doc);
    assert_eq!(samples(&fast), samples(&general));
    assert_eq!(fast.series, 6);
    let fast = run(vec![rule_with("$.workers[*]")], &doc);
    let general = run(vec![rule_with("$.workers[?@]")], &doc);
    assert_eq!(samples(&fast), samples(&general));
}

// ----- memory: errors counted, the parse keeps what the rules reach -----

#[test]
fn errors_are_counted_per_rule_and_reason_with_one_example() {
    let long = "é".repeat(200);
    let items: Vec<Value> = (0..10_000)
        .map(|i| if i == 0 { json!(long) } else { json!("bad") })
        .collect();
    let doc = json!({"items": items, "o": {"k": [1]}});
    let r = each(rule("x", "$"), "$.items[*]");
    let x = run(vec![r, rule("o", "$.o"), rule("m", "$.nope")], &doc);
    let got: Vec<(&str, &str, u64)> = x
        .errors
        .iter()
        .map(|e| (e.metric.as_str(), e.reason.as_str(), e.count))
        .collect();
    assert_eq!(
        got,
        [
            ("x", "not_a_number", 10_000),
            ("o", "not_a_number", 1),
            ("m", "missing", 1)
        ]
    );
    let first = x.errors[0].example.as_deref().unwrap();
    assert_eq!(first.chars().count(), EXAMPLE_CHARS);
    assert!(first.starts_with("éé") && first.ends_with('…'), "{first}");
    assert_eq!(x.errors[1].example.as_deref(), Some("{…}"));
    assert_eq!(x.errors[2].example, None);
}

#[test]
fn a_duplicate_example_is_its_labels() {
    let doc = json!({"items": [{"id": "a"}, {"id": "a"}, {"id": "a"}]});
    let r = labels(each(rule("x", "1"), "$.items[*]"), &[("id", "{$.id}")]);
    let x = run(vec![r], &doc);
    assert_eq!(x.errors.len(), 1);
    assert_eq!(x.errors[0].count, 2);
    assert_eq!(x.errors[0].example.as_deref(), Some("id=\"a\""));
}

#[test]
fn the_parse_keeps_only_what_the_rules_reach() {
    let rules = vec![
        rule("b", "$.a.b"),
        labels(each(rule("v", "$.v"), "$.items[*]"), &[("n", "{$.name}")]),
        rule("third", "$.arr[2]"),
        rule("obj", "$.o"),
    ];
    let t = target(rules);
    let ex = Extractor::new(&t);
    let body = r#"{
            "a": {"b": 1, "c": [1, 2, 3]},
            "items": [{"v": 1, "name": "n", "junk": [1, 2]}, {"v": "2", "other": {}}],
            "arr": [10, 11, 12, 13, 14],
            "o": {"deep": {"deeper": [1, 2, 3]}},
            "other": {"x": "y"}
        }"#;
    let parsed = reach::parse(body.as_bytes(), &ex.reach, 4, usize::MAX).unwrap();
    // The `each` container is kept as text and parsed a member at a time.
    assert_eq!(
        parsed.root,
        json!({
            "a": {"b": 1},
            "items": [],
            "arr": [null, null, 12],
            "o": {}
        })
    );
    assert_eq!(
        lazy_members(&parsed, 1),
        [json!({"v": 1, "name": "n"}), json!({"v": "2"})]
    );
    // General paths keep everything below their plain steps; a filter
    // reading the root keeps the whole document.
    let t = target(vec![
        rule("g", "$.a..b"),
        each(rule("f", "$.v"), "$.items[?@.v == 1]"),
    ]);
    let ex = Extractor::new(&t);
    let parsed = reach::parse(body.as_bytes(), &ex.reach, 2, usize::MAX).unwrap();
    let full: Value = serde_json::from_str(body).unwrap();
    assert_eq!(parsed.root["a"], full["a"]);
    assert_eq!(parsed.root["items"], full["items"]);
    assert_eq!(parsed.root.get("other"), None);
    let t = target(vec![each(rule("f", "$.v"), "$.items[?@.v == $.arr[0]]")]);
    let ex = Extractor::new(&t);
    let parsed = reach::parse(body.as_bytes(), &ex.reach, 1, usize::MAX).unwrap();
    assert_eq!(parsed.root, full);
}

/// The members of rule `rule`'s lazy container, parsed.
fn lazy_members(parsed: &reach::Parsed, rule: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let lazy = parsed.lazy[rule].as_ref().expect("a lazy container");
    lazy.for_each(usize::MAX, |v, _| out.push(v.clone()))
        .unwrap();
    out
}

/// [`Extractor::extract_body`] on `body` with room for everything.
fn extract_text(t: &Target, body: &str) -> Extraction {
    let limits = Limits {
        max_series: 100_000,
        max_bytes: 4 << 20,
    };
    Extractor::new(t)
        .extract_body(body.as_bytes(), limits, &[])
        .unwrap()
}

#[test]
fn a_lazy_container_gives_what_the_built_one_gives() {
    let each_v = |p: &str| labels(each(rule("v", "$.v"), p), &[("k", "{@key}")]);
    // Members sorted by key, the last of equal keys kept, as serde_json
    // builds a map; a duplicate container key: the last value wins.
    for body in [
        r#"{"m": {"b": {"v": 1}, "a": {"v": 2}, "b": {"v": 3}, "c\u0041": {"v": 4}}}"#,
        r#"{"m": {"x": {"v": 9}}, "m": {"b": {"v": 3}, "cA": {"v": 4}, "a": {"v": 2}}}"#,
        r#"{"m": 5, "m": {"b": {"v": 3}, "cA": {"v": 4}, "a": {"v": 2}}}"#,
    ] {
        let t = target(vec![each_v("$.m.*")]);
        let x = extract_text(&t, body);
        assert_eq!(
            samples(&x),
            ["v{k=\"a\"} 2", "v{k=\"b\"} 3", "v{k=\"cA\"} 4"],
            "{body}"
        );
        let doc: Value = serde_json::from_str(body).unwrap();
        assert_eq!(samples(&super::extract(&t, &doc, 10_000, &[])), samples(&x));
    }
    // A scalar after the container replaces it.
    let t = target(vec![each_v("$.m[*]")]);
    let x = extract_text(&t, r#"{"m": [{"v": 1}], "m": 5}"#);
    assert_eq!((x.series, x.dropped), (0, 0));
    let x = extract_text(&t, r#"{"m": 5, "m": [{"v": 1}, {"v": 2}]}"#);
    assert_eq!(samples(&x), ["v{k=\"0\"} 1", "v{k=\"1\"} 2"]);
    // Read by a second rule (another `each` of the same instrument, an
    // index from the end, a named member, the whole node): built as
    // before, same series.
    let reads = [
        vec![each_v("$.m[*]"), each(rule("v", "$.v"), "$.m[*]")],
        vec![each_v("$.m[*]"), rule("last", "$.m[-1].v")],
        vec![each_v("$.m[*]"), rule("first", "$.m[0].v")],
        vec![each_v("$.m[*]"), rule("all", "$..v")],
    ];
    for rules in reads {
        let t = target(rules);
        let body = r#"{"m": [{"v": 1}, {"v": 2}]}"#;
        let ex = Extractor::new(&t);
        let parsed = reach::parse(body.as_bytes(), &ex.reach, 2, usize::MAX).unwrap();
        assert!(parsed.lazy.iter().all(Option::is_none));
        assert_eq!(parsed.root["m"].as_array().map(Vec::len), Some(2));
        assert!(extract_text(&t, body).series >= 3);
    }
}

#[test]
fn a_lazy_container_follows_what_the_body_says_whatever_its_quirks() {
    let t = target(vec![labels(
        each(rule("v", "$.v"), "$.p.a.*"),
        &[("k", "{@key}")],
    )]);
    // A later duplicate key replaces the container's parent: no members.
    for body in [
        r#"{"p": {"a": {"x": {"v": 1}}}, "p": {}}"#,
        r#"{"p": {"a": {"x": {"v": 1}}}, "p": 7}"#,
        r#"{"p": {"a": {"x": {"v": 1}}}, "p": {"a": {"y": {"v": 2}}}}"#,
    ] {
        let doc: Value = serde_json::from_str(body).unwrap();
        let whole = samples(&super::extract(&t, &doc, 100, &[]));
        assert_eq!(whole, samples(&extract_text(&t, body)), "{body}");
    }
    // A member that only its parse finds invalid (a number out of range, a
    // lone surrogate) refuses the body, as the whole body's parse does.
    let t = target(vec![labels(
        each(rule("v", "$.v"), "$.m.*"),
        &[("k", "{@key}")],
    )]);
    let limits = Limits {
        max_series: 100,
        max_bytes: 1 << 20,
    };
    for body in [
        r#"{"m": {"x": {"v": 1e400}, "y": {"v": 2}}}"#,
        r#"{"m": {"x": {"v": "\ud800"}, "y": {"v": 2}}}"#,
    ] {
        assert!(serde_json::from_str::<Value>(body).is_err());
        let x = Extractor::new(&t).extract_body(body.as_bytes(), limits, &[]);
        assert!(x.is_err(), "{body}: {x:?}");
    }
    // A byte that is not UTF-8 in a field no rule reads is skipped, as it
    // was when every container was built.
    let body = b"{\"m\": {\"x\": {\"v\": 1, \"junk\": \"\xff\"}, \"y\": {\"v\": 2}}}";
    let x = Extractor::new(&t).extract_body(body, limits, &[]).unwrap();
    assert_eq!(samples(&x), ["v{k=\"x\"} 1", "v{k=\"y\"} 2"]);
}

#[test]
fn a_pass_never_jumps_a_rule_of_the_same_instrument() {
    let doc = json!({"items": [{"id": "a", "r": 1, "q": 5}], "n": 7});
    let r = labels(each(rule("r", "$.r"), "$.items[*]"), &[("id", "{$.id}")]);
    let q1 = labels(rule("q", "$.n"), &[("id", "a")]);
    let q2 = labels(each(rule("q", "$.q"), "$.items[*]"), &[("id", "{$.id}")]);
    // The first `q` is served and the second is the duplicate, with or
    // without an earlier rule over the same container.
    for rules in [vec![r.clone(), q1.clone(), q2.clone()], vec![q1, q2]] {
        let last = rules.len() - 1;
        let x = run(rules, &doc);
        let q: Vec<String> = samples(&x)
            .into_iter()
            .filter(|s| s.starts_with('q'))
            .collect();
        assert_eq!(q, ["q{id=\"a\"} 7"]);
        assert_eq!(errors(&x), [err("q", "duplicate_series")]);
        assert_eq!(x.errors[0].rule, last);
    }
}

#[test]
fn rules_over_one_container_run_together_node_by_node() {
    let doc =
        json!({"items": [{"id": "a", "r": 1, "q": 5}, {"id": "b", "r": 2, "q": "x"}], "n": 7});
    let r = labels(each(rule("r", "$.r"), "$.items[*]"), &[("id", "{$.id}")]);
    let q = labels(each(rule("q", "$.q"), "$.items[*]"), &[("id", "{$.id}")]);
    let missing = rule("zz", "$.nothing");
    let n = rule("n", "$.n");
    // The cap is reached node by node: the first item's two series.
    for rules in [
        vec![r.clone(), n.clone(), q.clone()],
        vec![r.clone(), q.clone()],
    ] {
        let x = extract(&target(rules), &doc, 2, &[]);
        assert_eq!(samples(&x), ["r{id=\"a\"} 1", "q{id=\"a\"} 5"]);
    }
    // Errors stay in rule order, and the account is per rule, whatever
    // order the rules ran in.
    let rules = vec![missing, q, n, r];
    let x = run(rules.clone(), &doc);
    assert_eq!(errors(&x), [err("zz", "missing"), err("q", "not_a_number")]);
    let report = explained(rules, &doc);
    let counts: Vec<(u64, u64)> = report
        .rules
        .iter()
        .map(|r| (r.nodes, r.series_total))
        .collect();
    assert_eq!(counts, [(0, 0), (2, 1), (1, 1), (2, 2)]);
    let shown: Vec<String> = report
        .series(&report.rules[3])
        .map(|(n, l, v)| format!("{n}{}={v}", l[0].value))
        .collect();
    assert_eq!(shown, ["ra=1", "rb=2"]);
}

#[test]
fn a_lazy_container_holds_a_few_words_per_member() {
    let items: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"name": "item-{i}", "a": {i}, "b": 2, "c": 3.5}}"#))
        .collect();
    let body = format!(r#"{{"items": [{}]}}"#, items.join(","));
    let r = values_rule("x", &[("a", "$.a"), ("b", "$.b"), ("c", "$.c")]);
    let t = target(vec![labels(each(r, "$.items[*]"), &[("name", "{$.name}")])]);
    let ex = Extractor::new(&t);
    let parsed = reach::parse(body.as_bytes(), &ex.reach, 1, usize::MAX).unwrap();
    // The budget is charged what the parse keeps: LAZY_SLOT (100 B) a
    // member (a built member takes a 640-byte B-tree leaf and its strings).
    let kept = usize::MAX - parsed.budget;
    assert!(kept <= 10_000 * 100 + 1_000, "{kept}");
    let x = extract_text(&t, &body);
    assert_eq!((x.series, x.dropped, x.unread), (30_000, 0, 0));
    // Past the budget, the members left are counted as dropped, one per
    // series the rule makes of each.
    let limits = Limits {
        max_series: 1_000_000,
        max_bytes: 200_000,
    };
    let x = ex.extract_body(body.as_bytes(), limits, &[]).unwrap();
    assert!(x.series > 0 && x.series < 30_000, "{}", x.series);
    assert_eq!(x.series as u64 + x.dropped, 30_000);
    // A member bigger than the budget left is cut like a built one.
    let body = format!(
        r#"{{"items": [{{"name": "{}", "a": 1}}]}}"#,
        "n".repeat(100_000)
    );
    let limits = Limits {
        max_series: 100,
        max_bytes: 50_000,
    };
    let x = ex.extract_body(body.as_bytes(), limits, &[]).unwrap();
    assert_eq!(x.series, 0);
    assert!(x.unread >= 1 && x.dropped >= 1, "{x:?}");
}

#[test]
fn the_parse_agrees_on_tricky_paths() {
    let doc = json!({
        "a": [1, 2, 3],
        "g": [[1, 2], [3], []],
        "want": 2,
        "items": [{"v": 1}, {"v": 2}, {"v": 2, "w": 1}],
        "m": {"x": {"b": {"c": 1}}, "y": 5}
    });
    let mut rules = vec![
        rule("last", "$.a[-1]"),
        rule("second", "$.a[1]"),
        rule("none", "$.a[5]"),
        labels(
            each(
                values_rule("g", &[("first", "$[0]"), ("last", "$[-1]")]),
                "$.g[*]",
            ),
            &[("i", "{@key}")],
        ),
        labels(
            each(rule("f", "$.v"), "$.items[?@.v == $.want]"),
            &[("i", "{@key}")],
        ),
        labels(
            each(rule("k", "$.b.c"), "$.m.*"),
            &[("k", "{@key}"), ("y", "{$.b}")],
        ),
        labels(each(rule("d", "$"), "$..c"), &[("k", "{@key}")]),
        rule("y", "$.m.y"),
        rule("root", "$"),
    ];
    rules[3].optional = true;
    let x = run(rules, &doc);
    assert!(x.series > 5, "{:?}", samples(&x));
    // Duplicate keys: the last value wins, as serde_json reads them.
    let t = target(vec![rule("a", "$.a")]);
    let x = Extractor::new(&t)
        .extract_body(
            br#"{"a": 1, "a": 2}"#,
            Limits {
                max_series: 10,
                max_bytes: 1 << 20,
            },
            &[],
        )
        .unwrap();
    assert_eq!(samples(&x), ["a{} 2"]);
    // Invalid JSON is still refused, trailing bytes included.
    for bad in [&br#"{"a": 1"#[..], br#"{"a": 1} x"#, br#"[1,]"#] {
        let limits = Limits {
            max_series: 10,
            max_bytes: 1 << 20,
        };
        assert!(Extractor::new(&t).extract_body(bad, limits, &[]).is_err());
    }
}

#[test]
fn past_the_budget_the_rest_is_dropped_and_counted() {
    let body = format!("[{}]", vec!["0"; 10_000].join(","));
    let r = labels(each(rule("x", "$"), "$[*]"), &[("i", "{@key}")]);
    let t = target(vec![r, rule("n", "$[9999]")]);
    let limits = Limits {
        max_series: 1_000_000,
        max_bytes: 20_000,
    };
    let x = Extractor::new(&t)
        .extract_body(body.as_bytes(), limits, &[])
        .unwrap();
    // Every node is either a series or counted as dropped; the array
    // ends where the budget did, so its last element is missing.
    assert!(x.series > 100 && x.series < 1_000, "{}", x.series);
    assert_eq!(x.series as u64 + x.dropped, 10_000);
    assert!(x.unread > 9_000);
    assert_eq!(errors(&x), [err("n", "missing")]);
    // Within the budget, the same rules see everything.
    let limits = Limits {
        max_series: 1_000_000,
        max_bytes: 10 << 20,
    };
    let x = Extractor::new(&t)
        .extract_body(body.as_bytes(), limits, &[])
        .unwrap();
    assert_eq!((x.series, x.dropped, x.unread), (10_001, 0, 0));
}

#[test]
fn label_text_shares_the_budget() {
    let doc = json!({"s": "x".repeat(1000)});
    let rules = vec![
        labels(rule("y", "1"), &[("s", "{$.s}")]),
        labels(rule("z", "1"), &[("s", "{$.s}")]),
    ];
    let t = target(rules);
    // The parsed string (~1.1 kB) and one label (~1 kB) fit, not two.
    let limits = Limits {
        max_series: 10,
        max_bytes: 2_150,
    };
    let x = Extractor::new(&t)
        .extract_body(doc.to_string().as_bytes(), limits, &[])
        .unwrap();
    assert_eq!((x.series, x.dropped, x.unread), (1, 1, 1));
    assert_eq!(x.families[0].series.len(), 1);
    assert!(x.errors.is_empty());
}

// ----- json_exporter's cases, as facts on bodies of our own -----
// (tests/fixtures/peers/README.md says which case each file stands for)

/// The text of `tests/fixtures/peers/FILE`; missing, the test fails.
fn peer_file(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/peers")
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} cannot be read: {e}", path.display()))
}

fn read_json(file: &str) -> Value {
    serde_json::from_str(&peer_file(file)).unwrap()
}

/// Samples of a Prometheus text file, as `name{k="v",...} value` with sorted
/// labels; a file without samples fails the test.
fn expected(file: &str) -> Vec<String> {
    let text = peer_file(file);
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = series.split_once('{').unwrap();
            let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
            labels.sort_unstable();
            format!("{name}{{{}}} {value}", labels.join(","))
        })
        .collect();
    assert!(!out.is_empty(), "{file} has no samples");
    out.sort();
    out
}

/// Our samples in the same form: dots as underscores, base labels left out, sorted.
fn normalized(x: &Extraction, base_len: usize) -> Vec<String> {
    let mut out = Vec::new();
    for f in &x.families {
        for s in &f.series {
            let mut labels: Vec<String> = s.attributes[base_len..]
                .iter()
                .map(|kv| format!("{}=\"{}\"", kv.key, kv.value))
                .collect();
            labels.sort();
            out.push(format!(
                "{}{{{}}} {}",
                f.name.replace('.', "_"),
                labels.join(","),
                s.value
            ));
        }
    }
    out.sort();
    out
}

/// json_exporter's `good.yml` module, over the workers list.
fn worker_rules() -> Vec<MetricRule> {
    let requests = labels(
        rule("pool_requests", "$.requests"),
        &[("environment", "staging"), ("region", "zone-{$.region}")],
    );
    let mut worker = labels(
        each(
            values_rule(
                "worker",
                &[("up", "1"), ("jobs", "$.jobs"), ("busy", "$.busy")],
            ),
            "$.workers[?@.state == 'RUNNING']",
        ),
        &[("environment", "staging"), ("id", "{$.id}")],
    );
    worker.kind = RuleKind::Counter;
    vec![requests, worker]
}

fn peer_extract(rules: Vec<MetricRule>, doc: &Value) -> Extraction {
    let base = [KeyValue::new("target", "peer")];
    let x = extract(&target(rules), doc, 2000, &base);
    for f in &x.families {
        for s in &f.series {
            assert_eq!(s.attributes[0], base[0]);
        }
    }
    x
}

#[test]
fn peer_a_filtered_object_list() {
    let x = peer_extract(worker_rules(), &read_json("workers.json"));
    assert_eq!(normalized(&x, 1), expected("workers.expected.txt"));
    assert!(x.errors.is_empty());
}

#[test]
fn peer_a_repeated_item_keeps_the_rest() {
    let x = peer_extract(worker_rules(), &read_json("workers-repeated.json"));
    // The first w-3 (12 jobs, not busy) is kept, the second counted.
    assert_eq!(normalized(&x, 1), expected("workers.expected.txt"));
    assert_eq!(errors(&x), [err("worker", "duplicate_series")]);
}

#[test]
fn peer_a_single_match_and_an_optional_missing_key() {
    let mut rules = worker_rules();
    rules.insert(
        1,
        labels(
            each(
                values_rule("paused_worker", &[("jobs", "$.jobs")]),
                "$.workers[?@.state == 'PAUSED']",
            ),
            &[("environment", "staging")],
        ),
    );
    let mut missing = rule("pool_missing_key", "$.missing_key");
    missing.optional = true;
    rules.push(missing);
    let x = peer_extract(rules, &read_json("workers.json"));
    assert_eq!(normalized(&x, 1), expected("workers-paused.expected.txt"));
    assert!(x.errors.is_empty());
}

#[test]
fn peer_a_top_level_array_with_boolean_labels() {
    let rules = vec![labels(
        each(values_rule("node", &[("load", "$.load")]), "$[*]"),
        &[("name", "{$.host}"), ("primary", "{$.primary}")],
    )];
    let x = peer_extract(rules, &read_json("hosts.json"));
    assert_eq!(normalized(&x, 1), expected("hosts.expected.txt"));
}

#[test]
fn peer_missing_keys_with_and_without_optional() {
    let doc = read_json("workers.json");
    for optional in [true, false] {
        let mut top = rule("pool_missing", "$.missing_value");
        top.optional = optional;
        let mut object = each(
            values_rule("worker_missing", &[("missing_value", "$.missing_value")]),
            "$.workers[0]",
        );
        object.optional = optional;
        for r in [top, object] {
            let name = r.name.clone();
            let x = peer_extract(vec![r], &doc);
            assert_eq!(x.series, 0);
            if optional {
                assert!(x.errors.is_empty());
            } else {
                assert_eq!(errors(&x), [err(&name, "missing")]);
            }
        }
    }
}

// ----- the per-rule account (explain) -----

/// The account of `rules` over `doc` (read from its text, as a poll does).
fn explained(rules: Vec<MetricRule>, doc: &Value) -> crate::model::explain::Record {
    let t = target(rules);
    let ex = Extractor::new(&t);
    let text = doc.to_string();
    let limits = Limits {
        max_series: 10_000,
        max_bytes: 1 << 20,
    };
    let base = [KeyValue::new("target", "app")];
    let x = ex.extract_body(text.as_bytes(), limits, &base).unwrap();
    let families = std::sync::Arc::new(x.families);
    ex.explain(
        families,
        x.trace,
        &x.errors,
        Some(text.as_bytes()),
        base.len(),
    )
}

fn only_hint(r: &crate::model::explain::RuleRecord) -> (&'static str, Option<&str>, &str) {
    assert_eq!(r.failures.len(), 1, "{r:?}");
    let f = &r.failures[0];
    (f.reason, f.value.as_deref(), f.hint.as_str())
}

#[test]
fn explain_counts_nodes_and_series_per_rule_even_when_rules_share_an_instrument() {
    let doc = json!({"a": {"x": 1, "y": 2, "z": 3}, "b": [10, 20], "n": 7});
    let one = labels(each(rule("m", "$"), "$.a.*"), &[("k", "{@key}")]);
    let two = labels(each(rule("m", "$"), "$.b[*]"), &[("k", "{@key}")]);
    let three = rule("n", "$.n");
    let r = explained(vec![one, two, three], &doc);
    let [a, b, n] = &r.rules[..] else { panic!() };
    assert_eq!(
        (a.nodes, a.series_total, a.info.each.as_deref()),
        (3, 3, Some("$.a.*"))
    );
    assert_eq!((b.nodes, b.series_total), (2, 2));
    // The second rule's series are its own, not the first's (same family).
    let shown: Vec<String> = r
        .series(b)
        .map(|(n, l, v)| format!("{n}{}={v}", l[0].value))
        .collect();
    assert_eq!(shown, ["m0=10", "m1=20"]);
    // The target's labels are left out.
    assert!(r
        .series(a)
        .all(|(_, l, _)| l.len() == 1 && l[0].key.as_str() == "k"));
    assert_eq!((n.nodes, n.series_total, n.failures.len()), (1, 1, 0));
    assert_eq!(n.info.paths, [("n".to_string(), "$.n".to_string())]);
}

#[test]
fn explain_shows_a_few_series_and_counts_the_rest() {
    let items: Vec<u32> = (0..50).collect();
    let doc = json!({ "items": items });
    let r = explained(
        vec![labels(
            each(rule("m", "$"), "$.items[*]"),
            &[("i", "{@key}")],
        )],
        &doc,
    );
    let m = &r.rules[0];
    assert_eq!(r.series(m).count(), crate::model::explain::SHOWN_SERIES);
    assert_eq!((m.series_total, m.nodes), (50, 50));
}

#[test]
fn explain_hints_name_what_to_change() {
    let doc = json!({
        "status": "ready",
        "app": {"uptime": 1, "users": 2, "version": "1"},
        "flag": true,
        "mem": {"rss": 1},
        "list": [1, 2],
        "state": "weird",
        "checks": {"db": {"latency": 1}, "cache": {"latency": 2}},
        "dups": [{"id": "a"}, {"id": "a"}],
        "long": "y".repeat(200),
    });
    let mut dur = rule("dur", "$.status");
    dur.parse = Parse::Duration;
    let mut flag = rule("flag", "$.flag");
    flag.parse = Parse::Duration;
    let mut states = rule("state", "$.state");
    states.kind = RuleKind::StateSet(vec!["ok".into(), "down".into()]);
    let rules = vec![
        rule("ready", "$.status"),
        rule("uptime", "$.app.uptme"),
        dur,
        flag,
        rule("mem", "$.mem"),
        rule("list", "$.list"),
        map(rule("mapped", "$.status"), &[("up", 1.0)]),
        states,
        each(rule("lat", "$.latncy"), "$.checks.*"),
        labels(rule("lbl", "$.app.uptime"), &[("v", "{$.app.versio}")]),
        labels(rule("objlabel", "$.app.uptime"), &[("v", "{$.mem}")]),
        labels(each(rule("dup", "1"), "$.dups[*]"), &[("id", "{$.id}")]),
        rule("long", "$.long"),
        rule("deep", "$.list[5]"),
    ];
    let r = explained(rules, &doc);
    let by = |name: &str| {
        r.rules
            .iter()
            .find(|x| x.info.metric == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(
        only_hint(by("ready")),
        (
            "not_a_number",
            Some("\"ready\""),
            "\"ready\" is not a number: add map: {ready: 1, not_ready: 0} or use kind: stateset"
        )
    );
    let (reason, value, hint) = only_hint(by("uptime"));
    assert_eq!((reason, value), ("missing", None));
    assert!(
        hint.contains("$.app has no key \"uptme\"; nearest keys: uptime, users, version"),
        "{hint}"
    );
    assert!(hint.contains("optional: true"), "{hint}");
    assert_eq!(by("uptime").nodes, 0);
    let (_, _, hint) = only_hint(by("dur"));
    assert!(
        hint.starts_with("\"ready\" cannot be read by parse: duration"),
        "{hint}"
    );
    let (_, value, hint) = only_hint(by("flag"));
    assert_eq!(value, Some("true"));
    assert!(
        hint.contains("a boolean, which parse: duration does not read"),
        "{hint}"
    );
    let (_, value, hint) = only_hint(by("mem"));
    assert_eq!(value, Some("{…}"));
    assert!(
        hint.contains("use each: $.mem.*") && hint.contains("such as $.mem.rss"),
        "{hint}"
    );
    let (_, _, hint) = only_hint(by("list"));
    assert!(
        hint.contains("use each: $.list[*]") && hint.contains("$.list[0]"),
        "{hint}"
    );
    let (reason, _, hint) = only_hint(by("mapped"));
    assert_eq!(reason, "unmapped_value");
    assert_eq!(
        hint,
        "\"ready\" is not in map: add ready: N to map: (it has up)"
    );
    let (reason, _, hint) = only_hint(by("state"));
    assert_eq!(reason, "unmapped_value");
    assert!(hint.contains("not one of states: [ok, down]"), "{hint}");
    // Under `each`: the node's own keys, the path relative to it.
    let lat = by("lat");
    assert_eq!(lat.failures[0].count, 2);
    assert!(
        lat.failures[0]
            .hint
            .contains("$ has no key \"latncy\"; nearest keys: latency"),
        "{lat:?}"
    );
    let (_, _, hint) = only_hint(by("lbl"));
    assert!(
        hint.starts_with("label v: $.app.versio matched nothing"),
        "{hint}"
    );
    assert!(hint.contains("nearest keys: version"), "{hint}");
    let (reason, _, hint) = only_hint(by("objlabel"));
    assert_eq!(reason, "invalid_label");
    assert!(hint.starts_with("label v: $.mem is an object"), "{hint}");
    let (reason, value, hint) = only_hint(by("dup"));
    assert_eq!((reason, value), ("duplicate_series", Some("id=\"a\"")));
    assert!(hint.contains("{@key}"), "{hint}");
    let (_, value, _) = only_hint(by("long"));
    assert_eq!(value.unwrap().chars().count(), 82); // 80 and the quotes
    let (_, _, hint) = only_hint(by("deep"));
    assert!(
        hint.contains("$.list is an array of 2 items, no [5]"),
        "{hint}"
    );
}

#[test]
fn explain_hints_stay_small_on_a_huge_object() {
    // The keys of a large object are not kept, only the nearest few.
    let members: serde_json::Map<String, Value> =
        (0..20_000).map(|i| (format!("key{i}"), json!(i))).collect();
    let doc = json!({ "big": members });
    let r = explained(vec![rule("m", "$.big.key2x")], &doc);
    let (_, _, hint) = only_hint(&r.rules[0]);
    let near = hint.split("nearest keys: ").nth(1).unwrap();
    let near = &near[..near.find(')').unwrap()];
    assert_eq!(near, "key2, key20, key21", "{hint}");
}

#[test]
fn explain_reads_the_body_again_for_the_first_few_failing_rules_only() {
    let doc = json!({"status": 1, "uptime": 2});
    let rules: Vec<MetricRule> = (0..10)
        .map(|i| rule(&format!("m{i}"), &format!("$.statu{i}")))
        .collect();
    let r = explained(rules, &doc);
    let named: Vec<bool> = r
        .rules
        .iter()
        .map(|x| x.failures[0].hint.contains("nearest keys: status"))
        .collect();
    assert_eq!(
        named,
        [true, true, true, true, true, true, true, true, false, false]
    );
    assert!(r.rules[9].failures[0].hint.contains("optional: true"));
}

#[test]
fn percent_strings_and_numbers_become_ratios() {
    let doc = json!({
        "cpu": "12.5%", "mem": "99 %", "disk": 40, "load": "250%", "text": "12.5",
        "bad": "lots%", "flag": true, "plain": 7, "ratio": "0.5"
    });
    let with = |name: &str, p: Parse| {
        let mut r = rule(name, &format!("$.{name}"));
        r.parse = p;
        r
    };
    let x = run(
        vec![
            with("cpu", Parse::Percent),
            with("mem", Parse::Percent),
            with("disk", Parse::Percent),
            with("load", Parse::Percent),
            with("text", Parse::Percent),
            with("bad", Parse::Percent),
            with("flag", Parse::Percent),
        ],
        &doc,
    );
    assert_eq!(
        samples(&x),
        [
            "cpu{} 0.125",
            "mem{} 0.99",
            "disk{} 0.4",
            "load{} 2.5",
            "text{} 0.125",
        ]
    );
    assert_eq!(
        errors(&x),
        [err("bad", "not_a_number"), err("flag", "not_a_number")]
    );
}

#[test]
fn auto_reads_a_percent_string_as_a_ratio() {
    let doc = json!({"cpu": "12.5%", "plain": 7, "ratio": "0.5", "bad": "lots%", "mapped": "50%"});
    let x = run(
        vec![
            rule("cpu", "$.cpu"),
            rule("plain", "$.plain"),
            rule("ratio", "$.ratio"),
            rule("bad", "$.bad"),
            map(rule("mapped", "$.mapped"), &[("50%", 3.0)]),
        ],
        &doc,
    );
    assert_eq!(
        samples(&x),
        ["cpu{} 0.125", "plain{} 7", "ratio{} 0.5", "mapped{} 3"]
    );
    assert_eq!(errors(&x), [err("bad", "not_a_number")]);
}

// ----- list each: levels -----

/// A Spring Boot-like composite: groups of components.
fn composite() -> Value {
    json!({
        "status": "DOWN",
        "components": {
            "db": {"status": "DOWN", "components": {
                "orders": {"status": "UP"},
                "reports": {"status": "DOWN"}
            }},
            "ping": {"status": "UP"},
            "queues": {"status": "UP", "components": {
                "in": {"status": "UP", "depth": 3}
            }}
        }
    })
}

fn levels(mut r: MetricRule, each: &[&str]) -> MetricRule {
    r.each = Some(path(each[0]));
    r.each_inner = each[1..].iter().map(|e| path(e)).collect();
    r
}

#[test]
fn list_each_labels_with_the_outer_levels_keys_and_fields() {
    let mut r = labels(
        levels(
            rule("component.health", "$.status"),
            &["$.components.*", "$.components.*"],
        ),
        &[
            ("group", "{@key:1}"),
            ("group_status", "{@1$.status}"),
            ("component", "{@key}"),
            ("same", "{@key:0}"),
        ],
    );
    r.kind = RuleKind::StateSet(vec!["UP".into(), "DOWN".into()]);
    let x = run(vec![r], &composite());
    let s = samples(&x);
    assert_eq!(s.len(), 6, "{s:#?}");
    assert_eq!(
        s[..2],
        [
            "component.health{group=\"db\",group_status=\"DOWN\",component=\"orders\",same=\"orders\",state=\"UP\"} 1",
            "component.health{group=\"db\",group_status=\"DOWN\",component=\"orders\",same=\"orders\",state=\"DOWN\"} 0",
        ]
    );
    assert_eq!(
        s[5],
        "component.health{group=\"queues\",group_status=\"UP\",component=\"in\",same=\"in\",state=\"DOWN\"} 0"
    );
    // "ping" has no inner components: no series, no error.
    assert!(x.errors.is_empty(), "{:?}", x.errors);
    // First level: 3 groups; second: 3 components.
    assert_eq!(x.trace.levels, [3]);
}

#[test]
fn list_each_of_three_levels_arrays_and_queries() {
    let doc = json!({"regions": [
        {"name": "eu", "zones": {"a": {"hosts": [{"id": "h1", "load": 1}, {"id": "h2", "load": 2}]},
                                  "b": {"hosts": []}}},
        {"name": "us", "zones": {"c": {"hosts": [{"id": "h3", "load": 3, "skip": true}]}}}
    ]});
    let r = labels(
        levels(
            rule("host.load", "$.load"),
            &["$.regions[*]", "$.zones.*", "$.hosts[?@.load > 0]"],
        ),
        &[
            ("region", "{@2$.name}"),
            ("region_index", "{@key:2}"),
            ("zone", "{@key:1}"),
            ("host", "{$.id}"),
            ("at", "{@key}"),
        ],
    );
    let x = run(vec![r], &doc);
    assert_eq!(
        samples(&x),
        [
            "host.load{region=\"eu\",region_index=\"0\",zone=\"a\",host=\"h1\",at=\"0\"} 1",
            "host.load{region=\"eu\",region_index=\"0\",zone=\"a\",host=\"h2\",at=\"1\"} 2",
            "host.load{region=\"us\",region_index=\"1\",zone=\"c\",host=\"h3\",at=\"0\"} 3",
        ]
    );
    assert!(x.errors.is_empty());
    // 3 zones, then 3 hosts (the filter query's matches).
    assert_eq!(x.trace.levels, [3, 3]);
}

#[test]
fn list_each_errors_name_the_innermost_node() {
    let r = labels(
        levels(rule("x", "$.depth"), &["$.components.*", "$.components.*"]),
        &[("g", "{@key:1}"), ("c", "{@key}")],
    );
    let x = run(vec![r], &composite());
    assert_eq!(samples(&x), ["x{g=\"queues\",c=\"in\"} 3"]);
    assert_eq!(errors(&x), [err("x", "missing"), err("x", "missing")]);
    assert_eq!(x.errors[0].site.node, Some(NodeStep::Name("orders".into())));
}

// ----- aggregations -----

fn agg(mut r: MetricRule, a: Aggregate) -> MetricRule {
    r.aggregate = Some(a);
    r
}

#[test]
fn count_counts_each_nodes_or_path_matches_and_zero_is_served() {
    let doc = json!({"checks": [{"s": "UP"}, {"s": "DOWN"}, {"s": "UP"}], "none": []});
    // Without path: the each nodes.
    let r = agg(each(rule("n", "1"), "$.checks[*]"), Aggregate::Count);
    assert_eq!(samples(&run(vec![r], &doc)), ["n{} 3"]);
    // With a path: every node it matches (no each).
    let r = agg(rule("n", "$.checks[*].s"), Aggregate::Count);
    assert_eq!(samples(&run(vec![r], &doc)), ["n{} 3"]);
    // Over nothing: 0, not absent; a missing container is no error.
    for container in ["$.none[*]", "$.absent[*]"] {
        let r = labels(
            agg(each(rule("n", "1"), container), Aggregate::Count),
            &[("app", "x")],
        );
        let x = run(vec![r], &doc);
        assert_eq!(samples(&x), ["n{app=\"x\"} 0"], "{container}");
        assert!(x.errors.is_empty());
        assert_eq!(x.trace.aggregated, [Some(0)]);
    }
}

#[test]
fn sum_min_max_fold_values_and_give_no_series_over_nothing() {
    let doc = json!({"idx": {"a": {"u": 3}, "b": {"u": "5"}, "c": {"u": null}, "d": {"u": "x"}, "e": {}}});
    let mk = |a| agg(each(rule("u", "$.u"), "$.idx.*"), a);
    let x = run(vec![mk(Aggregate::Sum)], &doc);
    assert_eq!(samples(&x), ["u{} 8"]);
    // "x" is not a number; a node without the path is no error.
    assert_eq!(errors(&x), [err("u", "not_a_number")]);
    assert_eq!(x.trace.aggregated, [Some(2)]);
    assert_eq!(samples(&run(vec![mk(Aggregate::Min)], &doc)), ["u{} 3"]);
    assert_eq!(samples(&run(vec![mk(Aggregate::Max)], &doc)), ["u{} 5"]);
    let mut scaled = mk(Aggregate::Max);
    scaled.scale = Some(0.5);
    assert_eq!(samples(&run(vec![scaled], &doc)), ["u{} 2.5"]);
    for a in [Aggregate::Sum, Aggregate::Min, Aggregate::Max] {
        let x = run(vec![mk(a)], &json!({"idx": {}}));
        assert!(samples(&x).is_empty() && x.errors.is_empty());
    }
}

#[test]
fn count_by_counts_per_value_and_serves_every_listed_state() {
    let doc = json!({"checks": [{"s": "UP"}, {"s": "DOWN"}, {"s": "UP"}, {"s": "MAINT"}]});
    let by = |states: Vec<String>| {
        labels(
            agg(
                each(rule("checks", "1"), "$.checks[*]"),
                Aggregate::CountBy { label: 1, states },
            ),
            &[("app", "x"), ("state", "{$.s}")],
        )
    };
    assert_eq!(
        samples(&run(vec![by(vec![])], &doc)),
        [
            "checks{app=\"x\",state=\"UP\"} 2",
            "checks{app=\"x\",state=\"DOWN\"} 1",
            "checks{app=\"x\",state=\"MAINT\"} 1"
        ]
    );
    let states = vec!["UP".to_string(), "DOWN".into(), "UNKNOWN".into()];
    let x = run(vec![by(states.clone())], &doc);
    assert_eq!(
        samples(&x),
        [
            "checks{app=\"x\",state=\"UP\"} 2",
            "checks{app=\"x\",state=\"DOWN\"} 1",
            "checks{app=\"x\",state=\"UNKNOWN\"} 0",
            "checks{app=\"x\",state=\"other\"} 1"
        ]
    );
    assert!(x.errors.is_empty());
    // Nothing to count: every listed state at 0; without states, nothing.
    let x = run(vec![by(states)], &json!({"checks": []}));
    assert_eq!(samples(&x).len(), 3);
    assert!(samples(&x).iter().all(|s| s.ends_with(" 0")));
    assert!(samples(&run(vec![by(vec![])], &json!({"checks": []}))).is_empty());
    // A node without the label's path: missing, not counted.
    let x = run(vec![by(vec![])], &json!({"checks": [{"s": "UP"}, {}]}));
    assert_eq!(samples(&x), ["checks{app=\"x\",state=\"UP\"} 1"]);
    assert_eq!(errors(&x), [err("checks", "missing")]);
}

#[test]
fn count_by_under_a_list_each_reads_the_outer_key() {
    let r = labels(
        agg(
            levels(
                rule("components", "1"),
                &["$.components.*", "$.components.*"],
            ),
            Aggregate::CountBy {
                label: 0,
                states: vec![],
            },
        ),
        &[("group", "{@key:1}")],
    );
    let x = run(vec![r], &composite());
    assert_eq!(
        samples(&x),
        [
            "components{group=\"db\"} 2",
            "components{group=\"queues\"} 1"
        ]
    );
}

#[test]
fn age_is_now_minus_the_timestamp_from_an_injected_clock() {
    let doc = json!({"checks": [
        {"time": "2024-06-10T14:52:07Z"}, {"time": 1718030000}, {"time": "2024-06-10T15:01:44Z"}
    ]});
    let now = 1_718_031_704.0; // 2024-06-10T15:01:44Z
    let mut plain = rule("last", "$.checks[0].time");
    plain.parse = Parse::Age;
    let mut oldest = agg(
        each(rule("oldest", "$.time"), "$.checks[*]"),
        Aggregate::Max,
    );
    oldest.parse = Parse::Age;
    let mut newest = agg(
        each(rule("newest", "$.time"), "$.checks[*]"),
        Aggregate::Min,
    );
    newest.parse = Parse::Age;
    let t = target(vec![plain, oldest, newest]);
    let x = Extractor::new(&t)
        .with_clock(move || now)
        .extract(&doc, 100, &[]);
    assert_eq!(samples(&x), ["last{} 577", "oldest{} 1704", "newest{} 0"]);
    // Another time, another age: nothing read from the system clock.
    let x = Extractor::new(&t)
        .with_clock(move || now + 60.0)
        .extract(&doc, 100, &[]);
    assert_eq!(samples(&x)[0], "last{} 637");
}

/// What a poll keeps until the next one holds no spare room: a plain rule's
/// family keeps one series, an `each` rule's exactly its nodes' series, a
/// rule that found nothing no allocation (issue 28: a first push reserved
/// four, 96 bytes a rule at every target).
#[test]
fn series_vectors_hold_what_the_rules_made() {
    let doc = json!({"a": 1, "b": 2, "items": {"x": {"v": 1}, "y": {"v": 2}, "z": {"v": 3}}});
    let x = run(
        vec![
            rule("app.a", "$.a"),
            rule("app.b", "$.b"),
            labels(
                each(rule("app.item", "$.v"), "$.items.*"),
                &[("id", "{@key}")],
            ),
            rule("app.gone", "$.nowhere"),
        ],
        &doc,
    );
    let held: Vec<(usize, usize)> = x
        .families
        .iter()
        .map(|f| (f.series.len(), f.series.capacity()))
        .collect();
    assert_eq!(held, [(1, 1), (1, 1), (3, 3), (0, 0)]);
}

/// Many plain rules of one name (one family, told apart by labels) grow
/// its vector as pushes do, not by one at every rule.
#[test]
fn rules_of_one_name_grow_their_family_as_pushes_do() {
    let doc = json!({"a": 1});
    let rules = (0..20)
        .map(|i| labels(rule("app.temp", "$.a"), &[("n", &format!("{i}"))]))
        .collect();
    let x = run(rules, &doc);
    assert_eq!(x.families.len(), 1);
    let series = &x.families[0].series;
    assert_eq!(series.len(), 20);
    // Doubling from one: 1, 4, 8, 16, 32.
    assert_eq!(series.capacity(), 32);
}
