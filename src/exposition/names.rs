//! The served names: which family name, type and HELP each instrument is
//! served under, computed with the text writer's naming function
//! (`text::served_name`) and its rules for families of one name (the
//! first instrument fixes type and HELP, one of another type is left out);
//! and the check of the config's rule names against the names remora
//! serves itself.
//!
//! No meter provider is built for it: what the SDK does before the text
//! writer sees an instrument (it ignores an instrument whose name or unit it
//! rejects, and makes one stream of instruments equal but for the case of
//! their names) is done here too. `tests::served_as_agrees_with_the_sdk`
//! runs both over the naming rules.

use std::collections::{BTreeMap, HashMap};

use super::own::own_specs;
use super::text::{served_name, TARGET_INFO_HELP, TARGET_INFO_NAME};
use crate::config::{Config, ConfigError, Format};
use crate::model::passthrough::{Kind, Served, ServedNames};
use crate::model::{InstrumentKind, InstrumentSpec};

/// What the exporter serves for a list of instrument specs.
#[derive(Debug, Default)]
pub struct ServedAs {
    /// The family each spec is served as (by index), `None` when it serves nothing.
    pub specs: Vec<Option<(String, Served)>>,
    /// Families served for no spec (`target_info` when `resource:` is set).
    pub extra: Vec<(String, Served)>,
}

/// The family type of an instrument: a counter's is `counter`, a gauge's
/// and an up-down counter's (a non-monotonic sum) `gauge`.
fn served_kind(kind: InstrumentKind) -> Kind {
    match kind {
        InstrumentKind::Counter => Kind::Counter,
        InstrumentKind::Gauge | InstrumentKind::UpDownCounter => Kind::Gauge,
    }
}

/// Whether the SDK makes an instrument of `spec` (it makes a no-op one, which
/// serves nothing, when the name or unit breaks the API's syntax): a name of
/// 1 to 255 ASCII letters, digits, `_`, `.`, `-` and `/` starting with a
/// letter; a unit of at most 63 ASCII characters.
fn instrument_made(spec: &InstrumentSpec) -> bool {
    let name = spec.name.as_str();
    let name_ok = !name.is_empty()
        && name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
    name_ok && spec.unit.len() <= 63 && spec.unit.is_ascii()
}

/// What the text writer serves `which` of `specs` as, when they are the
/// pipeline's only instruments (remora's text reader, fresh): one stream
/// per instrument identity (name ignoring ASCII case, description, type,
/// unit; the first instrument names it), in the order they came; under each
/// family name the first stream fixes type and HELP (`target_info` first,
/// when the resource is set), and a stream of another type is left out
/// (its specs stay `None`).
fn one_pass(resource_set: bool, specs: &[InstrumentSpec], which: &[usize], found: &mut ServedAs) {
    // (name in lower case, description, type, unit) -> stream index.
    let mut ids: HashMap<(String, &str, InstrumentKind, &str), usize> = HashMap::new();
    // Per stream: the spec that made it and the specs observed in it.
    let mut streams: Vec<(usize, Vec<usize>)> = Vec::new();
    for &i in which {
        let Some(spec) = specs.get(i).filter(|s| instrument_made(s)) else {
            continue;
        };
        let id = (
            spec.name.to_ascii_lowercase(),
            spec.description.as_str(),
            spec.kind,
            spec.unit.as_str(),
        );
        match ids.get(&id) {
            Some(&s) => streams[s].1.push(i),
            None => {
                ids.insert(id, streams.len());
                streams.push((i, vec![i]));
            }
        }
    }
    let mut families: BTreeMap<String, Served> = BTreeMap::new();
    if resource_set {
        families.insert(
            TARGET_INFO_NAME.to_string(),
            Served {
                kind: Kind::Gauge,
                help: TARGET_INFO_HELP.to_string(),
            },
        );
    }
    // The type and HELP of the first stream under each name (as the text
    // reader's `first`: `target_info` is not in it).
    let mut first: HashMap<String, Kind> = HashMap::new();
    let mut target_info_used = false;
    for (maker, observed) in streams {
        let spec = &specs[maker];
        let kind = served_kind(spec.kind);
        let name = served_name(&spec.name, &spec.unit, kind);
        if *first.entry(name.clone()).or_insert(kind) != kind {
            continue;
        }
        let served = families
            .entry(name.clone())
            .or_insert_with(|| Served {
                kind,
                help: spec.description.clone(),
            })
            .clone();
        target_info_used |= resource_set && name == TARGET_INFO_NAME;
        for i in observed {
            if let Some(slot) = found.specs.get_mut(i) {
                *slot = Some((name.clone(), served.clone()));
            }
        }
    }
    if resource_set && !target_info_used && !found.extra.iter().any(|(n, _)| n == TARGET_INFO_NAME)
    {
        if let Some(served) = families.remove(TARGET_INFO_NAME) {
            found.extra.push((TARGET_INFO_NAME.to_string(), served));
        }
    }
}

/// The family name and type the text writer serves each spec under (name
/// sanitised, unit suffix, `_total`), as if the specs were the pipeline's
/// instruments registered in this order with `resource`. A spec whose
/// instrument name came earlier in `specs` is served as that one; one left
/// out for the type of an earlier family of its name is given the name and
/// type it would have on its own.
pub fn served_as(resource: &BTreeMap<String, String>, specs: &[InstrumentSpec]) -> ServedAs {
    let resource_set = !resource.is_empty();
    served_by(specs, |which, found| {
        one_pass(resource_set, specs, which, found)
    })
}

/// [`served_as`] with `pass` finding how the instruments of `which` (indices
/// of `specs`, registered together in that order) are served: one pass over
/// the distinct names, then each one left out (the text keeps the first of
/// two families of one name and different types) on its own; a spec whose
/// name came earlier is served as that one.
pub(crate) fn served_by(
    specs: &[InstrumentSpec],
    mut pass: impl FnMut(&[usize], &mut ServedAs),
) -> ServedAs {
    let mut found = ServedAs {
        specs: vec![None; specs.len()],
        extra: Vec::new(),
    };
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    let distinct: Vec<usize> = (0..specs.len())
        .filter(|&i| *first.entry(specs[i].name.as_str()).or_insert(i) == i)
        .collect();
    pass(&distinct, &mut found);
    let missing: Vec<usize> = distinct
        .iter()
        .copied()
        .filter(|&i| found.specs[i].is_none())
        .collect();
    for i in missing {
        pass(&[i], &mut found);
    }
    for (i, spec) in specs.iter().enumerate() {
        let f = first.get(spec.name.as_str()).copied().unwrap_or(i);
        if f != i {
            found.specs[i] = found.specs[f].clone();
        }
    }
    found
}

/// Every family a pipeline of `config` with `specs` serves: remora's own,
/// the specs', and `target_info` when `resource:` is set.
pub fn served_names(config: &Config, specs: &[InstrumentSpec]) -> ServedNames {
    served_specs(config, specs).0
}

/// The family name and type a spec is served as, `None` when it serves nothing.
pub(super) type SpecServed = Option<(String, Served)>;

/// [`served_names`], and what each of `specs` is served as (by index).
pub(super) fn served_specs(
    config: &Config,
    specs: &[InstrumentSpec],
) -> (ServedNames, Vec<SpecServed>) {
    let own = own_specs();
    let skip = own.len();
    let all: Vec<InstrumentSpec> = own.into_iter().chain(specs.iter().cloned()).collect();
    let found = served_as(&config.resource, &all);
    let mut names = ServedNames::new();
    for (name, served) in found.specs.iter().flatten().chain(&found.extra) {
        names.entry(name.clone()).or_insert_with(|| served.clone());
    }
    let mut per_spec = found.specs;
    per_spec.drain(..skip);
    (names, per_spec)
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
    let own: Vec<InstrumentSpec> = own_specs()
        .into_iter()
        .chain(reserved.iter().cloned())
        .collect();
    let own_found = served_as(&config.resource, &own);
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
    let found = served_as(&config.resource, &rule_specs);
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
