//! From one JSON document to metric rules: every number, boolean and
//! status-like string becomes a rule; version strings one `info` rule;
//! objects of like objects and arrays of named objects one `each` rule per
//! field; text is listed as skipped.
//!
//! Rooms: this module walks the document into groups (the document, each
//! collection's members); `emit` writes their rules (and keeps them within
//! the target's series cap); `classify` says how a leaf reads (unit, scale
//! and kind from its key, states, versions); `names` makes names, label
//! names and JSONPaths.

mod classify;
mod emit;
mod names;

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use classify::classify;
use names::{example, json_path_display};
pub use names::{json_path, label_name, snake};

/// The kind of a generated rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Gauge,
    Counter,
    Info,
    StateSet(Vec<String>),
}

/// One generated metric rule, with the comment lines above it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub comment: Vec<String>,
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub unit: Option<&'static str>,
    pub each: Option<String>,
    pub path: Option<String>,
    pub labels: Vec<(String, String)>,
    pub scale: Option<f64>,
    pub parse: Option<&'static str>,
    /// `map:` (string -> number).
    pub map: Vec<(String, f64)>,
    /// `aggregate: count` (the rule counts the nodes its path matches).
    pub count: bool,
    /// `count_by: LABEL` with the states always served.
    pub count_by: Option<(String, Vec<String>)>,
    pub optional: bool,
    /// Series the rule makes on the probed body (for the cap).
    pub series: usize,
}

/// What a document gave: rules and the leaves left out (with why).
#[derive(Debug, Default)]
pub struct Inferred {
    pub rules: Vec<Rule>,
    pub skipped: Vec<String>,
}

/// How a leaf becomes a number.
#[derive(Debug, Clone, PartialEq)]
enum Leaf {
    /// A number (or numeric string): unit, scale, name stem, what was done.
    Number {
        unit: Option<&'static str>,
        scale: Option<f64>,
        stem: String,
        note: &'static str,
        /// A count that only grows.
        counter: bool,
    },
    Bool,
    /// `"true"` / `"false"` as a string (etcd's `health`).
    BoolText,
    /// A list of the document without an id key: its length.
    List,
    Percent,
    Duration,
    Timestamp,
    Bytes,
    Status(String),
    Version,
}

/// One leaf of a group: its path relative to the group's node, the keys on
/// the way (for the name), how it reads, how many members have it.
struct Field {
    rel: Vec<String>,
    leaf: Leaf,
    example: String,
    seen: BTreeSet<String>,
    count: usize,
    /// A member's value the reading fails on (text where others have
    /// numbers, `""` for a duration): no rule, listed as left out.
    mixed: Option<String>,
}

/// A set of nodes read by the same rules: the document itself, or the
/// members of an `each`.
struct Group {
    /// The JSONPath of `each`, or None for the document.
    each: Option<String>,
    /// Label name and template for the member.
    label: Option<(String, String)>,
    /// More labels: readable tags every member carries (`Name`, `ServiceName`).
    tags: Vec<(String, String)>,
    /// The key of the member being walked (for how its leaves read).
    member: Option<String>,
    /// For the document: the URL path's last word, naming the members of a
    /// top-level collection (`/v1/agent/checks` -> `check`).
    key_hint: String,
    /// Leaves read as text, with an example (a member with a number there
    /// makes the field mixed).
    text: Vec<(Vec<String>, String)>,
    /// Keys from the root to the container (for names and comments).
    at: Vec<String>,
    members: usize,
    fields: Vec<Field>,
}

/// Rules for `doc`, named `PREFIX.<keys>`; `source` (the URL path) goes
/// into descriptions; at most `max_series` series on this body (the
/// target's cap), the rules past it listed in `skipped`.
pub fn infer(doc: &Value, prefix: &str, source: &str, max_series: usize) -> Inferred {
    let mut out = Inferred::default();
    let mut groups = Vec::new();
    let mut root = new_group(None, None, Vec::new(), 1);
    root.key_hint = source
        .rsplit('/')
        .find(|w| !w.is_empty() && !w.starts_with('<'))
        .unwrap_or("")
        .to_string();
    walk(
        doc,
        &mut Vec::new(),
        &mut root,
        &mut groups,
        &mut out.skipped,
        true,
    );
    groups.insert(0, root);
    let mut names = BTreeSet::new();
    for (i, g) in groups.iter().enumerate() {
        emit::emit(
            g,
            i == 0,
            prefix,
            source,
            &mut names,
            &mut out.rules,
            &mut out.skipped,
        );
    }
    emit::cap(&mut out, max_series);
    out
}

fn new_group(
    each: Option<String>,
    label: Option<(String, String)>,
    at: Vec<String>,
    members: usize,
) -> Group {
    Group {
        each,
        label,
        tags: Vec::new(),
        member: None,
        text: Vec::new(),
        key_hint: String::new(),
        at,
        members,
        fields: Vec::new(),
    }
}

/// Walks `v` at `rel` (relative to the group's node), adding leaves to
/// `group`; with `top`, collections become groups of their own.
fn walk(
    v: &Value,
    rel: &mut Vec<String>,
    group: &mut Group,
    groups: &mut Vec<Group>,
    skipped: &mut Vec<String>,
    top: bool,
) {
    match v {
        Value::Object(m) => {
            if top {
                if let Some(mut g) = collection_of_objects(m, rel, group) {
                    for (k, member) in m {
                        g.member = Some(k.clone());
                        walk(member, &mut Vec::new(), &mut g, groups, skipped, false);
                    }
                    g.member = None;
                    groups.push(g);
                    return;
                }
                if let Some(g) = flags(m, rel, group) {
                    groups.push(g);
                    return;
                }
            }
            for (k, child) in m {
                rel.push(k.clone());
                walk(child, rel, group, groups, skipped, top);
                rel.pop();
            }
        }
        Value::Array(items) => match top.then(|| named_elements(items)).flatten() {
            Some((field, tags)) => {
                // A top-level list is labelled by its id key (`check_id`),
                // a named one by its name in the singular (`checks` -> `check`).
                let key = rel.last().map_or("", String::as_str);
                let at = full(group, rel);
                let mut g = new_group(
                    Some(format!("{}[*]", json_path(&at))),
                    Some((
                        label_name(key, &field),
                        format!("{{{}}}", json_path(std::slice::from_ref(&field))),
                    )),
                    at,
                    items.len(),
                );
                g.tags = tag_labels(&tags, &g);
                for item in items {
                    if let Value::Object(m) = item {
                        for (k, child) in m {
                            if *k == field || tags.contains(k) {
                                continue;
                            }
                            let mut r = vec![k.clone()];
                            walk(child, &mut r, &mut g, groups, skipped, false);
                        }
                    }
                }
                if g.fields.is_empty() && group.each.is_none() {
                    // Only text in the items (RabbitMQ's alarms): their number.
                    add(group, rel, Leaf::List, v);
                } else {
                    groups.push(g);
                }
            }
            // A list of the document itself (RabbitMQ's alarms, an empty
            // list of checks): how many items it holds.
            None if top && group.each.is_none() => {
                add(group, rel, Leaf::List, v);
            }
            None => skipped.push(format!(
                "{}: a list of {} item(s) (no rule: write one with each: {}[*] if it matters)",
                shown(group, rel),
                items.len(),
                json_path(&full(group, rel))
            )),
        },
        Value::Null => skipped.push(format!(
            "{}: null (its type is unknown; add a rule once the app fills it)",
            shown(group, rel)
        )),
        leaf => {
            let mut keys = group.at.clone();
            keys.extend(group.member.iter().cloned());
            keys.extend(rel.iter().cloned());
            match classify(&keys, rel.len(), leaf) {
                Some(kind) => add(group, rel, kind, leaf),
                None => {
                    // Text where another member has a number: the rule
                    // would fail on this member.
                    if let Some(f) = group.fields.iter_mut().find(|f| f.rel == *rel) {
                        f.mixed.get_or_insert_with(|| example(leaf));
                    } else if !group.text.iter().any(|(r, _)| r == rel) {
                        group.text.push((rel.clone(), example(leaf)));
                        skipped.push(format!("{}: {} (text)", shown(group, rel), example(leaf)));
                    }
                }
            }
        }
    }
}

/// Labels for the readable tags of a collection's members (`Name` ->
/// `name`), none clashing with the member's own label.
fn tag_labels(tags: &[String], g: &Group) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in tags {
        let mut name = snake(t);
        if names::RESERVED_LABELS.contains(&name.as_str()) || name.is_empty() {
            name = format!("app_{name}");
        }
        let taken = |n: &str| {
            g.label.as_ref().is_some_and(|(l, _)| l == n) || out.iter().any(|(l, _)| l == n)
        };
        if taken(&name) {
            continue;
        }
        out.push((name, format!("{{{}}}", json_path(std::slice::from_ref(t)))));
    }
    out
}

fn add(group: &mut Group, rel: &[String], leaf: Leaf, v: &Value) {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(f) = group.fields.iter_mut().find(|f| f.rel == rel) {
        if let (Leaf::Status(_), Leaf::Status(_)) = (&f.leaf, &leaf) {
            f.seen.insert(text);
            f.count += 1;
        } else if f.leaf == leaf || same_kind(&f.leaf, &leaf) {
            f.count += 1;
        } else {
            // Read differently by another member: no single reading fits.
            f.mixed.get_or_insert_with(|| example(v));
        }
        return;
    }
    let mixed = group
        .text
        .iter()
        .find(|(r, _)| r == rel)
        .map(|(_, e)| e.clone());
    group.fields.push(Field {
        rel: rel.to_vec(),
        leaf,
        example: example(v),
        seen: BTreeSet::from([text]),
        count: 1,
        mixed,
    });
}

fn same_kind(a: &Leaf, b: &Leaf) -> bool {
    matches!((a, b), (Leaf::Number { .. }, Leaf::Number { .. }))
}

/// Keys from the root to `rel` (the group's container first).
fn full(group: &Group, rel: &[String]) -> Vec<String> {
    if group.each.is_some() {
        return rel.to_vec();
    }
    group.at.iter().chain(rel).cloned().collect()
}

/// A leaf's place for comments: `$.checks.<check>.latency_ms`.
fn shown(group: &Group, rel: &[String]) -> String {
    match (&group.each, &group.label) {
        (Some(_), Some((label, _))) => {
            let mut at = group.at.clone();
            at.push(format!("<{label}>"));
            at.extend(rel.iter().cloned());
            json_path_display(&at)
        }
        _ => json_path_display(&full(group, rel)),
    }
}

/// Containers whose members are data-named objects even when only one is
/// there (a health page's checks; Terminus's `info`, `error`, `details`).
const KNOWN_CONTAINERS: [&str; 9] = [
    "checks",
    "components",
    "dependencies",
    "services",
    "probes",
    "indicators",
    "info",
    "error",
    "details",
];

/// Member keys that identify an array's elements, by preference (matched
/// case-insensitively, the first one unique among the elements wins).
const ID_KEYS: [&str; 10] = [
    "check_id",
    "name",
    "id",
    "service_id",
    "component_id",
    "key",
    "node",
    "node_id",
    "instance",
    "uid",
];

/// Readable tags a member may carry beside an opaque id (used as labels).
const TAG_KEYS: [&str; 4] = ["name", "service_name", "node", "component_type"];

/// An object whose members are all objects sharing a key (or one object
/// under a key such as `checks`): a group over its members, labelled by
/// key, and by the readable tags every member carries (Consul checks keyed
/// by CheckID carry `Name`, `ServiceName`).
fn collection_of_objects(m: &Map<String, Value>, rel: &[String], parent: &Group) -> Option<Group> {
    if m.is_empty() || !m.values().all(Value::is_object) {
        return None;
    }
    let key = rel.last().map_or(parent.key_hint.as_str(), String::as_str);
    let members: Vec<&Map<String, Value>> = m.values().filter_map(Value::as_object).collect();
    let shared = shared_keys(&members);
    let known = KNOWN_CONTAINERS.contains(&snake(key).as_str());
    if shared.is_empty() || (m.len() < 2 && !known) {
        return None;
    }
    let at = full(parent, rel);
    // Terminus's info/error/details (and Spring Boot 2.1's details) hold
    // health indicators.
    let label = match snake(key).as_str() {
        "info" | "error" | "details" => "component".to_string(),
        _ => label_name(key, "key"),
    };
    let mut g = new_group(
        Some(format!("{}.*", json_path(&at))),
        Some((label, "{@key}".to_string())),
        at,
        m.len(),
    );
    let tags: Vec<String> = TAG_KEYS
        .iter()
        .filter_map(|t| {
            shared
                .iter()
                .find(|k| snake(k) == *t)
                .filter(|k| {
                    members
                        .iter()
                        .all(|o| o.get(**k).is_some_and(Value::is_string))
                })
                .map(|k| (*k).clone())
        })
        .collect();
    g.tags = tag_labels(&tags, &g);
    Some(g)
}

/// The keys every member has.
fn shared_keys<'a>(members: &[&'a Map<String, Value>]) -> BTreeSet<&'a String> {
    let mut it = members.iter();
    let Some(first) = it.next() else {
        return BTreeSet::new();
    };
    it.fold(first.keys().collect(), |acc, o| {
        acc.into_iter().filter(|k| o.contains_key(*k)).collect()
    })
}

/// An object of booleans (feature flags), or of numbers under keys that
/// are data (`"GET /v1/events": 918233` in an expvar map): one rule, one
/// series per key.
fn flags(m: &Map<String, Value>, rel: &[String], parent: &Group) -> Option<Group> {
    let data_key = |k: &String| k.chars().any(|c| matches!(c, ' ' | '/' | ':'));
    let bools = m.values().all(Value::is_boolean);
    let numbers = m.values().all(Value::is_number) && m.keys().all(data_key);
    if m.len() < 2 || !(bools || numbers) {
        return None;
    }
    let key = rel.last().map_or(parent.key_hint.as_str(), String::as_str);
    let at = full(parent, rel);
    let mut g = new_group(
        Some(format!("{}.*", json_path(&at))),
        Some((label_name(key, "key"), "{@key}".to_string())),
        at,
        m.len(),
    );
    let (leaf, example) = match m.iter().next() {
        Some((k, v)) if numbers => (
            classify(std::slice::from_ref(k), 1, v).unwrap_or(Leaf::Bool),
            v.to_string(),
        ),
        Some((_, v)) => (Leaf::Bool, v.to_string()),
        None => (Leaf::Bool, String::new()),
    };
    g.fields.push(Field {
        rel: Vec::new(),
        leaf,
        example,
        seen: BTreeSet::new(),
        count: m.len(),
        mixed: None,
    });
    Some(g)
}

/// The identifying member of an array's elements (`name`, `id`, `CheckID`,
/// `Node`..., any case), when every element is an object with it as a
/// scalar and no two elements share its value; and the readable tags all
/// elements carry beside it.
fn named_elements(items: &[Value]) -> Option<(String, Vec<String>)> {
    let objects: Vec<&Map<String, Value>> = items.iter().filter_map(Value::as_object).collect();
    if objects.is_empty() || objects.len() != items.len() {
        return None;
    }
    let shared = shared_keys(&objects);
    let scalar = |k: &String| {
        objects
            .iter()
            .all(|o| matches!(o.get(k), Some(Value::String(_) | Value::Number(_))))
    };
    let unique = |k: &String| {
        let values: BTreeSet<String> = objects
            .iter()
            .filter_map(|o| o.get(k))
            .map(Value::to_string)
            .collect();
        values.len() == objects.len()
    };
    let id = ID_KEYS.iter().find_map(|want| {
        shared
            .iter()
            .find(|k| snake(k) == *want && scalar(k) && unique(k))
            .map(|k| (*k).clone())
    })?;
    let tags = TAG_KEYS
        .iter()
        .filter_map(|t| {
            shared
                .iter()
                .find(|k| snake(k) == *t && ***k != id)
                .filter(|k| {
                    objects
                        .iter()
                        .all(|o| o.get(**k).is_some_and(Value::is_string))
                })
                .map(|k| (*k).clone())
        })
        .collect();
    Some((id, tags))
}
