//! The OpenTelemetry pipeline: one `SdkMeterProvider` per loaded config, read
//! by the `opentelemetry-prometheus` exporter into its own `prometheus`
//! registry, and rendered to Prometheus text.
//!
//! Every instrument is observable: its callback reads the latest snapshot in
//! the [`Store`] and never does I/O, so a scrape never waits on a target.
//! Cardinality limits are set per instrument from `limits.max_series_per_target`
//! (the SDK's silent `otel_metric_overflow` folding must never happen: remora
//! caps series itself and counts what it drops).

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry::metrics::{AsyncInstrument, Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{Instrument, SdkMeterProvider, Stream};
use opentelemetry_sdk::Resource;
use prometheus::{Encoder, TextEncoder};

use crate::config::Config;
use crate::model::{Family, InstrumentKind, InstrumentSpec};
use crate::store::{Inner, PollResult, Store};

/// Errors building or rendering the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the Prometheus exporter: {0}")]
    Exporter(String),
    #[error("cannot encode the exposition: {0}")]
    Encode(#[from] prometheus::Error),
}

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

/// One config's meter provider and registry.
pub struct Pipeline {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

type Labels = Arc<Vec<KeyValue>>;

/// Observes every series of `name` from all sources, with the global labels added.
fn observe_families<T: AsyncInstrument<f64> + ?Sized>(
    observer: &T,
    families: &[Family],
    name: &str,
    global: &[KeyValue],
) {
    for fam in families.iter().filter(|f| &*f.name == name) {
        for s in &fam.series {
            if global.is_empty() {
                observer.observe(s.value, &s.attributes);
            } else {
                let mut attrs = s.attributes.clone();
                attrs.extend_from_slice(global);
                observer.observe(s.value, &attrs);
            }
        }
    }
}

fn observe_all<T: AsyncInstrument<f64> + ?Sized>(
    observer: &T,
    inner: &Inner,
    name: &str,
    global: &[KeyValue],
) {
    for t in inner.targets.values() {
        observe_families(observer, &t.families, name, global);
    }
    for c in inner.collectors.values() {
        observe_families(observer, &c.families, name, global);
    }
    observe_families(observer, &inner.own_process, name, global);
}

fn with(global: &[KeyValue], attrs: impl IntoIterator<Item = KeyValue>) -> Vec<KeyValue> {
    let mut v: Vec<KeyValue> = attrs.into_iter().collect();
    v.extend_from_slice(global);
    v
}

/// remora's own instruments: (spec, reader of the store).
type OwnReader = fn(&Inner, &mut dyn FnMut(f64, Vec<KeyValue>));

fn own_instruments() -> Vec<(InstrumentSpec, OwnReader)> {
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
    ]
}

/// The Prometheus names remora's own families are served under (a
/// passed-through family with one of these names, or any `remora_` name, is dropped).
pub fn own_prometheus_names() -> Vec<String> {
    [
        "remora_build_info",
        "remora_target_up",
        "remora_target_poll_duration_seconds",
        "remora_target_polls_total",
        "remora_target_http_status_code",
        "remora_target_response_size_bytes",
        "remora_target_last_success_timestamp_seconds",
        "remora_target_series",
        "remora_extraction_errors_total",
        "remora_series_dropped_total",
        "remora_collector_up",
        "remora_collector_duration_seconds",
        "remora_collector_errors_total",
        "remora_config_last_reload_successful",
        "remora_config_last_reload_success_timestamp_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ]
    .map(String::from)
    .to_vec()
}

fn register(
    meter: &Meter,
    spec: &InstrumentSpec,
    cb: impl Fn(&dyn AsyncInstrument<f64>) + Send + Sync + 'static,
) {
    let name = spec.name.clone();
    let desc = spec.description.clone();
    let unit = spec.unit.clone();
    match spec.kind {
        InstrumentKind::Gauge => {
            meter
                .f64_observable_gauge(name)
                .with_description(desc)
                .with_unit(unit)
                .with_callback(move |o| cb(o))
                .build();
        }
        InstrumentKind::Counter => {
            meter
                .f64_observable_counter(name)
                .with_description(desc)
                .with_unit(unit)
                .with_callback(move |o| cb(o))
                .build();
        }
        InstrumentKind::UpDownCounter => {
            meter
                .f64_observable_up_down_counter(name)
                .with_description(desc)
                .with_unit(unit)
                .with_callback(move |o| cb(o))
                .build();
        }
    }
}

impl Pipeline {
    /// Builds the provider with remora's own instruments and one observable
    /// instrument per spec (deduplicated by name; the first spec wins).
    /// `limits` gives each instrument's cardinality limit by name.
    pub fn build(
        config: &Config,
        specs: &[InstrumentSpec],
        limits: &BTreeMap<String, usize>,
        store: Arc<Store>,
    ) -> Result<Self, TelemetryError> {
        let registry = prometheus::Registry::new();
        let mut exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false);
        if config.resource.is_empty() {
            exporter = exporter.without_target_info();
        }
        let exporter = exporter
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;

        let default_limit = 4096;
        let limits = limits.clone();
        let mut builder =
            SdkMeterProvider::builder()
                .with_reader(exporter)
                .with_view(move |i: &Instrument| {
                    let limit = limits.get(i.name()).copied().unwrap_or(default_limit);
                    Stream::builder()
                        .with_cardinality_limit(limit.max(1))
                        .build()
                        .ok()
                });
        if !config.resource.is_empty() {
            let attrs = config
                .resource
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
            builder =
                builder.with_resource(Resource::builder_empty().with_attributes(attrs).build());
        } else {
            builder = builder.with_resource(Resource::builder_empty().build());
        }
        let provider = builder.build();
        let meter = provider.meter("remora");

        let global: Labels = Arc::new(
            config
                .global
                .labels
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect(),
        );

        // Build info: a constant.
        {
            let attrs = with(
                &global,
                [
                    KeyValue::new("version", VERSION),
                    KeyValue::new("revision", REVISION),
                    KeyValue::new("rustc_version", RUSTC_VERSION),
                ],
            );
            let spec = InstrumentSpec::new(
                "remora.build_info",
                InstrumentKind::Gauge,
                "",
                "remora's version, revision and compiler; always 1",
            );
            register(&meter, &spec, move |o| o.observe(1.0, &attrs));
        }
        for (spec, read) in own_instruments() {
            let store = store.clone();
            let global = global.clone();
            register(&meter, &spec, move |o| {
                let inner = store.read();
                read(&inner, &mut |v, mut attrs| {
                    attrs.extend_from_slice(&global);
                    o.observe(v, &attrs);
                });
            });
        }
        let mut seen = std::collections::HashSet::new();
        for spec in specs {
            if !seen.insert(spec.name.clone()) {
                continue;
            }
            let store = store.clone();
            let global = global.clone();
            let name = spec.name.clone();
            register(&meter, spec, move |o| {
                let inner = store.read();
                observe_all(o, &inner, &name, &global);
            });
        }
        Ok(Pipeline { provider, registry })
    }

    /// Collects every instrument and encodes Prometheus text 0.0.4.
    pub fn render(&self) -> Result<Vec<u8>, TelemetryError> {
        let families = self.registry.gather();
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&families, &mut out)?;
        Ok(out)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Releases the callbacks (and their Arc<Store>) of a replaced pipeline.
        let _ = self.provider.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use crate::model::Series;
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
        assert!(text.contains("app_dependency_latency_seconds{cluster=\"eu1\",dependency=\"db\",target=\"a\"} 0.012"), "{text}");
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

    /// The hand-written list used to drop colliding pass-through families
    /// must match what is really served.
    #[test]
    fn own_prometheus_names_match_the_exposition() {
        let store = Store::new();
        let c = config("");
        let p = Pipeline::build(
            &c,
            &crate::host::self_process_specs(),
            &BTreeMap::new(),
            store.clone(),
        )
        .unwrap();
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
            w.own_process = Arc::new(
                crate::host::self_process_families(std::path::Path::new("/proc")).unwrap(),
            );
        }
        let text = render(&p);
        let served: std::collections::BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect();
        let listed: std::collections::BTreeSet<String> =
            own_prometheus_names().into_iter().collect();
        assert_eq!(served, listed);
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
}
