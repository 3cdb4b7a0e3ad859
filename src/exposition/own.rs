//! remora's own instruments (`remora_build_info`, polls, scrapes, reloads,
//! collectors): their specs and the readers that turn a store snapshot into
//! their series.

use opentelemetry::KeyValue;

use crate::model::{InstrumentKind, InstrumentSpec};
use crate::store::{Inner, PollResult};

/// Build facts for `remora_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = match option_env!("REMORA_REVISION") {
    Some(r) => r,
    None => "unknown",
};
pub const RUSTC_VERSION: &str = match option_env!("REMORA_RUSTC_VERSION") {
    Some(r) => r,
    None => "unknown",
};

/// remora's own instruments: (spec, reader of the store).
pub(super) type OwnReader = fn(&Inner, &mut dyn FnMut(f64, Vec<KeyValue>));

pub(super) fn own_instruments() -> Vec<(InstrumentSpec, OwnReader)> {
    use InstrumentKind::*;
    fn target_attr(name: &str) -> Vec<KeyValue> {
        vec![KeyValue::new("target", name.to_string())]
    }
    vec![
        (
            InstrumentSpec::new(
                "remora.target.up",
                Gauge,
                "",
                "1 if the last poll got an accepted status and a parsed body",
            ),
            |i, o| {
                for (n, t) in i.targets.iter().filter(|(_, t)| t.polled) {
                    o(f64::from(u8::from(t.up)), target_attr(n));
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.target.poll.duration",
                Gauge,
                "s",
                "Duration of the last poll",
            ),
            |i, o| {
                for (n, t) in i.targets.iter().filter(|(_, t)| t.polled) {
                    o(t.poll_duration, target_attr(n));
                }
            },
        ),
        (
            InstrumentSpec::new("remora.target.polls", Counter, "", "Polls by result"),
            |i, o| {
                for (n, t) in &i.targets {
                    for r in PollResult::ALL {
                        let count = t.polls.get(&r).copied().unwrap_or(0);
                        o(
                            count as f64,
                            vec![
                                KeyValue::new("target", n.clone()),
                                KeyValue::new("result", r.as_str()),
                            ],
                        );
                    }
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.target.http_status_code",
                Gauge,
                "",
                "HTTP status of the last poll, 0 without a response",
            ),
            |i, o| {
                for (n, t) in i.targets.iter().filter(|(_, t)| t.polled) {
                    o(f64::from(t.http_status), target_attr(n));
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.target.response.size",
                Gauge,
                "By",
                "Body size of the last response",
            ),
            |i, o| {
                for (n, t) in i.targets.iter().filter(|(_, t)| t.polled) {
                    o(t.response_size as f64, target_attr(n));
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.target.last_success_timestamp",
                Gauge,
                "s",
                "Unix time of the last good poll",
            ),
            |i, o| {
                for (n, t) in &i.targets {
                    if let Some(ts) = t.last_success {
                        o(ts, target_attr(n));
                    }
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.target.series",
                Gauge,
                "",
                "Series produced by the last poll",
            ),
            |i, o| {
                for (n, t) in i.targets.iter().filter(|(_, t)| t.polled) {
                    o(t.series as f64, target_attr(n));
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.extraction.errors",
                Counter,
                "",
                "Values that could not be extracted, by metric and reason",
            ),
            |i, o| {
                for (n, t) in &i.targets {
                    for ((metric, reason), count) in &t.extraction_errors {
                        o(
                            *count as f64,
                            vec![
                                KeyValue::new("target", n.clone()),
                                KeyValue::new("metric", metric.clone()),
                                KeyValue::new("reason", *reason),
                            ],
                        );
                    }
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.series.dropped",
                Counter,
                "",
                "Series over limits.max_series_per_target, dropped",
            ),
            |i, o| {
                for (n, t) in &i.targets {
                    o(t.dropped as f64, target_attr(n));
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.collector.up",
                Gauge,
                "",
                "1 if the host collector's last run succeeded",
            ),
            |i, o| {
                for (n, c) in &i.collectors {
                    o(
                        f64::from(u8::from(c.up)),
                        vec![KeyValue::new("collector", n.clone())],
                    );
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.collector.duration",
                Gauge,
                "s",
                "Duration of the host collector's last run",
            ),
            |i, o| {
                for (n, c) in &i.collectors {
                    o(c.duration, vec![KeyValue::new("collector", n.clone())]);
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.collector.errors",
                Counter,
                "",
                "Entries a host collector dropped (odd lines, stuck mounts), by reason",
            ),
            |i, o| {
                for (n, c) in &i.collectors {
                    for (reason, count) in &c.errors {
                        o(
                            *count as f64,
                            vec![
                                KeyValue::new("collector", n.clone()),
                                KeyValue::new("reason", *reason),
                            ],
                        );
                    }
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.config.last_reload_successful",
                Gauge,
                "",
                "1 if the last config reload succeeded",
            ),
            |i, o| o(f64::from(u8::from(i.reload.last_successful)), Vec::new()),
        ),
        (
            InstrumentSpec::new(
                "remora.config.last_reload_success_timestamp",
                Gauge,
                "s",
                "Unix time of the last successful config load",
            ),
            |i, o| o(i.reload.last_success_timestamp, Vec::new()),
        ),
        (
            InstrumentSpec::new("remora.otlp.exports", Counter, "", "OTLP pushes by result"),
            |i, o| {
                if let Some(s) = &i.otlp {
                    o(s.success as f64, vec![KeyValue::new("result", "success")]);
                    o(s.failure as f64, vec![KeyValue::new("result", "failure")]);
                }
            },
        ),
        (
            InstrumentSpec::new(
                "remora.otlp.last_success_timestamp",
                Gauge,
                "s",
                "Unix time of the last successful OTLP push",
            ),
            |i, o| {
                if let Some(ts) = i.otlp.as_ref().and_then(|s| s.last_success) {
                    o(ts, Vec::new());
                }
            },
        ),
    ]
}

pub(super) fn build_info_spec() -> InstrumentSpec {
    InstrumentSpec::new(
        "remora.build_info",
        InstrumentKind::Gauge,
        "",
        "remora's version, revision and compiler; always 1",
    )
}

/// remora's own instruments (build info included).
pub fn own_specs() -> Vec<InstrumentSpec> {
    std::iter::once(build_info_spec())
        .chain(own_instruments().into_iter().map(|(spec, _)| spec))
        .collect()
}
