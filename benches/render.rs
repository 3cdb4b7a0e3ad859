//! Cost of one render alone: the pipeline of one target with 3 instruments
//! (a counter, a gauge with a unit, a plain gauge) of N items each, rendered
//! to Prometheus text from the store, as the render thread does it
//! (remora's own instruments through the SDK, the store's families written
//! straight from the store, the text encoding; no gzip, no poll).
//!
//! Run with `cargo bench --bench render`; it prints, per size, the median
//! and best time of a render and the time per series. `RENDER_SIZES`
//! (items, default `100 1000 10000 33334`) and `RENDER_ROUNDS` (default 15)
//! change the run; `RENDER_SECONDS=S` instead renders the last size for S
//! seconds (for `perf record`).
//!
//! A second table gives the render per format at `RENDER_FORMAT_ITEMS`
//! items (default 10000, 30k series): text 0.0.4, and each other format
//! as the render thread makes it (text 0.0.4 rendered, then converted),
//! with the default names and (rows `utf8 ...`) with `--web.utf8-names`;
//! "extra ms" is what the format adds to the 0.0.4 render, the cost of a
//! second format ("extra best": the same from the best times, steadier on
//! a busy machine).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;

use remora::config::parse_str;
use remora::exposition::{render_once, render_variant, Escaping, Pipeline, Syntax, Variant};
use remora::model::{Family, InstrumentKind, InstrumentSpec, Series};
use remora::store::{Store, TargetState};

fn specs() -> Vec<InstrumentSpec> {
    vec![
        InstrumentSpec::new("bench.requests", InstrumentKind::Counter, "", "Requests"),
        InstrumentSpec::new("bench.latency", InstrumentKind::Gauge, "s", "Latency"),
        InstrumentSpec::new("bench.queue", InstrumentKind::Gauge, "", "Queue length"),
    ]
}

/// The families one poll of N items publishes (labels as the extractor
/// makes them: the rule's label; `target` is kept beside them).
fn families(n: usize, round: u64) -> Vec<Family> {
    let names = ["bench.requests", "bench.latency", "bench.queue"];
    names
        .iter()
        .enumerate()
        .map(|(k, name)| Family {
            name: Arc::from(*name),
            series: (0..n)
                .map(|i| {
                    Series::new(
                        vec![KeyValue::new("id", format!("item-{i:06}"))],
                        (i * 7 + k) as f64 + round as f64 * 0.5,
                    )
                })
                .collect(),
        })
        .collect()
}

fn setup(n: usize) -> (Arc<Store>, Pipeline) {
    let config = parse_str("", std::path::Path::new("bench.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let limits: BTreeMap<String, usize> =
        specs().iter().map(|s| (s.name.clone(), n + 16)).collect();
    let store = Store::new();
    let pipeline = Pipeline::build(&config, &specs(), &limits, store.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    (store, pipeline)
}

fn publish(store: &Store, n: usize, round: u64) {
    store.write().targets.insert(
        "bench".into(),
        TargetState {
            polled: true,
            up: true,
            families: Arc::new(families(n, round)),
            labels: vec![KeyValue::new("target", "bench")].into(),
            ..Default::default()
        },
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let sizes: Vec<usize> = std::env::var("RENDER_SIZES")
        .unwrap_or_else(|_| "100 1000 10000 33334".into())
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let rounds: usize = std::env::var("RENDER_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    if let Some(secs) = std::env::var("RENDER_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        let n = sizes.last().copied().unwrap_or(10_000);
        let (store, pipeline) = setup(n);
        let end = Instant::now() + Duration::from_secs(secs);
        let mut round = 0;
        while Instant::now() < end {
            publish(&store, n, round);
            round += 1;
            black_box(render_once(&pipeline, &store).unwrap_or_else(|e| panic!("{e}")));
        }
        println!("{round} renders of {} series", 3 * n);
        return;
    }
    println!(
        "{:>7} {:>8} {:>11} {:>11} {:>12} {:>11}",
        "items", "series", "median ms", "best ms", "ns/series", "bytes"
    );
    for n in sizes {
        let (store, pipeline) = setup(n);
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for round in 0..rounds as u64 {
            publish(&store, n, round);
            let start = Instant::now();
            let text = render_once(&pipeline, &store).unwrap_or_else(|e| panic!("{e}"));
            times.push(start.elapsed());
            bytes = text.len();
            black_box(text);
        }
        times.sort();
        let median = times[times.len() / 2];
        let series = 3 * n;
        println!(
            "{:>7} {:>8} {:>11.2} {:>11.2} {:>12.0} {:>11}",
            n,
            series,
            median.as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e9 / series as f64,
            bytes
        );
    }
    formats(rounds);
}

/// The render per format at `RENDER_FORMAT_ITEMS` items.
fn formats(rounds: usize) {
    let n: usize = std::env::var("RENDER_FORMAT_ITEMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let (store, pipeline) = setup(n);
    let variant = |syntax, escaping| Variant { syntax, escaping };
    // (label, variant, --web.utf8-names). Without the flag, text 1.0.0 under
    // any escaping is the 0.0.4 body and OpenMetrics one body for every
    // escaping (legacy names): one row each.
    let mut cases = vec![
        ("text 0.0.4".to_string(), Variant::TEXT_004, false),
        (
            "text 1.0.0 (any esc.)".to_string(),
            variant(Syntax::Text100, Escaping::AllowUtf8),
            false,
        ),
        (
            "openmetrics (any esc.)".to_string(),
            variant(Syntax::OpenMetrics, Escaping::AllowUtf8),
            false,
        ),
    ];
    for (syntax, name) in [
        (Syntax::Text100, "text 1.0.0"),
        (Syntax::OpenMetrics, "openmetrics"),
    ] {
        for (e, ename) in [
            (Escaping::AllowUtf8, "allow-utf-8"),
            (Escaping::Dots, "dots"),
            (Escaping::Values, "values"),
        ] {
            cases.push((format!("utf8 {name} {ename}"), variant(syntax, e), true));
        }
    }
    println!();
    println!(
        "{:>30} {:>8} {:>11} {:>11} {:>10} {:>10} {:>11}",
        "format", "series", "median ms", "best ms", "extra ms", "extra best", "bytes"
    );
    let (mut base, mut base_best) = (0.0, 0.0);
    for (label, v, utf8) in cases {
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for round in 0..rounds as u64 {
            publish(&store, n, round);
            let start = Instant::now();
            let text = render_variant(&pipeline, &store, v, utf8).unwrap_or_else(|e| panic!("{e}"));
            times.push(start.elapsed());
            bytes = text.len();
            black_box(text);
        }
        times.sort();
        let median = times[times.len() / 2].as_secs_f64() * 1e3;
        let best = times[0].as_secs_f64() * 1e3;
        if v == Variant::TEXT_004 && !utf8 {
            (base, base_best) = (median, best);
        }
        println!(
            "{:>30} {:>8} {:>11.2} {:>11.2} {:>10.2} {:>10.2} {:>11}",
            label,
            3 * n,
            median,
            best,
            median - base,
            best - base_best,
            bytes
        );
    }
}
