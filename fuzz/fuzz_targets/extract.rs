//! Extraction over arbitrary JSON with a fixed rule set covering every rule
//! kind and option: no panic, the cap holds, no two kept series share an
//! instrument and labels, and the counts add up. The poller's path (parsing
//! the bytes into only what the rules reach) gives the same result as
//! extracting from the whole parsed document.
#![no_main]

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use opentelemetry::KeyValue;
use serde_json_path::JsonPath;

use remora::config::{
    Format, Method, MetricRule, Parse, RuleKind, RuleValue, Target, Template, TemplatePart,
    TlsConfig, ValueSource,
};
use remora::targets::extract::{extract, specs, Extraction, Extractor, Limits};

const MAX_SERIES: usize = 64;

fn path(s: &str) -> JsonPath {
    JsonPath::parse(s).expect("fixed JSONPath")
}

fn template(parts: Vec<TemplatePart>) -> Template {
    Template {
        source: String::new(),
        parts,
    }
}

fn rule(name: &str, kind: RuleKind, each: Option<&str>, values: &[(&str, &str)]) -> MetricRule {
    MetricRule {
        name: name.to_string(),
        description: String::new(),
        kind,
        unit: String::new(),
        each: each.map(path),
        each_inner: Vec::new(),
        values: values
            .iter()
            .map(|(key, source)| RuleValue {
                name: if key.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}.{key}")
                },
                source: match source.parse::<f64>() {
                    Ok(c) => ValueSource::Const(c),
                    Err(_) => ValueSource::Path(path(source)),
                },
            })
            .collect(),
        labels: Vec::new(),
        scale: None,
        parse: Parse::Auto,
        map: BTreeMap::new(),
        optional: false,
        aggregate: None,
    }
}

fn target() -> Target {
    let key = || template(vec![TemplatePart::Key]);
    let field = |p: &str| {
        template(vec![
            TemplatePart::Literal("x-".into()),
            TemplatePart::Path(path(p)),
        ])
    };

    let mut up = rule("up", RuleKind::Gauge, None, &[("", "$.status")]);
    up.map = [("healthy".to_string(), 1.0), ("true".to_string(), 0.0)].into();
    let mut uptime = rule("uptime", RuleKind::Gauge, None, &[("", "$.uptime")]);
    uptime.parse = Parse::Duration;
    let mut started = rule("started", RuleKind::Counter, None, &[("", "$.started")]);
    started.parse = Parse::Timestamp;
    started.optional = true;
    let mut free = rule(
        "free",
        RuleKind::UpDownCounter,
        Some("$.disks[*]"),
        &[("", "$.free")],
    );
    free.parse = Parse::Bytes;
    free.labels = vec![("disk".into(), key()), ("name".into(), field("$.name"))];
    let mut dep = rule(
        "dep",
        RuleKind::Gauge,
        Some("$.checks.*"),
        &[
            ("latency", "$.latency_ms"),
            ("up", "$.healthy"),
            ("one", "1"),
        ],
    );
    dep.scale = Some(0.001);
    dep.labels = vec![("dependency".into(), key())];
    let mut state = rule(
        "state",
        RuleKind::StateSet(vec!["ok".into(), "down".into(), "true".into()]),
        Some("$..status"),
        &[("", "$")],
    );
    state.labels = vec![("at".into(), key())];
    let mut build = rule("build", RuleKind::Info, None, &[("", "1")]);
    build.labels = vec![("version".into(), field("$.version"))];
    build.optional = true;
    let mut deep = rule("deep", RuleKind::Gauge, Some("$..*[?@.v]"), &[("", "$.v")]);
    deep.labels = vec![("k".into(), key()), ("v".into(), field("$.v"))];
    let again = rule("up", RuleKind::Gauge, None, &[("", "$.status")]);

    Target {
        name: "fuzz".into(),
        url: "http://127.0.0.1:1/".parse().expect("fixed URL"),
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
        metrics: vec![up, uptime, started, free, dep, state, build, deep, again].into(),
    }
}

/// Every kept series as text, in order.
fn samples(x: &Extraction) -> Vec<String> {
    let mut out = Vec::new();
    for f in &x.families {
        for s in &f.series {
            out.push(format!("{} {:?} {}", f.name, s.attributes, s.value));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    static TARGET: OnceLock<Target> = OnceLock::new();
    static EXTRACTOR: OnceLock<Extractor> = OnceLock::new();
    let target = TARGET.get_or_init(target);
    let extractor = EXTRACTOR.get_or_init(|| Extractor::new(target));
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let base = [KeyValue::new("target", "fuzz")];
    let x = extract(target, &doc, MAX_SERIES, &base);

    let specs = specs(target);
    assert_eq!(x.families.len(), specs.len());
    let mut kept = 0;
    let mut seen = HashSet::new();
    for (family, spec) in x.families.iter().zip(&specs) {
        assert_eq!(&*family.name, spec.name);
        for s in &family.series {
            kept += 1;
            assert!(s.value.is_finite());
            assert_eq!(s.attributes[0], base[0]);
            let labels: Vec<String> = s
                .attributes
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            assert!(
                seen.insert((family.name.to_string(), labels)),
                "duplicate kept"
            );
        }
    }
    assert_eq!(kept, x.series);
    assert!(x.series <= MAX_SERIES);

    let limits = Limits {
        max_series: MAX_SERIES,
        max_bytes: 1 << 30,
    };
    let y = extractor
        .extract_body(data, limits, &base)
        .expect("valid JSON for serde_json is valid for the projected parse");
    assert_eq!(samples(&x), samples(&y));
    assert_eq!(x.errors, y.errors);
    assert_eq!((x.series, x.dropped, y.unread), (y.series, y.dropped, 0));
});
