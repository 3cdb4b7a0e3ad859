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

use crate::config::{Config, ConfigError, Format};
use crate::model::{Family, InstrumentKind, InstrumentSpec};
use crate::store::{Inner, PollResult, Store};
use crate::targets::prom::{self, Kind, OwnBlock, PromFamily, Served, ServedNames};

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
    /// Every family name the pipeline serves.
    served: Arc<ServedNames>,
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

/// The exporter and meter provider of a pipeline: the Prometheus exporter
/// as remora sets it up, reading into `registry`. The pipeline and the probe
/// of served names share it, so the names found are the names served.
fn provider(
    resource: &BTreeMap<String, String>,
    limits: BTreeMap<String, usize>,
    registry: &prometheus::Registry,
) -> Result<SdkMeterProvider, TelemetryError> {
    let mut exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .scope_info_enabled(false);
    if resource.is_empty() {
        exporter = exporter.without_target_info();
    }
    let exporter = exporter
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let default_limit = 4096;
    let attrs = resource
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
    Ok(SdkMeterProvider::builder()
        .with_reader(exporter)
        .with_view(move |i: &Instrument| {
            let limit = limits.get(i.name()).copied().unwrap_or(default_limit);
            Stream::builder()
                .with_cardinality_limit(limit.max(1))
                .build()
                .ok()
        })
        .with_resource(Resource::builder_empty().with_attributes(attrs).build())
        .build())
}

fn build_info_spec() -> InstrumentSpec {
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

fn prom_kind(t: prometheus::proto::MetricType) -> Kind {
    use prometheus::proto::MetricType;
    match t {
        MetricType::COUNTER => Kind::Counter,
        MetricType::GAUGE => Kind::Gauge,
        MetricType::HISTOGRAM => Kind::Histogram,
        MetricType::SUMMARY => Kind::Summary,
        _ => Kind::Untyped,
    }
}

/// What the exporter serves for a list of instrument specs.
#[derive(Debug, Default)]
pub struct ServedAs {
    /// The family each spec is served as (by index), `None` when it serves nothing.
    pub specs: Vec<Option<(String, Served)>>,
    /// Families served for no spec (`target_info` when `resource:` is set).
    pub extra: Vec<(String, Served)>,
}

const PROBE_LABEL: &str = "remora_probe";

/// Registers `which` specs in a fresh exporter set up as the pipeline's, each
/// observing one series labelled with its index, and reads the families back.
fn probe(
    resource: &BTreeMap<String, String>,
    specs: &[InstrumentSpec],
    which: &[usize],
    found: &mut ServedAs,
) -> Result<(), TelemetryError> {
    let registry = prometheus::Registry::new();
    let provider = provider(resource, BTreeMap::new(), &registry)?;
    let meter = provider.meter("remora");
    for &i in which {
        let attrs = [KeyValue::new(PROBE_LABEL, i.to_string())];
        register(&meter, &specs[i], move |o| o.observe(i as f64, &attrs));
    }
    for mf in registry.gather() {
        let served = Served {
            kind: prom_kind(mf.get_field_type()),
            help: mf.help().to_string(),
        };
        let mut any = false;
        for m in mf.get_metric() {
            let index = m
                .get_label()
                .iter()
                .find(|l| l.name() == PROBE_LABEL)
                .and_then(|l| l.value().parse::<usize>().ok());
            if let Some(slot) = index.and_then(|i| found.specs.get_mut(i)) {
                *slot = Some((mf.name().to_string(), served.clone()));
                any = true;
            }
        }
        if !any && !found.extra.iter().any(|(n, _)| n == mf.name()) {
            found.extra.push((mf.name().to_string(), served));
        }
    }
    let _ = provider.shutdown();
    Ok(())
}

/// The family name and type the OpenTelemetry Prometheus exporter serves
/// each spec under (name sanitised, unit suffix, `_total`), found by running
/// the specs through an exporter set up as the pipeline's. A spec whose
/// instrument name came earlier in `specs` is served as that one.
pub fn served_as(
    resource: &BTreeMap<String, String>,
    specs: &[InstrumentSpec],
) -> Result<ServedAs, TelemetryError> {
    let mut found = ServedAs {
        specs: vec![None; specs.len()],
        extra: Vec::new(),
    };
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    let distinct: Vec<usize> = (0..specs.len())
        .filter(|&i| *first.entry(specs[i].name.as_str()).or_insert(i) == i)
        .collect();
    probe(resource, specs, &distinct, &mut found)?;
    // The exporter keeps the first of two instruments of one name and
    // different types; each one left out is probed on its own.
    let missing: Vec<usize> = distinct
        .iter()
        .copied()
        .filter(|&i| found.specs[i].is_none())
        .collect();
    for i in missing {
        probe(resource, specs, &[i], &mut found)?;
    }
    for (i, spec) in specs.iter().enumerate() {
        let f = first.get(spec.name.as_str()).copied().unwrap_or(i);
        if f != i {
            found.specs[i] = found.specs[f].clone();
        }
    }
    Ok(found)
}

/// Every family a pipeline of `config` with `specs` serves: remora's own,
/// the specs', and `target_info` when `resource:` is set.
pub fn served_names(
    config: &Config,
    specs: &[InstrumentSpec],
) -> Result<ServedNames, TelemetryError> {
    let all: Vec<InstrumentSpec> = own_specs()
        .into_iter()
        .chain(specs.iter().cloned())
        .collect();
    let found = served_as(&config.resource, &all)?;
    let mut names = ServedNames::new();
    for (name, served) in found.specs.into_iter().flatten().chain(found.extra) {
        names.entry(name).or_insert(served);
    }
    Ok(names)
}

/// The JSON rules of `config` against what remora serves itself (its own
/// instruments, `reserved`: the host collectors' and its process's, and
/// `target_info`): a rule value served under one of those names, or under
/// the name of another rule's instrument of another type, is an error at
/// the rule's `name:`.
pub fn check_rule_names(
    config: &Config,
    reserved: &[InstrumentSpec],
) -> Result<(), Vec<ConfigError>> {
    let fail = |problem: String| {
        vec![ConfigError {
            file: config.path.display().to_string(),
            mark: Default::default(),
            key: "(served names)".into(),
            problem,
        }]
    };
    let own: Vec<InstrumentSpec> = own_specs()
        .into_iter()
        .chain(reserved.iter().cloned())
        .collect();
    let own_found = served_as(&config.resource, &own).map_err(|e| fail(e.to_string()))?;
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for (spec, found) in own.iter().zip(&own_found.specs) {
        if let Some((name, _)) = found {
            taken
                .entry(name.clone())
                .or_insert_with(|| spec.name.clone());
        }
    }
    for (name, _) in &own_found.extra {
        taken
            .entry(name.clone())
            .or_insert_with(|| "resource (target_info)".into());
    }

    let mut at = Vec::new();
    let mut rule_specs = Vec::new();
    for (ti, t) in config.targets.iter().enumerate() {
        if t.format != Format::Json {
            continue;
        }
        for (ri, rule) in t.metrics.iter().enumerate() {
            for v in &rule.values {
                at.push((ti, ri));
                rule_specs.push(InstrumentSpec::new(
                    &v.name,
                    rule.kind.instrument_kind(),
                    &rule.unit,
                    &rule.description,
                ));
            }
        }
    }
    let found = served_as(&config.resource, &rule_specs).map_err(|e| fail(e.to_string()))?;
    let mut errors = Vec::new();
    let mut by_rules: BTreeMap<String, (Kind, &str)> = BTreeMap::new();
    for ((ti, ri), (spec, served)) in at.into_iter().zip(rule_specs.iter().zip(&found.specs)) {
        let Some((name, served)) = served else {
            continue;
        };
        let problem = if let Some(instrument) = taken.get(name) {
            format!(
                "{:?} is served as {name}, a name remora serves for its own {instrument:?} (expected another name)",
                spec.name
            )
        } else {
            match by_rules.get(name) {
                Some((kind, other)) if *kind != served.kind && *other != spec.name => format!(
                    "{:?} is served as {name} ({}), like {other:?} ({}) (expected another name, or the same kind)",
                    spec.name,
                    served.kind.as_str(),
                    kind.as_str()
                ),
                Some(_) => continue,
                None => {
                    by_rules.insert(name.clone(), (served.kind, spec.name.as_str()));
                    continue;
                }
            }
        };
        let (mark, key) = match config.rule_names_at.get(&(ti, ri)) {
            Some(l) => (l.mark, l.key.clone()),
            None => (
                Default::default(),
                format!("targets[{ti}].metrics[{ri}].name"),
            ),
        };
        errors.push(ConfigError {
            file: config.path.display().to_string(),
            mark,
            key,
            problem,
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
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
        let served = Arc::new(served_names(config, specs)?);
        let registry = prometheus::Registry::new();
        let provider = provider(&config.resource, limits.clone(), &registry)?;
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
            register(&meter, &build_info_spec(), move |o| o.observe(1.0, &attrs));
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
        Ok(Pipeline {
            provider,
            registry,
            served,
        })
    }

    /// Every family name this pipeline serves, with type and HELP.
    pub fn served(&self) -> &Arc<ServedNames> {
        &self.served
    }

    /// Collects every instrument (the callbacks read the store: call it
    /// without holding the store's lock).
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// Encodes `own` (from [`Pipeline::gather`]) and the pass-through
    /// families of `passthrough` as Prometheus text 0.0.4, one block per
    /// family name (see [`prom::write_exposition`]).
    pub fn encode<'a>(
        &self,
        own: Vec<prometheus::proto::MetricFamily>,
        passthrough: impl Iterator<Item = &'a [PromFamily]>,
    ) -> Result<Vec<u8>, TelemetryError> {
        let mut blocks = Vec::with_capacity(own.len());
        for mf in own {
            let mut text = Vec::with_capacity(256);
            TextEncoder::new().encode(std::slice::from_ref(&mf), &mut text)?;
            blocks.push(OwnBlock {
                name: mf.name().to_string(),
                kind: prom_kind(mf.get_field_type()),
                text,
            });
        }
        let mut out = Vec::with_capacity(16 * 1024);
        prom::write_exposition(&mut out, blocks, &self.served, passthrough);
        Ok(out)
    }

    /// Collects every instrument and encodes Prometheus text 0.0.4 (no pass-through families).
    pub fn render(&self) -> Result<Vec<u8>, TelemetryError> {
        self.encode(self.gather(), std::iter::empty())
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
            w.own_process = Arc::new(
                crate::host::self_process_families(std::path::Path::new("/proc")).unwrap(),
            );
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
}
