//! Turning a parsed JSON document into series, following the compiled rules.
//!
//! [`Extractor::new`] compiles a target's [`MetricRule`](crate::config::MetricRule)s once (per config
//! load); [`Extractor::extract`] walks them over one document (parsed once per
//! poll, whatever the number of rules) and returns one [`Family`] per
//! instrument of [`specs`] (same order, empty families included), the
//! extraction errors, and how many series the cap dropped. It never fails as a
//! whole: every problem is confined to the series it concerns. [`extract`]
//! does both steps in one call.
//!
//! Series come out in rule order, then document order (object members in
//! serde_json's map order: sorted by key unless its `preserve_order` feature
//! is on). Rules whose `each` iterates the same container (`$.a.b.*`,
//! `$.a[*]`) and that share no instrument run together, node by node, at the
//! first one's place (a pass): a node is read once for
//! all of them, and the cap is reached node by node (a rule never runs ahead
//! of another rule of the same instrument). Errors are still listed in
//! rule order.
//!
//! Semantics (SPEC section 4), with the choices the SPEC leaves open:
//!
//! - `each`: one evaluation per node matched; `$` in `path` and in label
//!   templates then means that node (without `each`, the document root).
//!   `{@key}` is the node's object key or array index (empty without `each`).
//!   An `each` matching nothing gives no series and no error.
//! - A list `each:` is levels: each level's path is evaluated from every
//!   node of the level before (the first from the document), and the
//!   innermost nodes are the rule's nodes. `{@key:N}` and `{@N$.path}`
//!   read the node N levels out (`{@key:0}` is `{@key}`); the inner levels'
//!   node counts are in the trace, for `--explain`.
//! - A `path` or template path matching several nodes uses the first.
//! - Values, `parse: auto`: numbers as they are, `true`/`false` 1/0, numeric
//!   strings as numbers; `duration`/`timestamp`/`bytes` read strings with
//!   [`super::value`] and take numbers as seconds / epoch seconds / bytes
//!   (booleans are `not_a_number` there).
//! - `map` is looked up first, in every `parse` mode, with the value's text:
//!   a string as is, a boolean as `true`/`false`, a number as the JSON wrote
//!   it (so `{"true": 0}` inverts a flag, `{"200": 1}` maps a status code). A
//!   string neither the map nor the parser accepts is `unmapped_value` when
//!   the rule has a map, `not_a_number` otherwise; a number or boolean not in
//!   the map keeps its natural value.
//! - `scale` multiplies parsed values, not constants (`values: {active: 1}`).
//! - A result that is NaN or infinite (e.g. `1e308` scaled by 10) is
//!   `not_a_number` and gives no series.
//! - `null` gives no series and no error; a missing node is `missing` unless
//!   the rule is `optional`.
//! - Labels: strings as is, numbers as the JSON wrote them (integers exactly;
//!   floats in shortest round-trip form, so `1e3` becomes `1000.0`), booleans
//!   `true`/`false`, `null` empty; an object or array is `invalid_label` and
//!   drops the node's series. A missing label path is `missing` (the node's
//!   series are dropped) unless the rule is `optional`, where it renders empty.
//!   One label error per node, whatever the number of `values`.
//! - `info`: value 1; a `path` only has to exist (missing: `missing` unless
//!   optional; `null`: no series).
//! - `stateset`: the current value's text is compared with `states`; one
//!   series per state, label `state`, 1 for the current one. A current value
//!   not in `states` is `unmapped_value`: every state is served as 0 and one
//!   more series, `state="other"` ([`crate::config::OTHER_STATE`]), as 1.
//! - Duplicates (same instrument and labels in one poll): the first is kept;
//!   one `duplicate_series` error per node that produced any duplicate.
//! - Cap: once `max_series` series are kept, further series are dropped and
//!   counted in [`Extraction::dropped`] (duplicates are errors, not drops).
//! - Errors are counted per (rule, reason), with the first offending value as
//!   an example (cut to [`EXAMPLE_CHARS`] characters): one poll's errors take
//!   the same memory whatever the number of nodes that fail.
//!
//! Memory ([`Extractor::extract_body`]): the body is parsed into only what
//! the rules can reach (the `reach` submodule; a container only one pass's
//! `each` reads is kept as text and its members parsed one at a time), and the parsed values plus the label
//! text of the series made share one budget (the body limit,
//! `limits.max_body_bytes`; the parse may take three quarters of it, the
//! labels the rest). Past it, the rest of the bulk is not read and a
//! node whose labels do not fit gives no series: both count in
//! [`Extraction::dropped`] (per member of an `each` container, one per series
//! the rule makes from a node) and in [`Extraction::unread`].
//!
//! The data path, one submodule per step: `plan` compiles each rule into a
//! `RulePlan` (label templates, value sources, kind) and its reach; `reach`
//! parses a body into only what the plans can read; `path` finds the nodes
//! (plain paths in a fast form, the general JSONPath query otherwise, the
//! `{@key}` of `each` matches); `convert` turns values into numbers (`map`,
//! `parse`) and label templates into text; `sink` collects the series
//! (duplicates, the cap, the label budget) and counts errors per (rule,
//! reason). [`Extractor::extract`] drives them: per rule, per node, into one
//! sink, then into an [`Extraction`]. `explain` turns an [`Extraction`]
//! (its per-rule [`explain::Trace`] and errors with their [`Site`]) into the
//! explain record ([`Extractor::explain`], a `model::explain::Record`) that
//! `remora once --explain` (`targets::report`), the rule log lines and the
//! target page print.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use opentelemetry::KeyValue;
use serde_json::Value;

mod convert;
pub mod explain;
mod fold;
mod path;
mod plan;
mod reach;
mod sink;

use crate::config::Target;
use crate::model::{Family, InstrumentSpec};
use explain::Trace;
use path::{keys_of, NodeKey};
use plan::{EachPlan, RulePlan};
pub use sink::{NodeStep, PathAt, Site};
use sink::{Sink, NO_SLOT};

/// Why a series could not be produced (`remora_extraction_errors_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    /// A value or label path matched nothing (and the rule is not optional).
    Missing,
    /// The value is not a number (nor parseable by the rule's `parse`).
    NotANumber,
    /// A string not in the rule's `map`, or a state not in `states`.
    UnmappedValue,
    /// Same instrument and labels as an earlier series of the poll.
    DuplicateSeries,
    /// A label path matched an object or an array.
    InvalidLabel,
}

impl ErrorReason {
    /// Every reason, in a fixed order.
    pub const ALL: [ErrorReason; 5] = [
        ErrorReason::Missing,
        ErrorReason::NotANumber,
        ErrorReason::UnmappedValue,
        ErrorReason::DuplicateSeries,
        ErrorReason::InvalidLabel,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Missing => "missing",
            ErrorReason::NotANumber => "not_a_number",
            ErrorReason::UnmappedValue => "unmapped_value",
            ErrorReason::DuplicateSeries => "duplicate_series",
            ErrorReason::InvalidLabel => "invalid_label",
        }
    }
}

/// Characters an error's example value is cut to.
pub const EXAMPLE_CHARS: usize = 80;

/// The extraction errors of one rule and reason in one extraction (`count`
/// increments of `remora_extraction_errors_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractionError {
    /// The rule's name as written in the config.
    pub metric: String,
    /// The rule's position in the target's `metrics:`.
    pub rule: usize,
    pub reason: ErrorReason,
    /// How many times (at least 1).
    pub count: u64,
    /// The first offending value: a string as is, another scalar as JSON
    /// text, an object or array as `{…}` / `[…]`, a duplicate as its labels;
    /// cut to [`EXAMPLE_CHARS`] characters (ending in `…` when cut). `None`
    /// for `missing`.
    pub example: Option<String>,
    /// Where the first one was met (for the hints of [`explain`]).
    pub site: Site,
}

/// The result of one extraction.
#[derive(Debug, Clone, Default)]
pub struct Extraction {
    /// One family per instrument of [`specs`], in the same order.
    pub families: Vec<Family>,
    /// Per (rule, reason), in the order first met.
    pub errors: Vec<ExtractionError>,
    /// Series over the cap, or past the memory budget.
    pub dropped: u64,
    /// Series kept.
    pub series: usize,
    /// JSON values and nodes the memory budget left out.
    pub unread: u64,
    /// Per rule: nodes matched and the series it made (for [`explain`]).
    pub trace: Trace,
}

/// The bounds of one extraction.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `limits.max_series_per_target`.
    pub max_series: usize,
    /// The body limit (`limits.max_body_bytes`): the parsed document, the
    /// label text and the body take at most about twice this together.
    pub max_bytes: usize,
}

/// One [`InstrumentSpec`] per instrument the target's rules produce, in rule
/// order; a name produced by several rules appears once (the first rule's
/// kind, unit and description).
pub fn specs(target: &Target) -> Vec<InstrumentSpec> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for rule in &target.metrics {
        for value in &rule.values {
            if seen.insert(value.name.as_str()) {
                out.push(InstrumentSpec::new(
                    &value.name,
                    rule.kind.instrument_kind(),
                    &rule.unit,
                    &rule.description,
                ));
            }
        }
    }
    out
}

/// Extracts every rule of `target` from `doc`: [`Extractor::new`] then
/// [`Extractor::extract`]. A poller should keep the [`Extractor`] of each
/// target instead, and compile the rules once per config load.
pub fn extract(target: &Target, doc: &Value, max_series: usize, base: &[KeyValue]) -> Extraction {
    Extractor::new(target).extract(doc, max_series, base)
}

/// A target's rules compiled for extraction: label keys, constant label
/// values and instrument names as reference-counted strings (cloned per
/// series without allocating), plain JSONPaths in a fast form. Owns what it
/// needs (`Send + Sync`); build it when the config is loaded.
pub struct Extractor {
    /// Instrument names, in [`specs`] order.
    names: Vec<Arc<str>>,
    rules: Vec<RulePlan>,
    /// The rules as they run, by index: one at a time, except rules whose
    /// `each` iterates the same container (`$.a.b.*`, `$.a[*]`) and that
    /// share no instrument, which run together node by node at the first
    /// one's place.
    passes: Vec<Vec<usize>>,
    /// What the rules can read of a document.
    reach: reach::Reach,
    /// Series kept by the last extraction, to size the next one's tables.
    last_series: AtomicUsize,
    /// The rules as written, for [`Extractor::explain`].
    texts: Vec<explain::RuleText>,
    /// Unix seconds now, for `parse: age` ([`Extractor::with_clock`]).
    clock: Clock,
}

/// A source of the current time in Unix seconds.
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The system clock, in Unix seconds.
fn system_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("instruments", &self.names)
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl Extractor {
    /// Compiles `target`'s rules.
    pub fn new(target: &Target) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut names = Vec::new();
        for rule in &target.metrics {
            for value in &rule.values {
                index.entry(value.name.as_str()).or_insert_with(|| {
                    names.push(Arc::from(value.name.as_str()));
                    names.len() - 1
                });
            }
        }
        let rules: Vec<RulePlan> = target
            .metrics
            .iter()
            .enumerate()
            .map(|(i, rule)| RulePlan::new(i, rule, &index))
            .collect();
        let mut rules = rules;
        let mut first_span = 0;
        let mut first_level = 0;
        for rule in &mut rules {
            rule.first_span = first_span;
            first_span += rule.values.len();
            rule.first_level = first_level;
            first_level += rule.inner.len();
        }
        let passes = passes(&rules);
        let mut reach = reach::Reach::default();
        for rule in &rules {
            rule.add_reach(&mut reach);
        }
        reach.normalize();
        let mut pass_of = vec![0; rules.len()];
        for pass in &passes {
            for i in pass {
                if let (Some(slot), Some(first)) = (pass_of.get_mut(*i), pass.first()) {
                    *slot = *first;
                }
            }
        }
        reach.mark_lazy(&pass_of);
        Extractor {
            names,
            rules,
            passes,
            reach,
            last_series: AtomicUsize::new(0),
            texts: target.metrics.iter().map(explain::RuleText::new).collect(),
            clock: Arc::new(system_clock),
        }
    }

    /// The same extractor reading the time `parse: age` subtracts from
    /// `clock` (Unix seconds) instead of the system clock: for tests, and
    /// for a caller that has the poll's time already.
    pub fn with_clock(mut self, clock: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Parses `body` and extracts every rule from it, within `limits`: the
    /// parse keeps only what the rules can reach, and what it keeps plus the
    /// label text made stays within `limits.max_bytes` (see the module doc).
    pub fn extract_body(
        &self,
        body: &[u8],
        limits: Limits,
        base: &[KeyValue],
    ) -> Result<Extraction, serde_json::Error> {
        // Twice the limit less the body (which is in memory too); a quarter
        // is kept for the label text and the results of general queries.
        let budget = limits
            .max_bytes
            .saturating_mul(2)
            .saturating_sub(body.len())
            .max(limits.max_bytes);
        let for_parse = budget - budget / 4;
        let parsed = reach::parse(body, &self.reach, self.rules.len(), for_parse)?;
        let for_labels = budget - (for_parse - parsed.budget);
        // A lazy container's member is parsed, then dropped, within what the
        // parse left (at least the quarter it kept for them).
        let failed = std::cell::RefCell::new(None);
        let lazy = LazyInput {
            containers: &parsed.lazy,
            budget: parsed.budget.max(reach::member_budget(for_parse)),
            failed: &failed,
        };
        // The members are parsed within what the labels would have had.
        let for_labels = if parsed.lazy.iter().any(Option::is_some) {
            for_labels.saturating_sub(lazy.budget)
        } else {
            for_labels
        };
        let mut x = self.extract_within(&parsed.root, lazy, limits.max_series, for_labels, base);
        if let Some(e) = failed.take() {
            return Err(e);
        }
        for (rule, n) in self.rules.iter().zip(&parsed.unread_members) {
            x.dropped = x.dropped.saturating_add(n.saturating_mul(rule.per_node()));
            x.unread += n;
        }
        x.dropped = x.dropped.saturating_add(parsed.unread);
        x.unread += parsed.unread;
        Ok(x)
    }

    /// Extracts every rule from `doc`. `base` (the `target` label and the
    /// target's labels) is prepended to every series; build it once per
    /// target with `Arc<str>` keys and values, so that cloning it per series
    /// does not allocate.
    pub fn extract(&self, doc: &Value, max_series: usize, base: &[KeyValue]) -> Extraction {
        let failed = std::cell::RefCell::new(None);
        let lazy = LazyInput {
            containers: &[],
            budget: 0,
            failed: &failed,
        };
        self.extract_within(doc, lazy, max_series, usize::MAX, base)
    }

    /// Runs the rules of `pass` (their `each` iterates one container; the
    /// first one's spans start at `first_at`) over its members, node by
    /// node: each member is read once for all of them, and parsed only then
    /// when the parse left the container as text.
    #[allow(clippy::too_many_arguments)]
    fn members(
        &self,
        pass: &[usize],
        at: Members,
        base: &[KeyValue],
        sink: &mut Sink,
        buf: &mut String,
        trace: &mut Trace,
        first_at: usize,
    ) {
        let rules: Vec<&RulePlan> = pass.iter().filter_map(|i| self.rules.get(*i)).collect();
        let mut ats = vec![first_at];
        for rule in rules.iter().skip(1) {
            ats.push(trace.before(rule, sink));
        }
        // The members kept as text, when the container is still in the
        // document (a later duplicate key may have replaced a parent).
        let found = at.container.get(at.doc);
        let lazy = pass
            .first()
            .and_then(|first| at.kept.of(*first))
            .filter(|_| matches!(found, Some(Value::Object(_) | Value::Array(_))));
        let count = match (lazy, found) {
            (Some(lazy), _) => lazy.len(),
            (None, Some(Value::Object(m))) => m.len(),
            (None, Some(Value::Array(a))) => a.len(),
            _ => 0,
        };
        for rule in &rules {
            rule.reserve(count, sink);
        }
        let mut run = |v: &Value, key: NodeKey| {
            for rule in &rules {
                rule.node(v, key, base, sink, buf);
            }
        };
        let nodes = match (lazy, found) {
            (Some(lazy), _) => match lazy.for_each(at.kept.budget, run) {
                Ok((n, unread)) => {
                    sink.dropped = sink.dropped.saturating_add(unread);
                    sink.unread += unread;
                    n
                }
                Err(e) => {
                    at.kept.failed.replace(Some(e));
                    0
                }
            },
            (None, Some(Value::Object(members))) => {
                for (k, v) in members {
                    run(v, NodeKey::Name(k));
                }
                members.len()
            }
            (None, Some(Value::Array(items))) => {
                for (i, v) in items.iter().enumerate() {
                    run(v, NodeKey::Index(i));
                }
                items.len()
            }
            _ => 0,
        };
        for (rule, at) in rules.iter().zip(ats) {
            trace.aggregated(rule, rule.finish(base, sink));
            trace.after(sink, at, rule, nodes);
        }
    }

    /// [`Extractor::extract`] with `label_budget` bytes for the label text.
    fn extract_within(
        &self,
        doc: &Value,
        lazy: LazyInput,
        max_series: usize,
        label_budget: usize,
        base: &[KeyValue],
    ) -> Extraction {
        let expected = self.last_series.load(Ordering::Relaxed).min(max_series);
        let mut sink = Sink {
            families: self
                .names
                .iter()
                .map(|name| Family {
                    name: name.clone(),
                    series: Vec::new(),
                })
                .collect(),
            errors: Vec::new(),
            error_slots: vec![[NO_SLOT; 5]; self.rules.len()],
            dropped: 0,
            kept: 0,
            unread: 0,
            label_budget,
            max_series,
            base_len: base.len(),
            seen: HashMap::with_capacity_and_hasher(expected, Default::default()),
            hasher: foldhash::fast::RandomState::default(),
            level_nodes: vec![0; self.rules.iter().map(|r| r.inner.len()).sum()],
            folds: self.rules.iter().map(|_| sink::Fold::default()).collect(),
            now: if self
                .rules
                .iter()
                .any(|r| r.parse == crate::config::Parse::Age)
            {
                (self.clock)()
            } else {
                0.0
            },
        };
        let mut buf = String::new();
        let mut trace = Trace::with_rules(&self.rules);
        for pass in &self.passes {
            let Some(rule) = pass.first().and_then(|i| self.rules.get(*i)) else {
                continue;
            };
            let before = trace.before(rule, &sink);
            let nodes = match &rule.each {
                None => {
                    rule.node(doc, NodeKey::None, base, &mut sink, &mut buf);
                    1
                }
                Some(EachPlan::Members(container)) => {
                    let at = Members {
                        container,
                        doc,
                        kept: lazy,
                    };
                    self.members(pass, at, base, &mut sink, &mut buf, &mut trace, before);
                    continue;
                }
                Some(EachPlan::Query(each)) if rule.uses_key => {
                    let mut nodes = each.query(doc).all();
                    // The list and the map of keys.
                    sink.fit_nodes(rule.per_node(), &mut nodes, 56);
                    rule.reserve(nodes.len(), &mut sink);
                    let keys = keys_of(doc, &nodes);
                    let n = nodes.len();
                    for node in nodes {
                        let key = keys
                            .get(&std::ptr::from_ref(node))
                            .copied()
                            .unwrap_or(NodeKey::None);
                        rule.node(node, key, base, &mut sink, &mut buf);
                    }
                    n
                }
                Some(EachPlan::Query(each)) => {
                    let mut nodes = each.query(doc).all();
                    sink.fit_nodes(rule.per_node(), &mut nodes, 8);
                    rule.reserve(nodes.len(), &mut sink);
                    let n = nodes.len();
                    for node in nodes {
                        rule.node(node, NodeKey::None, base, &mut sink, &mut buf);
                    }
                    n
                }
            };
            trace.aggregated(rule, rule.finish(base, &mut sink));
            trace.after(&sink, before, rule, nodes);
        }
        // Rules that ran together met their errors node by node.
        sink.errors.sort_by_key(|e| e.rule);
        self.last_series.store(sink.kept, Ordering::Relaxed);
        trace.levels = std::mem::take(&mut sink.level_nodes);
        Extraction {
            families: sink.families,
            errors: sink.errors,
            dropped: sink.dropped,
            series: sink.kept,
            unread: sink.unread,
            trace,
        }
    }
}

/// Where the members of a pass's container are: in the document, or kept
/// as text by the parse.
#[derive(Clone, Copy)]
struct Members<'a, 'de, 'r> {
    container: &'a path::SimplePath,
    doc: &'a Value,
    /// The containers the parse kept as text.
    kept: LazyInput<'a, 'de, 'r>,
}

/// Groups the rules into passes (see [`Extractor::passes`]).
fn passes(rules: &[RulePlan]) -> Vec<Vec<usize>> {
    let container = |r: &RulePlan| match &r.each {
        Some(EachPlan::Members(c)) => Some(c.steps.clone()),
        _ => None,
    };
    let shares = |a: &RulePlan, b: &RulePlan| {
        a.values
            .iter()
            .any(|(f, _)| b.values.iter().any(|(g, _)| f == g))
    };
    let mut passes: Vec<Vec<usize>> = Vec::new();
    for rule in rules {
        let steps = container(rule);
        let joins = steps.as_ref().and_then(|steps| {
            passes.iter_mut().find(|pass| {
                let same = pass
                    .first()
                    .and_then(|i| rules.get(*i))
                    .and_then(container)
                    .is_some_and(|c| &c == steps);
                // It runs at the pass's place: it may not share an
                // instrument with the pass, nor with a rule it would jump.
                let first = pass.first().copied().unwrap_or(rule.index);
                same && rules
                    .get(first..rule.index)
                    .unwrap_or_default()
                    .iter()
                    .all(|other| !shares(other, rule))
            })
        });
        match joins {
            Some(pass) => pass.push(rule.index),
            None => passes.push(vec![rule.index]),
        }
    }
    passes
}

/// The containers a body's parse left as text ([`reach::Lazy`]), and the
/// budget each member is parsed within.
#[derive(Clone, Copy)]
struct LazyInput<'a, 'de, 'r> {
    containers: &'a [Option<reach::Lazy<'de, 'r>>],
    budget: usize,
    /// The first member that is not valid JSON: the body is refused.
    failed: &'a std::cell::RefCell<Option<serde_json::Error>>,
}

impl LazyInput<'_, '_, '_> {
    fn of(&self, rule: usize) -> Option<&reach::Lazy<'_, '_>> {
        self.containers.get(rule).and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests;
