//! Aggregations (`aggregate:`, `count_by:`): a rule's nodes folded into one
//! series, or one per counted value, instead of one series per node.
//!
//! [`RulePlan::fold`] takes each node the rule's `each` (and `path`)
//! match, in place of making its series; [`RulePlan::finish`] makes the
//! series once the rule has seen every node. The running state ([`Fold`])
//! lives in the sink (`sink::Fold`), one per rule, so an
//! [`super::Extractor`] stays shared.
//!
//! - `count`: the `each` nodes (without `path`), or every node `path`
//!   matches from each of them; 0 when none.
//! - `sum`, `min`, `max`: every node `path` matches, read as a value
//!   (`map`, `parse`, `scale`; errors counted as for any value; `null`
//!   skipped); no series when no value was read. A path matching nothing is
//!   no error: the aggregation is over what matches.
//! - `count_by`: the counted label's template rendered per node (errors as
//!   for any label); one series per distinct value in the order first met,
//!   or, with `states`, one per state (0 when absent) and the other values
//!   summed under `other` (served only when there are some). The distinct
//!   values' text is charged to the label budget.

use opentelemetry::{KeyValue, StringValue};

use super::convert::{arc_value, example, labels_text, render};
use super::path::Level;
use super::plan::{AggPlan, LabelPlan, RulePlan, SourcePlan};
use super::sink::{site, PathAt, Sink};
use super::ErrorReason;
use crate::config::OTHER_STATE;

impl RulePlan {
    /// Folds the innermost node of `chain` into the rule's aggregation.
    pub(super) fn fold(
        &self,
        agg: &AggPlan,
        chain: &[Level<'_>],
        sink: &mut Sink,
        buf: &mut String,
    ) {
        let Some(&Level { node, key }) = chain.last() else {
            return;
        };
        let Some(source) = self.values.first().map(|(_, s)| s) else {
            return;
        };
        match agg {
            AggPlan::CountBy { label, .. } => {
                let value = match self.labels.get(*label).map(|(_, l)| l) {
                    Some(LabelPlan::Const(v)) => {
                        buf.clear();
                        buf.push_str(v.as_str());
                        Ok(())
                    }
                    Some(LabelPlan::Template(parts)) => {
                        render(parts, chain, self.optional, sink.label_budget, buf)
                    }
                    None => return,
                };
                match value {
                    Ok(()) => {
                        let known = sink
                            .folds
                            .get(self.index)
                            .is_some_and(|f| f.index.contains_key(buf.as_str()));
                        // A new value: its text, twice (list and index), and their slots.
                        if !known && !sink.take_label(2 * buf.len() + 64) {
                            sink.dropped = sink.dropped.saturating_add(1);
                            sink.unread += 1;
                            return;
                        }
                        if let Some(f) = sink.folds.get_mut(self.index) {
                            f.count(buf);
                        }
                    }
                    Err(Some((reason, offending))) => {
                        sink.error(self.index, &self.metric, reason, || {
                            let at = PathAt::Label(*label, 0);
                            (offending.map(example), site(key, Some(at), offending))
                        });
                    }
                    Err(None) => {
                        sink.dropped = sink.dropped.saturating_add(1);
                        sink.unread += 1;
                    }
                }
            }
            AggPlan::Count => {
                let n = match source {
                    SourcePlan::Const(_) => 1,
                    SourcePlan::Path(p) => p.all(node).len() as u64,
                };
                if let Some(f) = sink.folds.get_mut(self.index) {
                    f.n = f.n.saturating_add(n);
                }
            }
            AggPlan::Sum | AggPlan::Min | AggPlan::Max => {
                let SourcePlan::Path(p) = source else {
                    return;
                };
                for raw in p.all(node) {
                    match self.value(raw, sink.now, buf) {
                        Ok(Some(v)) => {
                            let Some(f) = sink.folds.get_mut(self.index) else {
                                return;
                            };
                            f.n += 1;
                            f.acc = Some(match (f.acc, agg) {
                                (None, _) => v,
                                (Some(a), AggPlan::Sum) => a + v,
                                (Some(a), AggPlan::Min) => a.min(v),
                                (Some(a), _) => a.max(v),
                            });
                        }
                        Ok(None) => {}
                        Err(reason) => sink.error(self.index, &self.metric, reason, || {
                            (
                                Some(example(raw)),
                                site(key, Some(PathAt::Value(0)), Some(raw)),
                            )
                        }),
                    }
                }
            }
        }
    }

    /// Makes the series of the rule's aggregation once every node was
    /// folded; returns the nodes (or values) folded, `None` for a rule
    /// without aggregation.
    pub(super) fn finish(&self, base: &[KeyValue], sink: &mut Sink) -> Option<u64> {
        let agg = self.aggregate.as_ref()?;
        let fold = sink
            .folds
            .get_mut(self.index)
            .map(std::mem::take)
            .unwrap_or_default();
        let family = self.values.first().map(|(f, _)| *f)?;
        let counted = match agg {
            AggPlan::CountBy { label, .. } => Some(*label),
            _ => None,
        };
        // The labels, the counted one set to `value`.
        let attrs = |value: Option<StringValue>| {
            let mut a = Vec::with_capacity(base.len() + self.labels.len() + 1);
            a.extend_from_slice(base);
            for (i, (k, plan)) in self.labels.iter().enumerate() {
                let v = match (plan, Some(i) == counted, &value) {
                    (_, true, Some(v)) => v.clone(),
                    (LabelPlan::Const(v), _, _) => v.clone(),
                    // Checked at load: only the counted label reads nodes.
                    (LabelPlan::Template(_), _, _) => StringValue::from(""),
                };
                a.push(KeyValue::new(k.clone(), v));
            }
            a
        };
        let mut out: Vec<(Vec<KeyValue>, f64)> = Vec::new();
        match agg {
            AggPlan::Count => out.push((attrs(None), fold.n as f64)),
            AggPlan::Sum | AggPlan::Min | AggPlan::Max => {
                if let Some(v) = fold.acc {
                    out.push((attrs(None), v));
                }
            }
            AggPlan::CountBy { states, .. } if states.is_empty() => {
                for (value, n) in &fold.by {
                    out.push((attrs(Some(arc_value(value))), *n as f64));
                }
            }
            AggPlan::CountBy { states, .. } => {
                let mut other = 0;
                let mut per_state = vec![0u64; states.len()];
                for (value, n) in &fold.by {
                    match states.iter().position(|s| s.as_str() == &**value) {
                        Some(i) => per_state[i] += n,
                        None => other += n,
                    }
                }
                for (state, n) in states.iter().zip(per_state) {
                    out.push((attrs(Some(state.clone())), n as f64));
                }
                if other > 0 {
                    out.push((attrs(Some(StringValue::from(OTHER_STATE))), other as f64));
                }
            }
        }
        let mut duplicate = None;
        for (a, v) in out {
            if let Err(a) = sink.push(family, a, v) {
                duplicate.get_or_insert_with(|| labels_text(&a[base.len()..]));
            }
        }
        if let Some(labels) = duplicate {
            sink.error(
                self.index,
                &self.metric,
                ErrorReason::DuplicateSeries,
                || (Some(labels), Default::default()),
            );
        }
        Some(fold.n)
    }
}
