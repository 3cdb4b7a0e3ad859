//! Building a config: clients, extraction specs, per-instrument series limits,
//! the served names and the exposition pipeline, all before anything starts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{self, Config, ConfigError, Format};
use crate::exposition::{self, ExpositionError, Pipeline};
use crate::host::{self, HostCollectors, Roots};
use crate::model::InstrumentSpec;
use crate::store::Store;
use crate::targets::{client, extract, poller};

/// Why a config could not be built (at start-up or at a reload).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A target's HTTP client (TLS files, proxy, ...).
    #[error("target {target:?}: {source}")]
    Client {
        target: String,
        #[source]
        source: client::ClientError,
    },
    /// JSON rules served under a name remora serves itself, or under another
    /// rule's name with another type.
    #[error("{}", join(.0))]
    Names(Vec<ConfigError>),
    /// The OTLP push.
    #[error(transparent)]
    Otlp(#[from] crate::otlp::OtlpError),
    /// The pipeline (its meter providers).
    #[error(transparent)]
    Exposition(#[from] ExpositionError),
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Room in every own instrument's series limit besides what targets and
/// rules need (collectors and their error reasons, build info).
const OWN_SERIES: usize = 128;

/// The series limit of remora's own instrument `name` for `targets` targets
/// and `rules` JSON rules. While a reload stops the old sources the store
/// may hold both generations' targets: per-target counts are doubled.
fn own_limit(name: &str, targets: usize, rules: usize) -> usize {
    let both = 2 * targets;
    OWN_SERIES
        + match name {
            // A series per target and poll result.
            "remora.target.polls" => both * crate::store::PollResult::ALL.len(),
            // Per target, rule (or pass-through family) and reason.
            "remora.extraction.errors" => targets * 16 + rules * 8,
            // A series per target.
            n if n.starts_with("remora.target.") || n == "remora.series.dropped" => both,
            // Collectors, reloads, the push, build facts.
            _ => 0,
        }
}

/// A generation's compiled rule lists: by the list's address
/// (`config::Rules::addr`), the list (held, so the address stays its own)
/// and its extractor, shared by the pollers of its targets. A reload
/// passes the running generation's to [`prepare`], which reuses the
/// extractor of every list that did not change.
pub(crate) type Compiled = HashMap<usize, (config::Rules, Arc<extract::Extractor>)>;

/// Everything a config needs, built but not started.
pub(crate) struct Prepared {
    pub(crate) config: Arc<Config>,
    pub(crate) pollers: Vec<Arc<poller::Poller>>,
    pub(crate) host: Option<HostCollectors>,
    pub(crate) specs: Vec<InstrumentSpec>,
    pub(crate) limits: BTreeMap<String, usize>,
    /// Every family name the config's pipeline serves.
    pub(crate) served: Arc<crate::model::passthrough::ServedNames>,
    /// The handle of the pipeline's OTLP push, when `otlp:` is set.
    pub(crate) otlp: Option<crate::otlp::Handle>,
    /// This generation's compiled rule lists, for the next reload.
    pub(crate) compiled: Compiled,
}

/// Builds what `config` needs; `running` is the running generation's
/// compiled lists (empty at start): a target whose rules equal a running
/// list's takes that list and its extractor (`config::share::adopt`), so a
/// reload does not compile unchanged rules a second time beside the live
/// ones.
pub(crate) fn prepare(
    mut config: Config,
    roots: &Roots,
    running: &Compiled,
) -> Result<Prepared, BuildError> {
    config::share::adopt(&mut config.targets, running.values().map(|(r, _)| r));
    let mut pollers = Vec::new();
    let mut specs = Vec::new();
    let mut limits: BTreeMap<String, usize> = BTreeMap::new();
    let max = config.limits.max_series_per_target;
    let mut rules = 0;
    // One client per distinct setting, shared by its targets.
    let n = config.targets.len();
    let idle =
        usize::from(n <= client::KEEP_ALIVE_UP_TO && crate::fdlimit::keep_idle_connections(n));
    let clients =
        client::build_shared(&config.targets, idle).map_err(|(i, source)| BuildError::Client {
            target: config
                .targets
                .get(i)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            source,
        })?;
    // One compiled extractor per distinct rule list (`config::share`),
    // shared by its targets' pollers and held by the generation's
    // `Compiled` (the supervisor's until the next reload), taken from the
    // running generation when its list is unchanged. (The config and
    // `Compiled` hold the lists, so their addresses stay theirs.)
    let mut compiled = Compiled::new();
    for (t, c) in config.targets.iter().zip(clients) {
        let (_, extractor) = compiled.entry(t.metrics.addr()).or_insert_with(|| {
            let extractor = match running.get(&t.metrics.addr()) {
                Some((_, e)) => e.clone(),
                None => Arc::new(extract::Extractor::new(t)),
            };
            (t.metrics.clone(), extractor)
        });
        let extractor = extractor.clone();
        pollers.push(Arc::new(poller::Poller::with_extractor(
            t.clone(),
            c,
            extractor,
        )));
        if t.format == Format::Json {
            rules += t.metrics.len();
            for spec in extract::specs(t) {
                *limits.entry(spec.name.clone()).or_default() += max;
                specs.push(spec);
            }
        }
    }
    // remora's own instruments in the OTLP push's provider (the text writes
    // them without the SDK): a series per target and result or reason,
    // per rule and reason, per collector and reason. The SDK allocates each
    // table for its limit up front, and a reload builds a pipeline beside
    // the live one, so limits follow the config instead of a flat 4096.
    // Each instrument gets what its own labels need (issue 28: one flat
    // limit of 16 per target and 8 per rule gave every instrument a table
    // of 192k entries at 2,000 targets of 10 rules, 8.6 MB each).
    for spec in exposition::own_specs() {
        let limit = own_limit(&spec.name, config.targets.len(), rules);
        limits.insert(spec.name, limit);
    }
    let host = config
        .host
        .enabled
        .then(|| HostCollectors::new(&config.host, roots.clone()));
    if let Some(h) = &host {
        limits.extend(h.limits());
    }
    let mut reserved = host.as_ref().map_or_else(Vec::new, HostCollectors::specs);
    reserved.extend(host::self_process_specs());
    exposition::check_rule_names(&config, &reserved).map_err(BuildError::Names)?;
    specs.extend(reserved);
    let served = exposition::served_names(&config, &specs);
    // Where each rule name and URL is written serves only the checks above
    // (about 1.4 KB per target of 10 rules): not kept while the config runs.
    config.rule_names_at = Default::default();
    config.target_urls_at = Vec::new();
    Ok(Prepared {
        config: Arc::new(config),
        pollers,
        host,
        specs,
        limits,
        served: Arc::new(served),
        otlp: None,
        compiled,
    })
}

/// The config's JSON rules against the names remora serves itself (host
/// collectors, its own process and instruments, `target_info`): `remora
/// check` and start-up report these with the loader's errors.
pub fn check_served_names(config: &Config) -> Result<(), Vec<config::ConfigError>> {
    let mut reserved = if config.host.enabled {
        HostCollectors::new(&config.host, Roots::default()).specs()
    } else {
        Vec::new()
    };
    reserved.extend(host::self_process_specs());
    exposition::check_rule_names(config, &reserved)
}

/// Prepares a config and builds its pipeline: everything a config needs,
/// nothing started but the OTLP push's reader when `push` and `otlp:` are set.
pub(crate) fn build(
    config: Config,
    roots: &Roots,
    store: &Arc<Store>,
    push: bool,
    running: &Compiled,
) -> Result<(Prepared, Pipeline), BuildError> {
    let mut prepared = prepare(config, roots, running)?;
    let reader = match (&prepared.config.otlp, push) {
        (Some(o), true) => {
            let (reader, handle) = crate::otlp::build(o, store)?;
            prepared.otlp = Some(handle);
            Some(reader)
        }
        _ => None,
    };
    let pipeline = Pipeline::build_with(
        &prepared.config,
        &prepared.specs,
        &prepared.limits,
        store.clone(),
        reader,
    )?;
    Ok((prepared, pipeline))
}

pub(crate) fn poll_context(p: &Prepared) -> poller::PollContext {
    let config = &p.config;
    poller::PollContext {
        max_body_bytes: config.limits.max_body_bytes,
        max_series: config.limits.max_series_per_target,
        global_labels: crate::model::labels::GlobalLabels::new(&config.global.labels),
        served: p.served.clone(),
        gate: crate::sched::polls::Gate::for_targets(p.pollers.len()),
    }
}
