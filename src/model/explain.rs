//! The explain record of one poll of a JSON target, rule by rule: what each
//! rule's paths matched, where the series it made are, and what failed with
//! the offending value and a hint. Data only: built by
//! `targets::extract::explain`, kept per target in the store, printed by
//! `targets::report` (`remora once --explain`), the target page
//! (`server::pages`) and the warn/recover log lines.
//!
//! Small and cheap whatever the body: it shares the poll's families with the
//! store and the rules' text with every other poll (nothing is copied per
//! series), shows at most [`SHOWN_SERIES`] series per rule, and keeps one
//! failure per (rule, reason) with one example value cut to 80 characters.
//! It holds no header, credential or body beyond those examples.

use std::ops::Range;
use std::sync::Arc;

use opentelemetry::KeyValue;

use super::Family;

/// Series shown per rule; the rest are only counted.
pub const SHOWN_SERIES: usize = 5;

/// One poll, rule by rule, in the order of `metrics:`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// The families the poll made (shared with the store, not copied).
    pub families: Arc<Vec<Family>>,
    /// How many leading labels of each series are the target's own.
    pub base_len: usize,
    /// Per value of each rule, in order: (family, first series, end).
    pub spans: Vec<(usize, usize, usize)>,
    pub rules: Vec<RuleRecord>,
}

/// A rule as written, shared by the records of every poll.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    /// The rule's name as written.
    pub metric: String,
    /// `each`, as written (canonical JSONPath), if any: the first level of
    /// a list `each:`.
    pub each: Option<String>,
    /// The further levels of a list `each:`, outermost first.
    pub each_inner: Vec<String>,
    /// The aggregation, as `aggregate sum` or `count_by LABEL`.
    pub aggregate: Option<String>,
    /// `parse: age`: the values are now minus a timestamp.
    pub age: bool,
    /// Per value: the instrument name and its path (or constant) as written.
    pub paths: Vec<(String, String)>,
}

/// One rule in one poll.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRecord {
    pub info: Arc<RuleInfo>,
    /// Nodes `each` matched; without `each`, the value paths that matched.
    pub nodes: u64,
    /// Per further level of a list `each:`: the nodes it matched (from
    /// every node of the level before).
    pub level_nodes: Vec<u64>,
    /// With an aggregation: the nodes it counted or the values it folded.
    pub aggregated: Option<u64>,
    /// Its values' entries in [`Record::spans`].
    pub spans: Range<usize>,
    /// Every series the rule made.
    pub series_total: u64,
    /// One per reason, in the order met.
    pub failures: Vec<Failure>,
}

impl Record {
    /// The first [`SHOWN_SERIES`] series of `rule`: instrument name, the
    /// rule's own labels (not the target's), value.
    pub fn series<'r>(
        &'r self,
        rule: &'r RuleRecord,
    ) -> impl Iterator<Item = (&'r str, &'r [KeyValue], f64)> + 'r {
        self.spans
            .get(rule.spans.clone())
            .unwrap_or_default()
            .iter()
            .flat_map(move |&(family, start, end)| {
                let f = self.families.get(family);
                let series = f.and_then(|f| f.series.get(start..end)).unwrap_or_default();
                series.iter().map(move |s| {
                    let name = f.map_or("", |f| &*f.name);
                    let labels = s.attributes.get(self.base_len..).unwrap_or_default();
                    (name, labels, s.value)
                })
            })
            .take(SHOWN_SERIES)
    }
}

impl Record {
    /// The names of the families made by rules with an aggregation
    /// (`count`, `count_by`, `sum`...): their values are tallies, not a
    /// state of the app.
    pub fn aggregated_families(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for r in self.rules.iter().filter(|r| r.info.aggregate.is_some()) {
            for &(family, _, _) in self.spans.get(r.spans.clone()).unwrap_or_default() {
                if let Some(f) = self.families.get(family) {
                    out.push(&*f.name);
                }
            }
        }
        out
    }
}

/// The failures of one rule and reason in one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The `reason` of `remora_extraction_errors_total`.
    pub reason: &'static str,
    /// How many in this poll.
    pub count: u64,
    /// The first offending value, as JSON would show it (strings quoted),
    /// cut to 80 characters; `None` when there is none (a missing path).
    pub value: Option<String>,
    /// What to change in the config.
    pub hint: String,
}

impl RuleRecord {
    /// Whether the rule failed in this poll.
    pub fn failing(&self) -> bool {
        !self.failures.is_empty()
    }

    /// The levels of the rule's `each`, outermost first: each JSONPath as
    /// written and the nodes it matched (a further level: from every node
    /// of the level before). Empty without `each`.
    pub fn levels(&self) -> Vec<(&str, u64)> {
        let Some(first) = self.info.each.as_deref() else {
            return Vec::new();
        };
        let mut out = vec![(first, self.nodes)];
        for (i, path) in self.info.each_inner.iter().enumerate() {
            out.push((path.as_str(), self.level_nodes.get(i).copied().unwrap_or(0)));
        }
        out
    }

    /// Whether the rule counts the nodes of its `each` (an aggregation
    /// without a `path:` of its own): its one value is a constant, not a
    /// path worth showing.
    pub fn counts_nodes(&self) -> bool {
        self.info.aggregate.is_some()
            && self.info.paths.len() == 1
            && self
                .info
                .paths
                .iter()
                .all(|(_, p)| p.parse::<f64>().is_ok())
    }

    /// The value paths worth showing: (instrument, path) as written; none
    /// when the rule counts its `each` nodes.
    pub fn shown_paths(&self) -> &[(String, String)] {
        if self.counts_nodes() {
            &[]
        } else {
            &self.info.paths
        }
    }

    /// The aggregation and what it folded in this poll, e.g.
    /// `count_by state over 3 node(s)`; None without one.
    pub fn aggregation(&self) -> Option<String> {
        self.info
            .aggregate
            .as_ref()
            .map(|agg| format!("{agg} over {} node(s)", self.aggregated.unwrap_or(0)))
    }
}
