//! The served names probe: which family name and type the exporter serves
//! each instrument under, found by running the specs through an exporter set
//! up as the pipeline's; and the check of the config's rule names against
//! the names remora serves itself.

use std::collections::BTreeMap;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;

use super::exporter::{provider, register};
use super::own::own_specs;
use super::text::TextReader;
use super::ExpositionError;
use crate::config::{Config, ConfigError, Format};
use crate::model::passthrough::{Kind, Served, ServedNames};
use crate::model::InstrumentSpec;

/// What the exporter serves for a list of instrument specs.
#[derive(Debug, Default)]
pub struct ServedAs {
    /// The family each spec is served as (by index), `None` when it serves nothing.
    pub specs: Vec<Option<(String, Served)>>,
    /// Families served for no spec (`target_info` when `resource:` is set).
    pub extra: Vec<(String, Served)>,
}

const PROBE_LABEL: &str = "remora_probe";
/// Cardinality limit of the probe's instruments (each observes one series).
const PROBE_LIMIT: usize = 4;

/// Registers `which` specs in a fresh exporter set up as the pipeline's, each
/// observing one series labelled with its index, and reads the families back.
fn probe(
    resource: &BTreeMap<String, String>,
    specs: &[InstrumentSpec],
    which: &[usize],
    found: &mut ServedAs,
) -> Result<(), ExpositionError> {
    let reader = TextReader::new(true);
    // One series per instrument: a small limit, so the SDK does not size
    // each instrument's table for thousands of series at every (re)load.
    let provider = provider(
        resource,
        BTreeMap::new(),
        PROBE_LIMIT,
        Some(reader.clone()),
        None,
    )?;
    let meter = provider.meter("remora");
    for &i in which {
        let attrs = [KeyValue::new(PROBE_LABEL, i.to_string())];
        register(&meter, &specs[i], move |o| o.observe(i as f64, &attrs));
    }
    let rm = reader.collect_now()?;
    for (name, fam) in reader.families(&rm, std::iter::empty()) {
        let served = Served {
            kind: fam.kind,
            help: fam.help.to_string(),
        };
        let mut any = false;
        for p in &fam.points {
            let index = p
                .labels
                .iter()
                .find(|(k, _)| k == PROBE_LABEL)
                .and_then(|(_, v)| v.parse::<usize>().ok());
            if let Some(slot) = index.and_then(|i| found.specs.get_mut(i)) {
                *slot = Some((name.clone(), served.clone()));
                any = true;
            }
        }
        if !any && !found.extra.iter().any(|(n, _)| *n == name) {
            found.extra.push((name, served));
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
) -> Result<ServedAs, ExpositionError> {
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
) -> Result<ServedNames, ExpositionError> {
    Ok(served_specs(config, specs)?.0)
}

/// The family name and type a spec is served as, `None` when it serves nothing.
pub(super) type SpecServed = Option<(String, Served)>;

/// [`served_names`], and what each of `specs` is served as (by index).
pub(super) fn served_specs(
    config: &Config,
    specs: &[InstrumentSpec],
) -> Result<(ServedNames, Vec<SpecServed>), ExpositionError> {
    let own = own_specs();
    let skip = own.len();
    let all: Vec<InstrumentSpec> = own.into_iter().chain(specs.iter().cloned()).collect();
    let found = served_as(&config.resource, &all)?;
    let mut names = ServedNames::new();
    for (name, served) in found.specs.iter().flatten().chain(&found.extra) {
        names.entry(name.clone()).or_insert_with(|| served.clone());
    }
    let mut per_spec = found.specs;
    per_spec.drain(..skip);
    Ok((names, per_spec))
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
