//! Tests of the config loader: every error names file, line, column and key.

use std::path::Path;

use super::load::{expand_env, parse_cpu, parse_size, parse_template};
use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "POD_NAME" => Some("checkout-7d9f".into()),
        "EMPTY" => Some(String::new()),
        "KEY" => Some("s3cret".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    parse_str(text, Path::new("exporter.yaml"), &env)
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

const GOOD: &str = r#"
server:
  listen: 127.0.0.1:9479
global:
  interval: 10s
  timeout: 2s
  labels: {cluster: eu1}
resource:
  service.name: checkout
  k8s.pod.name: ${POD_NAME}
limits:
  max_series_per_target: 100
  max_body_bytes: 1MiB
host:
  collectors: [cpu, memory]
  processes:
    - name: api
      cmdline: "uvicorn .*main:app"
  app_container:
    name: app
    memory_limit: 512Mi
    cpu_limit: 500m
targets:
  - name: checkout
    url: http://127.0.0.1:8080/health
    headers: {X-Api-Key: "${KEY}"}
    accept_status: [200, 503]
    labels: {team: payments}
    metrics:
      - name: app.dependency.latency
        unit: s
        each: $.checks.*
        path: $.latency_ms
        scale: 0.001
        labels: {dependency: "{@key}", region: "eu-{$.region}"}
      - name: app.dependency.health
        kind: stateset
        states: [healthy, degraded, unhealthy]
        each: $.checks.*
        path: $.status
        labels: {dependency: "{@key}"}
      - name: app.version
        kind: info
        labels: {version: "{$.version}"}
      - name: app.queue
        values: {count: $.queue.count, active: 1}
"#;

#[test]
fn good_config_loads() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:9479");
    assert_eq!(c.global.interval.as_secs(), 10);
    assert_eq!(c.resource["k8s.pod.name"], "checkout-7d9f");
    assert_eq!(c.limits.max_body_bytes, 1024 * 1024);
    assert_eq!(
        c.host.collectors,
        vec![CollectorName::Cpu, CollectorName::Memory]
    );
    let app = c.host.app_container.as_ref().unwrap();
    assert_eq!(app.memory_limit, Some(512.0 * 1024.0 * 1024.0));
    assert_eq!(app.cpu_limit, Some(0.5));
    let t = &c.targets[0];
    assert_eq!(
        t.headers,
        vec![("X-Api-Key".to_string(), "s3cret".to_string())]
    );
    assert_eq!(t.timeout.as_secs(), 2);
    assert_eq!(t.accept_status, vec![200, 503]);
    assert_eq!(t.metrics.len(), 4);
    assert_eq!(
        t.metrics[1].kind,
        RuleKind::StateSet(vec![
            "healthy".into(),
            "degraded".into(),
            "unhealthy".into()
        ])
    );
    assert_eq!(t.metrics[2].values[0].name, "app.version");
    let names: Vec<_> = t.metrics[3]
        .values
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["app.queue.count", "app.queue.active"]);
    assert!(matches!(t.metrics[3].values[1].source, ValueSource::Const(v) if v == 1.0));
}

#[test]
fn empty_file_gives_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:9479");
    assert_eq!(c.server.metrics_path, "/metrics");
    assert_eq!(c.global.interval.as_secs(), 15);
    assert_eq!(c.global.timeout.as_secs(), 5);
    assert_eq!(c.limits.max_series_per_target, 2000);
    assert_eq!(c.limits.max_body_bytes, 4 * 1024 * 1024);
    assert!(c.host.enabled);
    assert_eq!(c.host.collectors.len(), 7);
    assert!(c.targets.is_empty());
}

#[test]
fn unknown_key_has_position_and_hint() {
    let e = errors("global:\n  intreval: 10s\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "exporter.yaml:2:3: global.intreval: unknown key (did you mean \"interval\"?"
        ),
        "{}",
        e[0]
    );
}

#[test]
fn every_error_is_reported() {
    let e = errors(
        "global:\n  interval: 10x\n  timeout: 1s\ntargets:\n  - name: a\n    url: ftp://x\n    metrics:\n      - name: 9bad\n        path: $.[\n",
    );
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e[0].starts_with("exporter.yaml:2:13: global.interval: \"10x\" is not a duration"),
        "{}",
        e[0]
    );
    assert!(e[1].contains("targets[0].url"), "{}", e[1]);
    assert!(e[2].contains("targets[0].metrics[0].name"), "{}", e[2]);
    assert!(
        e[3].contains("targets[0].metrics[0].path: invalid JSONPath"),
        "{}",
        e[3]
    );
}

#[test]
fn timeout_longer_than_interval() {
    let e = errors("global:\n  interval: 5s\n  timeout: 10s\n");
    assert!(
        e[0].contains("global.timeout: 10s is longer than global.interval 5s"),
        "{}",
        e[0]
    );
    let e = errors("targets:\n  - name: a\n    url: http://x/\n    interval: 1s\n    timeout: 2s\n    metrics: [{name: a, path: $.a}]\n");
    assert!(e[0].contains("targets[0].timeout"), "{}", e[0]);
    // A short interval alone pulls the default timeout down with it.
    let c = parse("global:\n  interval: 2s\n").unwrap();
    assert_eq!(c.global.timeout.as_secs(), 2);
}

#[test]
fn missing_env_var_is_named() {
    let e = errors("resource:\n  k8s.node.name: ${NODE_NAME}\n");
    assert!(
        e[0].starts_with(
            "exporter.yaml:2:18: resource.k8s.node.name: environment variable NODE_NAME is not set"
        ),
        "{}",
        e[0]
    );
}

#[test]
fn env_expansion_rules() {
    assert_eq!(
        expand_env("a-${POD_NAME}-b", &env).unwrap(),
        "a-checkout-7d9f-b"
    );
    assert_eq!(expand_env("${NOPE:-dflt}", &env).unwrap(), "dflt");
    assert_eq!(expand_env("${NOPE:-}", &env).unwrap(), "");
    assert_eq!(expand_env("${EMPTY:-x}", &env).unwrap(), "x");
    assert_eq!(expand_env("$$literal $x", &env).unwrap(), "$literal $x");
    assert!(expand_env("${NOPE}", &env)
        .unwrap_err()
        .to_string()
        .contains("NOPE"));
    assert!(expand_env("${UNCLOSED", &env).is_err());
    assert!(expand_env("${bad name}", &env).is_err());
}

#[test]
fn duplicate_names_are_errors() {
    let e = errors("targets:\n  - {name: a, url: http://x/, metrics: [{name: m, path: $.a}, {name: m, path: $.b}]}\n  - {name: a, url: http://y/, metrics: [{name: n, path: $.a}]}\n");
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e
        .iter()
        .any(|m| m.contains("instrument \"m\" is defined twice")));
    assert!(e
        .iter()
        .any(|m| m.contains("target name \"a\" is used twice")));
}

#[test]
fn conflicting_instruments_across_targets() {
    let e = errors("targets:\n  - {name: a, url: http://x/, metrics: [{name: m, path: $.a, unit: s}]}\n  - {name: b, url: http://y/, metrics: [{name: m, path: $.a, unit: By}]}\n");
    assert!(e[0].contains("also defined by target \"a\""), "{}", e[0]);
}

#[test]
fn rule_checks() {
    let cases = [
        ("{name: m, kind: stateset, path: $.s}", "states"),
        (
            "{name: m, kind: stateset, states: [ok, other], path: $.s}",
            "\"other\" is the state remora serves",
        ),
        (
            "{name: m, path: $.a, values: {x: $.b}}",
            "path and values both set",
        ),
        ("{name: m}", "missing (expected path"),
        (
            "{name: m, path: $.a, labels: {d: \"{@key}\"}}",
            "{@key} needs each",
        ),
        ("{name: m, path: $.a, labels: {target: x}}", "set by remora"),
        (
            "{name: m, path: $.a, labels: {\"bad-name\": x}}",
            "not a valid label name",
        ),
        ("{name: m, path: $.a, kind: histogram}", "not a kind"),
        ("{name: m, path: $.a, parse: weird}", "not a parser"),
        ("{name: m, path: $.a, map: {up: yes}}", "not a number"),
        (
            "{name: m, path: $.a, labels: {x: \"{$.[}\"}}",
            "invalid JSONPath",
        ),
        (
            "{name: remora.up, path: $.a}",
            "not a valid instrument name",
        ),
        ("{name: m, path: $.a, optional: maybe}", "not a boolean"),
    ];
    for (rule, want) in cases {
        let text =
            format!("targets:\n  - name: t\n    url: http://127.0.0.1/\n    metrics: [{rule}]\n");
        let e = errors(&text);
        assert!(
            e.iter().any(|m| m.contains(want)),
            "{rule}: want {want:?} in {e:#?}"
        );
        assert!(e[0].starts_with("exporter.yaml:4:"), "{}", e[0]);
    }
}

#[test]
fn info_without_path_is_one() {
    let c = parse("targets:\n  - {name: t, url: http://x/, metrics: [{name: v, kind: info, labels: {version: \"{$.v}\"}}]}\n").unwrap();
    assert!(matches!(c.targets[0].metrics[0].values[0].source, ValueSource::Const(v) if v == 1.0));
}

#[test]
fn prometheus_targets_take_no_rules() {
    assert!(parse("targets:\n  - {name: t, url: http://x/metrics, format: prometheus}\n").is_ok());
    let e = errors("targets:\n  - {name: t, url: http://x/metrics, format: prometheus, metrics: [{name: a, path: $.a}]}\n");
    assert!(e[0].contains("served as they are"), "{}", e[0]);
}

#[test]
fn syntax_error_is_positioned() {
    let e = errors("targets: [\n  {name: a\n");
    assert!(e[0].starts_with("exporter.yaml:"), "{}", e[0]);
    assert!(e[0].contains("invalid YAML"), "{}", e[0]);
}

#[test]
fn wrong_types() {
    let e = errors("global: [1, 2]\ntargets: {name: a}\n");
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e[0].contains("global: got a list (expected a mapping)"));
    assert!(e[1].contains("targets: got a mapping (expected a list)"));
}

#[test]
fn templates() {
    let t = parse_template("eu-{$.region}-{@key}").unwrap();
    assert_eq!(t.parts.len(), 4);
    assert!(matches!(t.parts[0], TemplatePart::Literal(ref s) if s == "eu-"));
    assert!(matches!(t.parts[1], TemplatePart::Path(_)));
    assert!(matches!(t.parts[3], TemplatePart::Key));
    let t = parse_template("{{literal}}").unwrap();
    assert!(matches!(&t.parts[..], [TemplatePart::Literal(s)] if s == "{literal}"));
    assert!(parse_template("{@.name}").is_ok());
    assert!(parse_template("{$.items[?@.a == 1].b}").is_ok());
    assert!(parse_template("{$.a").is_err());
    assert!(parse_template("a}").is_err());
}

#[test]
fn sizes_and_cpu() {
    assert_eq!(parse_size("4MiB"), Some(4.0 * 1024.0 * 1024.0));
    assert_eq!(parse_size("1.5GB"), Some(1.5e9));
    assert_eq!(parse_size("512Mi"), Some(512.0 * 1024.0 * 1024.0));
    assert_eq!(parse_size("1024"), Some(1024.0));
    assert_eq!(parse_size("lots"), None);
    assert_eq!(parse_size("-1"), None);
    assert_eq!(parse_cpu("500m"), Some(0.5));
    assert_eq!(parse_cpu("2"), Some(2.0));
    assert_eq!(parse_cpu("x"), None);
}

#[test]
fn cpu_divisor_from_downward_api() {
    let c = parse("host:\n  app_container: {name: app, cpu_limit: \"250\", cpu_divisor: 1m, memory_limit: \"${EMPTY}\"}\n").unwrap();
    let app = c.host.app_container.unwrap();
    assert_eq!(app.cpu_limit, Some(0.25));
    assert_eq!(app.memory_limit, None);
}

#[test]
fn repository_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("exporter.yaml");
    if path.exists() {
        let c = load_file(&path, &|_| None);
        assert!(c.is_ok(), "{}", c.unwrap_err());
    }
}

#[test]
fn le_and_quantile_are_reserved_labels() {
    let e = errors("global:\n  labels: {le: x}\n");
    assert!(e[0].contains("label \"le\" is reserved"), "{e:?}");
    let e = errors(
        "targets:\n  - name: a\n    url: http://127.0.0.1:1/\n    format: prometheus\n    labels: {quantile: x}\n",
    );
    assert!(e[0].contains("label \"quantile\" is reserved"), "{e:?}");
}

#[test]
fn rule_name_positions_are_kept() {
    let c = parse("targets:\n  - name: a\n    url: http://127.0.0.1:1/\n    metrics:\n      - name: app.a\n        path: $.a\n      - {name: app.b, path: $.b}\n").unwrap();
    let at = |t, r| {
        c.rule_names_at
            .get(&(t, r))
            .map(|l| (l.mark.line, l.mark.column, l.key.clone()))
    };
    assert_eq!(at(0, 0), Some((5, 15, "targets[0].metrics[0].name".into())));
    assert_eq!(at(0, 1), Some((7, 16, "targets[0].metrics[1].name".into())));
}

/// The typed env and template errors read word for word as the messages
/// they replaced (a user reads them after `FILE:LINE:COLUMN: key:`).
#[test]
fn env_and_template_messages_are_unchanged() {
    let env_msg = |s: &str| expand_env(s, &env).unwrap_err().to_string();
    assert_eq!(env_msg("a ${X"), r#"unclosed '${' in "a ${X""#);
    assert_eq!(
        env_msg("${a-b}"),
        r#"invalid variable name "a-b" in ${a-b}"#
    );
    assert_eq!(
        env_msg("${NOPE}"),
        "environment variable NOPE is not set (write ${NOPE:-default} to give a default)"
    );
    let template_msg = |s: &str| parse_template(s).unwrap_err().to_string();
    assert_eq!(
        template_msg("x{$.a"),
        r#"unclosed '{' in template "x{$.a" (expected {JSONPath} or {@key}; write {{ for a literal brace)"#
    );
    assert_eq!(
        template_msg("a}"),
        r#"unmatched '}' in template "a}" (write }} for a literal brace)"#
    );
    let bad_path = template_msg("{$.[}");
    assert!(
        bad_path.starts_with(r#"invalid JSONPath "$.[" in template: "#)
            && bad_path.ends_with(" (expected {$.field}, {@.field} or {@key})"),
        "{bad_path}"
    );
}

#[test]
fn otlp_section_is_read_with_env_and_checked_with_positions() {
    let c = parse(
        "otlp:\n  endpoint: http://collector:4318/\n  interval: 30s\n  timeout: 5s\n  headers: {Authorization: \"Bearer ${KEY}\"}\n  compression: gzip\n  tls: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem}\n",
    )
    .unwrap();
    let o = c.otlp.unwrap();
    assert_eq!(o.endpoint.as_deref(), Some("http://collector:4318/"));
    assert_eq!(o.interval, Some(std::time::Duration::from_secs(30)));
    assert_eq!(o.headers["Authorization"], "Bearer s3cret");
    assert_eq!(o.gzip, Some(true));
    assert!(o.tls.cert_file.is_some());
    assert!(parse("targets: []\n").unwrap().otlp.is_none());
    assert!(
        parse("otlp: {}\n").unwrap().otlp.is_some(),
        "all from OTEL_* variables"
    );

    let e = errors(
        "otlp:\n  endpoint: collector:4318\n  interval: 5s\n  timeout: 10s\n  compression: zstd\n  headrs: {}\n  headers: {X: \"${NOPE}\"}\n  tls: {cert_file: /c.pem}\n",
    );
    let has = |needle: &str| e.iter().any(|l| l.contains(needle));
    assert!(
        has("exporter.yaml:2:13: otlp.endpoint: \"collector:4318\" is not an http(s) URL"),
        "{e:?}"
    );
    assert!(
        has("exporter.yaml:4:12: otlp.timeout: 10s is longer than otlp.interval 5s"),
        "{e:?}"
    );
    assert!(
        has("exporter.yaml:5:16: otlp.compression: \"zstd\""),
        "{e:?}"
    );
    assert!(
        has("otlp.headrs: unknown key (did you mean \"headers\"?"),
        "{e:?}"
    );
    assert!(has("NOPE"), "{e:?}");
    assert!(has("otlp.tls: cert_file and key_file go together"), "{e:?}");
}

#[test]
fn parse_percent_is_a_parser() {
    let c = parse("targets:\n  - {name: t, url: http://x/, metrics: [{name: cpu, unit: \"1\", path: $.cpu, parse: percent}]}\n").unwrap();
    assert_eq!(c.targets[0].metrics[0].parse, Parse::Percent);
    let e = errors("targets:\n  - {name: t, url: http://x/, metrics: [{name: cpu, path: $.cpu, parse: percents}]}\n");
    assert!(
        e[0].contains("expected auto, duration, timestamp, age, bytes or percent"),
        "{}",
        e[0]
    );
}

#[test]
fn level_templates() {
    let t = parse_template("{@key:1}/{@key:0}/{@2$.name}/{@0$.x}/{@key}").unwrap();
    assert!(matches!(t.parts[0], TemplatePart::OuterKey(1)));
    assert!(matches!(t.parts[2], TemplatePart::Key));
    assert!(matches!(t.parts[4], TemplatePart::OuterPath(2, _)));
    assert!(matches!(t.parts[6], TemplatePart::Path(_)));
    assert!(matches!(t.parts[8], TemplatePart::Key));
    for bad in [
        "{@key:}",
        "{@key:x}",
        "{@key:-1}",
        "{@1}",
        "{@1.name}",
        "{@1x$.a}",
    ] {
        let e = parse_template(bad).unwrap_err().to_string();
        assert!(e.contains("malformed level reference"), "{bad}: {e}");
    }
    assert!(parse_template("{@1$.[}")
        .unwrap_err()
        .to_string()
        .contains("invalid JSONPath"));
}

/// A rule's problem, as `(line:col, message)` of the first error.
fn rule_error(rule: &str) -> String {
    let text = format!("targets:\n  - name: t\n    url: http://127.0.0.1/\n    metrics:\n{rule}");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e[0].clone()
}

#[test]
fn list_each_is_parsed_and_checked() {
    let c = parse("targets:\n  - name: t\n    url: http://127.0.0.1/\n    metrics:\n      - name: m\n        kind: stateset\n        states: [UP, DOWN]\n        each: ['$.components.*', '@.components.*']\n        path: $.status\n        labels: {group: \"{@key:1}\", component: \"{@key}\", g: \"{@1$.status}\"}\n").unwrap();
    let m = &c.targets[0].metrics[0];
    assert_eq!(m.each.as_ref().unwrap().to_string(), "$.components.*");
    assert_eq!(m.each_inner.len(), 1);
    // A one-level list is the string form.
    let c = parse("targets:\n  - {name: t, url: http://x/, metrics: [{name: m, each: ['$.a.*'], path: $.v, labels: {k: '{@key:0}'}}]}\n").unwrap();
    assert!(c.targets[0].metrics[0].each_inner.is_empty());

    let e = rule_error("      - name: m\n        each: []\n        path: $.v\n");
    assert!(
        e.starts_with("exporter.yaml:6:15: targets[0].metrics[0].each: is an empty list"),
        "{e}"
    );
    let e = rule_error("      - name: m\n        each: ['$.a.*', '$.[']\n        path: $.v\n");
    assert!(
        e.starts_with("exporter.yaml:6:25: targets[0].metrics[0].each[1]: invalid JSONPath"),
        "{e}"
    );
    let e = rule_error("      - name: m\n        each: ['$.a.*', '$.b.*']\n        path: $.v\n        labels:\n          g: '{@key:2}'\n");
    assert!(e.starts_with("exporter.yaml:9:11: targets[0].metrics[0].labels.g: \"{@key:2}\" reads 2 level(s) out, beyond the 2 level(s)"), "{e}");
    let e = rule_error("      - name: m\n        each: '$.a.*'\n        path: $.v\n        labels:\n          g: '{@1$.name}'\n");
    assert!(e.starts_with("exporter.yaml:9:11: targets[0].metrics[0].labels.g: \"{@1$.name}\" reads 1 level(s) out: that needs each: as a list"), "{e}");
    let e = rule_error(
        "      - name: m\n        path: $.v\n        labels:\n          g: '{@key:1}'\n",
    );
    assert!(
        e.contains("labels.g: \"{@key:1}\" reads 1 level(s) out: that needs each: as a list"),
        "{e}"
    );
    let e = rule_error("      - name: m\n        each: ['$.a.*', '$.b.*']\n        path: $.v\n        labels:\n          g: '{@key:one}'\n");
    assert!(e.starts_with("exporter.yaml:9:11: targets[0].metrics[0].labels.g: malformed level reference {@key:one}"), "{e}");
}

#[test]
fn aggregations_are_parsed() {
    let c = parse("targets:\n  - name: t\n    url: http://127.0.0.1/\n    metrics:\n      - {name: a, aggregate: count, each: '$.checks[*]'}\n      - {name: b, aggregate: sum, path: '$.idx.*.u'}\n      - {name: c, count_by: state, each: '$.checks[*]', states: [UP, DOWN], labels: {app: x, state: '{$.status}'}}\n      - {name: d, path: $.t, parse: age, unit: s}\n").unwrap();
    let m = &c.targets[0].metrics;
    assert_eq!(m[0].aggregate, Some(Aggregate::Count));
    assert!(matches!(m[0].values[0].source, ValueSource::Const(_)));
    assert_eq!(m[1].aggregate, Some(Aggregate::Sum));
    assert_eq!(
        m[2].aggregate,
        Some(Aggregate::CountBy {
            label: 1,
            states: vec!["UP".into(), "DOWN".into()]
        })
    );
    assert_eq!(m[3].parse, Parse::Age);
}

#[test]
fn aggregations_are_linted_at_load() {
    let at = |rule: &str| rule_error(&format!("      - {rule}\n"));
    let cases = [
        (
            "{name: m, aggregate: avg, path: $.a}",
            "exporter.yaml:5:",
            "aggregate: \"avg\" is not an aggregation",
        ),
        (
            "{name: m, aggregate: count}",
            "exporter.yaml:5:",
            "aggregate: count needs each: or path:",
        ),
        (
            "{name: m, aggregate: sum, each: '$.a[*]'}",
            "exporter.yaml:5:",
            "path: missing",
        ),
        (
            "{name: m, aggregate: sum, path: '1'}",
            "exporter.yaml:5:",
            "path: an aggregation reads a JSONPath",
        ),
        (
            "{name: m, aggregate: sum, values: {a: $.a}}",
            "exporter.yaml:5:",
            "values: an aggregation reads one path",
        ),
        (
            "{name: m, aggregate: max, path: $.a, kind: stateset, states: [a]}",
            "exporter.yaml:5:",
            "aggregate: an aggregation is a number",
        ),
        (
            "{name: m, aggregate: sum, each: '$.a.*', path: $.v, labels: {k: '{@key}'}}",
            "exporter.yaml:5:",
            "labels.k: \"{@key}\" reads the node: an aggregation makes one series",
        ),
        (
            "{name: m, aggregate: count, each: '$.a.*', scale: 2}",
            "exporter.yaml:5:",
            "scale: a count reads no value",
        ),
        (
            "{name: m, count_by: nope, each: '$.a.*', labels: {s: '{$.s}'}}",
            "exporter.yaml:5:",
            "count_by: \"nope\" is not one of the rule's labels (expected one of [s]",
        ),
        (
            "{name: m, count_by: s, labels: {s: '{$.s}'}}",
            "exporter.yaml:5:",
            "count_by: needs each:",
        ),
        (
            "{name: m, count_by: s, each: '$.a.*', path: $.x, labels: {s: '{$.s}'}}",
            "exporter.yaml:5:",
            "path: count_by: counts the each nodes",
        ),
        (
            "{name: m, count_by: s, aggregate: sum, each: '$.a.*', labels: {s: '{$.s}'}}",
            "exporter.yaml:5:",
            "aggregate: count_by: counts nodes per value: it takes no aggregate: sum",
        ),
        (
            "{name: m, count_by: s, each: '$.a.*', labels: {s: '{$.s}', k: '{@key}'}}",
            "exporter.yaml:5:",
            "labels.k: \"{@key}\" reads the node: only the count_by label",
        ),
        (
            "{name: m, count_by: s, each: '$.a.*', states: [ok, other], labels: {s: '{$.s}'}}",
            "exporter.yaml:5:",
            "states[1]: \"other\" is the state remora serves",
        ),
        (
            "{name: m, path: $.a, states: [a]}",
            "exporter.yaml:5:",
            "states: states only apply to kind: stateset or count_by:",
        ),
        (
            "{name: m, path: $.a, parse: ages}",
            "exporter.yaml:5:",
            "\"ages\" is not a parser (expected auto, duration, timestamp, age, bytes or percent)",
        ),
    ];
    for (rule, pos, want) in cases {
        let e = at(rule);
        assert!(
            e.starts_with(pos) && e.contains(want),
            "{rule}: want {want:?} in {e}"
        );
    }
}

/// Issue 28: a target polling remora's own listen address and telemetry
/// path is refused at its `url:`, with the 0.0.0.0 listen matching loopback.
#[test]
fn a_target_polling_remora_itself_is_refused_at_its_url() {
    let e = errors(
        "server: {listen: 0.0.0.0:9479}\ntargets:\n  - name: me\n    url: http://localhost:9479/metrics\n    format: prometheus\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("exporter.yaml:4:10: targets[0].url: http://localhost:9479/metrics is remora's own listen address"),
        "{}",
        e[0]
    );
    // Another path or port is an app.
    assert!(parse("server: {listen: 0.0.0.0:9479}\ntargets:\n  - {name: a, url: http://localhost:9479/other, format: prometheus}\n  - {name: b, url: http://127.0.0.1:9480/metrics, format: prometheus}\n").is_ok());
}

/// Issue 28: more than `limits::MAX_RULES` rules, or a file over
/// `limits::MAX_CONFIG_BYTES`, is refused with a clear error.
#[test]
fn config_size_is_limited() {
    let mut text = String::from("targets:\n");
    let per = 100;
    for t in 0..=(limits::MAX_RULES / per) {
        text.push_str(&format!(
            "  - name: t{t}\n    url: http://127.0.0.1:1/\n    metrics:\n"
        ));
        for r in 0..per {
            text.push_str(&format!("      - {{name: m{r}, path: $.m{r}}}\n"));
        }
    }
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{:?}", &e[..e.len().min(3)]);
    assert!(
        e[0].starts_with(&format!(
            "exporter.yaml:2:3: targets: {} metric rules in all (expected at most {}",
            (limits::MAX_RULES / per + 1) * per,
            limits::MAX_RULES
        )),
        "{}",
        e[0]
    );
    let big = format!(
        "targets: []\n#{}\n",
        "x".repeat(limits::MAX_CONFIG_BYTES as usize)
    );
    let err = load_text(&big, Path::new("exporter.yaml"), &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("exporter.yaml: the config file is ")
            && err.contains("at most 8388608 bytes"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.yaml");
    std::fs::write(&p, &big).unwrap();
    let err = load_file(&p, &env).unwrap_err().to_string();
    assert!(err.contains("at most 8388608 bytes"), "{err}");
}

/// Targets whose rules are equal hold one list (issue 28: 2,000 targets of
/// the same rules kept 2,000 copies); a target whose rules differ in
/// anything (here `scale`, or one rule fewer) holds its own.
#[test]
fn equal_rules_are_shared_between_targets() {
    let rules = "[{name: app.a, path: $.a}, {name: app.b, path: $.b, labels: {k: '{$.k}'}}]";
    let c = parse(&format!(
        "targets:\n\
         - {{name: t0, url: 'http://h/0', metrics: {rules}}}\n\
         - {{name: t1, url: 'http://h/1', labels: {{x: y}}, metrics: {rules}}}\n\
         - {{name: t2, url: 'http://h/2', metrics: [{{name: app.a, path: $.a, scale: 2}}, {{name: app.b, path: $.b, labels: {{k: '{{$.k}}'}}}}]}}\n\
         - {{name: t3, url: 'http://h/3', metrics: [{{name: app.a, path: $.a}}]}}\n\
         - {{name: t4, url: 'http://h/4', metrics: {rules}}}\n"
    ))
    .unwrap();
    let t = &c.targets;
    assert!(Rules::ptr_eq(&t[0].metrics, &t[1].metrics));
    assert!(Rules::ptr_eq(&t[0].metrics, &t[4].metrics));
    assert_eq!(t[0].metrics.holders(), 3);
    assert!(!Rules::ptr_eq(&t[0].metrics, &t[2].metrics));
    assert!(!Rules::ptr_eq(&t[0].metrics, &t[3].metrics));
    assert_eq!((t[2].metrics.holders(), t[3].metrics.holders()), (1, 1));
    assert_eq!(t[2].metrics[0].scale, Some(2.0));
    assert_eq!(t[0].metrics.len(), 2);
}
