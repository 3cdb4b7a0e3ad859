//! Reading a JSON body into only what a target's rules can reach, within a
//! memory budget.
//!
//! A [`Reach`] is compiled from the rules once per config load: a tree of the
//! object members and array elements some rule path can read. Parsing a body
//! with it ([`parse`]) builds a `serde_json::Value` holding only those parts;
//! every other subtree is skipped while parsing (`serde::de::IgnoredAny`),
//! without allocating. A node a rule only reads as a value (not through it)
//! keeps its type but, when it is an object or an array, none of its content:
//! an object is `not_a_number` and an `invalid_label` whatever it holds.
//!
//! - `.name` and `[index]` steps reach one member or element; the elements
//!   before a reached index are kept as `null` placeholders (never read), the
//!   ones after the last reached index are skipped.
//! - The members of an `each: $.a.b.*` / `$.a[*]` container are all reached,
//!   each with the union of what the rule reads relative to its node.
//! - A general JSONPath (wildcards in the middle, recursive descent, filters,
//!   slices, unions) reaches everything below its last plain step; a filter
//!   that reads the root (`$` inside it) reaches the whole document.
//!
//! An `each: $.a.b.*` container reached by plain steps from the root, read
//! by that one rule and nothing else, is not built: the parse keeps each
//! member's text (`&RawValue`, borrowed from the body) in [`Parsed::lazy`],
//! and the extraction parses one member at a time ([`Lazy::for_each`]) and
//! drops it before the next. The parsed document then holds a few words per
//! member instead of the members' trees (an object member's tree is a
//! 640-byte B-tree leaf). The members come in serde_json's map order (sorted
//! by key, the last of equal keys kept), as the built container would give
//! them.
//!
//! The budget: the values reached in bulk (members of an `each` container,
//!   subtrees under a general path) are charged an estimate of the memory
//!   they take (`Value` slots, strings, map entries); once the budget is
//!   spent, the rest of the bulk is not read (an array ends there, an
//!   object's other members are left out) and counted in [`Parsed::unread`]
//!   (per `each` rule when it is a member of its container). Values reached
//!   by plain steps from the root are always read: there are at most as many
//!   as the rules have steps.
//!
//! Rooms: this module is the tree compiled from the rules ([`Reach`]);
//! `parse` reads a body with it (the budget, the lazy containers).

mod parse;

use std::collections::{BTreeMap, HashMap};

use super::path::Step;

#[cfg(test)]
pub(super) use parse::Parsed;
pub(super) use parse::{member_budget, parse, Lazy};

/// What of a JSON value the rules can reach.
#[derive(Debug, Clone, Default)]
pub(super) struct Reach {
    /// Everything below is reached.
    all: bool,
    names: HashMap<Box<str>, Reach, foldhash::fast::FixedState>,
    indices: BTreeMap<usize, Reach>,
    /// Every member or element (the container of an `each`, or a negative index).
    any: Option<Box<Reach>>,
    /// The rules (by index) whose `each` iterates this node's members.
    containers: Vec<usize>,
    /// A path reads an element from the end (through `any`).
    from_end: bool,
    /// Parsed lazily for this rule (see the module doc); set by `mark_lazy`.
    lazy: Option<usize>,
    /// This node or one below is parsed lazily.
    lazy_below: bool,
    /// Also reached through an enclosing container's members (another
    /// rule's `each` level or wildcard passes through it): never lazy.
    shared: bool,
}

/// Reached by a general path: everything.
static ALL: Reach = Reach {
    all: true,
    names: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0)),
    indices: BTreeMap::new(),
    any: None,
    containers: Vec::new(),
    from_end: false,
    lazy: None,
    lazy_below: false,
    shared: false,
};

impl Reach {
    /// The node `steps` below this one, created if needed.
    pub(super) fn descend(&mut self, steps: &[Step]) -> &mut Reach {
        let mut node = self;
        for step in steps {
            node = match step {
                Step::Name(name) => node.names.entry(name.as_str().into()).or_default(),
                Step::Index(i) => match usize::try_from(*i) {
                    Ok(i) => node.indices.entry(i).or_default(),
                    // From the end: the length is not known while parsing.
                    Err(_) => {
                        node.from_end = true;
                        node.members()
                    }
                },
            };
        }
        node
    }

    /// The reach shared by every member or element.
    pub(super) fn members(&mut self) -> &mut Reach {
        self.any.get_or_insert_with(Box::default)
    }

    /// Reaches everything below.
    pub(super) fn reach_all(&mut self) {
        self.all = true;
    }

    /// Marks this node as the container rule `rule`'s `each` iterates.
    pub(super) fn container_of(&mut self, rule: usize) {
        self.members();
        self.containers.push(rule);
    }

    /// Adds what `other` reaches (its containers are not merged: they name
    /// one node).
    pub(super) fn merge(&mut self, other: &Reach) {
        self.shared = true;
        self.all |= other.all;
        self.from_end |= other.from_end;
        for (k, v) in &other.names {
            self.names.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &other.indices {
            self.indices.entry(*k).or_default().merge(v);
        }
        if let Some(any) = &other.any {
            self.members().merge(any);
        }
    }

    /// Folds what every member reaches into the named members and indices,
    /// so that parsing looks at one node per member. Call once, after every
    /// rule was added.
    pub(super) fn normalize(&mut self) {
        if let Some(any) = self.any.as_deref_mut() {
            any.normalize();
        }
        let all = self.all;
        let any = self.any.clone();
        for child in self.names.values_mut().chain(self.indices.values_mut()) {
            child.all |= all;
            if let Some(any) = &any {
                child.merge(any);
            }
            child.normalize();
        }
        if all {
            if let Some(any) = self.any.as_deref_mut() {
                any.all = true;
                any.normalize();
            }
        }
    }

    /// Marks the containers to parse lazily: those whose members are read
    /// only through `any` by the rules of one pass (`pass_of`: per rule, the
    /// first rule of its pass, which names the container in
    /// [`Parsed::lazy`]). Call after [`Reach::normalize`]. Returns whether
    /// any container at or below this node is parsed lazily.
    pub(super) fn mark_lazy(&mut self, pass_of: &[usize]) -> bool {
        let pass = |rule: &usize| pass_of.get(*rule).copied();
        let first = self.containers.first().and_then(pass);
        self.lazy = first.filter(|_| {
            self.containers.iter().all(|r| pass(r) == first)
                && !self.all
                && !self.from_end
                && !self.shared
                && self.names.is_empty()
                && self.indices.is_empty()
                && self.any.is_some()
        });
        let mut below = self.lazy.is_some();
        for child in self.names.values_mut().chain(self.indices.values_mut()) {
            below |= child.mark_lazy(pass_of);
        }
        if let Some(any) = self.any.as_deref_mut() {
            below |= any.mark_lazy(pass_of);
        }
        self.lazy_below = below;
        below
    }

    /// The reach of element `i` and whether it is reached in bulk.
    fn element(&self, i: usize) -> Option<(&Reach, bool)> {
        if let Some(r) = self.indices.get(&i) {
            Some((r, false))
        } else if let Some(any) = &self.any {
            Some((any, true))
        } else if self.all {
            Some((&ALL, true))
        } else {
            None
        }
    }

    /// The reach of member `name` and whether it is reached in bulk.
    fn member(&self, name: &str) -> Option<(&Reach, bool)> {
        if let Some(r) = self.names.get(name) {
            Some((r, false))
        } else if let Some(any) = &self.any {
            Some((any, true))
        } else if self.all {
            Some((&ALL, true))
        } else {
            None
        }
    }

    /// One past the last element reached (`usize::MAX` for all).
    fn element_end(&self) -> usize {
        if self.all || self.any.is_some() {
            usize::MAX
        } else {
            self.indices.last_key_value().map_or(0, |(i, _)| i + 1)
        }
    }
}
