//! A rule compiled for extraction ([`RulePlan`]), what it can read of a
//! document (its reach), and its evaluation on one node: labels, then one
//! series (or one per state) per `values` entry, into the [`Sink`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use opentelemetry::{Key, KeyValue, StringValue};
use serde_json::Value;
use serde_json_path::JsonPath;

use super::convert::{arc_value, convert, cut, example, labels_text, render, write_scalar, Part};
use super::path::{keys_of, level, simple_prefix, Level, NodeKey, PathPlan, SimplePath};
use super::reach;
use super::sink::Sink;
use super::sink::{site, PathAt};
use super::ErrorReason;
use crate::config::{
    Aggregate, MetricRule, Parse, RuleKind, TemplatePart, ValueSource, OTHER_STATE,
};

/// Adds to `base` what `path`, evaluated from `base`'s node, can read: its
/// plain steps, then everything below them (or below `base` when a filter
/// reads the root).
pub(super) fn reach_general(base: &mut reach::Reach, path: &JsonPath) {
    let text = path.to_string();
    let rest = text.strip_prefix('$').unwrap_or(&text);
    if rest.contains('$') {
        base.reach_all();
        return;
    }
    let (steps, _) = simple_prefix(rest);
    base.descend(&steps).reach_all();
}

/// Adds to `base` what `path`, evaluated from `base`'s node, reads.
pub(super) fn path_reach(base: &mut reach::Reach, path: &PathPlan) {
    match path {
        PathPlan::Simple(simple) => {
            base.descend(&simple.steps);
        }
        PathPlan::General(path) => reach_general(base, path),
    }
}

pub(super) enum EachPlan {
    /// `container.*` / `container[*]`.
    Members(SimplePath),
    Query(JsonPath),
}

/// A label value: fixed text, or a template evaluated per node.
pub(super) enum LabelPlan {
    Const(StringValue),
    Template(Vec<Part>),
}

pub(super) enum SourcePlan {
    Const(f64),
    Path(PathPlan),
}

pub(super) enum KindPlan {
    /// Gauge, counter, updowncounter.
    Number,
    Info,
    /// The label values of the states.
    StateSet(Vec<StringValue>),
}

/// One compiled rule.
pub(super) struct RulePlan {
    /// The rule's position in the target.
    pub(super) index: usize,
    /// Where its values' spans start in a [`super::explain::Trace`]: the
    /// number of values of the rules before it (set by the extractor).
    pub(super) first_span: usize,
    /// The rule's name as written, for errors.
    pub(super) metric: String,
    pub(super) kind: KindPlan,
    pub(super) each: Option<EachPlan>,
    /// The further levels of a list `each:`, each from the nodes of the
    /// level before.
    pub(super) inner: Vec<EachPlan>,
    /// Where its inner levels' node counts are in the sink's
    /// `level_nodes` (the number of inner levels of the rules before it).
    pub(super) first_level: usize,
    pub(super) labels: Vec<(Key, LabelPlan)>,
    /// Per `values` entry: its family index and source.
    pub(super) values: Vec<(usize, SourcePlan)>,
    /// Whether any template uses `{@key}` (then a general `each` is queried with locations).
    pub(super) uses_key: bool,
    pub(super) parse: Parse,
    pub(super) map: BTreeMap<String, f64>,
    pub(super) scale: Option<f64>,
    pub(super) optional: bool,
    /// `aggregate:` / `count_by:`: the nodes are folded (see `fold`).
    pub(super) aggregate: Option<AggPlan>,
}

/// A rule's aggregation, compiled.
pub(super) enum AggPlan {
    Count,
    Sum,
    Min,
    Max,
    /// The counted label (an index in `labels`) and the values always served.
    CountBy {
        label: usize,
        states: Vec<StringValue>,
    },
}

pub(super) const STATE: Key = Key::from_static_str("state");

impl RulePlan {
    pub(super) fn new(position: usize, rule: &MetricRule, index: &HashMap<&str, usize>) -> Self {
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
                                Part::Key(0)
                            }
                            TemplatePart::OuterKey(n) => {
                                uses_key = true;
                                Part::Key(*n)
                            }
                            TemplatePart::Path(p) => Part::Path(0, PathPlan::new(p)),
                            TemplatePart::OuterPath(n, p) => Part::Path(*n, PathPlan::new(p)),
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
        let each_plan = |each: &JsonPath| match SimplePath::parse(each, true) {
            Some(container) => EachPlan::Members(container),
            None => EachPlan::Query(each.clone()),
        };
        let each = rule.each.as_ref().map(each_plan);
        let inner = rule.each_inner.iter().map(each_plan).collect();
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
            first_span: 0,
            metric: rule.name.clone(),
            kind,
            each,
            inner,
            first_level: 0,
            labels,
            values,
            uses_key,
            parse: rule.parse,
            map: rule.map.clone(),
            scale: rule.scale,
            optional: rule.optional,
            aggregate: rule.aggregate.as_ref().map(|a| match a {
                Aggregate::Count => AggPlan::Count,
                Aggregate::Sum => AggPlan::Sum,
                Aggregate::Min => AggPlan::Min,
                Aggregate::Max => AggPlan::Max,
                Aggregate::CountBy { label, states } => AggPlan::CountBy {
                    label: *label,
                    states: states.iter().map(|s| arc_value(s)).collect(),
                },
            }),
        }
    }

    /// Adds what this rule can read of a document to `root`.
    pub(super) fn add_reach(&self, root: &mut reach::Reach) {
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
        self.level_reach(node, 0);
    }

    /// Adds what the rule reads from a node of level `depth` (0: the
    /// document or the first `each` level) to `node`: the label paths of
    /// that level, then the next level's nodes, or at the innermost level
    /// the values.
    fn level_reach(&self, node: &mut reach::Reach, depth: usize) {
        let out = self.inner.len() - depth;
        for (_, label) in &self.labels {
            if let LabelPlan::Template(parts) = label {
                for part in parts {
                    if let Part::Path(n, p) = part {
                        if *n == out {
                            path_reach(node, p);
                        }
                    }
                }
            }
        }
        match self.inner.get(depth) {
            None => {
                for (_, source) in &self.values {
                    if let SourcePlan::Path(p) = source {
                        path_reach(node, p);
                    }
                }
            }
            Some(EachPlan::Members(container)) => {
                let members = node.descend(&container.steps).members();
                self.level_reach(members, depth + 1);
            }
            // Every node it matches lies under what it reaches.
            Some(EachPlan::Query(each)) => reach_general(node, each),
        }
    }

    /// Series one node makes when nothing fails.
    pub(super) fn per_node(&self) -> u64 {
        let states = match &self.kind {
            KindPlan::StateSet(states) => states.len(),
            _ => 1,
        };
        (self.values.len() as u64).saturating_mul(states as u64)
    }

    /// Makes room for the series of `nodes` `each` matches.
    pub(super) fn reserve(&self, nodes: usize, sink: &mut Sink) {
        if self.aggregate.is_some() {
            return;
        }
        let per_node = match &self.kind {
            KindPlan::StateSet(states) => states.len(),
            _ => 1,
        };
        let room = nodes
            .saturating_mul(per_node)
            .min(sink.max_series.saturating_sub(sink.kept));
        // Exact for a family's first rule: the vectors are kept until the
        // next poll. Later rules of the same family grow it as a push does
        // (exact there would move the series at every rule).
        for (family, _) in &self.values {
            let series = &mut sink.families[*family].series;
            if series.is_empty() {
                series.reserve_exact(room);
            } else {
                series.reserve(room);
            }
        }
        sink.seen.reserve(room.saturating_mul(self.values.len()));
    }

    /// Produces the series of one node (the document, or one `each`
    /// match): through the inner levels of a list `each:` when it has them.
    pub(super) fn node(
        &self,
        node: &Value,
        key: NodeKey,
        base: &[KeyValue],
        sink: &mut Sink,
        buf: &mut String,
    ) {
        let first = Level { node, key };
        if self.inner.is_empty() {
            return self.leaf(&[first], base, sink, buf);
        }
        let mut chain = Vec::with_capacity(self.inner.len() + 1);
        chain.push(first);
        self.walk(&mut chain, base, sink, buf);
    }

    /// Runs the next inner level of `each:` from the last node of `chain`
    /// (then the level after, ...), the innermost nodes into [`Self::leaf`].
    fn walk<'v>(
        &self,
        chain: &mut Vec<Level<'v>>,
        base: &[KeyValue],
        sink: &mut Sink,
        buf: &mut String,
    ) {
        let depth = chain.len() - 1;
        let (Some(each), Some(parent)) = (self.inner.get(depth), chain.last().copied()) else {
            return self.leaf(chain, base, sink, buf);
        };
        let mut run =
            |chain: &mut Vec<Level<'v>>, node: &'v Value, key: NodeKey<'v>, sink: &mut Sink| {
                chain.push(Level { node, key });
                self.walk(chain, base, sink, buf);
                chain.pop();
            };
        let n = match each {
            EachPlan::Members(container) => match container.get(parent.node) {
                Some(Value::Object(members)) => {
                    for (k, v) in members {
                        run(chain, v, NodeKey::Name(k), sink);
                    }
                    members.len()
                }
                Some(Value::Array(items)) => {
                    for (i, v) in items.iter().enumerate() {
                        run(chain, v, NodeKey::Index(i), sink);
                    }
                    items.len()
                }
                _ => 0,
            },
            EachPlan::Query(each) => {
                let mut nodes = each.query(parent.node).all();
                sink.fit_nodes(self.per_node(), &mut nodes, 56);
                let keys = if self.uses_key {
                    keys_of(parent.node, &nodes)
                } else {
                    HashMap::new()
                };
                for node in &nodes {
                    let key = keys
                        .get(&std::ptr::from_ref(*node))
                        .copied()
                        .unwrap_or(NodeKey::None);
                    run(chain, node, key, sink);
                }
                nodes.len()
            }
        };
        if let Some(count) = sink.level_nodes.get_mut(self.first_level + depth) {
            *count = count.saturating_add(n as u64);
        }
    }

    /// Produces the series of the innermost node of `chain`.
    fn leaf(&self, chain: &[Level<'_>], base: &[KeyValue], sink: &mut Sink, buf: &mut String) {
        if let Some(agg) = &self.aggregate {
            return self.fold(agg, chain, sink, buf);
        }
        let Some(&Level { node, key }) = chain.last() else {
            return;
        };
        let extra = usize::from(matches!(self.kind, KindPlan::StateSet(_)));
        let mut attrs = Vec::with_capacity(base.len() + self.labels.len() + extra);
        attrs.extend_from_slice(base);
        for (li, (k, plan)) in self.labels.iter().enumerate() {
            let value = match plan {
                LabelPlan::Const(v) => v.clone(),
                LabelPlan::Template(parts) => {
                    match render(parts, chain, self.optional, sink.label_budget, buf) {
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
                            return sink.error(self.index, &self.metric, reason, || {
                                let at = PathAt::Label(li, failing_part(parts, chain, reason));
                                (offending.map(example), site(key, Some(at), offending))
                            })
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
                    duplicate = Some(
                        if sink.has_error(self.index, ErrorReason::DuplicateSeries) {
                            String::new()
                        } else {
                            labels_text(&attrs[base.len()..])
                        },
                    );
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
                        None if !self.optional => {
                            sink.error(self.index, &self.metric, ErrorReason::Missing, || {
                                (None, site(key, Some(PathAt::Value(i)), None))
                            })
                        }
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
                                sink.error(self.index, &self.metric, ErrorReason::Missing, || {
                                    (None, site(key, Some(PathAt::Value(i)), None))
                                });
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
                        sink.error(self.index, &self.metric, ErrorReason::UnmappedValue, || {
                            let text = offending.map_or_else(|| cut(buf), example);
                            (Some(text), site(key, Some(PathAt::Value(i)), offending))
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
                    // A value outside `states` is served as `other`, never
                    // as every state at 0.
                    if at.is_none() {
                        let mut a = base_attrs;
                        a.push(KeyValue::new(STATE, StringValue::from(OTHER_STATE)));
                        let r = sink.push(family, a, 1.0);
                        note(sink, r);
                    }
                }
                KindPlan::Number => match self.number(source, node, sink.now, buf) {
                    Ok(Some(v)) => {
                        let r = sink.push(family, take(), v);
                        note(sink, r);
                    }
                    Ok(None) => {}
                    Err((reason, offending)) => {
                        sink.error(self.index, &self.metric, reason, || {
                            let at = Some(PathAt::Value(i));
                            (offending.map(example), site(key, at, offending))
                        })
                    }
                },
            }
        }
        if let Some(labels) = duplicate {
            sink.error(
                self.index,
                &self.metric,
                ErrorReason::DuplicateSeries,
                || (Some(cut(&labels)), site(key, None, None)),
            );
        }
    }

    /// The value of a gauge/counter/updowncounter: `None` for no series.
    /// `now` (Unix seconds) is what `parse: age` subtracts from.
    pub(super) fn number<'v>(
        &self,
        source: &SourcePlan,
        node: &'v Value,
        now: f64,
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
        self.value(raw, now, buf).map_err(|r| (r, Some(raw)))
    }

    /// One value read as a number: `map`, `parse` (`age`: `now` less the
    /// timestamp), `scale`; `None` for `null`.
    pub(super) fn value(
        &self,
        raw: &Value,
        now: f64,
        buf: &mut String,
    ) -> Result<Option<f64>, ErrorReason> {
        let Some(v) = convert(raw, self.parse, &self.map, buf)? else {
            return Ok(None);
        };
        let v = if self.parse == Parse::Age { now - v } else { v };
        let v = self.scale.map_or(v, |s| v * s);
        if v.is_finite() {
            Ok(Some(v))
        } else {
            Err(ErrorReason::NotANumber)
        }
    }
}

/// The index of the first part of a label template that fails on `node`
/// with `reason` (a path matching nothing, or an object or array).
fn failing_part(parts: &[Part], chain: &[Level<'_>], reason: ErrorReason) -> usize {
    parts
        .iter()
        .position(|p| match p {
            Part::Path(out, p) => match level(chain, *out).and_then(|l| p.first(l.node)) {
                None => reason == ErrorReason::Missing,
                Some(v) => v.is_object() || v.is_array(),
            },
            _ => false,
        })
        .unwrap_or(0)
}
