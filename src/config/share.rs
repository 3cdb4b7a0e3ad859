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
//!
//! At a reload, [`adopt`] gives a new config's targets the running config's
//! lists where they are equal, so that their compiled extractors carry over
//! from one generation to the next instead of being built again beside
//! the live ones.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::Hasher;
use std::sync::Arc;

use super::types::{MetricRule, Rules, Target};

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
        let bucket = self.bucket(&rules);
        if let Some(same) = bucket.iter().find(|r| ***r == *rules) {
            return same.clone();
        }
        let rules = Rules::from(rules);
        bucket.push(rules.clone());
        rules
    }

    /// The lists already met whose `Debug` text hashes as `rules`' does.
    fn bucket(&mut self, rules: &[MetricRule]) -> &mut Vec<Rules> {
        self.text.clear();
        let _ = write!(self.text, "{rules:?}");
        let mut h = DefaultHasher::new();
        h.write(self.text.as_bytes());
        self.lists.entry(h.finish()).or_default()
    }

    /// `rules` itself, or the list met before that is equal to it (the
    /// list is not kept for the lists to come).
    fn equal_or(&mut self, rules: &Rules) -> Rules {
        let bucket = self.bucket(rules);
        match bucket.iter().find(|r| ***r == **rules) {
            Some(same) => same.clone(),
            None => rules.clone(),
        }
    }
}

/// Gives each of `targets` the list of `running` equal to its own, if any
/// (a target held elsewhere is copied first).
pub fn adopt<'a>(targets: &mut [Arc<Target>], running: impl IntoIterator<Item = &'a Rules>) {
    let mut pool = RulePool::default();
    for rules in running {
        let bucket = pool.bucket(rules);
        if !bucket.iter().any(|r| Rules::ptr_eq(r, rules)) {
            bucket.push(rules.clone());
        }
    }
    if pool.lists.is_empty() {
        return;
    }
    // Targets of one list (pooled at load) look it up once; the list is
    // held here so that its address stays its own.
    let mut seen: HashMap<usize, (Rules, Rules)> = HashMap::new();
    for t in targets {
        let own = &t.metrics;
        let found = match seen.get(&own.addr()) {
            Some((_, found)) => found.clone(),
            None => {
                let found = pool.equal_or(own);
                seen.insert(own.addr(), (own.clone(), found.clone()));
                found
            }
        };
        if !Rules::ptr_eq(&found, own) {
            Arc::make_mut(t).metrics = found;
        }
    }
}
