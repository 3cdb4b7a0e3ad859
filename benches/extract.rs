//! Cost of one poll's extraction: a seed-like status document of ~10 KB and
//! one of ~1 MB, 20 rules each (each/labels/map/duration/bytes/timestamp/
//! values/stateset/info), with and without the serde_json parse.
//!
//! `parse+extract` is one poll as the poller does it
//! ([`Extractor::extract_body`]: the parse keeps only what the rules reach,
//! within the body limit); `parse all+extract` parses the whole document into
//! a `serde_json::Value` first (what the poller did before); `extract` is the
//! extraction alone, the rules compiled beforehand ([`Extractor`]);
//! `compile+extract` recompiles them (the one-call `extract`). Run with `cargo bench --bench extract`; the document sizes and
//! series counts are printed first.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry::KeyValue;
use serde_json::{json, Value};
use serde_json_path::JsonPath;

use remora::config::{
    Format, Method, MetricRule, Parse, RuleKind, RuleValue, Target, Template, TemplatePart,
    TlsConfig, ValueSource,
};
use remora::targets::extract::{extract, Extractor, Limits};

/// A seed-like status document with `n` dependency checks, `2n` workers, `n`
/// queues and `2n` feature flags, strings and all (~1.2 KB per `n`).
fn document(n: usize) -> String {
    let kinds = ["database", "cache", "queue", "http"];
    let states = ["healthy", "degraded", "unhealthy"];
    let checks: serde_json::Map<String, Value> = (0..n)
        .map(|i| {
            (
                format!("dependency-{i:05}"),
                json!({
                    "type": kinds[i % 4],
                    "status": states[i % 3],
                    "healthy": i % 3 == 0,
                    "latency_ms": 0.5 + i as f64 * 1.25,
                    "message": "Database accessible, replication lag within limits",
                    "last_check": "2026-02-16T19:15:00.000Z",
                    "details": {
                        "host": format!("db-{i}.internal.example.com"),
                        "port": 5432,
                        "server_version": "16.2 (Debian 16.2-1.pgdg120+2)",
                        "tls": true,
                    },
                    "pool": {"size": 20, "used": i % 20},
                    "errors": i * 3,
                }),
            )
        })
        .collect();
    let workers: Vec<Value> = (0..2 * n)
        .map(|i| {
            json!({
                "name": format!("worker-{i}"),
                "jobs_done": 1000 + i * 7,
                "jobs_failed": i % 5,
                "busy": i % 2 == 0,
                "last_job": "2026-02-16T19:15:00.000Z",
                "runtime": format!("{}ms", 150 + i),
                "host": format!("worker-pod-{i}-7d9f8c6b5-x2k4q"),
                "current_job": format!("job-{:08x}", i * 7919),
            })
        })
        .collect();
    let queues: serde_json::Map<String, Value> = (0..n)
        .map(|i| (format!("queue-{i}"), json!(i * 11)))
        .collect();
    let features: serde_json::Map<String, Value> = (0..2 * n)
        .map(|i| (format!("feature_{i}"), json!(i % 3 != 0)))
        .collect();
    json!({
        "service": "checkout-api",
        "environment": "production",
        "links": {
            "docs": "https://internal.example.com/checkout/docs",
            "dashboard": "https://grafana.example.com/d/checkout",
            "runbook": "https://runbooks.example.com/checkout/health",
        },
        "status": "healthy",
        "version": "2.0.0",
        "commit": "4f616656692d8f14722ce383d3e15d1c8d313f90",
        "uptime": "2h15m30s",
        "started_at": "2026-02-16T17:00:00.000Z",
        "disk": {"free": "10.50GB", "total": "100GB"},
        "memory": {"rss": "512MiB"},
        "cache": {"hit_ratio": 0.93, "entries": 125_000},
        "stats": {"requests_total": 1_655_371, "errors_total": "42"},
        "checks": checks,
        "workers": workers,
        "queues": queues,
        "features": features,
    })
    .to_string()
}

fn path(s: &str) -> JsonPath {
    JsonPath::parse(s).expect("bench JSONPath")
}

fn template(s: &str) -> Template {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(TemplatePart::Literal(rest[..open].to_string()));
        }
        let close = open + rest[open..].find('}').expect("bench template");
        let inner = &rest[open + 1..close];
        parts.push(if inner == "@key" {
            TemplatePart::Key
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

struct R {
    rule: MetricRule,
}

impl R {
    fn new(name: &str, value: &str) -> Self {
        R::values(name, &[("", value)])
    }

    /// `values:`; an empty key means `path:`.
    fn values(name: &str, values: &[(&str, &str)]) -> Self {
        let values = values
            .iter()
            .map(|(k, v)| RuleValue {
                name: if k.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}.{k}")
                },
                source: match v.parse::<f64>() {
                    Ok(c) => ValueSource::Const(c),
                    Err(_) => ValueSource::Path(path(v)),
                },
            })
            .collect();
        R {
            rule: MetricRule {
                name: name.to_string(),
                description: String::new(),
                kind: RuleKind::Gauge,
                unit: String::new(),
                each: None,
                each_inner: Vec::new(),
                values,
                labels: Vec::new(),
                scale: None,
                parse: Parse::Auto,
                map: BTreeMap::new(),
                optional: false,
                aggregate: None,
            },
        }
    }

    fn each(mut self, each: &str) -> Self {
        self.rule.each = Some(path(each));
        self
    }

    fn labels(mut self, labels: &[(&str, &str)]) -> Self {
        self.rule.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), template(v)))
            .collect();
        self
    }

    fn kind(mut self, kind: RuleKind) -> Self {
        self.rule.kind = kind;
        self
    }

    fn parse(mut self, parse: Parse) -> Self {
        self.rule.parse = parse;
        self
    }

    fn scale(mut self, scale: f64) -> Self {
        self.rule.scale = Some(scale);
        self
    }

    fn map(mut self, entries: &[(&str, f64)]) -> Self {
        self.rule.map = entries.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        self
    }
}

fn rules() -> Vec<MetricRule> {
    let states = || vec!["healthy".into(), "degraded".into(), "unhealthy".into()];
    let health = [("healthy", 1.0), ("degraded", 0.5), ("unhealthy", 0.0)];
    vec![
        R::new("app.up", "$.status").map(&health),
        R::new("app.uptime", "$.uptime").parse(Parse::Duration),
        R::new("app.build", "1")
            .kind(RuleKind::Info)
            .labels(&[("version", "{$.version}"), ("commit", "{$.commit}")]),
        R::new("app.start_time", "$.started_at").parse(Parse::Timestamp),
        R::new("dependency.latency", "$.latency_ms")
            .each("$.checks.*")
            .scale(0.001)
            .labels(&[("dependency", "{@key}"), ("type", "{$.type}")]),
        R::new("dependency.up", "$.healthy")
            .each("$.checks.*")
            .labels(&[("dependency", "{@key}")]),
        R::new("dependency.status", "$.status")
            .each("$.checks.*")
            .kind(RuleKind::StateSet(states()))
            .labels(&[("dependency", "{@key}")]),
        R::values(
            "dependency",
            &[
                ("pool.size", "$.pool.size"),
                ("pool.used", "$.pool.used"),
                ("errors", "$.errors"),
            ],
        )
        .each("$.checks.*")
        .labels(&[("dependency", "{@key}"), ("env", "prod")]),
        R::new("disk.free", "$.disk.free").parse(Parse::Bytes),
        R::new("memory.rss", "$.memory.rss").parse(Parse::Bytes),
        R::values(
            "worker.jobs",
            &[
                ("done", "$.jobs_done"),
                ("failed", "$.jobs_failed"),
                ("busy", "$.busy"),
            ],
        )
        .each("$.workers[*]")
        .labels(&[("worker", "{$.name}"), ("index", "{@key}")]),
        R::new("worker.last_job", "$.last_job")
            .each("$.workers[*]")
            .parse(Parse::Timestamp)
            .labels(&[("worker", "{$.name}")]),
        R::new("worker.runtime", "$.runtime")
            .each("$.workers[*]")
            .parse(Parse::Duration)
            .labels(&[("worker", "{$.name}")]),
        R::new("queue.depth", "$")
            .each("$.queues.*")
            .labels(&[("queue", "{@key}")]),
        R::new("feature.enabled", "$")
            .each("$.features.*")
            .labels(&[("feature", "{@key}")]),
        R::new("cache.hit_ratio", "$.cache.hit_ratio"),
        R::new("cache.entries", "$.cache.entries"),
        R::new("requests", "$.stats.requests_total").kind(RuleKind::Counter),
        R::new("errors", "$.stats.errors_total").kind(RuleKind::Counter),
        R::new("dependency.db.pool.used", "$.pool.used")
            .each("$.checks[?@.type == 'database']")
            .labels(&[("dependency", "{@key}"), ("message", "{$.message}")])
            .map(&[("0", 0.0)]),
    ]
    .into_iter()
    .map(|r| r.rule)
    .collect()
}

fn target() -> Target {
    Target {
        name: "checkout".to_string(),
        url: "http://127.0.0.1:8080/health".parse().expect("bench URL"),
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
        metrics: rules().into(),
    }
}

fn bench(c: &mut Criterion) {
    let target = target();
    assert_eq!(target.metrics.len(), 20);
    let base = [
        KeyValue::new("target", std::sync::Arc::<str>::from("checkout")),
        KeyValue::new("team", std::sync::Arc::<str>::from("payments")),
    ];
    for (label, n) in [("10KB", 12), ("1MB", 850)] {
        let text = document(n);
        let doc: Value = serde_json::from_str(&text).expect("bench document");
        let extractor = Extractor::new(&target);
        let x = extractor.extract(&doc, usize::MAX, &base);
        let limits = Limits {
            max_series: usize::MAX,
            max_bytes: 4 << 20,
        };
        let y = extractor
            .extract_body(text.as_bytes(), limits, &base)
            .expect("bench document");
        assert_eq!((x.series, x.dropped), (y.series, y.dropped));
        println!(
            "{label}: {} bytes, {} series, {} errors ({} counted), {} unread",
            text.len(),
            x.series,
            x.errors.len(),
            x.errors.iter().map(|e| e.count).sum::<u64>(),
            y.unread,
        );
        let mut group = c.benchmark_group(label);
        group.throughput(Throughput::Bytes(text.len() as u64));
        if n > 100 {
            group.sample_size(20);
        }
        group.bench_function("parse+extract", |b| {
            b.iter(|| {
                extractor
                    .extract_body(black_box(text.as_bytes()), limits, &base)
                    .expect("bench document")
            })
        });
        // The per-rule account the poller keeps of each poll (hints included).
        // (The poller moves the trace in; here each run clones it.)
        let families = std::sync::Arc::new(y.families.clone());
        group.bench_function("explain", |b| {
            b.iter(|| {
                extractor.explain(
                    families.clone(),
                    black_box(y.trace.clone()),
                    &y.errors,
                    Some(text.as_bytes()),
                    base.len(),
                )
            })
        });
        // The same with one rule whose path misses (`$.servce`): its hint
        // reads the body once more to name the nearest keys.
        let mut typo = target.clone();
        let mut rules = typo.metrics.to_vec();
        rules.push(R::new("app.typo", "$.servce").rule);
        typo.metrics = rules.into();
        let typo = Extractor::new(&typo);
        let t = typo
            .extract_body(text.as_bytes(), limits, &base)
            .expect("bench document");
        let typo_families = std::sync::Arc::new(t.families.clone());
        group.bench_function("explain, a path missing", |b| {
            b.iter(|| {
                typo.explain(
                    typo_families.clone(),
                    black_box(t.trace.clone()),
                    &t.errors,
                    Some(text.as_bytes()),
                    base.len(),
                )
            })
        });
        group.bench_function("parse all+extract", |b| {
            b.iter(|| {
                let doc: Value = serde_json::from_str(black_box(&text)).expect("bench document");
                extractor.extract(&doc, usize::MAX, &base)
            })
        });
        group.bench_function("extract", |b| {
            b.iter(|| extractor.extract(black_box(&doc), usize::MAX, &base))
        });
        if n > 100 {
            // The default `limits.max_series_per_target`: the rest is still
            // evaluated (to count drops and errors) but not kept.
            group.bench_function("extract, cap 2000", |b| {
                b.iter(|| extractor.extract(black_box(&doc), 2000, &base))
            });
        } else {
            // Rules compiled at every poll (the one-call `extract`).
            group.bench_function("compile+extract", |b| {
                b.iter(|| extract(&target, black_box(&doc), usize::MAX, &base))
            });
            group.bench_function("compile", |b| b.iter(|| Extractor::new(black_box(&target))));
            // Base labels built from `String`s: every clone allocates.
            let owned = [
                KeyValue::new("target", "checkout".to_string()),
                KeyValue::new("team".to_string(), "payments".to_string()),
            ];
            group.bench_function("extract, String base labels", |b| {
                b.iter(|| extractor.extract(black_box(&doc), usize::MAX, &owned))
            });
        }
        group.bench_function("parse", |b| {
            b.iter(|| serde_json::from_str::<Value>(black_box(&text)).expect("bench document"))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
