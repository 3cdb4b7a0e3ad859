//! One test per point of issue 26 that `init` answers: failure states,
//! statuses, shapes (top-level arrays, control characters in keys, the URL
//! argument), units and kinds, readable labels, recipes, the series cap.

use std::path::Path;

use serde_json::{json, Value};

use super::super::{parse_url, yaml_for, MAX_SERIES};
use crate::config::{self, Config, MetricRule, Parse, RuleKind, ValueSource};
use crate::targets::extract::Extractor;

/// The config `init` writes for `doc` answered at `url` with `status`,
/// loaded as `remora check` loads it.
fn config_for(url: &str, status: u16, ctype: &str, doc: &Value) -> (String, Config) {
    let yaml = yaml_for(url, status, ctype, doc.to_string().as_bytes());
    match config::load_text(&yaml, Path::new("exporter.yaml"), &|_| None) {
        Ok(c) => {
            if let Err(e) = crate::app::check_served_names(&c) {
                panic!("{e:?}\n{yaml}");
            }
            (yaml, c)
        }
        Err(e) => panic!("{e}\n{yaml}"),
    }
}

fn health(doc: &Value) -> (String, Config) {
    config_for("http://127.0.0.1:8080/health", 200, "application/json", doc)
}

fn rule<'a>(c: &'a Config, name: &str) -> &'a MetricRule {
    let rules = &c.targets[0].metrics;
    rules.iter().find(|r| r.name == name).unwrap_or_else(|| {
        panic!(
            "no {name} in {:#?}",
            rules.iter().map(|r| &r.name).collect::<Vec<_>>()
        )
    })
}

fn states(r: &MetricRule) -> Vec<String> {
    match &r.kind {
        RuleKind::StateSet(s) => s.clone(),
        other => panic!("{} is {other:?}, not a state set", r.name),
    }
}

fn path_of(r: &MetricRule) -> String {
    match r.values.first().map(|v| &v.source) {
        Some(ValueSource::Path(p)) => p.to_string(),
        other => format!("{other:?}"),
    }
}

/// Errors and series of `c`'s first target on `doc`.
fn run(c: &Config, doc: &Value) -> (usize, Vec<String>) {
    let x = Extractor::new(&c.targets[0]).extract(doc, c.limits.max_series_per_target, &[]);
    let errors = x
        .errors
        .iter()
        .map(|e| format!("{} {}", e.metric, e.reason.as_str()))
        .collect();
    (x.series, errors)
}

#[test]
fn a_state_gets_its_whole_vocabulary_in_the_case_written() {
    let (_, c) = health(
        &json!({"state": "LIVE", "database": "ok", "cluster": "green",
        "checks": {"a": {"status": "passing"}, "b": {"status": "passing"}}}),
    );
    let s = states(rule(&c, "app.health.state"));
    for want in ["LIVE", "DRAINING", "PRE_INITIALIZING", "INITIALIZING"] {
        assert!(s.contains(&want.to_string()), "{s:?}");
    }
    // Grafana's database check: ok and failing.
    assert!(states(rule(&c, "app.health.database")).contains(&"failing".to_string()));
    assert!(states(rule(&c, "app.health.cluster")).contains(&"red".to_string()));
    assert!(states(rule(&c, "app.health.checks.status")).contains(&"critical".to_string()));
    let (_, c) = health(&json!({"status": "UP", "connector": {"state": "RUNNING"}}));
    let s = states(rule(&c, "app.health.status"));
    assert_eq!(s[..4], ["UP", "DOWN", "OUT_OF_SERVICE", "UNKNOWN"]);
    let s = states(rule(&c, "app.health.connector.state"));
    for want in ["PAUSED", "FAILED", "UNASSIGNED", "RESTARTING"] {
        assert!(s.contains(&want.to_string()), "{s:?}");
    }
    // "other" is the extractor's, never a listed state.
    assert!(!s.contains(&"other".to_string()));
}

#[test]
fn true_and_false_in_a_string_are_a_boolean() {
    let (_, c) = health(&json!({"health": "true", "reason": ""}));
    let r = rule(&c, "app.health.health");
    assert_eq!(r.kind, RuleKind::Gauge);
    assert!(!r.optional, "the app's verdict stays required");
    let (_, errors) = run(&c, &json!({"health": "false", "reason": "RAFT NO LEADER"}));
    assert!(errors.is_empty(), "{errors:?}");
    let x = Extractor::new(&c.targets[0]).extract(&json!({"health": "false"}), 100, &[]);
    assert_eq!(x.families[0].series[0].value, 0.0);
}

#[test]
fn an_error_form_gives_rules_that_read_the_healthy_form() {
    let failing = json!({"status": "error",
        "info": {"database": {"status": "up"}},
        "error": {"redis": {"status": "down", "message": "Could not connect"}},
        "details": {"database": {"status": "up"}, "redis": {"status": "down", "message": "Could not connect"}}});
    let healthy = json!({"status": "ok",
        "info": {"database": {"status": "up"}, "redis": {"status": "up"}},
        "error": {},
        "details": {"database": {"status": "up"}, "redis": {"status": "up"}}});
    let (yaml, c) = health(&failing);
    assert!(
        !yaml.contains("redis"),
        "the failing dependency's name is not hard-coded\n{yaml}"
    );
    for container in ["info", "error", "details"] {
        let r = rule(&c, &format!("app.health.{container}.status"));
        assert!(r.each.is_some(), "{yaml}");
        assert!(states(r).contains(&"down".to_string()));
    }
    let s = states(rule(&c, "app.health.status"));
    assert!(s.contains(&"ok".to_string()) && s.contains(&"shutting_down".to_string()));
    let (series, errors) = run(&c, &healthy);
    assert!(errors.is_empty() && series > 0, "{errors:?}");
}

#[test]
fn accept_status_covers_what_the_endpoint_is_documented_to_answer() {
    let codes = |url: &str, status: u16, doc: &Value| {
        config_for(url, status, "application/json", doc).1.targets[0]
            .accept_status
            .clone()
    };
    let vault =
        json!({"initialized": true, "sealed": false, "standby": false, "version": "1.17.2"});
    assert_eq!(
        codes("http://127.0.0.1:8200/v1/sys/health", 200, &vault),
        [200, 429, 472, 473, 474, 501, 503, 530]
    );
    let consul = json!({"AggregatedStatus": "passing", "Service": {"ID": "web-1", "Port": 80}});
    assert_eq!(
        codes(
            "http://127.0.0.1:8500/v1/agent/health/service/id/web-1",
            200,
            &consul
        ),
        [200, 429, 503]
    );
    let es =
        json!({"cluster_name": "x", "status": "green", "timed_out": false, "number_of_nodes": 1});
    assert_eq!(
        codes("http://127.0.0.1:9200/_cluster/health", 200, &es),
        [200, 408]
    );
    assert_eq!(
        codes(
            "http://127.0.0.1:8080/health/ready",
            200,
            &json!({"status": "UP"})
        ),
        [200, 503]
    );
    // A status seen while probing is always read.
    assert_eq!(
        codes("http://127.0.0.1:8080/stats", 500, &json!({"queue": 3})),
        [200, 500]
    );
    assert_eq!(
        codes(
            "http://127.0.0.1:8080/health",
            418,
            &json!({"status": "ok"})
        ),
        [200, 418, 503]
    );
}

#[test]
fn a_top_level_array_is_an_each_labelled_by_its_unique_id_key() {
    // Consul: Name repeats across instances; CheckID is unique.
    let doc = json!([
        {"Node": "a", "CheckID": "service:p-1", "Name": "Service 'p' check", "Status": "passing", "ServiceName": "p", "CreateIndex": 1},
        {"Node": "b", "CheckID": "service:p-2", "Name": "Service 'p' check", "Status": "critical", "ServiceName": "p", "CreateIndex": 2}
    ]);
    let (yaml, c) = config_for(
        "http://127.0.0.1:8500/v1/health/checks/p",
        200,
        "application/json",
        &doc,
    );
    assert!(!yaml.contains("metrics: []"), "{yaml}");
    let r = rule(&c, "app.v1_health_checks_p.status");
    assert_eq!(
        r.each.as_ref().map(ToString::to_string).as_deref(),
        Some("$[*]")
    );
    let labels: Vec<&str> = r.labels.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(labels, ["check_id", "name", "service_name", "node"]);
    let (series, errors) = run(&c, &doc);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(series >= 10);
    // Lower case too.
    let (_, c) =
        health(&json!([{"name": "db", "status": "UP"}, {"name": "cache", "status": "DOWN"}]));
    assert_eq!(rule(&c, "app.health.status").labels[0].0, "name");
}

#[test]
fn keys_with_control_characters_give_a_config_check_accepts() {
    let doc = json!({
        "line\nbreak": 1, "tab\there": 2, "nul\u{0}key": 3, "c1\u{85}\u{9b}key": 4,
        "sep\u{2028}x": 5, "checks": {"a\nb": {"up": true}, "c\td": {"up": false}},
        "status": "ok"
    });
    let (yaml, c) = health(&doc);
    assert!(yaml
        .lines()
        .all(|l| !l.contains('\u{0}') && !l.contains('\u{85}')));
    let (series, errors) = run(&c, &doc);
    assert!(errors.is_empty(), "{errors:?}\n{yaml}");
    // Every number and the flags were read.
    assert!(series >= 5 + 2, "{series}\n{yaml}");
}

#[test]
fn the_url_is_validated_and_never_injects_yaml() {
    for bad in [
        "http://127.0.0.1:8080/health\nserver: {listen: 0.0.0.0:1}",
        "http://127.0.0.1:8080/he\talth",
        "ftp://127.0.0.1/",
        "not a url",
        "127.0.0.1:8080",
    ] {
        assert!(parse_url(bad).is_err(), "{bad:?} accepted");
    }
    assert!(parse_url("https://[::1]:8443/health?x=1").is_ok());
    // Even past the check, the writer keeps a URL on its comment line and quoted.
    let t = super::super::write::TargetOut {
        name: "x".into(),
        url: "http://h/\nglobal: {interval: 1s}".into(),
        accept_status: None,
        prometheus: false,
        hint: None,
        recipe: None,
        rules: Vec::new(),
        skipped: Vec::new(),
    };
    let yaml = super::super::write::yaml(&["http://h/\ntargets: []".into()], &[t], &[]);
    assert!(!yaml.contains("\ntargets: []"), "{yaml}");
    assert!(!yaml.contains("\nglobal: {interval"), "{yaml}");
}

#[test]
fn units_and_kinds_from_keys() {
    let doc = json!({
        "components": {"diskSpace": {"details": {"total": 100, "free": 50, "threshold": 10}},
                       "db": {"details": {"total": 3}}},
        "heap_used": 1024, "cache_bytes": 5,
        "memstats": {"Alloc": 1, "HeapSys": 2, "Sys": 3, "NumGC": 4, "TotalAlloc": 5,
                     "Mallocs": 6, "Frees": 7, "HeapObjects": 8, "PauseTotalNs": 9},
        "message_stats": {"publish": 10, "deliver_get": 11, "publish_details": {"rate": 1.5}},
        "total_requests": 12, "errors_total": 13, "gc_count": 14, "active_count": 15,
        "active_shards_percent_as_number": 99.5, "cpu_pct": 12, "mem_percent": 50,
        "avg_exec_time_ns": 2000, "latency_millis": 3, "wait_ms": 4
    });
    let (yaml, c) = health(&doc);
    let unit = |n: &str| rule(&c, n).unit.clone();
    let kind = |n: &str| rule(&c, n).kind.clone();
    assert_eq!(unit("app.health.components.details.free"), "By", "{yaml}");
    assert_eq!(unit("app.health.components.details.threshold"), "By");
    assert_eq!(unit("app.health.heap_used"), "By");
    assert_eq!(unit("app.health.cache"), "By");
    for n in ["alloc", "heap_sys", "sys"] {
        assert_eq!(unit(&format!("app.health.memstats.{n}")), "By", "{n}");
    }
    assert_eq!(rule(&c, "app.health.memstats.heap_objects").unit, "");
    for n in [
        "app.health.memstats.num_gc",
        "app.health.memstats.total_alloc",
        "app.health.memstats.mallocs",
        "app.health.memstats.frees",
        "app.health.memstats.pause_total",
        "app.health.message_stats.publish",
        "app.health.message_stats.deliver_get",
        "app.health.total_requests",
        "app.health.errors",
        "app.health.gc_count",
    ] {
        assert_eq!(kind(n), RuleKind::Counter, "{n}\n{yaml}");
    }
    assert_eq!(kind("app.health.active_count"), RuleKind::Gauge);
    assert_eq!(
        kind("app.health.message_stats.publish_details.rate"),
        RuleKind::Gauge
    );
    let r = rule(&c, "app.health.active_shards");
    assert_eq!((r.unit.as_str(), r.scale), ("1", Some(0.01)));
    assert_eq!(rule(&c, "app.health.cpu").scale, Some(0.01));
    assert_eq!(rule(&c, "app.health.mem").unit, "1");
    let r = rule(&c, "app.health.avg_exec_time");
    assert_eq!((r.unit.as_str(), r.scale), ("s", Some(1e-9)));
    assert_eq!(rule(&c, "app.health.latency").scale, Some(0.001));
    assert_eq!(rule(&c, "app.health.wait").unit, "s");
    // No unit word left in a name.
    for r in &c.targets[0].metrics {
        for w in ["_ns", "_ms", "_millis", "_pct", "_percent", "_bytes"] {
            assert!(!r.name.ends_with(w), "{}", r.name);
        }
    }
    let (_, errors) = run(&c, &doc);
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn info_labels_are_readable_and_never_all_empty() {
    let doc = json!({"java": {"version": "17.0.2"}, "os": {"version": "6.1"},
                     "version": "2.2.2", "commit": "", "status": "ok"});
    let (yaml, c) = health(&doc);
    let r = rule(&c, "app.health.build_info");
    let labels: Vec<&str> = r.labels.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(labels, ["java_version", "os_version", "version"], "{yaml}");
    assert!(!labels.iter().any(|l| l.contains("_2")));
    // An empty string is not a version; the series needs its version string.
    assert!(!yaml.contains("\"commit\""), "{yaml}");
    assert!(r.optional);
    assert_eq!(path_of(r), "$.version");
    let x = Extractor::new(&c.targets[0]).extract(&json!({"status": "ok"}), 100, &[]);
    assert!(x.errors.is_empty());
    assert!(
        !x.families
            .iter()
            .any(|f| f.name.ends_with("build_info") && !f.series.is_empty()),
        "an info series with every label empty"
    );
}

#[test]
fn opaque_keys_with_readable_tags_get_the_tags_as_labels() {
    let doc = json!({
        "service:web-1": {"CheckID": "service:web-1", "Name": "Service 'web' check", "ServiceName": "web", "Status": "passing"},
        "mem-util": {"CheckID": "mem-util", "Name": "Memory utilization", "ServiceName": "", "Status": "critical"}
    });
    let (_, c) = config_for(
        "http://127.0.0.1:8500/v1/agent/checks",
        200,
        "application/json",
        &doc,
    );
    let r = rule(&c, "app.v1_agent_checks.status");
    let labels: Vec<&str> = r.labels.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(labels, ["check", "name", "service_name"]);
}

#[test]
fn known_shapes_get_their_recipe() {
    let spring =
        json!({"status": "UP", "components": {"db": {"status": "UP"}, "ping": {"status": "UP"}}});
    let (yaml, c) = config_for(
        "http://127.0.0.1:8080/actuator/health",
        200,
        "application/json",
        &spring,
    );
    assert!(
        yaml.contains("examples/recipes/spring-boot-actuator/"),
        "{yaml}"
    );
    assert_eq!(
        states(rule(&c, "app.component.health"))[..2],
        ["UP", "DOWN"]
    );
    let ietf = json!({"status": "pass", "checks": {"db:responseTime": [{"status": "pass", "observedValue": 3}]}});
    let (yaml, c) = config_for(
        "http://127.0.0.1:8080/health",
        200,
        "application/health+json",
        &ietf,
    );
    assert!(
        yaml.contains("examples/recipes/ietf-health-check/"),
        "{yaml}"
    );
    assert!(states(rule(&c, "app.health")).contains(&"up".to_string()));
    assert!(
        !yaml.contains("queue:depth"),
        "app-specific recipe rules are not copied\n{yaml}"
    );
    let expvar = json!({"cmdline": ["/bin/app"], "memstats": {"HeapAlloc": 1, "NumGC": 2, "Sys": 3},
                        "orders": 5});
    let (yaml, c) = config_for(
        "http://127.0.0.1:8080/debug/vars",
        200,
        "application/json",
        &expvar,
    );
    assert!(yaml.contains("examples/recipes/go-expvar/"), "{yaml}");
    assert_eq!(rule(&c, "go.gc.cycles").kind, RuleKind::Counter);
    // The app's own variables are still read.
    rule(&c, "app.debug_vars.orders");
    // Composite indicators: one family labelled by group and component.
    let composite = json!({"status": "DOWN", "components": {
        "db": {"status": "DOWN", "components": {
            "ordersDataSource": {"status": "UP"}, "reportingDataSource": {"status": "DOWN"}}},
        "ping": {"status": "UP"}}});
    let (yaml, c) = config_for(
        "http://127.0.0.1:8080/actuator/health",
        503,
        "application/json",
        &composite,
    );
    let x = Extractor::new(&c.targets[0]).extract(&composite, 2000, &[]);
    assert!(x.errors.is_empty(), "{:?}", x.errors);
    let sub = x
        .families
        .iter()
        .find(|f| &*f.name == "app.subcomponent.health")
        .unwrap_or_else(|| panic!("{yaml}"));
    let down = sub.series.iter().any(|s| {
        let l = |k: &str| {
            s.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        s.value == 1.0
            && l("group").as_deref() == Some("db")
            && l("component").as_deref() == Some("reportingDataSource")
            && l("state").as_deref() == Some("DOWN")
    });
    assert!(down, "{:?}", sub.series);
    // Not Spring: MicroProfile's checks list.
    let (yaml, _) = health(&json!({"status": "UP", "checks": [{"name": "db", "status": "UP"}]}));
    assert!(!yaml.contains("examples/recipes/spring"), "{yaml}");
}

#[test]
fn thousands_of_keys_fit_the_series_cap() {
    let mut m = serde_json::Map::new();
    m.insert("status".into(), json!("ok"));
    for i in 0..5000 {
        m.insert(format!("counter_{i:04}"), json!(i));
    }
    let doc = Value::Object(m);
    let (yaml, c) = health(&doc);
    let (series, errors) = run(&c, &doc);
    assert!(errors.is_empty());
    assert!(series <= MAX_SERIES, "{series}");
    assert!(yaml.contains("over the target's cap of 2000"), "no comment");
    // The app's verdict is kept first.
    rule(&c, "app.health.status");
    assert!(c.targets[0].metrics.iter().any(|r| r.parse == Parse::Auto));
}

#[test]
fn a_list_left_empty_when_healthy_is_read_from_its_documented_shape() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apps/consul-agent-health-service");
    let read = |f: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap_or_default())
            .unwrap_or(Value::Null)
    };
    let (yaml, c) = config_for(
        "http://127.0.0.1:8500/v1/agent/health/service/id/checkout-1",
        200,
        "application/json",
        &read("healthy.json"),
    );
    assert!(yaml.contains("documented check"), "{yaml}");
    let x = Extractor::new(&c.targets[0]).extract(&read("failing.json"), 2000, &[]);
    assert!(x.errors.is_empty(), "{:?}", x.errors);
    let critical = x
        .families
        .iter()
        .filter(|f| f.name.ends_with("checks.status"))
        .any(|f| {
            f.series.iter().any(|s| {
                let l = |k: &str| {
                    s.attributes
                        .iter()
                        .find(|kv| kv.key.as_str() == k)
                        .map(|kv| kv.value.to_string())
                };
                s.value == 1.0
                    && l("state").as_deref() == Some("critical")
                    && l("check").as_deref() == Some("service:checkout-1")
            })
        });
    assert!(critical, "{yaml}");
}

/// The value of `name`'s series whose `label` is `value` (or the only one).
fn value_of(c: &Config, doc: &Value, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    let x = Extractor::new(&c.targets[0]).extract(doc, 2000, &[]);
    assert!(x.errors.is_empty(), "{:?}", x.errors);
    let f = x.families.iter().find(|f| &*f.name == name)?;
    f.series
        .iter()
        .find(|s| {
            label.is_none_or(|(k, v)| {
                s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == k && kv.value.as_str() == v)
            })
        })
        .map(|s| s.value)
}

#[test]
fn members_per_state_and_lists_are_counted() {
    let healthy = json!({"status": "UP", "checks": [
        {"name": "db", "status": "UP"}, {"name": "cache", "status": "UP"}, {"name": "mq", "status": "UP"}]});
    let failing = json!({"status": "DOWN", "checks": [
        {"name": "db", "status": "DOWN"}, {"name": "cache", "status": "UP"}, {"name": "mq", "status": "DOWN"}]});
    let (yaml, c) = config_for(
        "http://127.0.0.1:8080/q/health/ready",
        200,
        "application/json",
        &healthy,
    );
    let count = "app.q_health_ready.checks.count";
    assert_eq!(
        value_of(&c, &failing, count, Some(("status", "DOWN"))),
        Some(2.0),
        "{yaml}"
    );
    assert_eq!(
        value_of(&c, &healthy, count, Some(("status", "DOWN"))),
        Some(0.0),
        "{yaml}"
    );
    // RabbitMQ's alarms: only text in the items, only there when failing.
    let failing = json!({"status": "failed", "reason": "alarms", "alarms": [
        {"node": "rabbit@a", "resource": "disk"}, {"node": "rabbit@b", "resource": "memory"}]});
    let (yaml, c) = config_for(
        "http://127.0.0.1:15672/api/health/checks/alarms",
        503,
        "application/json",
        &failing,
    );
    let alarms = "app.api_health_checks_alarms.alarms.count";
    assert_eq!(value_of(&c, &failing, alarms, None), Some(2.0), "{yaml}");
    assert_eq!(
        value_of(&c, &json!({"status": "ok"}), alarms, None),
        Some(0.0),
        "{yaml}"
    );
    // A top-level list with nothing else to read: its length, not metrics: [].
    let (yaml, c) = config_for(
        "http://127.0.0.1:8500/v1/health/checks/web",
        200,
        "application/json",
        &json!([]),
    );
    assert_eq!(
        value_of(
            &c,
            &json!([{"Status": "passing"}]),
            "app.v1_health_checks_web.items",
            None
        ),
        Some(1.0),
        "{yaml}"
    );
}
