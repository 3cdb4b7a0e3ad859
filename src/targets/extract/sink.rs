//! Series collection for one extraction: duplicates (first kept), the
//! series cap, the label budget, and errors counted per (rule, reason).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use opentelemetry::KeyValue;
use serde_json::Value;

use super::{ErrorReason, ExtractionError};
use crate::model::{Family, Series};

/// A `Hasher` for keys that already are hashes.
#[derive(Default)]
pub(super) struct IdentityHasher(u64);

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

/// The running state of one rule's aggregation (`aggregate:`,
/// `count_by:`) in one extraction; see the `fold` module.
#[derive(Debug, Default)]
pub(super) struct Fold {
    /// Nodes counted, or values folded.
    pub(super) n: u64,
    /// The sum, least or greatest value so far.
    pub(super) acc: Option<f64>,
    /// `count_by`: per distinct value, its count, in the order first met.
    pub(super) by: Vec<(Box<str>, u64)>,
    /// `count_by`: the index in `by` of each value.
    pub(super) index: HashMap<Box<str>, usize>,
}

impl Fold {
    pub(super) fn count(&mut self, value: &str) -> bool {
        self.n += 1;
        match self.index.get(value) {
            Some(&i) => {
                if let Some(slot) = self.by.get_mut(i) {
                    slot.1 += 1;
                }
                false
            }
            None => {
                self.index.insert(value.into(), self.by.len());
                self.by.push((value.into(), 1));
                true
            }
        }
    }
}

/// No error of this reason yet.
pub(super) const NO_SLOT: u32 = u32::MAX;

/// Collects the series of one extraction.
pub(super) struct Sink {
    pub(super) families: Vec<Family>,
    pub(super) errors: Vec<ExtractionError>,
    /// Per rule and reason: the index in `errors`, or [`NO_SLOT`].
    pub(super) error_slots: Vec<[u32; 5]>,
    pub(super) dropped: u64,
    pub(super) kept: usize,
    /// Nodes dropped for the label budget.
    pub(super) unread: u64,
    /// Bytes left for label text.
    pub(super) label_budget: usize,
    pub(super) max_series: usize,
    /// Length of the base labels, identical on every series and left out of the hash.
    pub(super) base_len: usize,
    /// Hash of (family, labels) -> (family, series index) of the first series with it.
    pub(super) seen: HashMap<u64, (usize, usize), BuildHasherDefault<IdentityHasher>>,
    pub(super) hasher: foldhash::fast::RandomState,
    /// Per inner level of a list `each:` (rule by rule, see
    /// `RulePlan::first_level`): nodes matched.
    pub(super) level_nodes: Vec<u64>,
    /// Per rule: its aggregation's running state (unused without one).
    pub(super) folds: Vec<Fold>,
    /// Unix seconds, read once per extraction (`parse: age`).
    pub(super) now: f64,
}

impl Sink {
    /// Counts an error of `rule`; `example` is called for its first one
    /// (the offending value and where it was met).
    pub(super) fn error(
        &mut self,
        rule: usize,
        metric: &str,
        reason: ErrorReason,
        example: impl FnOnce() -> (Option<String>, Site),
    ) {
        let Some(slots) = self.error_slots.get_mut(rule) else {
            return;
        };
        let slot = &mut slots[reason as usize];
        match self.errors.get_mut(*slot as usize) {
            Some(e) => e.count += 1,
            None => {
                *slot = u32::try_from(self.errors.len()).unwrap_or(NO_SLOT);
                let (example, site) = example();
                self.errors.push(ExtractionError {
                    metric: metric.to_string(),
                    rule,
                    reason,
                    count: 1,
                    example,
                    site,
                });
            }
        }
    }

    /// Whether `rule` already had an error of `reason`.
    pub(super) fn has_error(&self, rule: usize, reason: ErrorReason) -> bool {
        self.error_slots
            .get(rule)
            .is_some_and(|s| s[reason as usize] != NO_SLOT)
    }

    /// Keeps the nodes a general `each` matched whose bookkeeping (`cost`
    /// bytes each) fits half the budget left (the other half is for their
    /// labels); the others count as dropped.
    pub(super) fn fit_nodes(&mut self, per_node: u64, nodes: &mut Vec<&Value>, cost: usize) {
        let fit = nodes.len().min(self.label_budget / 2 / cost);
        self.label_budget -= fit * cost;
        let over = (nodes.len() - fit) as u64;
        if over > 0 {
            nodes.truncate(fit);
            nodes.shrink_to_fit();
            self.dropped = self.dropped.saturating_add(over.saturating_mul(per_node));
            self.unread += over;
        }
    }

    /// Takes `n` bytes of the label budget.
    pub(super) fn take_label(&mut self, n: usize) -> bool {
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
    pub(super) fn push(
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
        // A family's first series with nothing reserved (a plain rule's):
        // room for one, not the four a first push takes; the vector is
        // kept until the next poll.
        if series.capacity() == 0 {
            series.reserve_exact(1);
        }
        series.push(Series::new(attrs, value));
        self.kept += 1;
        Ok(())
    }
}

pub(super) fn label_hash(
    state: &foldhash::fast::RandomState,
    family: usize,
    labels: &[KeyValue],
) -> u64 {
    let mut h = state.build_hasher();
    family.hash(&mut h);
    for kv in labels {
        kv.key.as_str().hash(&mut h);
        kv.value.as_str().hash(&mut h);
    }
    h.finish()
}

/// Where an extraction error was first met, for the hints of
/// [`explain`](super::explain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Site {
    /// The `{@key}` of the `each` node, when the rule has `each`.
    pub node: Option<NodeStep>,
    /// The path that failed.
    pub path: Option<PathAt>,
    /// The JSON type of the offending value (`string`, `object`, ...).
    pub kind: Option<&'static str>,
}

/// An `each` node's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeStep {
    Name(String),
    Index(usize),
}

/// Which path of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathAt {
    /// The `n`th value (`path:` or a `values:` entry).
    Value(usize),
    /// Label `n`, part `p` of its template.
    Label(usize, usize),
}

/// The [`Site`] of an error met on the node with `key`.
pub(super) fn site(key: super::path::NodeKey, path: Option<PathAt>, v: Option<&Value>) -> Site {
    use super::path::NodeKey;
    Site {
        node: match key {
            NodeKey::None => None,
            NodeKey::Name(n) => Some(NodeStep::Name(n.to_string())),
            NodeKey::Index(i) => Some(NodeStep::Index(i)),
        },
        path,
        kind: v.map(json_kind),
    }
}

/// The JSON type name of `v`.
pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
