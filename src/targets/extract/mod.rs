//! Turning a parsed JSON document into series, following the compiled rules.
//!
//! [`Extractor::new`] compiles a target's [`MetricRule`]s once (per config
//! load); [`Extractor::extract`] walks them over one document (parsed once per
//! poll, whatever the number of rules) and returns one [`Family`] per
//! instrument of [`specs`] (same order, empty families included), the
//! extraction errors, and how many series the cap dropped. It never fails as a
//! whole: every problem is confined to the series it concerns. [`extract`]
//! does both steps in one call.
//!
//! Series come out in rule order, then document order (object members in
//! serde_json's map order: sorted by key unless its `preserve_order` feature
//! is on).
//!
//! Semantics (SPEC section 4), with the choices the SPEC leaves open:
//!
//! - `each`: one evaluation per node matched; `$` in `path` and in label
//!   templates then means that node (without `each`, the document root).
//!   `{@key}` is the node's object key or array index (empty without `each`).
//!   An `each` matching nothing gives no series and no error.
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
//!   not in `states` is `unmapped_value`, and every state is served as 0.
//! - Duplicates (same instrument and labels in one poll): the first is kept;
//!   one `duplicate_series` error per node that produced any duplicate.
//! - Cap: once `max_series` series are kept, further series are dropped and
//!   counted in [`Extraction::dropped`] (duplicates are errors, not drops).
//! - Errors are counted per (rule, reason), with the first offending value as
//!   an example (cut to [`EXAMPLE_CHARS`] characters): one poll's errors take
//!   the same memory whatever the number of nodes that fail.
//!
//! Memory ([`Extractor::extract_body`]): the body is parsed into only what
//! the rules can reach (the `reach` submodule), and the parsed values plus the label
//! text of the series made share one budget (the body limit,
//! `limits.max_body_bytes`; the parse may take three quarters of it, the
//! labels the rest). Past it, the rest of the bulk is not read and a
//! node whose labels do not fit gives no series: both count in
//! [`Extraction::dropped`] (per member of an `each` container, one per series
//! the rule makes from a node) and in [`Extraction::unread`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use opentelemetry::{Key, KeyValue, StringValue};
use serde_json::Value;
use serde_json_path::JsonPath;

mod reach;

use super::value::{parse_bytes, parse_duration, parse_number, parse_timestamp};
use crate::config::{MetricRule, Parse, RuleKind, Target, TemplatePart, ValueSource};
use crate::model::{Family, InstrumentSpec, Series};

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
    pub reason: ErrorReason,
    /// How many times (at least 1).
    pub count: u64,
    /// The first offending value: a string as is, another scalar as JSON
    /// text, an object or array as `{…}` / `[…]`, a duplicate as its labels;
    /// cut to [`EXAMPLE_CHARS`] characters (ending in `…` when cut). `None`
    /// for `missing`.
    pub example: Option<String>,
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
    /// What the rules can read of a document.
    reach: reach::Reach,
    /// Series kept by the last extraction, to size the next one's tables.
    last_series: AtomicUsize,
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
        let mut reach = reach::Reach::default();
        for rule in &rules {
            rule.add_reach(&mut reach);
        }
        reach.normalize();
        Extractor {
            names,
            rules,
            reach,
            last_series: AtomicUsize::new(0),
        }
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
        let mut x = self.extract_within(&parsed.root, limits.max_series, for_labels, base);
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
        self.extract_within(doc, max_series, usize::MAX, base)
    }

    /// [`Extractor::extract`] with `label_budget` bytes for the label text.
    fn extract_within(
        &self,
        doc: &Value,
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
        };
        let mut buf = String::new();
        for rule in &self.rules {
            match &rule.each {
                None => rule.node(doc, NodeKey::None, base, &mut sink, &mut buf),
                // `$.a.b.*` / `$.a[*]`: iterate the container, keys for free.
                Some(EachPlan::Members(container)) => match container.get(doc) {
                    Some(Value::Object(members)) => {
                        rule.reserve(members.len(), &mut sink);
                        for (k, v) in members {
                            rule.node(v, NodeKey::Name(k), base, &mut sink, &mut buf);
                        }
                    }
                    Some(Value::Array(items)) => {
                        rule.reserve(items.len(), &mut sink);
                        for (i, v) in items.iter().enumerate() {
                            rule.node(v, NodeKey::Index(i), base, &mut sink, &mut buf);
                        }
                    }
                    _ => {}
                },
                Some(EachPlan::Query(each)) if rule.uses_key => {
                    let mut nodes = each.query(doc).all();
                    // The list and the map of keys.
                    sink.fit_nodes(rule, &mut nodes, 56);
                    rule.reserve(nodes.len(), &mut sink);
                    let keys = keys_of(doc, &nodes);
                    for node in nodes {
                        let key = keys
                            .get(&std::ptr::from_ref(node))
                            .copied()
                            .unwrap_or(NodeKey::None);
                        rule.node(node, key, base, &mut sink, &mut buf);
                    }
                }
                Some(EachPlan::Query(each)) => {
                    let mut nodes = each.query(doc).all();
                    sink.fit_nodes(rule, &mut nodes, 8);
                    rule.reserve(nodes.len(), &mut sink);
                    for node in nodes {
                        rule.node(node, NodeKey::None, base, &mut sink, &mut buf);
                    }
                }
            }
        }
        self.last_series.store(sink.kept, Ordering::Relaxed);
        Extraction {
            families: sink.families,
            errors: sink.errors,
            dropped: sink.dropped,
            series: sink.kept,
            unread: sink.unread,
        }
    }
}

/// The `{@key}` of each of `nodes` (members of `doc`): its object key or
/// array index, as the located query would give it, found by address with
/// one breadth-first walk that stops once every node is found. Takes a few
/// words per node, where a located query holds each node's whole path.
fn keys_of<'v>(doc: &'v Value, nodes: &[&'v Value]) -> HashMap<*const Value, NodeKey<'v>> {
    let mut keys: HashMap<*const Value, NodeKey<'v>> = nodes
        .iter()
        .map(|n| (std::ptr::from_ref(*n), NodeKey::None))
        .collect();
    let mut left = keys.len() - usize::from(keys.contains_key(&std::ptr::from_ref(doc)));
    let mut level = vec![doc];
    while left > 0 && !level.is_empty() {
        let mut next = Vec::new();
        for parent in level {
            let mut visit = |child: &'v Value, key: NodeKey<'v>| {
                if let Some(k) = keys.get_mut(&std::ptr::from_ref(child)) {
                    *k = key;
                    left -= 1;
                }
                if matches!(child, Value::Array(_) | Value::Object(_)) {
                    next.push(child);
                }
            };
            match parent {
                Value::Object(members) => {
                    for (k, v) in members {
                        visit(v, NodeKey::Name(k));
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        visit(v, NodeKey::Index(i));
                    }
                }
                _ => {}
            }
        }
        level = next;
    }
    keys
}

/// One step of a [`SimplePath`].
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Name(String),
    /// Negative: from the end (RFC 9535).
    Index(i64),
}

/// A JSONPath made only of `.name` and `[index]` segments (optionally ending
/// in a wildcard), evaluated without the allocations of a general query.
/// Recognised from the path's canonical display, where these segments are
/// unambiguous (a shorthand name cannot contain `.`, `[` or quotes; a
/// bracketed name is shown quoted and is left to the general query).
#[derive(Debug, Clone, PartialEq)]
struct SimplePath {
    steps: Vec<Step>,
}

impl SimplePath {
    /// With `wildcard`, the path must end in `.*` or `[*]` (left out of the
    /// steps: the caller iterates the container); without, it must not.
    fn parse(path: &JsonPath, wildcard: bool) -> Option<Self> {
        let text = path.to_string();
        let mut rest = text.strip_prefix('$')?;
        if wildcard {
            rest = rest
                .strip_suffix(".*")
                .or_else(|| rest.strip_suffix("[*]"))?;
        }
        let (steps, rest) = simple_prefix(rest);
        rest.is_empty().then_some(SimplePath { steps })
    }

    fn get<'v>(&self, mut v: &'v Value) -> Option<&'v Value> {
        for step in &self.steps {
            v = match step {
                Step::Name(name) => v.as_object()?.get(name)?,
                Step::Index(i) => {
                    let items = v.as_array()?;
                    let at = if *i < 0 {
                        items
                            .len()
                            .checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
                    } else {
                        usize::try_from(*i).ok()?
                    };
                    items.get(at)?
                }
            };
        }
        Some(v)
    }
}

/// The leading `.name` and `[index]` segments of a path's canonical display
/// (after the `$`), and the text after them.
fn simple_prefix(mut rest: &str) -> (Vec<Step>, &str) {
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() || name == "*" {
                break;
            }
            steps.push(Step::Name(name.to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else { break };
            let index = &after[..end];
            let digits = index.strip_prefix('-').unwrap_or(index);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                break;
            }
            let Ok(i) = index.parse() else { break };
            steps.push(Step::Index(i));
            rest = &after[end + 1..];
        } else {
            break;
        }
    }
    (steps, rest)
}

/// Adds to `base` what `path`, evaluated from `base`'s node, can read: its
/// plain steps, then everything below them (or below `base` when a filter
/// reads the root).
fn reach_general(base: &mut reach::Reach, path: &JsonPath) {
    let text = path.to_string();
    let rest = text.strip_prefix('$').unwrap_or(&text);
    if rest.contains('$') {
        base.reach_all();
        return;
    }
    let (steps, _) = simple_prefix(rest);
    base.descend(&steps).reach_all();
}

/// A JSONPath whose first match is wanted.
enum PathPlan {
    Simple(SimplePath),
    General(JsonPath),
}

impl PathPlan {
    fn new(path: &JsonPath) -> Self {
        match SimplePath::parse(path, false) {
            Some(simple) => PathPlan::Simple(simple),
            None => PathPlan::General(path.clone()),
        }
    }

    /// Adds to `base` what this path, evaluated from `base`'s node, reads.
    fn add_reach(&self, base: &mut reach::Reach) {
        match self {
            PathPlan::Simple(simple) => {
                base.descend(&simple.steps);
            }
            PathPlan::General(path) => reach_general(base, path),
        }
    }

    /// The first node matched.
    fn first<'v>(&self, node: &'v Value) -> Option<&'v Value> {
        match self {
            PathPlan::Simple(simple) => simple.get(node),
            PathPlan::General(path) => path.query(node).first(),
        }
    }
}

enum EachPlan {
    /// `container.*` / `container[*]`.
    Members(SimplePath),
    Query(JsonPath),
}

/// The `{@key}` of the current node.
#[derive(Debug, Clone, Copy)]
enum NodeKey<'a> {
    None,
    Name(&'a str),
    Index(usize),
}

enum Part {
    Literal(String),
    Key,
    Path(PathPlan),
}

/// A label value: fixed text, or a template evaluated per node.
enum LabelPlan {
    Const(StringValue),
    Template(Vec<Part>),
}

enum SourcePlan {
    Const(f64),
    Path(PathPlan),
}

enum KindPlan {
    /// Gauge, counter, updowncounter.
    Number,
    Info,
    /// The label values of the states.
    StateSet(Vec<StringValue>),
}

/// One compiled rule.
struct RulePlan {
    /// The rule's position in the target.
    index: usize,
    /// The rule's name as written, for errors.
    metric: String,
    kind: KindPlan,
    each: Option<EachPlan>,
    labels: Vec<(Key, LabelPlan)>,
    /// Per `values` entry: its family index and source.
    values: Vec<(usize, SourcePlan)>,
    /// Whether any template uses `{@key}` (then a general `each` is queried with locations).
    uses_key: bool,
    parse: Parse,
    map: BTreeMap<String, f64>,
    scale: Option<f64>,
    optional: bool,
}

const STATE: Key = Key::from_static_str("state");

impl RulePlan {
    fn new(position: usize, rule: &MetricRule, index: &HashMap<&str, usize>) -> Self {
        let mut uses_key = false;
        let labels = rule
            .labels
            .iter()
            .map(|(name, template)| {
                let key = Key::from(Arc::<str>::from(name.as_str()));
                let constant = template
                    .parts
                    .iter()
                    .all(|p| matches!(p, TemplatePart::Literal(_)));
                let plan = if constant {
                    let mut text = String::new();
                    for part in &template.parts {
                        if let TemplatePart::Literal(s) = part {
                            text.push_str(s);
                        }
                    }
                    LabelPlan::Const(arc_value(&text))
                } else {
                    let parts = template
                        .parts
                        .iter()
                        .map(|part| match part {
                            TemplatePart::Literal(s) => Part::Literal(s.clone()),
                            TemplatePart::Key => {
                                uses_key = true;
                                Part::Key
                            }
                            TemplatePart::Path(p) => Part::Path(PathPlan::new(p)),
                        })
                        .collect();
                    LabelPlan::Template(parts)
                };
                (key, plan)
            })
            .collect();
        let kind = match &rule.kind {
            RuleKind::Gauge | RuleKind::Counter | RuleKind::UpDownCounter => KindPlan::Number,
            RuleKind::Info => KindPlan::Info,
            RuleKind::StateSet(states) => {
                KindPlan::StateSet(states.iter().map(|s| arc_value(s)).collect())
            }
        };
        let each = rule
            .each
            .as_ref()
            .map(|each| match SimplePath::parse(each, true) {
                Some(container) => EachPlan::Members(container),
                None => EachPlan::Query(each.clone()),
            });
        let values = rule
            .values
            .iter()
            .map(|v| {
                let family = index.get(v.name.as_str()).copied().unwrap_or(0);
                let source = match &v.source {
                    ValueSource::Const(c) => SourcePlan::Const(*c),
                    ValueSource::Path(p) => SourcePlan::Path(PathPlan::new(p)),
                };
                (family, source)
            })
            .collect();
        RulePlan {
            index: position,
            metric: rule.name.clone(),
            kind,
            each,
            labels,
            values,
            uses_key,
            parse: rule.parse,
            map: rule.map.clone(),
            scale: rule.scale,
            optional: rule.optional,
        }
    }

    /// Adds what this rule can read of a document to `root`.
    fn add_reach(&self, root: &mut reach::Reach) {
        let node = match &self.each {
            None => root,
            Some(EachPlan::Members(container)) => {
                let node = root.descend(&container.steps);
                node.container_of(self.index);
                node.members()
            }
            Some(EachPlan::Query(each)) => {
                // Every node it matches lies under what it reaches.
                reach_general(root, each);
                return;
            }
        };
        for (_, source) in &self.values {
            if let SourcePlan::Path(p) = source {
                p.add_reach(node);
            }
        }
        for (_, label) in &self.labels {
            if let LabelPlan::Template(parts) = label {
                for part in parts {
                    if let Part::Path(p) = part {
                        p.add_reach(node);
                    }
                }
            }
        }
    }

    /// Series one node makes when nothing fails.
    fn per_node(&self) -> u64 {
        let states = match &self.kind {
            KindPlan::StateSet(states) => states.len(),
            _ => 1,
        };
        (self.values.len() as u64).saturating_mul(states as u64)
    }

    /// Makes room for the series of `nodes` `each` matches.
    fn reserve(&self, nodes: usize, sink: &mut Sink) {
        let per_node = match &self.kind {
            KindPlan::StateSet(states) => states.len(),
            _ => 1,
        };
        let room = nodes
            .saturating_mul(per_node)
            .min(sink.max_series.saturating_sub(sink.kept));
        for (family, _) in &self.values {
            sink.families[*family].series.reserve(room);
        }
        sink.seen.reserve(room.saturating_mul(self.values.len()));
    }

    /// Produces the series of one node (the document, or one `each` match).
    fn node(
        &self,
        node: &Value,
        key: NodeKey,
        base: &[KeyValue],
        sink: &mut Sink,
        buf: &mut String,
    ) {
        let extra = usize::from(matches!(self.kind, KindPlan::StateSet(_)));
        let mut attrs = Vec::with_capacity(base.len() + self.labels.len() + extra);
        attrs.extend_from_slice(base);
        for (k, plan) in &self.labels {
            let value = match plan {
                LabelPlan::Const(v) => v.clone(),
                LabelPlan::Template(parts) => {
                    match render(parts, node, key, self.optional, sink.label_budget, buf) {
                        Ok(()) => {
                            // The text and the `Arc` it goes into.
                            if !sink.take_label(buf.len() + 32) {
                                sink.dropped = sink.dropped.saturating_add(self.per_node());
                                sink.unread += 1;
                                return;
                            }
                            arc_value(buf)
                        }
                        Err(Some((reason, offending))) => {
                            return sink.error(self, reason, || offending.map(example))
                        }
                        Err(None) => {
                            sink.dropped = sink.dropped.saturating_add(self.per_node());
                            sink.unread += 1;
                            return;
                        }
                    }
                }
            };
            attrs.push(KeyValue::new(k.clone(), value));
        }
        // The labels of the node's first duplicate (for the rule's first).
        let mut duplicate: Option<String> = None;
        let mut note = |sink: &Sink, rejected: Result<(), Vec<KeyValue>>| {
            if let Err(attrs) = rejected {
                if duplicate.is_none() {
                    duplicate = Some(if sink.has_error(self, ErrorReason::DuplicateSeries) {
                        String::new()
                    } else {
                        labels_text(&attrs[base.len()..])
                    });
                }
            }
        };
        let last = self.values.len().saturating_sub(1);
        for (i, (family, source)) in self.values.iter().enumerate() {
            let family = *family;
            // The last value takes the attributes, the others a copy.
            let mut take = || {
                if i == last {
                    std::mem::take(&mut attrs)
                } else {
                    attrs.clone()
                }
            };
            match &self.kind {
                KindPlan::Info => {
                    let found = match source {
                        SourcePlan::Const(_) => Some(&Value::Bool(true)),
                        SourcePlan::Path(p) => p.first(node),
                    };
                    match found {
                        None if !self.optional => sink.error(self, ErrorReason::Missing, || None),
                        None | Some(Value::Null) => {}
                        Some(_) => {
                            let r = sink.push(family, take(), 1.0);
                            note(sink, r);
                        }
                    }
                }
                KindPlan::StateSet(states) => {
                    let current = match source {
                        SourcePlan::Const(c) => {
                            buf.clear();
                            let _ = write!(buf, "{c}");
                            Some(buf.as_str())
                        }
                        SourcePlan::Path(p) => match p.first(node) {
                            None if self.optional => continue,
                            None => {
                                sink.error(self, ErrorReason::Missing, || None);
                                continue;
                            }
                            Some(Value::Null) => continue,
                            Some(v) => {
                                buf.clear();
                                write_scalar(v, buf).ok().map(|()| buf.as_str())
                            }
                        },
                    };
                    let at = current.and_then(|c| states.iter().position(|s| s.as_str() == c));
                    if at.is_none() {
                        let offending = match source {
                            SourcePlan::Path(p) => p.first(node),
                            SourcePlan::Const(_) => None,
                        };
                        sink.error(self, ErrorReason::UnmappedValue, || {
                            Some(offending.map_or_else(|| cut(buf), example))
                        });
                    }
                    let base_attrs = take();
                    for (j, state) in states.iter().enumerate() {
                        let mut a = Vec::with_capacity(base_attrs.len() + 1);
                        a.extend_from_slice(&base_attrs);
                        a.push(KeyValue::new(STATE, state.clone()));
                        let v = if at == Some(j) { 1.0 } else { 0.0 };
                        let r = sink.push(family, a, v);
                        note(sink, r);
                    }
                }
                KindPlan::Number => match self.number(source, node, buf) {
                    Ok(Some(v)) => {
                        let r = sink.push(family, take(), v);
                        note(sink, r);
                    }
                    Ok(None) => {}
                    Err((reason, offending)) => sink.error(self, reason, || offending.map(example)),
                },
            }
        }
        if let Some(labels) = duplicate {
            sink.error(self, ErrorReason::DuplicateSeries, || Some(cut(&labels)));
        }
    }

    /// The value of a gauge/counter/updowncounter: `None` for no series.
    fn number<'v>(
        &self,
        source: &SourcePlan,
        node: &'v Value,
        buf: &mut String,
    ) -> Result<Option<f64>, (ErrorReason, Option<&'v Value>)> {
        let raw = match source {
            SourcePlan::Const(c) => return Ok(Some(*c)),
            SourcePlan::Path(p) => p.first(node),
        };
        let Some(raw) = raw else {
            return if self.optional {
                Ok(None)
            } else {
                Err((ErrorReason::Missing, None))
            };
        };
        let Some(v) = convert(raw, self.parse, &self.map, buf).map_err(|r| (r, Some(raw)))? else {
            return Ok(None);
        };
        let v = self.scale.map_or(v, |s| v * s);
        if v.is_finite() {
            Ok(Some(v))
        } else {
            Err((ErrorReason::NotANumber, Some(raw)))
        }
    }
}

fn arc_value(s: &str) -> StringValue {
    StringValue::from(Arc::<str>::from(s))
}

/// Renders a label template for one node into `buf`; an error comes with
/// the offending value, `None` when the text would pass `limit` bytes.
fn render<'v>(
    parts: &[Part],
    node: &'v Value,
    key: NodeKey,
    optional: bool,
    limit: usize,
    buf: &mut String,
) -> Result<(), Option<(ErrorReason, Option<&'v Value>)>> {
    buf.clear();
    for part in parts {
        match part {
            Part::Literal(s) => buf.push_str(s),
            Part::Key => match key {
                NodeKey::None => {}
                NodeKey::Name(name) => buf.push_str(name),
                NodeKey::Index(i) => {
                    let _ = write!(buf, "{i}");
                }
            },
            Part::Path(p) => match p.first(node) {
                Some(Value::String(s)) if buf.len().saturating_add(s.len()) > limit => {
                    return Err(None)
                }
                Some(v) => write_scalar(v, buf).map_err(|r| Some((r, Some(v))))?,
                None if optional => {}
                None => return Err(Some((ErrorReason::Missing, None))),
            },
        }
        if buf.len() > limit {
            return Err(None);
        }
    }
    Ok(())
}

/// An error's example: a string as is (cut to [`EXAMPLE_CHARS`]
/// characters), a scalar as JSON text, an object or array as `{…}` / `[…]`
/// (the parse keeps no content of a container a rule reads as a value).
fn example(v: &Value) -> String {
    match v {
        Value::String(s) => cut(s),
        Value::Object(_) => "{…}".to_string(),
        Value::Array(_) => "[…]".to_string(),
        scalar => scalar.to_string(),
    }
}

/// `s` cut to [`EXAMPLE_CHARS`] characters, the last one `…` when cut.
fn cut(s: &str) -> String {
    match s.char_indices().nth(EXAMPLE_CHARS) {
        Some(_) => {
            let end = s
                .char_indices()
                .nth(EXAMPLE_CHARS - 1)
                .map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..end])
        }
        None => s.to_string(),
    }
}

/// A series' labels as `k="v",...` (for a duplicate's example).
fn labels_text(labels: &[KeyValue]) -> String {
    let mut out = String::new();
    for (i, kv) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}=\"{}\"", kv.key, kv.value);
        if out.len() > EXAMPLE_CHARS * 4 {
            break;
        }
    }
    out
}

/// Appends a scalar's label text: strings as is, numbers as the JSON wrote
/// them, booleans `true`/`false`, `null` nothing.
fn write_scalar(v: &Value, buf: &mut String) -> Result<(), ErrorReason> {
    match v {
        Value::String(s) => buf.push_str(s),
        Value::Number(n) => {
            let _ = write!(buf, "{n}");
        }
        Value::Bool(true) => buf.push_str("true"),
        Value::Bool(false) => buf.push_str("false"),
        Value::Null => {}
        Value::Array(_) | Value::Object(_) => return Err(ErrorReason::InvalidLabel),
    }
    Ok(())
}

/// One JSON value to a number under `parse` and `map` (see the module doc).
fn convert(
    v: &Value,
    parse: Parse,
    map: &BTreeMap<String, f64>,
    buf: &mut String,
) -> Result<Option<f64>, ErrorReason> {
    let v = match v {
        Value::Null => return Ok(None),
        Value::String(s) => {
            if let Some(m) = map.get(s.as_str()) {
                return Ok(Some(*m));
            }
            let parsed = match parse {
                Parse::Auto => parse_number(s),
                Parse::Duration => parse_duration(s),
                Parse::Timestamp => parse_timestamp(s),
                Parse::Bytes => parse_bytes(s),
            };
            match parsed {
                Some(v) => v,
                None if map.is_empty() => return Err(ErrorReason::NotANumber),
                None => return Err(ErrorReason::UnmappedValue),
            }
        }
        Value::Bool(b) => {
            if let Some(m) = map.get(if *b { "true" } else { "false" }) {
                return Ok(Some(*m));
            }
            match parse {
                Parse::Auto => f64::from(u8::from(*b)),
                _ => return Err(ErrorReason::NotANumber),
            }
        }
        Value::Number(n) => {
            if !map.is_empty() {
                buf.clear();
                let _ = write!(buf, "{n}");
                if let Some(m) = map.get(buf.as_str()) {
                    return Ok(Some(*m));
                }
            }
            n.as_f64().ok_or(ErrorReason::NotANumber)?
        }
        Value::Array(_) | Value::Object(_) => return Err(ErrorReason::NotANumber),
    };
    Ok(Some(v))
}

/// A `Hasher` for keys that already are hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// No error of this reason yet.
const NO_SLOT: u32 = u32::MAX;

/// Collects the series of one extraction.
struct Sink {
    families: Vec<Family>,
    errors: Vec<ExtractionError>,
    /// Per rule and reason: the index in `errors`, or [`NO_SLOT`].
    error_slots: Vec<[u32; 5]>,
    dropped: u64,
    kept: usize,
    /// Nodes dropped for the label budget.
    unread: u64,
    /// Bytes left for label text.
    label_budget: usize,
    max_series: usize,
    /// Length of the base labels, identical on every series and left out of the hash.
    base_len: usize,
    /// Hash of (family, labels) -> (family, series index) of the first series with it.
    seen: HashMap<u64, (usize, usize), BuildHasherDefault<IdentityHasher>>,
    hasher: foldhash::fast::RandomState,
}

impl Sink {
    /// Counts an error of `rule`; `example` is called for its first one.
    fn error(
        &mut self,
        rule: &RulePlan,
        reason: ErrorReason,
        example: impl FnOnce() -> Option<String>,
    ) {
        let Some(slots) = self.error_slots.get_mut(rule.index) else {
            return;
        };
        let slot = &mut slots[reason as usize];
        match self.errors.get_mut(*slot as usize) {
            Some(e) => e.count += 1,
            None => {
                *slot = u32::try_from(self.errors.len()).unwrap_or(NO_SLOT);
                self.errors.push(ExtractionError {
                    metric: rule.metric.clone(),
                    reason,
                    count: 1,
                    example: example(),
                });
            }
        }
    }

    /// Whether `rule` already had an error of `reason`.
    fn has_error(&self, rule: &RulePlan, reason: ErrorReason) -> bool {
        self.error_slots
            .get(rule.index)
            .is_some_and(|s| s[reason as usize] != NO_SLOT)
    }

    /// Keeps the nodes a general `each` matched whose bookkeeping (`cost`
    /// bytes each) fits half the budget left (the other half is for their
    /// labels); the others count as dropped.
    fn fit_nodes(&mut self, rule: &RulePlan, nodes: &mut Vec<&Value>, cost: usize) {
        let fit = nodes.len().min(self.label_budget / 2 / cost);
        self.label_budget -= fit * cost;
        let over = (nodes.len() - fit) as u64;
        if over > 0 {
            nodes.truncate(fit);
            nodes.shrink_to_fit();
            self.dropped = self
                .dropped
                .saturating_add(over.saturating_mul(rule.per_node()));
            self.unread += over;
        }
    }

    /// Takes `n` bytes of the label budget.
    fn take_label(&mut self, n: usize) -> bool {
        match self.label_budget.checked_sub(n) {
            Some(left) => {
                self.label_budget = left;
                true
            }
            None => false,
        }
    }

    /// Keeps a series unless it duplicates an earlier one (then its labels
    /// come back) or the cap is reached (then it is counted as dropped).
    fn push(
        &mut self,
        family: usize,
        attrs: Vec<KeyValue>,
        value: f64,
    ) -> Result<(), Vec<KeyValue>> {
        let hash = label_hash(&self.hasher, family, &attrs[self.base_len..]);
        let mut remember = true;
        if let Some(&(f, s)) = self.seen.get(&hash) {
            if f == family && self.families[f].series[s].attributes == attrs {
                return Err(attrs);
            }
            // A hash collision: compare with every series of the family.
            if self.families[family]
                .series
                .iter()
                .any(|x| x.attributes == attrs)
            {
                return Err(attrs);
            }
            remember = false;
        }
        if self.kept >= self.max_series {
            self.dropped += 1;
            return Ok(());
        }
        let series = &mut self.families[family].series;
        if remember {
            self.seen.insert(hash, (family, series.len()));
        }
        series.push(Series::new(attrs, value));
        self.kept += 1;
        Ok(())
    }
}

fn label_hash(state: &foldhash::fast::RandomState, family: usize, labels: &[KeyValue]) -> u64 {
    let mut h = state.build_hasher();
    family.hash(&mut h);
    for kv in labels {
        kv.key.as_str().hash(&mut h);
        kv.value.as_str().hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests;
