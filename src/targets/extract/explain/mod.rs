//! The explain record of one extraction ([`Record`]): what each rule
//! matched, where its series are in the families, and each failure with its
//! offending value and a hint saying what to change. Built here, kept per
//! target in the store; printed by `targets::report` (`remora once
//! --explain`), the target page (`server::pages`) and the log lines of a
//! rule that starts failing or recovers, none of which this module knows.
//!
//! Cheap when nothing fails: the extraction only notes, per rule, the nodes
//! matched and where its series start and end in the families ([`Trace`]);
//! [`Extractor::explain`] shares the families and the rules' text, and
//! copies nothing per series. A failure's hint (`hint`) may look at the body
//! once more (`walk`: a streaming pass that keeps a few keys, never the
//! document) to name the keys that do exist where a path stopped matching.

mod hint;
mod walk;

use std::sync::Arc;

use super::plan::{RulePlan, SourcePlan};
use super::sink::Sink;
use super::{ErrorReason, ExtractionError, Extractor};
use crate::config::{Aggregate, MetricRule, Parse, RuleKind, TemplatePart, ValueSource};
use crate::model::explain::{Failure, Record, RuleInfo, RuleRecord};
use crate::model::Family;
use hint::hint;

/// Passes over the body one account may make to name keys in its hints:
/// the first failing rules get them, the others a hint without.
const MAX_WALKS: usize = 8;

/// What one extraction did per rule, noted as it ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Per rule: nodes matched (1 without `each`).
    nodes: Vec<u64>,
    /// Per value of each rule, in order: (family, first series, end).
    spans: Vec<(usize, usize, usize)>,
    /// Per inner level of a list `each:`, rule by rule: nodes matched.
    pub(super) levels: Vec<u64>,
    /// Per rule with an aggregation: the nodes (or values) it folded.
    pub(super) aggregated: Vec<Option<u64>>,
}

impl Trace {
    pub(super) fn with_rules(rules: &[RulePlan]) -> Self {
        let values = rules.iter().map(|r| r.values.len()).sum();
        Trace {
            nodes: vec![0; rules.len()],
            spans: vec![(0, 0, 0); values],
            levels: Vec::new(),
            aggregated: vec![None; rules.len()],
        }
    }

    /// Notes where `rule`'s families end before it runs. Returns where its
    /// spans are: after the earlier rules' (`first_span`), whatever the
    /// order rules run in.
    pub(super) fn before(&mut self, rule: &RulePlan, sink: &Sink) -> usize {
        let at = rule.first_span;
        for (span, (family, _)) in self.spans.iter_mut().skip(at).zip(&rule.values) {
            let len = sink.families.get(*family).map_or(0, |f| f.series.len());
            *span = (*family, len, len);
        }
        at
    }

    /// Notes what `rule`'s aggregation folded (`None`: it has none).
    pub(super) fn aggregated(&mut self, rule: &RulePlan, folded: Option<u64>) {
        if let Some(slot) = self.aggregated.get_mut(rule.index) {
            *slot = folded;
        }
    }

    /// Notes what `rule` made since [`Trace::before`] returned `at`.
    pub(super) fn after(&mut self, sink: &Sink, at: usize, rule: &RulePlan, nodes: usize) {
        for span in self.spans.iter_mut().skip(at).take(rule.values.len()) {
            span.2 = sink.families.get(span.0).map_or(span.1, |f| f.series.len());
        }
        if let Some(n) = self.nodes.get_mut(rule.index) {
            *n = nodes as u64;
        }
    }
}

/// A rule as written, for the account.
#[derive(Debug)]
pub(super) struct RuleText {
    /// Name, `each` and paths, shared with every record.
    info: Arc<RuleInfo>,
    /// Per label: its name and the text of each part that is a path.
    labels: Vec<(String, Vec<Option<String>>)>,
    states: Option<Vec<String>>,
    parse: Parse,
    /// The first keys of `map`.
    map_keys: Vec<String>,
    scale: Option<f64>,
}

impl RuleText {
    pub(super) fn new(rule: &MetricRule) -> Self {
        RuleText {
            info: Arc::new(RuleInfo {
                metric: rule.name.clone(),
                each: rule.each.as_ref().map(ToString::to_string),
                each_inner: rule.each_inner.iter().map(ToString::to_string).collect(),
                aggregate: rule.aggregate.as_ref().map(|a| match a {
                    Aggregate::CountBy { label, .. } => {
                        let name = rule.labels.get(*label).map_or("", |(k, _)| k.as_str());
                        format!("count_by {name}")
                    }
                    other => format!("aggregate {}", other.as_str()),
                }),
                age: rule.parse == Parse::Age,
                paths: rule
                    .values
                    .iter()
                    .map(|v| {
                        let source = match &v.source {
                            ValueSource::Const(c) => c.to_string(),
                            ValueSource::Path(p) => p.to_string(),
                        };
                        (v.name.clone(), source)
                    })
                    .collect(),
            }),
            labels: rule
                .labels
                .iter()
                .map(|(k, t)| {
                    let parts = t
                        .parts
                        .iter()
                        .map(|p| match p {
                            TemplatePart::Path(p) | TemplatePart::OuterPath(_, p) => {
                                Some(p.to_string())
                            }
                            _ => None,
                        })
                        .collect();
                    (k.clone(), parts)
                })
                .collect(),
            states: match &rule.kind {
                RuleKind::StateSet(states) => Some(states.clone()),
                _ => None,
            },
            parse: rule.parse,
            map_keys: rule.map.keys().take(5).cloned().collect(),
            scale: rule.scale,
        }
    }
}

impl Extractor {
    /// The rule-by-rule account of one extraction: its `families` (shared,
    /// not copied), `trace` and `errors`, of `body` (read again only to
    /// name existing keys in the hints of failures); the first `base_len`
    /// labels of each series are the target's own.
    pub fn explain(
        &self,
        families: Arc<Vec<Family>>,
        trace: Trace,
        errors: &[ExtractionError],
        body: Option<&[u8]>,
        base_len: usize,
    ) -> Record {
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut at = 0;
        let mut walks = MAX_WALKS;
        for (i, (plan, text)) in self.rules.iter().zip(&self.texts).enumerate() {
            let spans = at..(at + plan.values.len()).min(trace.spans.len());
            at = spans.end;
            let total = trace
                .spans
                .get(spans.clone())
                .unwrap_or_default()
                .iter()
                .map(|(_, start, end)| end.saturating_sub(*start) as u64)
                .sum();
            let failures: Vec<Failure> = errors
                .iter()
                .filter(|e| e.rule == i)
                .map(|e| Failure {
                    reason: e.reason.as_str(),
                    count: e.count,
                    value: shown_value(e),
                    hint: hint(e, plan, text, body, &mut walks),
                })
                .collect();
            let nodes = match plan.each {
                Some(_) => trace.nodes.get(i).copied().unwrap_or(0),
                // The value paths that matched: each missing one is counted.
                None => plan
                    .values
                    .iter()
                    .filter(|(_, s)| matches!(s, SourcePlan::Path(_)))
                    .count()
                    .saturating_sub(missing(&failures)) as u64,
            };
            let levels = plan.first_level..plan.first_level + plan.inner.len();
            rules.push(RuleRecord {
                info: text.info.clone(),
                nodes,
                level_nodes: trace.levels.get(levels).unwrap_or_default().to_vec(),
                aggregated: trace.aggregated.get(i).copied().flatten(),
                spans,
                series_total: total,
                failures,
            });
        }
        Record {
            families,
            base_len,
            spans: trace.spans,
            rules,
        }
    }
}

/// How many `missing` failures.
fn missing(failures: &[Failure]) -> usize {
    failures
        .iter()
        .filter(|f| f.reason == ErrorReason::Missing.as_str())
        .map(|f| usize::try_from(f.count).unwrap_or(usize::MAX))
        .sum()
}

/// The offending value as a person reads it: strings quoted as JSON.
fn shown_value(e: &ExtractionError) -> Option<String> {
    let v = e.example.as_deref()?;
    Some(match e.site.kind {
        Some("string") => serde_json::to_string(v).unwrap_or_else(|_| v.to_string()),
        _ => v.to_string(),
    })
}
