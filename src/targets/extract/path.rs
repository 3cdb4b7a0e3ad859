//! JSONPath evaluation for the rules: plain paths (`.name` and `[index]`
//! segments) in a fast form that allocates nothing, the general query for
//! the rest, and the `{@key}` of the nodes an `each` matches.

use std::collections::HashMap;

use serde_json::Value;
use serde_json_path::JsonPath;

/// One step of a [`SimplePath`].
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    Name(String),
    /// Negative: from the end (RFC 9535).
    Index(i64),
}

/// A JSONPath made only of `.name` and `[index]` segments (optionally ending
/// in a wildcard), evaluated without the allocations of a general query.
/// Recognised from the path's canonical display, where these segments are
/// unambiguous (a shorthand name cannot contain `.`, `[` or quotes; a
/// bracketed name is shown quoted and is left to the general query).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SimplePath {
    pub(super) steps: Vec<Step>,
}

impl SimplePath {
    /// With `wildcard`, the path must end in `.*` or `[*]` (left out of the
    /// steps: the caller iterates the container); without, it must not.
    pub(super) fn parse(path: &JsonPath, wildcard: bool) -> Option<Self> {
        let text = path.to_string();
        let mut rest = text.strip_prefix('$')?;
        if wildcard {
            rest = rest
                .strip_suffix(".*")
                .or_else(|| rest.strip_suffix("[*]"))?;
        }
        let (steps, rest) = simple_prefix(rest);
        rest.is_empty().then_some(SimplePath { steps })
    }

    pub(super) fn get<'v>(&self, mut v: &'v Value) -> Option<&'v Value> {
        for step in &self.steps {
            v = match step {
                Step::Name(name) => v.as_object()?.get(name)?,
                Step::Index(i) => {
                    let items = v.as_array()?;
                    let at = if *i < 0 {
                        items
                            .len()
                            .checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
                    } else {
                        usize::try_from(*i).ok()?
                    };
                    items.get(at)?
                }
            };
        }
        Some(v)
    }
}

/// The leading `.name` and `[index]` segments of a path's canonical display
/// (after the `$`), and the text after them.
pub(super) fn simple_prefix(mut rest: &str) -> (Vec<Step>, &str) {
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() || name == "*" {
                break;
            }
            steps.push(Step::Name(name.to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else { break };
            let index = &after[..end];
            let digits = index.strip_prefix('-').unwrap_or(index);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                break;
            }
            let Ok(i) = index.parse() else { break };
            steps.push(Step::Index(i));
            rest = &after[end + 1..];
        } else {
            break;
        }
    }
    (steps, rest)
}

/// A JSONPath whose first match is wanted.
pub(super) enum PathPlan {
    Simple(SimplePath),
    General(JsonPath),
}

impl PathPlan {
    pub(super) fn new(path: &JsonPath) -> Self {
        match SimplePath::parse(path, false) {
            Some(simple) => PathPlan::Simple(simple),
            None => PathPlan::General(path.clone()),
        }
    }

    /// Every node matched, in document order.
    pub(super) fn all<'v>(&self, node: &'v Value) -> Vec<&'v Value> {
        match self {
            PathPlan::Simple(simple) => simple.get(node).into_iter().collect(),
            PathPlan::General(path) => path.query(node).all(),
        }
    }

    /// The first node matched.
    pub(super) fn first<'v>(&self, node: &'v Value) -> Option<&'v Value> {
        match self {
            PathPlan::Simple(simple) => simple.get(node),
            PathPlan::General(path) => path.query(node).first(),
        }
    }
}

/// The `{@key}` of the current node.
#[derive(Debug, Clone, Copy)]
pub(super) enum NodeKey<'a> {
    None,
    Name(&'a str),
    Index(usize),
}

/// A node a rule reads and its key: the document, or one level of its
/// `each` (a chain of them, outermost first, for a list `each:`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Level<'v> {
    pub(super) node: &'v Value,
    pub(super) key: NodeKey<'v>,
}

/// The level `out` levels out of the last of `chain`.
pub(super) fn level<'c, 'v>(chain: &'c [Level<'v>], out: usize) -> Option<&'c Level<'v>> {
    chain.len().checked_sub(out + 1).and_then(|i| chain.get(i))
}

/// The `{@key}` of each of `nodes` (members of `doc`): its object key or
/// array index, as the located query would give it, found by address with
/// one breadth-first walk that stops once every node is found. Takes a few
/// words per node, where a located query holds each node's whole path.
pub(super) fn keys_of<'v>(
    doc: &'v Value,
    nodes: &[&'v Value],
) -> HashMap<*const Value, NodeKey<'v>> {
    let mut keys: HashMap<*const Value, NodeKey<'v>> = nodes
        .iter()
        .map(|n| (std::ptr::from_ref(*n), NodeKey::None))
        .collect();
    let mut left = keys.len() - usize::from(keys.contains_key(&std::ptr::from_ref(doc)));
    let mut level = vec![doc];
    while left > 0 && !level.is_empty() {
        let mut next = Vec::new();
        for parent in level {
            let mut visit = |child: &'v Value, key: NodeKey<'v>| {
                if let Some(k) = keys.get_mut(&std::ptr::from_ref(child)) {
                    *k = key;
                    left -= 1;
                }
                if matches!(child, Value::Array(_) | Value::Object(_)) {
                    next.push(child);
                }
            };
            match parent {
                Value::Object(members) => {
                    for (k, v) in members {
                        visit(v, NodeKey::Name(k));
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        visit(v, NodeKey::Index(i));
                    }
                }
                _ => {}
            }
        }
        level = next;
    }
    keys
}
