//! The account of one poll of a JSON target, rule by rule: what each rule's
//! paths matched, the first series it made, and what failed with the
//! offending value and a hint. Built by `targets::extract::explain`, kept
//! per target in the store, read by `remora once --explain`, the
//! warn/recover log lines and `GET /targets/NAME`.
//!
//! Bounded whatever the body: at most [`SHOWN_SERIES`] series per rule, one
//! failure per (rule, reason) with one example value cut to 80 characters.
//! It holds no header, credential or body beyond those examples.

use std::sync::Arc;

use opentelemetry::KeyValue;

/// Series shown per rule; the rest are only counted.
pub const SHOWN_SERIES: usize = 5;

/// One poll, rule by rule, in the order of `metrics:`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub rules: Vec<RuleReport>,
}

/// One rule in one poll.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleReport {
    /// The rule's name as written.
    pub metric: String,
    /// `each`, as written (canonical JSONPath), if any.
    pub each: Option<String>,
    /// Per value: the instrument name and its path (or constant) as written.
    pub paths: Vec<(String, String)>,
    /// Nodes `each` matched; without `each`, 1 (the document).
    pub nodes: u64,
    /// The first [`SHOWN_SERIES`] series: instrument name, the rule's own
    /// labels (not the target's), value.
    pub series: Vec<(Arc<str>, Vec<KeyValue>, f64)>,
    /// Every series the rule made.
    pub series_total: u64,
    /// One per reason, in the order met.
    pub failures: Vec<Failure>,
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

impl RuleReport {
    /// Whether the rule failed in this poll.
    pub fn failing(&self) -> bool {
        !self.failures.is_empty()
    }
}
