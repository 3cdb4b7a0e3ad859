//! Tests of `remora init`'s inference and YAML: the YAML is read back by the
//! config loader.

use std::path::Path;

use serde_json::json;

use super::infer::{infer, json_path, snake, Kind};
use super::write::{yaml, TargetOut};
use crate::config::{self, RuleKind};

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(doc: &serde_json::Value) -> config::Config {
    let found = infer(doc, "app.health", "/health", 2000);
    let t = TargetOut {
        name: "health".into(),
        url: "http://127.0.0.1:8080/health".into(),
        accept_status: None,
        prometheus: false,
        hint: None,
        recipe: None,
        rules: found.rules,
        skipped: found.skipped,
    };
    let text = yaml(
        &["http://127.0.0.1:8080".into()],
        &[t],
        &["/health: HTTP 200".into()],
    );
    match config::load_text(&text, Path::new("init.yaml"), &no_env) {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{text}"),
    }
}

#[test]
fn names_and_paths() {
    assert_eq!(snake("latencyMs"), "latency_ms");
    assert_eq!(snake("diskSpace"), "disk_space");
    assert_eq!(snake("free-GB"), "free_gb");
    assert_eq!(snake("2xx"), "n2xx");
    assert_eq!(snake("GCCPUFraction"), "gccpu_fraction");
    assert_eq!(snake("HeapAlloc"), "heap_alloc");
    assert_eq!(snake("PauseTotalNs"), "pause_total_ns");
    assert_eq!(super::infer::label_name("status", "key"), "status");
    assert_eq!(super::infer::label_name("addresses", "key"), "address");
    assert_eq!(super::infer::label_name("checks", "key"), "check");
    let keys = |k: &[&str]| json_path(&k.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(keys(&["checks", "db"]), "$.checks.db");
    assert_eq!(
        keys(&["cassandra:responseTime", "it's"]),
        "$['cassandra:responseTime']['it\\'s']"
    );
}

#[test]
fn units_from_key_suffixes() {
    let c = load(&json!({
        "latency_ms": 5.2, "uptime_seconds": 3, "heap_bytes": 10, "free_gb": 10.5,
        "cpu_percent": 12.5, "mem": "12.5%", "up": true, "uptime": "2h15m30s",
        "started": "2026-02-16T19:15:00.000Z", "status": "healthy", "version": "1.0.0",
        "commit": "abc", "message": "all good"
    }));
    let rules = &c.targets[0].metrics;
    let by = |n: &str| {
        rules
            .iter()
            .find(|r| r.name == n)
            .unwrap_or_else(|| panic!("{n} in {rules:#?}"))
    };
    let r = by("app.health.latency");
    assert_eq!((r.unit.as_str(), r.scale), ("s", Some(0.001)));
    assert_eq!(by("app.health.uptime_2").unit, "s");
    assert_eq!(by("app.health.heap").unit, "By");
    assert_eq!(by("app.health.free").scale, Some(1e9));
    assert_eq!(by("app.health.cpu").scale, Some(0.01));
    assert_eq!(by("app.health.mem").parse, config::Parse::Percent);
    assert_eq!(by("app.health.uptime").parse, config::Parse::Duration);
    assert_eq!(by("app.health.started").parse, config::Parse::Timestamp);
    let RuleKind::StateSet(states) = &by("app.health.status").kind else {
        panic!("not a state set")
    };
    assert_eq!(states, &["healthy", "degraded", "unhealthy"]);
    let info = by("app.health.build_info");
    assert_eq!(info.kind, RuleKind::Info);
    let labels: Vec<&str> = info.labels.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(labels, ["commit", "version"]);
    assert!(!rules.iter().any(|r| r.name.contains("message")));
}

#[test]
fn collections_become_each_rules() {
    let c = load(&json!({
        "checks": {
            "database": {"healthy": true, "latency_ms": 5.23, "message": "ok"},
            "disk": {"healthy": true, "free_gb": 10.5}
        },
        "features": {"a": true, "b": false},
        "agents": [{"name": "x", "state": "RUNNING"}, {"name": "y", "state": "STOPPED"}],
        "PauseNs": [1, 2, 3]
    }));
    let rules = &c.targets[0].metrics;
    let by = |n: &str| {
        rules
            .iter()
            .find(|r| r.name == n)
            .unwrap_or_else(|| panic!("{n} in {rules:#?}"))
    };
    let r = by("app.health.checks.latency");
    assert!(r.each.is_some() && r.optional);
    assert_eq!(r.labels[0].0, "check");
    // A member's field may be missing in another state of the app.
    assert!(by("app.health.checks.healthy").optional);
    assert_eq!(by("app.health.features").labels[0].0, "feature");
    let RuleKind::StateSet(states) = &by("app.health.agents.state").kind else {
        panic!("not a state set")
    };
    for want in ["RUNNING", "STOPPED", "FAILED"] {
        assert!(states.contains(&want.to_string()), "{states:?}");
    }
    assert_eq!(by("app.health.agents.state").labels[0].0, "agent");
}

#[test]
fn strings_needing_escapes_survive_the_round_trip() {
    let doc = json!({"we\"ird ${HOME} $$": {"a b": 1, "c": 2}, "x-y": {"q'z": 3}});
    let found = infer(&doc, "app", "/", 2000);
    assert!(found.rules.iter().all(|r| matches!(r.kind, Kind::Gauge)));
    let c = load(&doc);
    assert!(!c.targets[0].metrics.is_empty());
    // The key reaches the loaded JSONPath as written: `${HOME}` not expanded, `$$` kept.
    let paths = format!("{:?}", c.targets[0].metrics);
    assert!(paths.contains("${HOME} $$"), "{paths}");
}
mod apps;
mod points;
