//! The pipeline of one config: `remora_build_info` on an OpenTelemetry
//! meter provider read by remora's text reader (`text`), and remora's other
//! own instruments and the store's families (JSON targets, host
//! collectors, remora's process) written beside it without the SDK.
//!
//! A render takes one [`Snapshot`] of the store and writes everything from
//! it: the own instruments' series the snapshot read for them, the store's
//! families from the families it shares, and (`encode`) the pass-through
//! families it holds, merged in. Nothing on this path does I/O, so a scrape
//! never waits on a target.
//!
//! Neither the own instruments nor the store's families are collected
//! through the SDK for the text: at
//! every collect the SDK hashes each attribute set, keeps a tracker per
//! series and copies every attribute into a data point, about 3 µs a series
//! (docs/performance.md, "Cost per series"). A render reads them from the
//! snapshot and hands them to the text reader as if the SDK had collected
//! them, so names, types, HELP, labels, order and values are the same
//! (`tests::store_families_are_written_as_the_sdk_collects_them`).
//! With `otlp:` set, a second meter provider carries every instrument, the
//! store's included, for the push; its callbacks read the store when the
//! push collects, on the push's own thread.
//!
//! Every series gets `global.labels` from [`GlobalLabels`], on both paths.
//!
//! Cardinality limits are set per instrument from `limits` (the SDK's
//! silent `otel_metric_overflow` folding must never happen: remora caps
//! series itself and counts what it drops).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use opentelemetry::metrics::{AsyncInstrument, Meter, MeterProvider as _};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::exporter::{provider, register};
use super::names::served_specs;
use super::own::{build_info_spec, own_instruments, OwnReader, REVISION, RUSTC_VERSION, VERSION};
use super::snapshot::{sources, Snapshot, Source};
use super::text::{
    labels, labels_into, order, write_family, write_sample, Collected, Own, OwnBlock, Point,
    TextReader,
};
use super::ExpositionError;
use crate::config::Config;
use crate::model::labels::GlobalLabels;
use crate::model::passthrough::{Kind, ServedNames};
use crate::model::{InstrumentSpec, Series};
use crate::store::{Inner, Store};

/// Cardinality limit of an instrument `limits` does not name (remora's own
/// process figures; the builder names every other instrument).
const DEFAULT_LIMIT: usize = 256;

/// One config's meter providers and the store families it writes.
pub struct Pipeline {
    /// `remora_build_info` (and the resource), read by `reader`.
    pub(super) provider: SdkMeterProvider,
    pub(super) reader: TextReader,
    /// Every instrument, read by the OTLP push (with `otlp:` only).
    push: Option<SdkMeterProvider>,
    /// Every family name the pipeline serves.
    pub(super) served: Arc<ServedNames>,
    /// The instruments whose series the store holds, as the exporter serves them.
    from_store: Vec<StoreInstrument>,
    /// Instrument name -> index in `from_store`.
    by_name: HashMap<Arc<str>, usize>,
    global: GlobalLabels,
    pub(super) store: Arc<Store>,
    /// The readers of remora's own instruments, in their order.
    own_readers: Vec<OwnReader>,
    /// Those instruments as the exporter serves them (in the same order):
    /// written from the snapshot's own series without the SDK.
    own: Vec<StoreInstrument>,
    /// What the formats other than text 0.0.4 need to know of each family.
    pub(super) meta: super::meta::Meta,
}

/// An instrument whose series are written from the store.
#[derive(Debug)]
struct StoreInstrument {
    kind: Kind,
    /// The family name it is served under.
    family: String,
    help: String,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

/// Observes every series of `name` from one source, its labels as
/// [`GlobalLabels::sorted_into`] gives them.
///
/// The SDK keys its table by the attribute slice as given and, when that is
/// not sorted by key, inserts a sorted copy as well: two attribute vectors
/// and two table entries for one series. Attributes are therefore observed
/// sorted by key (`buf` is reused; the keys and values are shared strings, so
/// copying them does not allocate). The text does not depend on the order.
fn observe_families<T: AsyncInstrument<f64> + ?Sized>(
    observer: &T,
    (base, families): Source<'_>,
    name: &str,
    global: &GlobalLabels,
    buf: &mut Vec<KeyValue>,
) {
    for fam in families.iter().filter(|f| &*f.name == name) {
        for s in &fam.series {
            if base.is_empty() && global.is_empty() && sorted(&s.attributes) {
                observer.observe(s.value, &s.attributes);
            } else {
                global.sorted_into(buf, base, &s.attributes);
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
    global: &GlobalLabels,
) {
    let mut buf = Vec::new();
    for (base, families) in sources(inner) {
        observe_families(observer, (base, families), name, global, &mut buf);
    }
}

/// Registers `remora_build_info` on `meter` and, with `store` (the OTLP
/// push's provider), remora's other own instruments, their callbacks
/// reading the store under its lock when the provider collects.
///
/// The text provider gets build info only: a render writes the other own
/// instruments from its snapshot (`Pipeline::gather`). Through the SDK they
/// cost a table entry per series kept for the pipeline's life (each
/// table sized for its cardinality limit: at 2,000 targets, 16,000
/// `remora_target_polls_total` series in a table of 65,536 slots) and
/// a copy of every series at every render.
fn register_own(meter: &Meter, store: Option<&Arc<Store>>, global: &GlobalLabels) {
    // Build info: a constant.
    let mut attrs = vec![
        KeyValue::new("version", VERSION),
        KeyValue::new("revision", REVISION),
        KeyValue::new("rustc_version", RUSTC_VERSION),
    ];
    global.add_sorted(&mut attrs);
    register(meter, &build_info_spec(), move |o| o.observe(1.0, &attrs));
    let Some(store) = store else { return };
    for (spec, read) in own_instruments() {
        let store = store.clone();
        let global = global.clone();
        register(meter, &spec, move |o| {
            read(&store.read(), &mut |v, mut attrs| {
                global.add_sorted(&mut attrs);
                o.observe(v, &attrs);
            });
        });
    }
}

/// Registers one observable instrument per spec (the first of a name)
/// whose callback observes the store's series of that name.
fn register_store(
    meter: &Meter,
    specs: &[InstrumentSpec],
    store: &Arc<Store>,
    global: &GlobalLabels,
) {
    for (_, spec) in distinct(specs) {
        let store = store.clone();
        let global = global.clone();
        let name = spec.name.clone();
        register(meter, spec, move |o| {
            observe_all(o, &store.read(), &name, &global);
        });
    }
}

/// The specs with distinct instrument names (the first of a name wins).
fn distinct(specs: &[InstrumentSpec]) -> impl Iterator<Item = (usize, &InstrumentSpec)> {
    let mut seen = std::collections::HashSet::new();
    specs
        .iter()
        .enumerate()
        .filter(move |(_, s)| seen.insert(s.name.as_str()))
}

impl Pipeline {
    /// Builds the provider with remora's own instruments and, for each spec
    /// (deduplicated by name; the first spec wins), the family written from
    /// the store. `limits` gives each instrument's cardinality limit by name.
    pub fn build(
        config: &Config,
        specs: &[InstrumentSpec],
        limits: &BTreeMap<String, usize>,
        store: Arc<Store>,
    ) -> Result<Self, ExpositionError> {
        Self::build_with(config, specs, limits, store, None)
    }

    /// [`Pipeline::build`] with the OTLP push: a second provider, read by
    /// `push`, with one observable instrument per spec besides remora's own.
    pub fn build_with(
        config: &Config,
        specs: &[InstrumentSpec],
        limits: &BTreeMap<String, usize>,
        store: Arc<Store>,
        push: Option<crate::otlp::Reader>,
    ) -> Result<Self, ExpositionError> {
        let (served, as_served) = served_specs(config, specs);
        let reader = TextReader::new(true);
        let provider = provider(
            &config.resource,
            limits.clone(),
            DEFAULT_LIMIT,
            Some(reader.clone()),
            None,
        )?;
        let global = GlobalLabels::new(&config.global.labels);
        register_own(&provider.meter("remora"), None, &global);

        let mut from_store = Vec::new();
        let mut by_name = HashMap::new();
        for (i, spec) in distinct(specs) {
            let Some(Some((family, served))) = as_served.get(i) else {
                continue;
            };
            by_name.insert(Arc::from(spec.name.as_str()), from_store.len());
            from_store.push(StoreInstrument {
                kind: served.kind,
                family: family.clone(),
                help: spec.description.clone(),
            });
        }

        let push = match push {
            Some(reader) => {
                let p = super::exporter::provider(
                    &config.resource,
                    limits.clone(),
                    DEFAULT_LIMIT,
                    None,
                    Some(reader),
                )?;
                let meter = p.meter("remora");
                register_own(&meter, Some(&store), &global);
                register_store(&meter, specs, &store, &global);
                Some(p)
            }
            None => None,
        };
        let (own, own_readers) = own_instruments()
            .into_iter()
            .map(|(spec, read)| (served_instrument(&spec), read))
            .unzip();
        Ok(Pipeline {
            provider,
            reader,
            push,
            served: Arc::new(served),
            from_store,
            by_name,
            global,
            store,
            own_readers,
            own,
            meta: super::meta::Meta::build(config, specs, &as_served),
        })
    }

    /// The family name an instrument of the store is served under.
    pub(super) fn family_of(&self, instrument: &str) -> Option<&str> {
        let i = *self.by_name.get(instrument)?;
        self.from_store.get(i).map(|s| s.family.as_str())
    }

    /// Every family name this pipeline serves, with type and HELP.
    pub fn served(&self) -> &Arc<ServedNames> {
        &self.served
    }

    /// Collects and pushes now through the OTLP push, if any (blocks).
    pub fn force_flush(&self) {
        if let Some(p) = &self.push {
            let _ = p.force_flush();
        }
    }

    /// The snapshot a render of `store` writes from (one read lock).
    pub(super) fn snapshot(&self, store: &Store) -> Snapshot {
        Snapshot::take(store, &self.own_readers, &self.global)
    }

    /// Collects `remora_build_info`, adds remora's own series and the
    /// store's families of `snap` and writes each family's text. The store
    /// is not read.
    pub(super) fn gather(&self, snap: &Snapshot) -> Result<Own, ExpositionError> {
        // Build info (and `target_info`) only.
        let rm = self.reader.collect_now()?;
        let own = self.own.iter().zip(snap.own.iter()).map(|(inst, series)| {
            let (points, lines) = written(&inst.family, series.len(), || {
                series
                    .iter()
                    .filter(|(v, _)| v.is_finite())
                    .map(|(v, attrs)| (*v, attrs.iter().map(|kv| (&kv.key, &kv.value))))
            });
            Collected {
                kind: inst.kind,
                name: inst.family.clone(),
                help: &inst.help,
                points,
                lines,
            }
        });
        // Which sources' families feed each instrument.
        let mut feeds: Vec<Vec<Source<'_>>> = Vec::new();
        feeds.resize_with(self.from_store.len(), Vec::new);
        for (base, families) in &snap.sources {
            for fam in families.iter() {
                if let Some(&i) = self.by_name.get(&fam.name) {
                    feeds[i].push((base, std::slice::from_ref(fam)));
                }
            }
        }
        let more = self.from_store.iter().zip(feeds).map(|(inst, feed)| {
            let (points, lines) = self.samples(&inst.family, &feed);
            Collected {
                kind: inst.kind,
                name: inst.family.clone(),
                help: &inst.help,
                points,
                lines,
            }
        });
        // Own instruments first, as if registered before the store's.
        let families = self.reader.families(&rm, own.chain(more));
        let size: usize = families
            .values()
            .map(|f| 128 + f.points.len() * 64 + f.lines.len())
            .sum();
        let mut own = Own {
            text: Vec::with_capacity(size),
            blocks: Vec::with_capacity(families.len()),
        };
        // Each family is dropped once written: its lines are not kept
        // beside the whole text.
        for (name, fam) in families {
            let start = own.text.len();
            write_family(&mut own.text, &name, &fam);
            own.blocks.push(OwnBlock {
                name,
                kind: fam.kind,
                text: start..own.text.len(),
            });
        }
        Ok(own)
    }
}

impl Pipeline {
    /// The series `feed` gives one family, with the source's and the global
    /// labels ([`GlobalLabels::of_series`]); NaN and infinities left out, as
    /// the SDK leaves them out.
    ///
    /// Most families come from one source with their series already in the
    /// family's order (an `each` over items in the order of their labels):
    /// those are written as they come ([`written`]). The others become
    /// points to sort.
    fn samples<'a>(&'a self, family: &str, feed: &[Source<'a>]) -> (Vec<Point<'a>>, Vec<u8>) {
        let series = move || {
            feed.iter().flat_map(move |&(base, fams)| {
                fams.iter()
                    .flat_map(|f| &f.series)
                    .filter(|s| s.value.is_finite())
                    .map(move |s: &'a Series| {
                        let attrs = self
                            .global
                            .of_series(base, &s.attributes)
                            .map(|kv| (&kv.key, &kv.value));
                        (s.value, attrs)
                    })
            })
        };
        if let [(_, fams)] = feed {
            let n = fams.iter().map(|f| f.series.len()).sum();
            return written(family, n, series);
        }
        (points(series()), Vec::new())
    }
}

/// One family's series (value and attributes, as `series` gives them each
/// time it is called): its sample lines written as they come when they are
/// already in the family's order (through two reused label vectors), or
/// else its points, to be sorted.
///
/// `n` is how many series there are at most (the buffer's size, at 64
/// bytes a line).
fn written<'a, S, A>(family: &str, n: usize, series: impl Fn() -> S) -> (Vec<Point<'a>>, Vec<u8>)
where
    S: Iterator<Item = (f64, A)>,
    A: Iterator<Item = (&'a Key, &'a Value)>,
{
    let mut lines = Vec::with_capacity(n * 64);
    let (mut prev, mut cur) = (Vec::new(), Vec::new());
    let mut in_order = true;
    for (i, (value, attrs)) in series().enumerate() {
        labels_into(&mut cur, attrs);
        if i > 0 && order(&prev, &cur).is_gt() {
            in_order = false;
            break;
        }
        write_sample(&mut lines, family, &cur, value);
        std::mem::swap(&mut prev, &mut cur);
    }
    if in_order {
        return (Vec::new(), lines);
    }
    (points(series()), Vec::new())
}

/// Series as points (labels sanitised and sorted by name), to be sorted.
fn points<'a, A>(series: impl Iterator<Item = (f64, A)>) -> Vec<Point<'a>>
where
    A: Iterator<Item = (&'a Key, &'a Value)>,
{
    series
        .map(|(value, attrs)| Point {
            labels: labels(attrs),
            value,
        })
        .collect()
}

/// How the exporter serves an instrument written without the SDK: the
/// family name, type and HELP the SDK's collect would give it.
fn served_instrument(spec: &InstrumentSpec) -> StoreInstrument {
    let kind = match spec.kind {
        crate::model::InstrumentKind::Counter => Kind::Counter,
        crate::model::InstrumentKind::Gauge | crate::model::InstrumentKind::UpDownCounter => {
            Kind::Gauge
        }
    };
    StoreInstrument {
        kind,
        family: super::text::served_name(&spec.name, &spec.unit, kind),
        help: spec.description.clone(),
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Releases the callbacks (and their Arc<Store>) of a replaced pipeline.
        let _ = self.provider.shutdown();
        if let Some(p) = &self.push {
            let _ = p.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Family, Series};
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

    /// The text of remora's own instruments and of `specs` when every
    /// instrument is collected through the SDK (as before the store's
    /// families were written directly).
    fn through_sdk(
        config: &Config,
        specs: &[InstrumentSpec],
        limits: &BTreeMap<String, usize>,
        store: &Arc<Store>,
        reader: &TextReader,
        provider: &mut Option<SdkMeterProvider>,
    ) -> String {
        provider.get_or_insert_with(|| {
            let p = super::super::exporter::provider(
                &config.resource,
                limits.clone(),
                DEFAULT_LIMIT,
                Some(reader.clone()),
                None,
            )
            .unwrap();
            let global = GlobalLabels::new(&config.global.labels);
            let meter = p.meter("remora");
            register_own(&meter, Some(store), &global);
            register_store(&meter, specs, store, &global);
            p
        });
        let rm = reader.collect_now().unwrap();
        let mut out = Vec::new();
        for (name, fam) in reader.families(&rm, std::iter::empty()) {
            write_family(&mut out, &name, &fam);
        }
        String::from_utf8(out).unwrap()
    }

    fn text_of(p: &Pipeline) -> String {
        String::from_utf8(p.gather(&p.snapshot(&p.store)).unwrap().text).unwrap()
    }

    /// The store's families, written without the SDK, give the text the
    /// SDK path gave: family names and types (merges, a type conflict left
    /// out, counters), HELP, labels (global labels added, a series label
    /// winning over a global one of the same key, sanitised keys joined,
    /// non-string values, a source's labels kept beside its series), series
    /// order (across sources, within one source in order and out of order),
    /// values (NaN and infinities left out), and series of a removed source
    /// gone.
    #[test]
    fn store_families_are_written_as_the_sdk_collects_them() {
        use opentelemetry::Value;
        let config = crate::config::parse_str(
            "global:\n  labels:\n    env: prod\n    zone: a\nresource:\n  service.name: checkout\n",
            std::path::Path::new("t.yaml"),
            &|_| None,
        )
        .unwrap();
        let spec = InstrumentSpec::new;
        use crate::model::InstrumentKind::*;
        let specs = [
            spec("app.latency", Gauge, "ms", "Latency\nof \\ \"it\""),
            spec("app.requests", Counter, "", "Requests"),
            spec("app.queue", UpDownCounter, "{item}", ""),
            spec("app.requests.total", Gauge, "", "conflicting type"),
            spec("app.help", Gauge, "", "first help"),
            spec("app_help", Gauge, "", "second help"),
            spec("app.latency", Gauge, "ms", "a repeated name"),
            spec("app.empty", Gauge, "By", "no series"),
            spec("system.cpu.time", Counter, "s", "CPU"),
            spec("process.cpu.time", Counter, "s", "own CPU"),
            spec("system.disk.io", Counter, "By", "Disk bytes"),
        ];
        let series = |target: &str, n: usize| -> Vec<Series> {
            (0..n)
                .map(|i| {
                    let mut a = vec![
                        KeyValue::new("target", target.to_string()),
                        KeyValue::new("id", format!("n{}", (i * 7) % 5)),
                        KeyValue::new("k", i as i64),
                    ];
                    match i % 4 {
                        0 => a.push(KeyValue::new("env", "series-wins")),
                        1 => {
                            a.push(KeyValue::new("a.b", "dotted"));
                            a.push(KeyValue::new("a_b", "under"));
                        }
                        2 => a.push(KeyValue::new("ok", i % 8 == 2)),
                        _ => a.push(KeyValue::new("q", Value::F64(1.5))),
                    }
                    let v = [1e21, 0.1, -0.0, f64::NAN, f64::INFINITY, 12345.678][i % 6];
                    Series::new(a, v + i as f64)
                })
                .collect()
        };
        let fams = |target: &str| -> Arc<Vec<Family>> {
            Arc::new(
                [
                    "app.latency",
                    "app.requests",
                    "app.queue",
                    "app.requests.total",
                    "app.help",
                    "app_help",
                ]
                .into_iter()
                .enumerate()
                .map(|(i, name)| Family {
                    name: Arc::from(name),
                    series: series(target, 3 + i),
                })
                .collect(),
            )
        };
        let store = Store::new();
        {
            let mut w = store.write();
            for t in ["b", "a"] {
                let mut families = fams(t);
                let mut labels: Arc<[KeyValue]> = Arc::default();
                if t == "a" {
                    // The target's labels kept beside its series (as the
                    // poller keeps them), not in each.
                    for f in &mut Arc::make_mut(&mut families)[..] {
                        for s in &mut f.series {
                            s.attributes.retain(|kv| kv.key.as_str() != "target");
                        }
                    }
                    labels = vec![KeyValue::new("target", "a"), KeyValue::new("team", "x")].into();
                }
                let state = crate::store::TargetState {
                    polled: true,
                    families,
                    labels,
                    ..Default::default()
                };
                w.targets.insert(t.to_string(), state);
            }
            let cpu = crate::store::CollectorState {
                families: Arc::new(vec![Family {
                    name: Arc::from("system.cpu.time"),
                    series: (0..4)
                        .map(|c| {
                            Series::new(
                                vec![
                                    KeyValue::new("cpu", c as i64),
                                    KeyValue::new("state", "user"),
                                ],
                                c as f64 * 0.5,
                            )
                        })
                        .collect(),
                }]),
                ..Default::default()
            };
            w.collectors.insert("cpu".into(), cpu);
            // One source, its series not in the family's order.
            let disk = crate::store::CollectorState {
                families: Arc::new(vec![Family {
                    name: Arc::from("system.disk.io"),
                    series: ["sdb", "sda", "sdc", "sda"]
                        .iter()
                        .zip(["read", "read", "write", "write"])
                        .map(|(d, dir)| {
                            Series::new(
                                vec![KeyValue::new("device", *d), KeyValue::new("direction", dir)],
                                1.0,
                            )
                        })
                        .collect(),
                }]),
                ..Default::default()
            };
            w.collectors.insert("disk".into(), disk);
            w.own_process = Arc::new(vec![Family {
                name: Arc::from("process.cpu.time"),
                series: vec![Series::new(Vec::new(), 0.25)],
            }]);
        }
        let limits = BTreeMap::new();
        let pipeline = Pipeline::build(&config, &specs, &limits, store.clone()).unwrap();
        let reader = TextReader::new(true);
        let mut provider = None;
        for round in 0..3 {
            if round == 2 {
                store.write().targets.remove("b");
            }
            let ours = text_of(&pipeline);
            let sdk = through_sdk(&config, &specs, &limits, &store, &reader, &mut provider);
            assert!(ours.contains("app_latency_milliseconds{"), "{ours}");
            assert!(ours.contains("env=\"series-wins\""), "{ours}");
            assert!(ours.contains("a_b=\"dotted;under\""), "{ours}");
            assert_eq!(ours.contains("target=\"b\""), round < 2);
            assert!(ours.contains("target=\"a\",team=\"x\""), "{ours}");
            assert!(
                ours.contains("system_disk_io_bytes_total{device=\"sda\""),
                "{ours}"
            );
            assert_eq!(ours, sdk, "round {round}");
        }
    }

    /// remora's own per-target series (`remora_target_*`) are served for
    /// every target, yet the text provider's SDK holds none of them: it
    /// collects `remora_build_info` alone. Through the SDK each own
    /// instrument kept a table sized for its limit (at 2,000 targets, 65,536
    /// slots for `remora_target_polls_total`) and an entry per series.
    #[test]
    fn own_series_are_written_without_the_sdk() {
        let config =
            crate::config::parse_str("", std::path::Path::new("t.yaml"), &|_| None).unwrap();
        let store = Store::new();
        {
            let mut w = store.write();
            for t in 0..50 {
                let state = crate::store::TargetState {
                    polled: true,
                    up: true,
                    ..Default::default()
                };
                w.targets.insert(format!("t{t:02}"), state);
            }
        }
        let limits = BTreeMap::new();
        let pipeline = Pipeline::build(&config, &[], &limits, store).unwrap();
        let text = text_of(&pipeline);
        let ups: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("remora_target_up{"))
            .collect();
        assert_eq!(ups.len(), 50, "{text}");
        assert_eq!(ups[0], "remora_target_up{target=\"t00\"} 1");
        let polls = text
            .lines()
            .filter(|l| l.starts_with("remora_target_polls_total{"))
            .count();
        assert_eq!(polls, 50 * crate::store::PollResult::ALL.len());
        assert!(text.contains("# TYPE remora_target_polls_total counter\n"));
        let rm = pipeline.reader.collect_now().unwrap();
        let names: Vec<&str> = rm
            .scope_metrics()
            .flat_map(|sm| sm.metrics())
            .map(|m| m.name())
            .collect();
        assert_eq!(names, ["remora.build_info"]);
    }

    /// A target's series carry `target` (the source's labels) before the
    /// rule's labels; the SDK would keep an unsorted slice and a sorted copy
    /// of it (two trackers' worth of attributes per series), so every slice
    /// observed is sorted.
    #[test]
    fn attributes_are_observed_sorted_by_key() {
        let fam = Family {
            name: Arc::from("m"),
            series: vec![
                Series::new(
                    vec![KeyValue::new("zone", "z"), KeyValue::new("id", "a")],
                    1.0,
                ),
                Series::new(vec![KeyValue::new("id", "b")], 2.0),
            ],
        };
        let target = [KeyValue::new("target", "app")];
        for base in [&[][..], &target[..]] {
            let prod: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())].into();
            for global in [GlobalLabels::default(), GlobalLabels::new(&prod)] {
                let seen = Seen::default();
                observe_families(
                    &seen,
                    (base, std::slice::from_ref(&fam)),
                    "m",
                    &global,
                    &mut Vec::new(),
                );
                let seen = seen.0.into_inner().unwrap();
                assert_eq!(seen.len(), 2);
                for keys in seen {
                    let mut sorted = keys.clone();
                    sorted.sort();
                    assert_eq!(keys, sorted, "base {base:?} global {global:?}");
                    assert_eq!(keys.contains(&"target".to_string()), !base.is_empty());
                }
            }
        }
    }
}
