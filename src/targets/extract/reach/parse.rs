//! Parsing a body with a [`Reach`]: only what the rules reach is built, the
//! rest skipped without allocating; the values read in bulk are charged
//! against the memory budget; an `each` container read by one rule alone is
//! kept as its members' text ([`Lazy`]) and parsed one member at a time.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::super::path::NodeKey;
use super::Reach;

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
/// Bytes of one member of a lazy container: its key (`Cow<str>`, 24) and
/// text (`&RawValue`, 16), twice for the `Vec`'s growth, and half again for
/// the sort's scratch.
const LAZY_SLOT: usize = 100;

/// A body parsed with a [`Reach`].
#[derive(Debug)]
pub(in crate::targets::extract) struct Parsed<'de, 'r> {
    pub(in crate::targets::extract) root: Value,
    /// Per rule: the members of its container, when parsed lazily (the
    /// container in `root` is then empty).
    pub(in crate::targets::extract) lazy: Vec<Option<Lazy<'de, 'r>>>,
    /// Per rule: members of its `each` container the budget left unread.
    pub(in crate::targets::extract) unread_members: Vec<u64>,
    /// Other values the budget left unread.
    pub(in crate::targets::extract) unread: u64,
    /// The budget left.
    pub(in crate::targets::extract) budget: usize,
}

/// The members of a container parsed lazily: their text, in the order the
/// built container would iterate them.
#[derive(Debug)]
pub(in crate::targets::extract) struct Lazy<'de, 'r> {
    /// What the rule reads of each member.
    reach: &'r Reach,
    members: Members<'de>,
}

#[derive(Debug)]
enum Members<'de> {
    Object(Vec<(Cow<'de, str>, &'de RawValue)>),
    Array(Vec<&'de RawValue>),
}

impl Lazy<'_, '_> {
    /// Parses each member in turn, within `budget` bytes each, and hands it
    /// to `f` with its key, then drops it. Returns the number of members and
    /// the values the budget left unread in them; an error for a member that
    /// is not valid JSON after all (keeping its text checked its syntax, not
    /// its numbers' range or its escapes), as the whole body's parse would
    /// have failed on it.
    pub(in crate::targets::extract) fn for_each(
        &self,
        budget: usize,
        mut f: impl FnMut(&Value, NodeKey),
    ) -> Result<(usize, u64), serde_json::Error> {
        let mut unread = 0;
        match &self.members {
            Members::Object(members) => {
                for (key, text) in members {
                    let (value, n) = parse_member(self.reach, text, budget)?;
                    unread += n;
                    f(&value, NodeKey::Name(key));
                }
                Ok((members.len(), unread))
            }
            Members::Array(items) => {
                for (i, text) in items.iter().enumerate() {
                    let (value, n) = parse_member(self.reach, text, budget)?;
                    unread += n;
                    f(&value, NodeKey::Index(i));
                }
                Ok((items.len(), unread))
            }
        }
    }

    /// The number of members.
    pub(in crate::targets::extract) fn len(&self) -> usize {
        match &self.members {
            Members::Object(m) => m.len(),
            Members::Array(m) => m.len(),
        }
    }
}

/// What a parse of `budget` bytes keeps for the members of lazy containers
/// (a quarter): their text is kept only while this much is left, and each
/// member is parsed within at least this much.
pub(in crate::targets::extract) fn member_budget(budget: usize) -> usize {
    budget / 4
}

/// One member of a lazy container, parsed with what the rule reads of it.
fn parse_member(
    reach: &Reach,
    text: &RawValue,
    budget: usize,
) -> Result<(Value, u64), serde_json::Error> {
    let mut ctx = Ctx {
        lazy_ok: false,
        budget,
        reserve: 0,
        unread_members: Vec::new(),
        unread: 0,
        lazy: Vec::new(),
    };
    let mut de = serde_json::Deserializer::from_str(text.get());
    let seed = Seed {
        reach,
        ctx: &mut ctx,
        bulk: true,
    };
    let value = seed.deserialize(&mut de)?;
    de.end()?;
    Ok((value, ctx.unread))
}

struct Ctx<'de, 'r> {
    /// Containers may be kept as text (the body is UTF-8: a member's text
    /// is checked whole, where a skipped string is not).
    lazy_ok: bool,
    budget: usize,
    /// Left for parsing the members of lazy containers: their text is kept
    /// only while this much budget remains.
    reserve: usize,
    unread_members: Vec<u64>,
    unread: u64,
    lazy: Vec<Option<Lazy<'de, 'r>>>,
}

impl Ctx<'_, '_> {
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

    /// Takes `n` bytes for a lazy member's text, keeping the reserve.
    fn take_lazy(&mut self, n: usize) -> bool {
        if self.budget.saturating_sub(n) < self.reserve {
            self.budget = self.reserve.min(self.budget);
            return false;
        }
        self.take(n)
    }

    /// Charges without refusing (values reached by plain steps).
    fn charge(&mut self, n: usize) {
        self.budget = self.budget.saturating_sub(n);
    }

    fn unread(&mut self, container: &Reach, n: u64) {
        if container.containers.is_empty() || self.unread_members.is_empty() {
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
pub(in crate::targets::extract) fn parse<'de, 'r>(
    body: &'de [u8],
    reach: &'r Reach,
    rules: usize,
    budget: usize,
) -> Result<Parsed<'de, 'r>, serde_json::Error> {
    let mut ctx = Ctx {
        // Checked only when a container may be kept as text.
        lazy_ok: reach.lazy_below && std::str::from_utf8(body).is_ok(),
        budget,
        reserve: member_budget(budget),
        unread_members: vec![0; rules],
        unread: 0,
        lazy: std::iter::repeat_with(|| None).take(rules).collect(),
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
        lazy: ctx.lazy,
        unread_members: ctx.unread_members,
        unread: ctx.unread,
        budget: ctx.budget,
    })
}

struct Seed<'r, 'c, 'de> {
    reach: &'r Reach,
    ctx: &'c mut Ctx<'de, 'r>,
    /// Reached in bulk: charged against the budget.
    bulk: bool,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_, 'de> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.reach.lazy {
            // A lazy container is one node of the document: reached by
            // plain steps, never in bulk.
            Some(rule) if !self.bulk && self.ctx.lazy_ok => {
                d.deserialize_any(Container { rule, seed: self })
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_, 'de> {
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

/// A lazy container: its members' text is kept for [`Lazy::for_each`], the
/// tree gets an empty container of the same type. Another value in its
/// place is read as usual (and, a duplicate key, replaces the members).
struct Container<'r, 'c, 'de> {
    rule: usize,
    seed: Seed<'r, 'c, 'de>,
}

impl Container<'_, '_, '_> {
    fn scalar(self) -> Self {
        if let Some(slot) = self.seed.ctx.lazy.get_mut(self.rule) {
            *slot = None;
        }
        self
    }
}

impl<'de> Visitor<'de> for Container<'_, '_, 'de> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.scalar().seed.visit_bool(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.scalar().seed.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.scalar().seed.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.scalar().seed.visit_f64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.scalar().seed.visit_str(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.scalar().seed.visit_unit()
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.scalar().seed.visit_none()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let Seed { reach, ctx, .. } = self.seed;
        let Some(each) = reach.any.as_deref() else {
            return Ok(Value::Array(Vec::new()));
        };
        let mut items = Vec::new();
        while let Some(text) = seq.next_element::<&'de RawValue>()? {
            if !ctx.take_lazy(LAZY_SLOT) {
                // Out of budget: the array ends here.
                let mut n = 1;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                ctx.unread(reach, n);
                break;
            }
            items.push(text);
        }
        if let Some(slot) = ctx.lazy.get_mut(self.rule) {
            *slot = Some(Lazy {
                reach: each,
                members: Members::Array(items),
            });
        }
        Ok(Value::Array(Vec::new()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Seed { reach, ctx, .. } = self.seed;
        let Some(each) = reach.any.as_deref() else {
            return Ok(Value::Object(Map::new()));
        };
        let mut members = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let owned = if matches!(key, Cow::Owned(_)) {
                key.len() + STRING_SLOT
            } else {
                0
            };
            if !ctx.take_lazy(LAZY_SLOT + owned) {
                map.next_value::<IgnoredAny>()?;
                ctx.unread(reach, 1);
                continue;
            }
            members.push((key, map.next_value::<&'de RawValue>()?));
        }
        // serde_json's map order: sorted by key, the last of equal keys kept.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        members.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        if let Some(slot) = ctx.lazy.get_mut(self.rule) {
            *slot = Some(Lazy {
                reach: each,
                members: Members::Object(members),
            });
        }
        Ok(Value::Object(Map::new()))
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
