//! Unit tests of the pipeline, served names and encoding.

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry::KeyValue;

use super::*;
use crate::config::parse_str;
use crate::config::Config;
use crate::model::passthrough::Kind;
use crate::model::Series;
use crate::model::{Family, InstrumentKind, InstrumentSpec};
use crate::store::Store;
use crate::store::TargetState;

fn config(text: &str) -> Config {
    parse_str(text, std::path::Path::new("t.yaml"), &|_| None).unwrap()
}

fn render(p: &Pipeline) -> String {
    String::from_utf8(p.render().unwrap()).unwrap()
}

#[test]
fn build_info_and_names() {
    let store = Store::new();
    let c = config("");
    let p = Pipeline::build(&c, &[], &BTreeMap::new(), store.clone()).unwrap();
    let text = render(&p);
    assert!(text.contains("# TYPE remora_build_info gauge"), "{text}");
    assert!(text.contains(&format!("remora_build_info{{revision=\"{REVISION}\",rustc_version=\"{RUSTC_VERSION}\",version=\"{VERSION}\"}} 1")), "{text}");
    assert!(
        !text.contains("target_info"),
        "no resource, no target_info: {text}"
    );
    assert!(!text.contains("otel_scope"), "{text}");
}

#[test]
fn families_follow_the_store_and_vanish() {
    let store = Store::new();
    let c = config("global:\n  labels: {cluster: eu1}\nresource:\n  service.name: checkout\n");
    let specs = [InstrumentSpec::new(
        "app.dependency.latency",
        InstrumentKind::Gauge,
        "s",
        "Latency",
    )];
    let p = Pipeline::build(&c, &specs, &BTreeMap::new(), store.clone()).unwrap();
    let fam = Family {
        name: "app.dependency.latency".into(),
        series: vec![Series::new(
            vec![
                KeyValue::new("target", "a"),
                KeyValue::new("dependency", "db"),
            ],
            0.012,
        )],
    };
    store.write().targets.insert(
        "a".into(),
        TargetState {
            polled: true,
            up: true,
            families: Arc::new(vec![fam]),
            ..Default::default()
        },
    );
    let text = render(&p);
    assert!(
        text.contains(
            "app_dependency_latency_seconds{cluster=\"eu1\",dependency=\"db\",target=\"a\"} 0.012"
        ),
        "{text}"
    );
    assert!(
        text.contains("remora_target_up{cluster=\"eu1\",target=\"a\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("target_info{service_name=\"checkout\"} 1"),
        "{text}"
    );
    // The target goes down: its series disappear from the next render.
    {
        let mut w = store.write();
        let t = w.targets.get_mut("a").unwrap();
        t.up = false;
        t.families = Arc::new(Vec::new());
    }
    let text = render(&p);
    assert!(!text.contains("app_dependency_latency_seconds{"), "{text}");
    assert!(
        text.contains("remora_target_up{cluster=\"eu1\",target=\"a\"} 0"),
        "{text}"
    );
}

/// The served names probed from the exporter are exactly the families
/// (names and types) the real pipeline serves, `target_info` included.
#[test]
fn served_names_match_the_exposition() {
    let store = Store::new();
    let c = config("resource:\n  service.name: checkout\n");
    let specs = crate::host::self_process_specs();
    let p = Pipeline::build(&c, &specs, &BTreeMap::new(), store.clone()).unwrap();
    {
        let mut w = store.write();
        let mut t = TargetState {
            polled: true,
            last_success: Some(1.0),
            dropped: 1,
            ..Default::default()
        };
        t.extraction_errors.insert(("m".into(), "missing"), 1);
        w.targets.insert("a".into(), t);
        let mut cpu = crate::store::CollectorState::default();
        cpu.errors.insert("malformed_line", 1);
        w.collectors.insert("cpu".into(), cpu);
        w.otlp = Some(crate::store::OtlpState {
            last_success: Some(1.0),
            ..Default::default()
        });
        w.own_process =
            Arc::new(crate::host::self_process_families(std::path::Path::new("/proc")).unwrap());
    }
    let text = render(&p);
    let served: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect();
    let probed: BTreeMap<String, String> = served_names(&c, &specs)
        .unwrap()
        .into_iter()
        .map(|(n, s)| (n, s.kind.as_str().to_string()))
        .collect();
    assert_eq!(served, probed);
    assert_eq!(probed["target_info"], "gauge");
    assert_eq!(probed["process_cpu_seconds_total"], "counter");
    assert_eq!(probed["remora_target_poll_duration_seconds"], "gauge");
}

/// Each spec's served name: unit suffix, `_total`, dots sanitised; two
/// instruments of one served name and different types are both found.
#[test]
fn served_as_follows_the_exporter() {
    let specs = [
        InstrumentSpec::new("app.requests", InstrumentKind::Counter, "", ""),
        InstrumentSpec::new("app.latency", InstrumentKind::Gauge, "ms", ""),
        InstrumentSpec::new("app.queue", InstrumentKind::UpDownCounter, "{item}", ""),
        InstrumentSpec::new("app.requests.total", InstrumentKind::Gauge, "", ""),
        InstrumentSpec::new("app.requests", InstrumentKind::Counter, "", ""),
    ];
    let found = served_as(&BTreeMap::new(), &specs).unwrap();
    let names: Vec<(String, Kind)> = found
        .specs
        .into_iter()
        .map(|f| f.map(|(n, s)| (n, s.kind)).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            ("app_requests_total".to_string(), Kind::Counter),
            ("app_latency_milliseconds".to_string(), Kind::Gauge),
            ("app_queue".to_string(), Kind::Gauge),
            ("app_requests_total".to_string(), Kind::Gauge),
            ("app_requests_total".to_string(), Kind::Counter),
        ]
    );
    assert!(found.extra.is_empty());
}

#[test]
fn rule_named_like_remoras_own_is_an_error_at_its_name() {
    let c = config(
        "targets:\n  - name: a\n    url: http://127.0.0.1:1/\n    metrics:\n      - name: app.ok\n        path: $.a\n      - name: process.cpu\n        kind: counter\n        unit: s\n        path: $.b\n      - name: app.x\n        kind: counter\n        path: $.c\n      - name: app.x.total\n        path: $.d\n",
    );
    let errors = check_rule_names(&c, &crate::host::self_process_specs()).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:#?}");
    assert!(text[0].starts_with("t.yaml:7:15: targets[0].metrics[1].name: \"process.cpu\" is served as process_cpu_seconds_total"), "{text:#?}");
    assert!(text[1].starts_with("t.yaml:14:15: targets[0].metrics[3].name: \"app.x.total\" is served as app_x_total (gauge), like \"app.x\" (counter)"), "{text:#?}");
}

#[test]
fn counters_get_total_and_limits_do_not_fold() {
    let store = Store::new();
    let c = config("");
    let specs = [InstrumentSpec::new(
        "app.requests",
        InstrumentKind::Counter,
        "",
        "Requests",
    )];
    let mut limits = BTreeMap::new();
    limits.insert("app.requests".to_string(), 3000);
    let p = Pipeline::build(&c, &specs, &limits, store.clone()).unwrap();
    let series = (0..2500)
        .map(|i| Series::new(vec![KeyValue::new("i", i.to_string())], i as f64))
        .collect();
    store.write().targets.insert(
        "a".into(),
        TargetState {
            polled: true,
            families: Arc::new(vec![Family {
                name: "app.requests".into(),
                series,
            }]),
            ..Default::default()
        },
    );
    let text = render(&p);
    assert_eq!(text.matches("app_requests_total{").count(), 2500);
    assert!(!text.contains("otel_metric_overflow"));
}

/// The text reader writes exactly what `opentelemetry-prometheus` 0.33 and
/// `prometheus`'s `TextEncoder` wrote for the same instruments (both read
/// the same meter provider here): names, unit suffixes, `_total`, family
/// merges and type conflicts, HELP and label escaping, label sanitising and
/// joins, series order, values, `target_info`.
#[test]
fn text_matches_opentelemetry_prometheus() {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::{Array, StringValue, Value};
    use opentelemetry_sdk::metrics::SdkMeterProvider;
    use prometheus::Encoder as _;

    let registry = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .scope_info_enabled(false)
        .build()
        .unwrap();
    let reader = super::text::TextReader::new(true);
    let provider = SdkMeterProvider::builder()
        .with_reader(exporter)
        .with_reader(reader.clone())
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_attributes([
                    KeyValue::new("service.name", "check\"out"),
                    KeyValue::new("service_name", "dup"),
                    KeyValue::new("k8s.pod.name", "p-1"),
                ])
                .build(),
        )
        .build();
    let meter = provider.meter("remora");
    let specs = [
        (
            "app.requests",
            InstrumentKind::Counter,
            "",
            "Requests\nwith a \\ and \"quotes\"",
        ),
        ("app.latency", InstrumentKind::Gauge, "ms", "Latency"),
        ("app.queue", InstrumentKind::UpDownCounter, "{item}", ""),
        (
            "app.requests.total",
            InstrumentKind::Gauge,
            "",
            "conflicting type",
        ),
        ("app.size", InstrumentKind::Gauge, "By", "Size"),
        ("app.ratio", InstrumentKind::Gauge, "1", "Ratio"),
        ("app.rate", InstrumentKind::Gauge, "By/s", "Rate"),
        ("app.per", InstrumentKind::Gauge, "1/s", "Per"),
        ("app.odd", InstrumentKind::Gauge, "foo/s", "Odd"),
        ("app.odd2", InstrumentKind::Gauge, "By/x", "Odd too"),
        ("app.x-y/z", InstrumentKind::Gauge, "Cel", "Temperature"),
        ("app.help", InstrumentKind::Gauge, "", "first help"),
        ("app_help", InstrumentKind::Gauge, "", "second help"),
        ("app.empty", InstrumentKind::Gauge, "", "Nothing observed"),
        ("zz.last", InstrumentKind::Counter, "s", ""),
    ];
    for (i, (name, kind, unit, help)) in specs.into_iter().enumerate() {
        let spec = InstrumentSpec::new(name, kind, unit, help);
        let series: Vec<(Vec<KeyValue>, f64)> = if name == "app.empty" {
            Vec::new()
        } else {
            vec![
                (
                    vec![
                        KeyValue::new("b", "x"),
                        KeyValue::new("a.b", "dotted"),
                        KeyValue::new("a_b", "under"),
                    ],
                    1e21,
                ),
                (vec![KeyValue::new("z", "q\"uo\\te\nnl")], 0.1 + i as f64),
                (vec![KeyValue::new("z", "a")], -0.0),
                (
                    vec![KeyValue::new("z", "b"), KeyValue::new("n", 42_i64)],
                    f64::NAN,
                ),
                (
                    vec![
                        KeyValue::new("z", "c"),
                        KeyValue::new("f", 1.5),
                        KeyValue::new("t", true),
                    ],
                    f64::INFINITY,
                ),
                (
                    vec![KeyValue::new(
                        "arr",
                        Value::Array(Array::String(vec![
                            StringValue::from("x"),
                            StringValue::from("y"),
                        ])),
                    )],
                    1.5e-7,
                ),
                (Vec::new(), 3.0),
                (
                    vec![KeyValue::new("1st", "digit"), KeyValue::new("é", "accent")],
                    12345.678,
                ),
            ]
        };
        super::exporter::register(&meter, &spec, move |o| {
            for (attrs, v) in &series {
                o.observe(*v, attrs);
            }
        });
    }
    for round in 0..2 {
        let mut theirs = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut theirs)
            .unwrap();
        let rm = reader.collect_now().unwrap();
        let mut ours = Vec::new();
        for (name, fam) in reader.families(&rm, std::iter::empty()) {
            super::text::write_family(&mut ours, &name, &fam);
        }
        let (ours, theirs) = (
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap(),
        );
        assert!(theirs.contains("app_rate_bytes_per_second"), "{theirs}");
        assert_eq!(ours, theirs, "round {round}");
    }
}
