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

/// The served names computed are exactly the families
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
    let found = served_as(&BTreeMap::new(), &specs);
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

/// What `served_as` computes is what the SDK and the text reader serve
/// when the specs are registered in a meter provider set up as the
/// pipeline's (the probe remora ran before), for the naming rules: dots and
/// other characters sanitised, a leading digit, unit suffixes (`s`, `ms`,
/// `By`, `KiBy`, `1`, `%`, `x/y`, `{item}`, unknown ones), counters'
/// `_total`, names already suffixed, families of one name and two types,
/// names equal but for case, names and units the SDK rejects, repeated
/// names, `target_info` with and without a resource.
#[test]
fn served_as_agrees_with_the_sdk() {
    use opentelemetry::metrics::MeterProvider as _;
    use InstrumentKind::*;

    /// The former probe: the specs observed through the SDK, read back.
    fn sdk_probe(
        resource: &BTreeMap<String, String>,
        specs: &[InstrumentSpec],
        which: &[usize],
        found: &mut ServedAs,
    ) {
        let reader = super::text::TextReader::new(true);
        let provider =
            super::exporter::provider(resource, BTreeMap::new(), 4, Some(reader.clone()), None)
                .unwrap();
        let meter = provider.meter("remora");
        for &i in which {
            let attrs = [KeyValue::new("remora_probe", i.to_string())];
            super::exporter::register(&meter, &specs[i], move |o| o.observe(i as f64, &attrs));
        }
        let rm = reader.collect_now().unwrap();
        for (name, fam) in reader.families(&rm, std::iter::empty()) {
            let served = crate::model::passthrough::Served {
                kind: fam.kind,
                help: fam.help.to_string(),
            };
            let mut any = false;
            for p in &fam.points {
                let index = p
                    .labels
                    .iter()
                    .find(|(k, _)| k == "remora_probe")
                    .and_then(|(_, v)| v.parse::<usize>().ok());
                if let Some(slot) = index.and_then(|i| found.specs.get_mut(i)) {
                    *slot = Some((name.clone(), served.clone()));
                    any = true;
                }
            }
            if !any && !found.extra.iter().any(|(n, _)| *n == name) {
                found.extra.push((name, served));
            }
        }
        let _ = provider.shutdown();
    }

    fn sdk_served_as(resource: &BTreeMap<String, String>, specs: &[InstrumentSpec]) -> ServedAs {
        crate::exposition::names::served_by(specs, |which, found| {
            sdk_probe(resource, specs, which, found)
        })
    }

    let spec = InstrumentSpec::new;
    let long_name = format!("a{}", "b".repeat(255));
    let long_unit = "u".repeat(64);
    let mut specs = vec![
        spec("app.requests", Counter, "", "Requests"),
        spec("app.latency", Gauge, "ms", "Latency"),
        spec("app.uptime", Counter, "s", "Uptime"),
        spec("app.uptime_seconds", Gauge, "s", "already suffixed"),
        spec("app.sent", Counter, "By", "Bytes sent"),
        spec("app.sent_bytes_total", Counter, "By", "already suffixed"),
        spec("app.heap", Gauge, "KiBy", ""),
        spec("app.disk", Gauge, "GB", ""),
        spec("app.ratio", Gauge, "1", "a ratio"),
        spec("app.pct", Gauge, "%", ""),
        spec("app.rate", Gauge, "By/s", ""),
        spec("app.rate2", Gauge, "1/s", ""),
        spec("app.rate3", Gauge, "{req}/min", ""),
        spec("app.rate4", Gauge, "{req}/m", ""),
        spec("app.temp", Gauge, "Cel", ""),
        spec("app.queue", UpDownCounter, "{item}", "Queue"),
        spec("app.odd", Gauge, "furlongs", ""),
        spec("app-dash/slash.x", Gauge, "", ""),
        spec("app.requests.total", Gauge, "", "conflicting type"),
        spec("app.requests_total", Counter, "", "a counter of one name"),
        spec("app.requests", Counter, "", "repeated"),
        spec("App.Requests", Counter, "", "Requests"),
        spec("App.Latency", Gauge, "ms", "another HELP"),
        spec("app.x", UpDownCounter, "", "first x"),
        spec("app_x", Gauge, "", "second x"),
        spec("app.y", Counter, "", ""),
        spec("app.y.total", UpDownCounter, "", ""),
        spec("target_info", Gauge, "", "a rule named target_info"),
        spec("target.info", Counter, "", ""),
        spec("1app", Gauge, "", "a leading digit"),
        spec("app x", Gauge, "", "a space"),
        spec("app.é", Gauge, "", "not ASCII"),
        spec("", Gauge, "", "no name"),
        spec(&long_name, Gauge, "", "too long"),
        spec("app.unit", Gauge, &long_unit, "unit too long"),
        spec("app.unit2", Gauge, "µs", "unit not ASCII"),
        spec("a", Gauge, "", ""),
    ];
    specs.extend(crate::host::self_process_specs());
    specs.extend(super::own::own_specs());
    let check = |resource: &BTreeMap<String, String>, specs: &[InstrumentSpec]| {
        let ours = served_as(resource, specs);
        let sdk = sdk_served_as(resource, specs);
        for (i, (a, b)) in ours.specs.iter().zip(&sdk.specs).enumerate() {
            assert_eq!(a, b, "spec {i} {:?} ({:?})", specs[i].name, specs[i].unit);
        }
        assert_eq!(ours.extra, sdk.extra);
    };
    let with_resource: BTreeMap<String, String> =
        [("service.name".to_string(), "checkout".to_string())].into();
    for resource in [BTreeMap::new(), with_resource] {
        check(&resource, &specs);
        check(&resource, &[]);
        // Each alone, and in the reverse order (another spec first).
        for s in &specs {
            check(&resource, std::slice::from_ref(s));
        }
        let reversed: Vec<InstrumentSpec> = specs.iter().rev().cloned().collect();
        check(&resource, &reversed);
    }
    let ours = served_as(&BTreeMap::new(), &specs);
    let name = |i: usize| ours.specs[i].as_ref().map(|(n, _)| n.as_str());
    assert_eq!(name(2), Some("app_uptime_seconds_total"));
    assert_eq!(name(8), Some("app_ratio_ratio"));
    assert_eq!(name(29), None, "a leading digit: no instrument");
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

/// A render takes one read lock of the store and writes everything from
/// that snapshot: remora's own instruments, a JSON target's families, a
/// host collector's, remora's process, the pass-through families; and the
/// global labels reach every one of them.
#[test]
fn a_render_reads_the_store_once() {
    let store = Store::new();
    let c = config("global:\n  labels: {cluster: eu1}\n");
    let specs = [
        InstrumentSpec::new("app.queue", InstrumentKind::Gauge, "", "Queue"),
        InstrumentSpec::new("system.cpu.time", InstrumentKind::Counter, "s", "CPU"),
        InstrumentSpec::new("process.cpu.time", InstrumentKind::Counter, "s", "own CPU"),
    ];
    let p = Pipeline::build(&c, &specs, &BTreeMap::new(), store.clone()).unwrap();
    {
        let mut w = store.write();
        let fam = |name: &str, v: f64| {
            Arc::new(vec![Family {
                name: name.into(),
                series: vec![Series::new(vec![KeyValue::new("k", "v")], v)],
            }])
        };
        let mut json = TargetState {
            polled: true,
            up: true,
            families: fam("app.queue", 3.0),
            labels: vec![KeyValue::new("target", "json")].into(),
            ..Default::default()
        };
        json.polls.insert(crate::store::PollResult::Success, 2);
        w.targets.insert("json".into(), json);
        let prom = TargetState {
            polled: true,
            up: true,
            passthrough: Some(Arc::new(vec![crate::model::passthrough::PromFamily {
                name: "app_passed".into(),
                help: Some("Passed".into()),
                kind: Kind::Gauge,
                samples: "app_passed{cluster=\"eu1\",target=\"prom\"} 7\n".into(),
                openmetrics: None,
            }])),
            ..Default::default()
        };
        w.targets.insert("prom".into(), prom);
        let cpu = crate::store::CollectorState {
            up: true,
            families: fam("system.cpu.time", 5.0),
            ..Default::default()
        };
        w.collectors.insert("cpu".into(), cpu);
        w.own_process = fam("process.cpu.time", 0.5);
    }
    let before = store.reads();
    let text = String::from_utf8(render_once(&p, &store).unwrap()).unwrap();
    assert_eq!(store.reads() - before, 1, "one read lock a render");
    for line in [
        "remora_target_up{cluster=\"eu1\",target=\"json\"} 1",
        "remora_target_polls_total{cluster=\"eu1\",result=\"success\",target=\"json\"} 2",
        "remora_build_info{cluster=\"eu1\",",
        "app_queue{cluster=\"eu1\",k=\"v\",target=\"json\"} 3",
        "system_cpu_time_seconds_total{cluster=\"eu1\",k=\"v\"} 5",
        "process_cpu_time_seconds_total{cluster=\"eu1\",k=\"v\"} 0.5",
        "app_passed{cluster=\"eu1\",target=\"prom\"} 7",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    let before = store.reads();
    render(&p);
    assert_eq!(store.reads() - before, 1, "Pipeline::render: one read lock");
}
