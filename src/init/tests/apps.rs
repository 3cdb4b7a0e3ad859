//! `init` on real products' documented health bodies (tests/fixtures/apps/):
//! the config written from one form of a product's body (healthy or
//! failing) passes `check`, runs against every other form with no
//! extraction error, and shows the failure of the failing form as a state
//! (or a boolean / number where that is the product's signal).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::{self, Config};
use crate::targets::extract::{Extraction, Extractor};

/// How the failure of a product's failing body shows.
#[derive(Debug, Clone, Copy)]
enum Signal {
    /// A series with `state="X"` at 1.
    State(&'static str),
    /// A series whose name ends with the text, at this value.
    Value(&'static str, f64),
    /// The product has no failing form.
    None,
}

/// One product: its directory, endpoint, content type, forms (file, HTTP
/// status) with the healthy form first and the failing form second, and
/// the failure signal of the failing form.
struct App {
    dir: &'static str,
    path: &'static str,
    content_type: &'static str,
    forms: &'static [(&'static str, u16)],
    signal: Signal,
}

const JSON: &str = "application/json";

const APPS: &[App] = &[
    App {
        dir: "vault",
        path: "/v1/sys/health",
        content_type: JSON,
        forms: &[
            ("healthy", 200),
            ("failing", 503),
            ("standby", 429),
            ("perf-standby", 473),
            ("dr-secondary", 472),
            ("ha-unhealthy", 474),
            ("uninitialized", 501),
            ("sealed", 503),
            ("removed", 530),
        ],
        signal: Signal::Value("sealed", 1.0),
    },
    App {
        dir: "elasticsearch",
        path: "/_cluster/health",
        content_type: JSON,
        forms: &[
            ("healthy", 200),
            ("failing", 200),
            ("yellow", 200),
            ("red", 200),
            ("timeout", 408),
        ],
        signal: Signal::State("red"),
    },
    App {
        dir: "opensearch",
        path: "/_cluster/health",
        content_type: JSON,
        forms: &[("healthy", 200), ("failing", 200), ("awareness", 200)],
        signal: Signal::State("red"),
    },
    App {
        dir: "spring-boot-actuator",
        path: "/actuator/health",
        content_type: "application/vnd.spring-boot.actuator.v3+json",
        forms: &[
            ("healthy", 200),
            ("failing", 503),
            ("disk-low", 503),
            ("out-of-service", 503),
            ("unknown", 200),
            ("minimal", 200),
            ("minimal-down", 503),
            ("legacy-2.1", 200),
        ],
        signal: Signal::State("DOWN"),
    },
    App {
        dir: "microprofile-health",
        path: "/q/health/ready",
        content_type: JSON,
        forms: &[("healthy", 200), ("failing", 503), ("empty", 200)],
        signal: Signal::State("DOWN"),
    },
    App {
        dir: "keycloak",
        path: "/health/ready",
        content_type: JSON,
        forms: &[("healthy", 200), ("failing", 503), ("no-checks", 200)],
        signal: Signal::State("DOWN"),
    },
    App {
        dir: "nestjs-terminus",
        path: "/health",
        content_type: "application/json; charset=utf-8",
        forms: &[
            ("healthy", 200),
            ("failing", 503),
            ("custom-indicator-down", 503),
            ("shutting-down", 503),
        ],
        signal: Signal::State("down"),
    },
    App {
        dir: "consul-health-checks",
        path: "/v1/health/checks/payments",
        content_type: JSON,
        forms: &[("healthy", 200), ("failing", 200), ("empty", 200)],
        signal: Signal::State("critical"),
    },
    App {
        dir: "consul-agent-checks",
        path: "/v1/agent/checks",
        content_type: JSON,
        forms: &[("healthy", 200), ("failing", 200)],
        signal: Signal::State("critical"),
    },
    App {
        dir: "consul-agent-health-service",
        path: "/v1/agent/health/service/id/web-1",
        content_type: JSON,
        forms: &[("healthy", 200), ("failing", 503), ("warning", 429)],
        signal: Signal::State("critical"),
    },
    App {
        dir: "etcd",
        path: "/health",
        content_type: JSON,
        forms: &[
            ("healthy", 200),
            ("failing", 503),
            ("nospace", 503),
            ("legacy", 200),
        ],
        signal: Signal::Value("health", 0.0),
    },
    App {
        dir: "rabbitmq-health-alarms",
        path: "/api/health/checks/alarms",
        content_type: JSON,
        forms: &[("healthy", 200), ("failing", 503)],
        signal: Signal::State("failed"),
    },
    App {
        dir: "rabbitmq-overview",
        path: "/api/overview",
        content_type: JSON,
        forms: &[("healthy", 200), ("failing", 200), ("fresh", 200)],
        signal: Signal::Value("object_totals.consumers", 0.0),
    },
    App {
        dir: "envoy",
        path: "/server_info",
        content_type: JSON,
        forms: &[
            ("healthy", 200),
            ("failing", 200),
            ("pre-initializing", 200),
            ("initializing", 200),
        ],
        signal: Signal::State("DRAINING"),
    },
    App {
        dir: "go-expvar",
        path: "/debug/vars",
        content_type: "application/json; charset=utf-8",
        forms: &[("healthy", 200), ("with-app-vars", 200)],
        signal: Signal::None,
    },
    App {
        dir: "ietf-health-json",
        path: "/health",
        content_type: "application/health+json",
        forms: &[
            ("healthy", 200),
            ("failing", 503),
            ("warn", 200),
            ("alias-up", 200),
        ],
        signal: Signal::State("fail"),
    },
    App {
        dir: "grafana",
        path: "/api/health",
        content_type: "application/json; charset=UTF-8",
        forms: &[("healthy", 200), ("failing", 503), ("hidden-version", 200)],
        signal: Signal::State("failing"),
    },
    App {
        dir: "kafka-connect",
        path: "/connectors/orders-jdbc-sink/status",
        content_type: JSON,
        forms: &[
            ("healthy", 200),
            ("failing", 200),
            ("connector-failed", 200),
            ("paused", 200),
            ("rebalancing", 200),
        ],
        signal: Signal::State("FAILED"),
    },
    // The FastAPI health recipe's three pages (fixtures `PAGE-FORM.json`).
    App {
        dir: "fastapi",
        path: "/health",
        content_type: JSON,
        forms: &[("health-healthy", 200), ("health-failing", 503)],
        signal: Signal::State("unhealthy"),
    },
    App {
        dir: "fastapi",
        path: "/health/ready",
        content_type: JSON,
        forms: &[("ready-healthy", 200), ("ready-failing", 503)],
        signal: Signal::Value("app.ready", 0.0),
    },
    App {
        dir: "fastapi",
        path: "/health/live",
        content_type: JSON,
        forms: &[("live-healthy", 200)],
        signal: Signal::None,
    },
];

fn dir(app: &App) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apps")
        .join(app.dir)
}

fn body(app: &App, form: &str) -> Vec<u8> {
    let p = dir(app).join(format!("{form}.json"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The config `init` writes from `form`, loaded and checked as `remora
/// check` does.
fn config_from(app: &App, form: &str, status: u16) -> Result<(String, Config), String> {
    let url = format!("http://127.0.0.1:8080{}", app.path);
    let yaml = super::super::yaml_for(&url, status, app.content_type, &body(app, form));
    let c = match config::load_text(&yaml, Path::new("exporter.yaml"), &|_| None) {
        Ok(c) => c,
        Err(e) => return Err(format!("{}/{form}: check: {e}\n{yaml}", app.dir)),
    };
    if let Err(errors) = crate::app::check_served_names(&c) {
        return Err(format!("{}/{form}: check: {errors:?}\n{yaml}", app.dir));
    }
    Ok((yaml, c))
}

fn extract(c: &Config, app: &App, form: &str) -> Extraction {
    let doc: Value = match serde_json::from_slice(&body(app, form)) {
        Ok(v) => v,
        Err(e) => panic!("{}/{form}: {e}", app.dir),
    };
    let t = &c.targets[0];
    Extractor::new(t).extract(&doc, c.limits.max_series_per_target, &[])
}

fn visible(x: &Extraction, signal: Signal) -> bool {
    x.families.iter().any(|f| {
        f.series.iter().any(|s| match signal {
            Signal::State(state) => {
                s.value == 1.0
                    && s.attributes
                        .iter()
                        .any(|kv| kv.key.as_str() == "state" && kv.value.as_str() == state)
            }
            Signal::Value(name, v) => f.name.ends_with(name) && s.value == v,
            Signal::None => true,
        })
    })
}

fn errors(x: &Extraction) -> Vec<String> {
    x.errors
        .iter()
        .map(|e| {
            format!(
                "{} {} x{} {:?}",
                e.metric,
                e.reason.as_str(),
                e.count,
                e.example
            )
        })
        .collect()
}

/// The table: for each product and each form A among healthy and failing,
/// the config written from A is checked and run against every form B.
#[test]
fn every_product_healthy_and_failing_both_ways() {
    let mut failures = Vec::new();
    let mut table =
        String::from("| product | config from | body | series | errors |\n|---|---|---|---|---|\n");
    for app in APPS {
        for &(from, status) in app.forms.iter().take(2) {
            let (yaml, c) = match config_from(app, from, status) {
                Ok(x) => x,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            for &(to, _) in app.forms {
                let x = extract(&c, app, to);
                let errs = errors(&x);
                table.push_str(&format!(
                    "| {} | {from} | {to} | {} | {} |\n",
                    app.dir,
                    x.series,
                    if errs.is_empty() {
                        "0".to_string()
                    } else {
                        errs.join("; ")
                    }
                ));
                if !errs.is_empty() {
                    failures.push(format!("{}: {from} -> {to}: {errs:?}", app.dir));
                }
                if app.forms.get(1).is_some_and(|f| f.0 == to) && !visible(&x, app.signal) {
                    failures.push(format!(
                        "{}: {from} -> {to}: failure not visible as {:?}\n{yaml}",
                        app.dir, app.signal
                    ));
                }
            }
        }
    }
    println!("{table}");
    if let Ok(out) = std::env::var("REMORA_INIT_TABLE") {
        let _ = std::fs::write(out, &table);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Products whose failing body has the healthy body's fields (only values
/// change, or a container empty in one form): the config written from
/// either form has the same rules, states included (a state word and its
/// failure word resolve to one vocabulary; Terminus's empty `error` is
/// read with `info`'s indicator shape).
#[test]
fn either_form_writes_the_same_rules() {
    for dir in [
        "grafana",
        "nestjs-terminus",
        "elasticsearch",
        "spring-boot-actuator",
        "kafka-connect",
        "envoy",
        "keycloak",
    ] {
        let Some(app) = APPS.iter().find(|a| a.dir == dir) else {
            panic!("{dir}")
        };
        let rules = |i: usize| {
            let (form, status) = app.forms[i];
            let (_, c) = config_from(app, form, status).unwrap_or_else(|e| panic!("{e}"));
            c.targets[0]
                .metrics
                .iter()
                .map(|r| format!("{} {:?} {:?}", r.name, r.kind, r.each))
                .collect::<Vec<_>>()
        };
        assert_eq!(rules(0), rules(1), "{dir}");
    }
}

/// Each FastAPI health page, healthy or failing, gets the rules of
/// examples/recipes/fastapi-health/ for that page (its metric names, not
/// generic guesses), and nothing else.
#[test]
fn fastapi_pages_get_the_recipe_rules() {
    let want: [(&str, &[&str]); 3] = [
        (
            "/health",
            &[
                "app.health",
                "app.dependency.health",
                "app.dependency.check_latency",
                "app.uptime",
                "app.build_info",
            ],
        ),
        (
            "/health/ready",
            &[
                "app.ready",
                "app.dependency.up",
                "app.dependency.latency",
                "app.disk.free",
            ],
        ),
        ("/health/live", &["app.alive", "app.live.timestamp"]),
    ];
    for app in APPS.iter().filter(|a| a.dir == "fastapi") {
        let names = want
            .iter()
            .find(|(p, _)| *p == app.path)
            .map(|(_, n)| *n)
            .unwrap_or_default();
        for &(form, status) in app.forms {
            let (yaml, c) = config_from(app, form, status).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                yaml.contains("examples/recipes/fastapi-health/"),
                "{form}: {yaml}"
            );
            let got: Vec<&str> = c.targets[0]
                .metrics
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            assert_eq!(got, names, "{form}: {yaml}");
        }
    }
    // Another key than the page's: not the recipe's shape.
    let app = &APPS[APPS.len() - 1];
    let yaml = super::super::yaml_for(
        "http://127.0.0.1:8080/health/live",
        200,
        JSON,
        br#"{"status": "alive", "timestamp": "2026-12-06T03:10:00Z", "pid": 7}"#,
    );
    assert!(
        !yaml.contains("fastapi-health/: its rules"),
        "{}: {yaml}",
        app.path
    );
    // A check with a field the recipe does not read (the demo app's ready
    // checks carry a status too): not the recipe's shape, nothing unread.
    let yaml = super::super::yaml_for(
        "http://127.0.0.1:8080/health/ready",
        200,
        JSON,
        br#"{"status": "ready", "checks": {"db": {"healthy": true, "status": "healthy"}}}"#,
    );
    assert!(!yaml.contains("fastapi-health/: its rules"), "{yaml}");
}

/// `REMORA_INIT_SHOW=vault/healthy cargo test --lib init::tests::apps::show -- --nocapture`
/// prints the config written from that form.
#[test]
fn show() {
    let Ok(which) = std::env::var("REMORA_INIT_SHOW") else {
        return;
    };
    let (d, form) = which.split_once('/').unwrap_or((which.as_str(), "healthy"));
    for app in APPS.iter().filter(|a| a.dir == d) {
        let status = app.forms.iter().find(|f| f.0 == form).map_or(200, |f| f.1);
        match config_from(app, form, status) {
            Ok((yaml, _)) => println!("{yaml}"),
            Err(e) => println!("{e}"),
        }
    }
}
