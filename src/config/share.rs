//! Rule lists shared between targets: [`RulePool`], which the loader passes
//! every target's `metrics:` through so that targets whose rules are equal
//! hold one [`Rules`] (issue 28:
//! a fleet of 2,000 targets of the same 10 rules kept 2,000 copies).
//!
//! Equal means equal as compiled ([`MetricRule`]'s `PartialEq`): the same
//! rules in the same order. Lists are first put in buckets by a hash of
//! their `Debug` text (equal lists have equal text), then compared. A
//! poller builds one extractor per distinct list ([`Rules::ptr_eq`]), so
//! the compiled form is shared too (`app::build`).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::Hasher;

use super::types::{MetricRule, Rules};

/// The rule lists met so far while a config loads: [`RulePool::share`]
/// returns the list already held when an equal one was met.
#[derive(Debug, Default)]
pub struct RulePool {
    /// By the hash of the list's `Debug` text; lists of one hash in the
    /// order met.
    lists: HashMap<u64, Vec<Rules>>,
    /// Reused for each list's `Debug` text.
    text: String,
}

impl RulePool {
    /// The shared list equal to `rules`: one met before, else `rules`
    /// itself, kept for the lists to come.
    pub fn share(&mut self, rules: Vec<MetricRule>) -> Rules {
        self.text.clear();
        let _ = write!(self.text, "{rules:?}");
        let mut h = DefaultHasher::new();
        h.write(self.text.as_bytes());
        let bucket = self.lists.entry(h.finish()).or_default();
        if let Some(same) = bucket.iter().find(|r| ***r == *rules) {
            return same.clone();
        }
        let rules = Rules::from(rules);
        bucket.push(rules.clone());
        rules
    }
}
