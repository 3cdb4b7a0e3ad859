//! The OpenTelemetry pipeline of one config: a meter provider whose
//! observable instruments read the [`Store`], collected by remora's text
//! reader (`text`) and written as Prometheus text.
//!
//! Every instrument is observable: its callback reads the latest snapshot in
//! the store and never does I/O, so a scrape never waits on a target.
//! Cardinality limits are set per instrument from `limits.max_series_per_target`
//! (the SDK's silent `otel_metric_overflow` folding must never happen: remora
//! caps series itself and counts what it drops).

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry::metrics::{AsyncInstrument, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::exporter::{provider, register};
use super::names::served_names;
use super::own::{build_info_spec, own_instruments, REVISION, RUSTC_VERSION, VERSION};
use super::text::{write_family, OwnBlock, TextReader};
use super::ExpositionError;
use crate::config::Config;

/// Cardinality limit of an instrument `limits` does not name (remora's own
/// process figures; the builder names every other instrument).
const DEFAULT_LIMIT: usize = 256;
use crate::model::passthrough::ServedNames;
use crate::model::{Family, InstrumentSpec};
use crate::store::{Inner, Store};

/// One config's meter provider and registry.
pub struct Pipeline {
    pub(super) provider: SdkMeterProvider,
    pub(super) reader: TextReader,
    /// Every family name the pipeline serves.
    pub(super) served: Arc<ServedNames>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

type Labels = Arc<Vec<KeyValue>>;

/// Observes every series of `name` from all sources, with the global labels added.
///
/// The SDK keys its table by the attribute slice as given and, when that is
/// not sorted by key, inserts a sorted copy as well: two attribute vectors
/// and two table entries for one series. Attributes are therefore observed
/// sorted by key (`buf` is reused; the keys and values are shared strings, so
/// copying them does not allocate). The text does not depend on the order.
fn observe_families<T: AsyncInstrument<f64> + ?Sized>(
    observer: &T,
    families: &[Family],
    name: &str,
    global: &[KeyValue],
    buf: &mut Vec<KeyValue>,
) {
    for fam in families.iter().filter(|f| &*f.name == name) {
        for s in &fam.series {
            if global.is_empty() && sorted(&s.attributes) {
                observer.observe(s.value, &s.attributes);
            } else {
                buf.clear();
                buf.extend_from_slice(&s.attributes);
                buf.extend_from_slice(global);
                buf.sort_by(|a, b| a.key.cmp(&b.key));
                observer.observe(s.value, buf);
            }
        }
    }
}

fn sorted(attrs: &[KeyValue]) -> bool {
    attrs.windows(2).all(|w| w[0].key <= w[1].key)
}

fn observe_all<T: AsyncInstrument<f64> + ?Sized>(
    observer: &T,
    inner: &Inner,
    name: &str,
    global: &[KeyValue],
) {
    let mut buf = Vec::new();
    for t in inner.targets.values() {
        observe_families(observer, &t.families, name, global, &mut buf);
    }
    for c in inner.collectors.values() {
        observe_families(observer, &c.families, name, global, &mut buf);
    }
    observe_families(observer, &inner.own_process, name, global, &mut buf);
}

fn with(global: &[KeyValue], attrs: impl IntoIterator<Item = KeyValue>) -> Vec<KeyValue> {
    let mut v: Vec<KeyValue> = attrs.into_iter().collect();
    v.extend_from_slice(global);
    v
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
    ) -> Result<Self, ExpositionError> {
        Self::build_with(config, specs, limits, store, None)
    }

    /// [`Pipeline::build`] with a second reader (the OTLP push) on the same provider.
    pub fn build_with(
        config: &Config,
        specs: &[InstrumentSpec],
        limits: &BTreeMap<String, usize>,
        store: Arc<Store>,
        push: Option<crate::otlp::Reader>,
    ) -> Result<Self, ExpositionError> {
        let served = Arc::new(served_names(config, specs)?);
        let reader = TextReader::new(true);
        let provider = provider(
            &config.resource,
            limits.clone(),
            DEFAULT_LIMIT,
            &reader,
            push,
        )?;
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
            let mut attrs = with(
                &global,
                [
                    KeyValue::new("version", VERSION),
                    KeyValue::new("revision", REVISION),
                    KeyValue::new("rustc_version", RUSTC_VERSION),
                ],
            );
            attrs.sort_by(|a, b| a.key.cmp(&b.key));
            register(&meter, &build_info_spec(), move |o| o.observe(1.0, &attrs));
        }
        for (spec, read) in own_instruments() {
            let store = store.clone();
            let global = global.clone();
            register(&meter, &spec, move |o| {
                let inner = store.read();
                read(&inner, &mut |v, mut attrs| {
                    attrs.extend_from_slice(&global);
                    attrs.sort_by(|a, b| a.key.cmp(&b.key));
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
            reader,
            served,
        })
    }

    /// Every family name this pipeline serves, with type and HELP.
    pub fn served(&self) -> &Arc<ServedNames> {
        &self.served
    }

    /// Collects and pushes now through the second reader, if any (blocks).
    pub fn force_flush(&self) {
        let _ = self.provider.force_flush();
    }

    /// Collects every instrument and writes each family's text (the
    /// callbacks read the store: call it without holding the store's lock).
    pub(super) fn gather(&self) -> Result<Vec<OwnBlock>, ExpositionError> {
        let rm = self.reader.collect_now()?;
        let families = self.reader.families(&rm);
        Ok(families
            .into_iter()
            .map(|(name, fam)| {
                let mut text = Vec::with_capacity(128 + fam.points.len() * 64);
                write_family(&mut text, &name, &fam);
                OwnBlock {
                    name,
                    kind: fam.kind,
                    text,
                }
            })
            .collect())
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
    use crate::model::Series;
    use std::sync::Mutex;

    /// Records the attribute slices it is given.
    #[derive(Default)]
    struct Seen(Mutex<Vec<Vec<String>>>);

    impl AsyncInstrument<f64> for Seen {
        fn observe(&self, _: f64, attrs: &[KeyValue]) {
            let keys = attrs.iter().map(|kv| kv.key.to_string()).collect();
            self.0.lock().unwrap().push(keys);
        }
    }

    /// A target's series carry `target` before the rule's labels; the SDK
    /// would keep an unsorted slice and a sorted copy of it (two trackers'
    /// worth of attributes per series), so every slice observed is sorted.
    #[test]
    fn attributes_are_observed_sorted_by_key() {
        let fam = Family {
            name: Arc::from("m"),
            series: vec![
                Series::new(
                    vec![KeyValue::new("target", "app"), KeyValue::new("id", "a")],
                    1.0,
                ),
                Series::new(vec![KeyValue::new("id", "b")], 2.0),
            ],
        };
        for global in [vec![], vec![KeyValue::new("env", "prod")]] {
            let seen = Seen::default();
            observe_families(
                &seen,
                std::slice::from_ref(&fam),
                "m",
                &global,
                &mut Vec::new(),
            );
            let seen = seen.0.into_inner().unwrap();
            assert_eq!(seen.len(), 2);
            for keys in seen {
                let mut sorted = keys.clone();
                sorted.sort();
                assert_eq!(keys, sorted, "global {global:?}");
            }
        }
    }
}
