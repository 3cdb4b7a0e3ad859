//! Unit tests of relabelling and merging.

use super::*;
use crate::exposition::{write_exposition, Own, OwnBlock};

/// Writes pass-through families alone (no pipeline families).
fn render<'a>(out: &mut Vec<u8>, sources: impl Iterator<Item = &'a [PromFamily]>) {
    write_exposition(out, Own::default(), &ServedNames::new(), sources);
}

const APP: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="GET",code="200"} 1027 1395066363000
http_requests_total{method="POST",code="400"} 3
# HELP request_seconds Latency.
# TYPE request_seconds histogram
request_seconds_bucket{le="0.1"} 5
request_seconds_bucket{le="+Inf"} 7
request_seconds_sum 1.5
request_seconds_count 7
# TYPE rpc summary
rpc{quantile="0.5"} 0.2
rpc_sum 10
rpc_count 50
# HELP process_cpu_seconds_total CPU.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# TYPE process_open_fds untyped
process_open_fds 12
untyped_thing{target="app-own"} NaN
"#;

fn labels() -> Vec<(String, String)> {
    vec![
        ("target".into(), "app".into()),
        ("cluster".into(), "eu\"1".into()),
    ]
}

/// What remora serves itself in these tests.
fn served() -> ServedNames {
    let s = |kind| Served {
        kind,
        help: "remora's".into(),
    };
    [
        ("process_cpu_seconds_total".to_string(), s(Kind::Counter)),
        ("process_open_fds".to_string(), s(Kind::Gauge)),
    ]
    .into_iter()
    .collect()
}

fn text(families: &[PromFamily]) -> String {
    let mut out = Vec::new();
    render(&mut out, std::iter::once(families));
    String::from_utf8(out).unwrap()
}

#[test]
fn relabels_and_keeps_everything() {
    let r = relabel(APP, &labels(), &served(), 100).unwrap();
    let text = text(&r.families);
    assert!(
        text.contains("# TYPE http_requests_total counter\n"),
        "{text}"
    );
    assert!(text.contains(r#"http_requests_total{method="GET",code="200",target="app",cluster="eu\"1"} 1027 1395066363000"#), "{text}");
    assert!(
        text.contains(r#"request_seconds_bucket{le="+Inf",target="app",cluster="eu\"1"} 7"#),
        "{text}"
    );
    assert!(
        text.contains(r#"request_seconds_count{target="app",cluster="eu\"1"} 7"#),
        "{text}"
    );
    assert!(
        text.contains(r#"rpc{quantile="0.5",target="app",cluster="eu\"1"} 0.2"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"untyped_thing{exported_target="app-own",target="app",cluster="eu\"1"} NaN"#
        ),
        "{text}"
    );
    // Same name and type as remora's own: kept (merged at render).
    assert!(
        text.contains(r#"process_cpu_seconds_total{target="app",cluster="eu\"1"} 12.5"#),
        "{text}"
    );
    // Same name, another type: dropped and named.
    assert!(!text.contains("process_open_fds"), "{text}");
    assert_eq!(r.dropped_families, vec!["process_open_fds".to_string()]);
    assert_eq!(r.series, 11);
}

#[test]
fn merges_with_remoras_own_family_and_its_help() {
    let r = relabel(APP, &labels(), &served(), 100).unwrap();
    let text = b"# HELP process_cpu_seconds_total remora's\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\n".to_vec();
    let own = Own {
        blocks: vec![OwnBlock {
            name: "process_cpu_seconds_total".into(),
            kind: Kind::Counter,
            text: 0..text.len(),
        }],
        text,
    };
    let mut out = Vec::new();
    write_exposition(
        &mut out,
        own,
        &served(),
        std::iter::once(r.families.as_slice()),
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text.matches("# TYPE process_cpu_seconds_total").count(),
        1,
        "{text}"
    );
    assert!(text.contains("# HELP process_cpu_seconds_total remora's\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\nprocess_cpu_seconds_total{target=\"app\""), "{text}");
    assert!(!text.contains("CPU."), "remora's HELP wins: {text}");
}

#[test]
fn merges_families_of_two_targets_and_leaves_out_a_clash() {
    let a = relabel(
        APP,
        &[("target".into(), "a".into())],
        &ServedNames::new(),
        100,
    )
    .unwrap();
    let b = relabel(
        APP,
        &[("target".into(), "b".into())],
        &ServedNames::new(),
        100,
    )
    .unwrap();
    let c = relabel(
        "# TYPE http_requests_total gauge\nhttp_requests_total 1\n# TYPE request_seconds_count gauge\nrequest_seconds_count 1\n",
        &[("target".into(), "c".into())],
        &ServedNames::new(),
        100,
    )
    .unwrap();
    let mut out = Vec::new();
    render(
        &mut out,
        [
            a.families.as_slice(),
            b.families.as_slice(),
            c.families.as_slice(),
        ]
        .into_iter(),
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("# TYPE http_requests_total ").count(), 1);
    assert_eq!(text.matches("http_requests_total{").count(), 4);
    assert!(!text.contains("target=\"c\""), "{text}");
    assert_eq!(text.matches("request_seconds_count{").count(), 2);
}

#[test]
fn exported_prefix_repeats_while_taken() {
    let r = relabel(
        "m{exported_target=\"x\",target=\"y\",exported_exported_target=\"z\",cluster=\"w\"} 1\n",
        &labels(),
        &ServedNames::new(),
        100,
    )
    .unwrap();
    assert_eq!(
        r.families[0].samples,
        "m{exported_target=\"x\",exported_exported_exported_target=\"y\",exported_exported_target=\"z\",exported_cluster=\"w\",target=\"app\",cluster=\"eu\\\"1\"} 1\n"
    );
}

#[test]
fn groups_split_families_and_normalises() {
    let body = "# TYPE a gauge\na{x=\"1\"} 1\n# HELP b bad \\d help\n# TYPE b gauge\nb +1e3\n\
                a{x=\"2\"} infinity\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nb2 1\nh_sum -nan\nh_count 1\n";
    let r = relabel(body, &[], &ServedNames::new(), 100).unwrap();
    let text = text(&r.families);
    assert_eq!(
        text,
        "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} +Inf\n# HELP b bad \\\\d help\n# TYPE b gauge\nb +1e3\n\
         # TYPE b2 untyped\nb2 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum NaN\nh_count 1\n"
    );
}

#[test]
fn caps_series() {
    let r = relabel(APP, &labels(), &ServedNames::new(), 3).unwrap();
    assert_eq!(r.series, 3);
    assert_eq!(r.dropped, 9);
}

#[test]
fn rejects_malformed_input() {
    for bad in [
        "metric{a=\"1\" 1\n",
        "metric 1 2 3\n",
        "metric abc\n",
        "1metric 1\n",
        "metric{a=1} 1\n",
        "# TYPE m counter\n# TYPE m gauge\nm 1\n",
        "# TYPE m banana\n",
        "metric{a=\"unterminated} 1\n",
        "metric{a=\"\\d\"} 1\n",
        "metric{a=\"1\",a=\"2\"} 1\n",
        "metric{__name__=\"x\"} 1\n",
        "m 1\n# TYPE m gauge\n",
        "m_sum 1\n# TYPE m summary\nm_count 1\n",
        "# TYPE h histogram\nh 1\n",
        "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
        "# TYPE s summary\ns{quantile=\"p50\"} 1\n",
        "# TYPE h histogram\nh_count 1\n# TYPE h_count gauge\n",
    ] {
        assert!(
            relabel(bad, &labels(), &ServedNames::new(), 100).is_err(),
            "accepted {bad:?}"
        );
    }
}

/// Issue 28: a label needing more than `MAX_EXPORTED_PREFIXES` prefixes
/// (remora scraping its own output, round after round) drops its sample,
/// counted by family.
#[test]
fn exported_prefix_depth_is_capped() {
    use crate::targets::prom::MAX_EXPORTED_PREFIXES;
    let deep = |n: usize| format!("{}target", "exported_".repeat(n));
    // The app's labels take prefixes 0..n: remora's `target` needs n+1.
    let body = |n: usize| {
        let labels: Vec<String> = (0..=n).map(|i| format!("{}=\"{i}\"", deep(i))).collect();
        format!("m{{{}}} 1\nok 1\n", labels.join(","))
    };
    let fits = relabel(
        &body(MAX_EXPORTED_PREFIXES - 1),
        &labels(),
        &ServedNames::new(),
        100,
    )
    .unwrap();
    assert_eq!((fits.series, fits.too_deep.len()), (2, 0));
    let r = relabel(
        &body(MAX_EXPORTED_PREFIXES),
        &labels(),
        &ServedNames::new(),
        100,
    )
    .unwrap();
    assert_eq!(r.series, 1);
    assert_eq!(r.too_deep, vec![("m".to_string(), 1)]);
}
