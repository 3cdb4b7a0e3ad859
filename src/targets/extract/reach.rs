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
//! The budget: the values reached in bulk (members of an `each` container,
//!   subtrees under a general path) are charged an estimate of the memory
//!   they take (`Value` slots, strings, map entries); once the budget is
//!   spent, the rest of the bulk is not read (an array ends there, an
//!   object's other members are left out) and counted in [`Parsed::unread`]
//!   (per `each` rule when it is a member of its container). Values reached
//!   by plain steps from the root are always read: there are at most as many
//!   as the rules have steps.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::path::Step;

// Estimates, on the high side (measured with scripts/bench-memory.py).
/// Bytes of one array element: a 32-byte `Value` and the `Vec`'s growth slack.
const ARRAY_SLOT: usize = 56;
/// Bytes of one object member besides its key text: the key's allocation
/// (its `String` and `Value` sit in the first B-tree leaf) ...
const MEMBER_SLOT: usize = 32;
/// ... and, past the first leaf's 11 members, a share of half-full nodes.
const MEMBER_MORE: usize = 112;
/// Allocator overhead of one string.
const STRING_SLOT: usize = 16;
/// Bytes of an array's first allocation (room for 4 values).
const ARRAY_FIRST: usize = 128;
/// Bytes of an object's first allocation: a B-tree leaf of 11 entries.
const OBJECT_FIRST: usize = 640;

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
}

/// Reached by a general path: everything.
static ALL: Reach = Reach {
    all: true,
    names: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0)),
    indices: BTreeMap::new(),
    any: None,
    containers: Vec::new(),
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
                    Err(_) => node.members(),
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
        self.all |= other.all;
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

/// A body parsed with a [`Reach`].
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) root: Value,
    /// Per rule: members of its `each` container the budget left unread.
    pub(super) unread_members: Vec<u64>,
    /// Other values the budget left unread.
    pub(super) unread: u64,
    /// The budget left.
    pub(super) budget: usize,
}

struct Ctx {
    budget: usize,
    unread_members: Vec<u64>,
    unread: u64,
}

impl Ctx {
    /// Takes `n` bytes of the budget; once it is short, it stays spent.
    fn take(&mut self, n: usize) -> bool {
        match self.budget.checked_sub(n) {
            Some(left) => {
                self.budget = left;
                true
            }
            None => {
                self.budget = 0;
                false
            }
        }
    }

    /// Charges without refusing (values reached by plain steps).
    fn charge(&mut self, n: usize) {
        self.budget = self.budget.saturating_sub(n);
    }

    fn unread(&mut self, container: &Reach, n: u64) {
        if container.containers.is_empty() {
            self.unread += n;
        }
        for rule in &container.containers {
            if let Some(c) = self.unread_members.get_mut(*rule) {
                *c += n;
            }
        }
    }
}

/// Parses `body`, keeping what `reach` reaches within `budget` bytes.
/// `rules` is the number of rules (for [`Parsed::unread_members`]).
pub(super) fn parse(
    body: &[u8],
    reach: &Reach,
    rules: usize,
    budget: usize,
) -> Result<Parsed, serde_json::Error> {
    let mut ctx = Ctx {
        budget,
        unread_members: vec![0; rules],
        unread: 0,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let root = Seed {
        reach,
        ctx: &mut ctx,
        bulk: false,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(Parsed {
        root,
        unread_members: ctx.unread_members,
        unread: ctx.unread,
        budget: ctx.budget,
    })
}

struct Seed<'r, 'c> {
    reach: &'r Reach,
    ctx: &'c mut Ctx,
    /// Reached in bulk: charged against the budget.
    bulk: bool,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        let cost = v.len() + STRING_SLOT;
        if !self.bulk {
            self.ctx.charge(cost);
        } else if !self.ctx.take(cost) {
            // The slot is already counted; its text is not kept.
            self.ctx.unread += 1;
            return Ok(Value::Null);
        }
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let reach = self.reach;
        let end = reach.element_end();
        let mut items = Vec::new();
        let mut i = 0usize;
        loop {
            if i >= end {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                break;
            }
            match reach.element(i) {
                Some((child, bulk)) => {
                    let bulk = bulk || self.bulk;
                    if bulk && !self.ctx.take(ARRAY_SLOT) {
                        // Out of budget: the array ends here.
                        let mut n = 0;
                        while seq.next_element::<IgnoredAny>()?.is_some() {
                            n += 1;
                        }
                        self.ctx.unread(reach, n);
                        break;
                    }
                    if !bulk {
                        self.ctx.charge(ARRAY_SLOT);
                    }
                    let seed = Seed {
                        reach: child,
                        ctx: self.ctx,
                        bulk,
                    };
                    match seq.next_element_seed(seed)? {
                        Some(v) => {
                            if items.is_empty() {
                                self.ctx.charge(ARRAY_FIRST);
                            }
                            items.push(v);
                        }
                        None => break,
                    }
                }
                None => {
                    // Before a reached index: a placeholder nothing reads.
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                    if !self.ctx.take(ARRAY_SLOT) {
                        self.ctx.unread += 1;
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        break;
                    }
                    items.push(Value::Null);
                }
            }
            i += 1;
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let reach = self.reach;
        let mut members = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let Some((child, bulk)) = reach.member(&key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let bulk = bulk || self.bulk;
            let more = if members.len() >= 11 { MEMBER_MORE } else { 0 };
            let cost = MEMBER_SLOT + more + key.len();
            if !bulk {
                self.ctx.charge(cost);
            } else if !self.ctx.take(cost) {
                map.next_value::<IgnoredAny>()?;
                self.ctx.unread(reach, 1);
                continue;
            }
            let value = map.next_value_seed(Seed {
                reach: child,
                ctx: self.ctx,
                bulk,
            })?;
            if members.is_empty() {
                self.ctx.charge(OBJECT_FIRST);
            }
            members.insert(key.into_owned(), value);
        }
        Ok(Value::Object(members))
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v))
    }
}
