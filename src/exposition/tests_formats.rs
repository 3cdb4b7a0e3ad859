//! The formats other than text 0.0.4, written from one store: OpenMetrics
//! types, names, units, `_created`, stateset labels, `# EOF`, pass-through
//! timestamps, and names under every escaping.

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry::KeyValue;

use super::negotiate::{Escaping, Syntax, Variant};
use super::*;
use crate::config::parse_str;
use crate::model::passthrough::{Kind, PromFamily};
use crate::model::{Family, InstrumentKind, InstrumentSpec, Series};
use crate::store::{CollectorState, Store, TargetState};

const CONFIG: &str = r#"
resource:
  service.name: checkout
targets:
  - name: app
    url: http://127.0.0.1:1/health
    metrics:
      - name: app.build_info
        kind: info
        labels: {version: "{$.version}"}
      - name: app.health
        kind: stateset
        states: [up, down]
        path: $.status
      - name: app.latency
        unit: s
        path: $.latency
      - name: app.jobs
        kind: counter
        path: $.jobs
"#;

/// A pipeline with the rules of [`CONFIG`], a host-style family with dotted
/// keys and a pass-through target, and its store filled.
pub(super) fn filled() -> (Arc<Store>, Pipeline) {
    let config = parse_str(CONFIG, std::path::Path::new("t.yaml"), &|_| None).unwrap();
    let mut specs: Vec<InstrumentSpec> = config.targets[0]
        .metrics
        .iter()
        .flat_map(|r| {
            r.values
                .iter()
                .map(|v| {
                    InstrumentSpec::new(&v.name, r.kind.instrument_kind(), &r.unit, &r.description)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    specs.push(InstrumentSpec::new(
        "system.cpu.time",
        InstrumentKind::Counter,
        "s",
        "CPU time",
    ));
    let store = Store::new();
    let p = Pipeline::build(&config, &specs, &BTreeMap::new(), store.clone()).unwrap();
    let fam = |name: &str, series: Vec<Series>| Family {
        name: Arc::from(name),
        series,
    };
    let kv = |k: &'static str, v: &str| KeyValue::new(k, v.to_string());
    {
        let mut w = store.write();
        w.targets.insert(
            "app".into(),
            TargetState {
                polled: true,
                up: true,
                labels: vec![kv("target", "app")].into(),
                families: Arc::new(vec![
                    fam(
                        "app.build_info",
                        vec![Series::new(vec![kv("version", "1.2")], 1.0)],
                    ),
                    fam(
                        "app.health",
                        vec![
                            Series::new(vec![kv("state", "down")], 0.0),
                            Series::new(vec![kv("state", "up")], 1.0),
                        ],
                    ),
                    fam("app.latency", vec![Series::new(vec![], 0.25)]),
                    fam("app.jobs", vec![Series::new(vec![], 7.0)]),
                ]),
                ..Default::default()
            },
        );
        w.collectors.insert(
            "cpu".into(),
            CollectorState {
                up: true,
                families: Arc::new(vec![fam(
                    "system.cpu.time",
                    vec![
                        Series::new(
                            vec![kv("cpu.logical_number", "0"), kv("cpu.mode", "user")],
                            1.5,
                        ),
                        Series::new(
                            vec![kv("cpu.logical_number", "0"), kv("cpu.mode", "system")],
                            0.5,
                        ),
                    ],
                )]),
                ..Default::default()
            },
        );
        let samples = |s: &str| s.to_string();
        w.targets.insert(
            "prom".into(),
            TargetState {
                polled: true,
                up: true,
                passthrough: Some(Arc::new(vec![
                    PromFamily {
                        name: "http_requests".into(),
                        help: Some("Requests \"served\"".into()),
                        kind: Kind::Counter,
                        samples: samples("http_requests{target=\"prom\"} 3 1700000000123\n"),
                        openmetrics: None,
                    },
                    PromFamily {
                        name: "rpc_seconds".into(),
                        help: None,
                        kind: Kind::Histogram,
                        samples: samples("rpc_seconds_bucket{le=\"0.1\",target=\"prom\"} 1\nrpc_seconds_bucket{le=\"+Inf\",target=\"prom\"} 2\nrpc_seconds_sum{target=\"prom\"} 0.3\nrpc_seconds_count{target=\"prom\"} 2\n"),
                        openmetrics: None,
                    },
                    PromFamily {
                        name: "odd".into(),
                        help: None,
                        kind: Kind::Untyped,
                        samples: samples("odd{target=\"prom\",v=\"a,b}\\\"c\"} 1\n"),
                        openmetrics: None,
                    },
                ])),
                ..Default::default()
            },
        );
    }
    (store, p)
}

/// The body of a variant as remora serves it by default (legacy names).
fn render(p: &Pipeline, store: &Store, syntax: Syntax, escaping: Escaping) -> String {
    render_as(p, store, syntax, escaping, false)
}

/// The body of a variant (`utf8`: `--web.utf8-names`).
fn render_as(
    p: &Pipeline,
    store: &Store,
    syntax: Syntax,
    escaping: Escaping,
    utf8: bool,
) -> String {
    let v = Variant { syntax, escaping };
    String::from_utf8(render_variant(p, store, v, utf8).unwrap()).unwrap()
}

/// [`render_as`] with `--web.utf8-names`.
fn render_utf8(p: &Pipeline, store: &Store, syntax: Syntax, escaping: Escaping) -> String {
    render_as(p, store, syntax, escaping, true)
}

/// Sample names of a text: the first token of each sample line.
fn sample_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l[..l.find(['{', ' ']).unwrap_or(l.len())].to_string())
        .collect()
}

#[test]
fn text_004_and_text_100_underscores_are_todays_bytes() {
    let (store, p) = filled();
    let today = String::from_utf8(render_once(&p, &store).unwrap()).unwrap();
    assert_eq!(
        render(&p, &store, Syntax::Text004, Escaping::Underscores),
        today
    );
    assert_eq!(
        render(&p, &store, Syntax::Text100, Escaping::Underscores),
        today
    );
    // Text 0.0.4 takes no escaping: every variant of it is today's.
    for e in Escaping::ALL {
        assert_eq!(render(&p, &store, Syntax::Text004, e), today);
    }
}

#[test]
fn openmetrics_types_names_units_and_eof() {
    let (store, p) = filled();
    let today = String::from_utf8(render_once(&p, &store).unwrap()).unwrap();
    let om = render(&p, &store, Syntax::OpenMetrics, Escaping::Underscores);
    for want in [
        "# TYPE app_build info\n",
        "app_build_info{target=\"app\",version=\"1.2\"} 1\n",
        "# TYPE app_health stateset\n",
        "app_health{state=\"up\",target=\"app\",app_health=\"up\"} 1\n",
        "# TYPE app_latency_seconds gauge\n# UNIT app_latency_seconds seconds\n",
        "# TYPE app_jobs counter\n",
        "app_jobs_total{target=\"app\"} 7\n",
        "# TYPE system_cpu_time_seconds counter\n# UNIT system_cpu_time_seconds seconds\n",
        "# TYPE remora_build info\n",
        "# TYPE target info\n",
        "# TYPE http_requests unknown\n# HELP http_requests Requests \\\"served\\\"\n",
        "http_requests{target=\"prom\"} 3 1700000000.123\n",
        "# TYPE rpc_seconds histogram\n",
        "# TYPE odd unknown\nodd{target=\"prom\",v=\"a,b}\\\"c\"} 1\n",
    ] {
        assert!(om.contains(want), "{want:?} missing in\n{om}");
    }
    assert!(om.ends_with("\n# EOF\n"), "{om}");
    // remora's own counters get `_created`; the rules' do not.
    assert!(om.contains("remora_build_info{"), "{om}");
    assert!(!om.contains("app_jobs_created"), "{om}");
    // Under underscores every sample name is today's (`_created` aside).
    let names = sample_names(&today);
    for n in sample_names(&om) {
        assert!(
            names.contains(&n) || n.ends_with("_created"),
            "{n} is not today's name"
        );
    }
}

#[test]
fn utf8_names_under_every_escaping() {
    let (store, p) = filled();
    let utf8 = render_utf8(&p, &store, Syntax::OpenMetrics, Escaping::AllowUtf8);
    for want in [
        "# TYPE \"system.cpu.time_seconds\" counter\n# UNIT \"system.cpu.time_seconds\" seconds\n",
        "{\"system.cpu.time_seconds_total\",\"cpu.logical_number\"=\"0\",\"cpu.mode\"=\"user\"} 1.5\n",
        "# TYPE \"app.health\" stateset\n",
        "{\"app.health\",state=\"up\",target=\"app\",\"app.health\"=\"up\"} 1\n",
        "# TYPE \"app.build\" info\n",
        "{\"app.build_info\",target=\"app\",version=\"1.2\"} 1\n",
        "target_info{\"service.name\"=\"checkout\"} 1\n",
        "remora_target_polls_total{result=\"success\",target=\"app\"} 0\n",
        // Legacy names stay unquoted.
        "# TYPE remora_build info\n",
        "http_requests{target=\"prom\"} 3 1700000000.123\n",
    ] {
        assert!(utf8.contains(want), "{want:?} missing in\n{utf8}");
    }
    let text = render_utf8(&p, &store, Syntax::Text100, Escaping::AllowUtf8);
    assert!(
        text.contains("# TYPE \"system.cpu.time_seconds_total\" counter\n"),
        "{text}"
    );
    assert!(
        text.contains("http_requests{target=\"prom\"} 3 1700000000123\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"));
    let dots = render_utf8(&p, &store, Syntax::Text100, Escaping::Dots);
    assert!(
        dots.contains("system_dot_cpu_dot_time__seconds__total{cpu_dot_logical__number=\"0\",cpu_dot_mode=\"user\"} 1.5\n"),
        "{dots}"
    );
    // Legacy names are left as they are (as Go's EscapeMetricFamily does).
    assert!(dots.contains("remora_build_info{"), "{dots}");
    assert!(!dots.contains("remora__"), "{dots}");
    let values = render_utf8(&p, &store, Syntax::OpenMetrics, Escaping::Values);
    assert!(
        values.contains("U__system_2e_cpu_2e_time__seconds__total{U__cpu_2e_logical__number=\"0\",U__cpu_2e_mode=\"user\"} 1.5\n"),
        "{values}"
    );
    assert!(values.contains("remora_build_info{"), "{values}");
}

#[test]
fn without_utf8_names_every_escaping_serves_the_legacy_names() {
    let (store, p) = filled();
    let today = String::from_utf8(render_once(&p, &store).unwrap()).unwrap();
    let om = render(&p, &store, Syntax::OpenMetrics, Escaping::Underscores);
    assert!(
        om.contains("# TYPE system_cpu_time_seconds counter\n"),
        "{om}"
    );
    for e in Escaping::ALL {
        // The dashboard's and the alerts' names, under Prometheus 3's
        // `allow-utf-8` too.
        assert_eq!(render(&p, &store, Syntax::Text100, e), today, "{e:?}");
        assert_eq!(render(&p, &store, Syntax::OpenMetrics, e), om, "{e:?}");
    }
    assert!(!om.contains("system.cpu"), "{om}");
}

/// Prometheus' `UnescapeName` (common/model), written from its rules:
/// `dots` replaces `_dot_` with `.`, then `__` with `_`; `values` takes a
/// name without the `U__` prefix as it is, else reads `__` as `_` and
/// `_HEX_` as the character of that code point, and gives back the name
/// unchanged when it is malformed (a lone `_`, more than 6 hex digits, no
/// closing `_`, not a character).
fn unescape(name: &str, e: Escaping) -> String {
    match e {
        Escaping::Underscores | Escaping::AllowUtf8 => name.to_string(),
        Escaping::Dots => name.replace("_dot_", ".").replace("__", "_"),
        Escaping::Values => {
            let Some(rest) = name.strip_prefix("U__") else {
                return name.to_string();
            };
            let b = rest.as_bytes();
            let mut out = String::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] != b'_' {
                    out.push(b[i] as char);
                    i += 1;
                    continue;
                }
                i += 1;
                if i >= b.len() {
                    return name.to_string();
                }
                if b[i] == b'_' {
                    out.push('_');
                    i += 1;
                    continue;
                }
                let mut v: u32 = 0;
                let mut j = 0;
                loop {
                    if j >= 6 || i >= b.len() {
                        return name.to_string();
                    }
                    if b[i] == b'_' {
                        match char::from_u32(v) {
                            Some(c) => out.push(c),
                            None => return name.to_string(),
                        }
                        i += 1;
                        break;
                    }
                    match (b[i] as char).to_digit(16) {
                        Some(d) => v = v * 16 + d,
                        None => return name.to_string(),
                    }
                    i += 1;
                    j += 1;
                }
            }
            out
        }
    }
}

/// The names of a text's samples and labels, in order, as (metric name,
/// label names) per sample line; a quoted name (`allow-utf-8`) unquoted.
fn sample_keys(text: &str) -> Vec<(String, Vec<String>)> {
    let unquote = |s: &str| s.trim().trim_matches('"').to_string();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (head, labels) = match l.find('{') {
                Some(i) => (&l[..i], &l[i + 1..l.rfind('}').unwrap()]),
                None => (&l[..l.find(' ').unwrap()], ""),
            };
            // Label names: the text before each `=` outside quotes.
            let mut names = Vec::new();
            let (mut quoted, mut escaped, mut start) = (false, false, 0);
            for (i, c) in labels.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => quoted = !quoted,
                    (false, ',') if !quoted => start = i + 1,
                    (false, '=') if !quoted => names.push(unquote(&labels[start..i])),
                    _ => {}
                }
            }
            let mut name = unquote(head);
            if name.is_empty() {
                // `{"system.cpu.time_seconds_total",...}`: the first item.
                let end = labels[1..].find('"').unwrap() + 1;
                name = labels[1..end].to_string();
            }
            (name, names)
        })
        .collect()
}

#[test]
fn dots_and_values_decode_to_the_utf8_names() {
    let (store, p) = filled();
    for syntax in [Syntax::Text100, Syntax::OpenMetrics] {
        let utf8 = sample_keys(&render_utf8(&p, &store, syntax, Escaping::AllowUtf8));
        assert!(
            utf8.iter()
                .any(|(n, _)| n == "system.cpu.time_seconds_total"),
            "{utf8:?}"
        );
        for e in [Escaping::Dots, Escaping::Values] {
            let body = render_utf8(&p, &store, syntax, e);
            let decoded: Vec<(String, Vec<String>)> = sample_keys(&body)
                .into_iter()
                .map(|(n, ls)| (unescape(&n, e), ls.iter().map(|l| unescape(l, e)).collect()))
                .collect();
            assert_eq!(decoded, utf8, "{syntax:?} {e:?}:\n{body}");
        }
    }
    assert_eq!(unescape("U__a_2e_b", Escaping::Values), "a.b");
    assert_eq!(unescape("U__a_2e", Escaping::Values), "U__a_2e");
    assert_eq!(unescape("U__a_zz_", Escaping::Values), "U__a_zz_");
}
