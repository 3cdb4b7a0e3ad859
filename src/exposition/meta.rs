//! What the other formats need to know of a family that text 0.0.4 does not
//! say: its UTF-8 name (the OpenTelemetry name with its dots, and the same
//! unit and `_total` suffixes), its unit, whether a rule made it an `info`
//! or a `stateset`, whether remora knows when its counting started
//! (`_created`), and which of its label names stand for dotted attribute
//! keys. Built once per pipeline from the config and the specs; the dotted
//! label keys of the store's families are read from each render's snapshot.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::names::{served_as, SpecServed};
use super::own::own_specs;
use super::snapshot::Snapshot;
use super::text::{family_name, unit_suffix};
use crate::config::{Config, Format, RuleKind};
use crate::model::{InstrumentKind, InstrumentSpec};

/// What OpenMetrics type a rule asks for beyond counter and gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum OmKind {
    #[default]
    Plain,
    /// `kind: info`, `remora_build_info`, `target_info`.
    Info,
    /// `kind: stateset`.
    StateSet,
}

/// The time the first pipeline was built.
static FIRST: OnceLock<f64> = OnceLock::new();

/// One family's facts beyond text 0.0.4 (keyed by its 0.0.4 name).
#[derive(Debug, Clone, Default)]
pub(super) struct FamilyMeta {
    /// The UTF-8 name (with `_total` for a counter) when it is not the 0.0.4 name.
    pub(super) utf8: Option<String>,
    /// The unit's word (`seconds`, `bytes`, `ratio`, `bytes_per_second`).
    pub(super) unit: Option<String>,
    pub(super) om: OmKind,
    /// remora's own counter: `_created` is the process's start.
    pub(super) created: bool,
    /// Label names (as served in 0.0.4) standing for dotted keys: (served, key).
    pub(super) labels: Vec<(String, String)>,
}

/// The facts of every family a pipeline serves.
#[derive(Debug, Default)]
pub(super) struct Meta {
    pub(super) families: HashMap<String, FamilyMeta>,
}

/// The UTF-8 name of an instrument: its name as it is, the unit's suffix.
pub(super) fn utf8_family_name(name: &str, unit: &str) -> String {
    match unit_suffix(unit) {
        Some(s) => format!("{name}_{s}"),
        None => name.to_string(),
    }
}

/// A label name as 0.0.4 serves a key (`text`'s rule, repeated here for keys).
fn served_label(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// When remora started counting: its process's start, or (before the first
/// snapshot that has it) the time the first pipeline was built.
pub(super) fn process_start(snap: &Snapshot) -> f64 {
    let fallback = process_start_init();
    snap.sources
        .last()
        .and_then(|(_, fams)| fams.iter().find(|f| &*f.name == "process.start_time"))
        .and_then(|f| f.series.first())
        .map(|s| s.value)
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(fallback)
}

impl Meta {
    /// The facts of remora's own instruments, the specs (`specs`, served as
    /// `as_served` says) and `target_info`, with the rule kinds of `config`.
    pub(super) fn build(
        config: &Config,
        specs: &[InstrumentSpec],
        as_served: &[SpecServed],
    ) -> Meta {
        let _ = process_start_init();
        let own = own_specs();
        let own_served = served_as(&config.resource, &own);
        let mut rule_kind: HashMap<&str, OmKind> = HashMap::new();
        for t in config.targets.iter().filter(|t| t.format == Format::Json) {
            for rule in &t.metrics {
                let om = match rule.kind {
                    RuleKind::Info => OmKind::Info,
                    RuleKind::StateSet(_) => OmKind::StateSet,
                    _ => continue,
                };
                for v in &rule.values {
                    rule_kind.entry(v.name.as_str()).or_insert(om);
                }
            }
        }
        let mut meta = Meta::default();
        let mut add = |spec: &InstrumentSpec, served: &str, own: bool| {
            if meta.families.contains_key(served) {
                return;
            }
            let counter = spec.kind == InstrumentKind::Counter;
            let mut utf8 = utf8_family_name(&spec.name, &spec.unit);
            if counter {
                utf8.push_str("_total");
            }
            let om = match rule_kind.get(spec.name.as_str()) {
                Some(k) => *k,
                None if own && served.ends_with("_info") => OmKind::Info,
                None => OmKind::Plain,
            };
            let base = family_name(&spec.name, &spec.unit);
            let unit = unit_suffix(&spec.unit)
                .map(|u| u.into_owned())
                .filter(|u| base.ends_with(&format!("_{u}")) && om == OmKind::Plain);
            meta.families.insert(
                served.to_string(),
                FamilyMeta {
                    // remora's own names are a contract (SPEC section 7):
                    // the same under every escaping.
                    utf8: (!own && utf8 != served).then_some(utf8),
                    unit,
                    om,
                    created: own && counter,
                    labels: Vec::new(),
                },
            );
        };
        for (spec, served) in own.iter().zip(&own_served.specs) {
            if let Some((s, _)) = served {
                add(spec, s, true);
            }
        }
        for (spec, served) in specs.iter().zip(as_served) {
            if let Some((s, _)) = served {
                add(spec, s, false);
            }
        }
        if !config.resource.is_empty() {
            let labels = config
                .resource
                .keys()
                .filter(|k| served_label(k) != **k)
                .map(|k| (served_label(k), k.clone()))
                .collect();
            meta.families.insert(
                super::text::TARGET_INFO_NAME.to_string(),
                FamilyMeta {
                    om: OmKind::Info,
                    labels,
                    ..Default::default()
                },
            );
        }
        meta
    }
}

/// Fixes the fallback of [`process_start`] at the first pipeline.
fn process_start_init() -> f64 {
    *FIRST.get_or_init(crate::store::unix_now)
}

/// Dotted label keys per family, read from the store's families of one
/// snapshot: `family` gives the served name of an instrument name.
pub(super) fn dotted_labels<'a>(
    snap: &Snapshot,
    family: impl Fn(&str) -> Option<&'a str>,
) -> HashMap<&'a str, Vec<(String, String)>> {
    let mut out: HashMap<&'a str, Vec<(String, String)>> = HashMap::new();
    for (base, fams) in &snap.sources {
        for f in fams.iter() {
            let Some(served) = family(&f.name) else {
                continue;
            };
            let keys = base
                .iter()
                .chain(f.series.iter().flat_map(|s| s.attributes.iter()))
                .map(|kv| kv.key.as_str())
                .filter(|k| !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':'))
                .filter(|k| k.contains('.'));
            for k in keys {
                let list = out.entry(served).or_default();
                let s = served_label(k);
                match list.iter().position(|(n, _)| *n == s) {
                    // Two keys under one label name (joined in 0.0.4): keep
                    // the served name, no UTF-8 name can be told apart.
                    Some(i) if list[i].1 != k => list[i].1 = s,
                    Some(_) => {}
                    None => list.push((s, k.to_string())),
                }
            }
        }
    }
    out
}
