//! From one JSON document to metric rules: every number, boolean and
//! status-like string becomes a rule; version strings one `info` rule;
//! objects of like objects and arrays of named objects one `each` rule per
//! field; text is listed as skipped.
//!
//! Rooms: this module walks the document into groups (the document, each
//! collection's members) and emits their rules; `classify` says how a leaf
//! reads (unit and scale from its key, states, versions); `names` makes
//! names, label names and JSONPaths.

mod classify;
mod names;

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use classify::{classify, states};
use names::{example, json_path_display, label_name, unique, RESERVED_LABELS};
pub use names::{json_path, snake};

/// The kind of a generated rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Gauge,
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
    pub optional: bool,
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
    },
    Bool,
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
}

/// A set of nodes read by the same rules: the document itself, or the
/// members of an `each`.
struct Group {
    /// The JSONPath of `each`, or None for the document.
    each: Option<String>,
    /// Label name and template for the member.
    label: Option<(String, String)>,
    /// Keys from the root to the container (for names and comments).
    at: Vec<String>,
    members: usize,
    fields: Vec<Field>,
}

/// Rules for `doc`, named `PREFIX.<keys>`; `source` (the URL path) goes
/// into descriptions.
pub fn infer(doc: &Value, prefix: &str, source: &str) -> Inferred {
    let mut out = Inferred::default();
    let mut groups = Vec::new();
    let mut root = Group {
        each: None,
        label: None,
        at: Vec::new(),
        members: 1,
        fields: Vec::new(),
    };
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
    for g in &groups {
        emit(g, prefix, source, &mut names, &mut out.rules);
    }
    out
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
    let key = rel.last().map(String::as_str).unwrap_or("");
    match v {
        Value::Object(m) => {
            if top {
                if let Some(mut g) = collection_of_objects(m, rel, group) {
                    for member in m.values() {
                        walk(member, &mut Vec::new(), &mut g, groups, skipped, false);
                    }
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
        Value::Array(items) => {
            let id = top.then(|| named_elements(items)).flatten();
            match id {
                Some(field) => {
                    let label = label_name(key, field);
                    let mut g = Group {
                        each: Some(format!("{}[*]", json_path(&full(group, rel)))),
                        label: Some((label, format!("{{{}}}", json_path(&[field.to_string()])))),
                        at: full(group, rel),
                        members: items.len(),
                        fields: Vec::new(),
                    };
                    for item in items {
                        if let Value::Object(m) = item {
                            for (k, child) in m {
                                if k == field {
                                    continue;
                                }
                                let mut r = vec![k.clone()];
                                walk(child, &mut r, &mut g, groups, skipped, false);
                            }
                        }
                    }
                    groups.push(g);
                }
                None => skipped.push(format!(
                    "{}: a list of {} item(s) (no rule: write one with each: {}[*] if it matters)",
                    shown(group, rel),
                    items.len(),
                    json_path(&full(group, rel))
                )),
            }
        }
        Value::Null => skipped.push(format!(
            "{}: null (its type is unknown; add a rule once the app fills it)",
            shown(group, rel)
        )),
        leaf => match classify(key, leaf) {
            Some(kind) => add(group, rel, kind, leaf),
            None => skipped.push(format!("{}: {} (text)", shown(group, rel), example(leaf))),
        },
    }
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
        }
        // A leaf read differently by another member keeps the first reading
        // (and stays optional: it counts once).
        return;
    }
    group.fields.push(Field {
        rel: rel.to_vec(),
        leaf,
        example: example(v),
        seen: BTreeSet::from([text]),
        count: 1,
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

/// An object whose members are all objects sharing a key (or one object
/// under a key such as `checks`): a group over its members, labelled by key.
fn collection_of_objects(m: &Map<String, Value>, rel: &[String], parent: &Group) -> Option<Group> {
    if m.is_empty() || !m.values().all(Value::is_object) {
        return None;
    }
    let key = rel.last().map(String::as_str).unwrap_or("");
    let shared = {
        let mut maps = m.values().filter_map(Value::as_object);
        let first: BTreeSet<&String> = maps.next()?.keys().collect();
        maps.fold(first, |acc, o| {
            acc.into_iter().filter(|k| o.contains_key(*k)).collect()
        })
    };
    let known = matches!(
        snake(key).as_str(),
        "checks" | "components" | "dependencies" | "services" | "probes" | "indicators"
    );
    if shared.is_empty() || (m.len() < 2 && !known) {
        return None;
    }
    let at = full(parent, rel);
    Some(Group {
        each: Some(format!("{}.*", json_path(&at))),
        label: Some((label_name(key, "key"), "{@key}".to_string())),
        at,
        members: m.len(),
        fields: Vec::new(),
    })
}

/// An object of booleans (feature flags): one series per key.
fn flags(m: &Map<String, Value>, rel: &[String], parent: &Group) -> Option<Group> {
    if m.len() < 2 || !m.values().all(Value::is_boolean) {
        return None;
    }
    let key = rel.last().map(String::as_str).unwrap_or("");
    let at = full(parent, rel);
    let mut g = Group {
        each: Some(format!("{}.*", json_path(&at))),
        label: Some((label_name(key, "key"), "{@key}".to_string())),
        at,
        members: m.len(),
        fields: Vec::new(),
    };
    g.fields.push(Field {
        rel: Vec::new(),
        leaf: Leaf::Bool,
        example: m.values().next().map(|v| v.to_string()).unwrap_or_default(),
        seen: BTreeSet::new(),
        count: m.len(),
    });
    Some(g)
}

/// The identifying field of an array's elements: `name`, `id` (or a key
/// ending so), when every element is an object with it as a scalar.
fn named_elements(items: &[Value]) -> Option<&'static str> {
    if items.is_empty() {
        return None;
    }
    ["name", "id", "componentId", "component_id", "key"]
        .into_iter()
        .find(|field| {
            items
                .iter()
                .all(|i| matches!(i.get(*field), Some(Value::String(_) | Value::Number(_))))
        })
}

/// The rules of one group.
fn emit(
    g: &Group,
    prefix: &str,
    source: &str,
    names: &mut BTreeSet<String>,
    rules: &mut Vec<Rule>,
) {
    let labels: Vec<(String, String)> = g.label.iter().cloned().collect();
    let whose = match &g.label {
        Some((label, _)) => format!(" of each {label} in {}", json_path_display(&g.at)),
        None => String::new(),
    };
    let mut info: Vec<(String, String, bool)> = Vec::new();
    for f in &g.fields {
        let optional = f.count < g.members;
        let place = shown(g, &f.rel);
        let path = if f.rel.is_empty() {
            "@".to_string()
        } else if g.each.is_some() {
            json_path(&f.rel)
        } else {
            json_path(&full(g, &f.rel))
        };
        let last = f.rel.last().map(String::as_str).unwrap_or("");
        let mut parts: Vec<String> = g.at.iter().map(|k| snake(k)).collect();
        parts.extend(
            f.rel
                .iter()
                .take(f.rel.len().saturating_sub(1))
                .map(|k| snake(k)),
        );
        let mut rule = Rule {
            comment: Vec::new(),
            name: String::new(),
            description: String::new(),
            kind: Kind::Gauge,
            unit: None,
            each: g.each.clone(),
            path: Some(path),
            labels: labels.clone(),
            scale: None,
            parse: None,
            optional,
        };
        let (stem, what) = match &f.leaf {
            Leaf::Version => {
                info.push((
                    last.to_string(),
                    rule.path.clone().unwrap_or_default(),
                    optional,
                ));
                continue;
            }
            Leaf::Number {
                unit,
                scale,
                stem,
                note,
            } => {
                rule.unit = *unit;
                rule.scale = *scale;
                (stem.clone(), format!("a number, {note}"))
            }
            Leaf::Bool => (snake(last), "a boolean, true 1 and false 0".to_string()),
            Leaf::Percent => {
                rule.unit = Some("1");
                rule.parse = Some("percent");
                (
                    snake(last),
                    "a percentage, as a ratio (12.5% -> 0.125)".to_string(),
                )
            }
            Leaf::Duration => {
                rule.unit = Some("s");
                rule.parse = Some("duration");
                (snake(last), "a duration, in seconds".to_string())
            }
            Leaf::Timestamp => {
                rule.unit = Some("s");
                rule.parse = Some("timestamp");
                (snake(last), "a timestamp, as Unix seconds".to_string())
            }
            Leaf::Bytes => {
                rule.unit = Some("By");
                rule.parse = Some("bytes");
                (snake(last), "a size, in bytes".to_string())
            }
            Leaf::Status(_) => {
                let (states, known) = states(&f.seen);
                rule.kind = Kind::StateSet(states);
                let hint = if known {
                    ""
                } else {
                    "; add the other states the app can report"
                };
                (
                    snake(last),
                    format!("a state: one series per state, 1 for the current one{hint}"),
                )
            }
        };
        parts.retain(|p| !p.is_empty());
        if !f.rel.is_empty() {
            parts.push(if stem.is_empty() {
                "value".to_string()
            } else {
                stem
            });
        }
        rule.name = unique(names, prefix, &parts);
        rule.comment.push(format!("{place}: {}, {what}", f.example));
        if optional {
            rule.comment
                .push("optional: not every member has it".to_string());
        }
        rule.description = format!("{place} from {source}{whose}");
        rules.push(rule);
    }
    if !info.is_empty() {
        let mut parts: Vec<String> = g.at.iter().map(|k| snake(k)).collect();
        parts.push("build_info".to_string());
        let name = unique(names, prefix, &parts);
        let mut labels = labels.clone();
        let mut comment = Vec::new();
        let mut optional = false;
        for (key, path, opt) in info {
            let mut label = snake(&key);
            if RESERVED_LABELS.contains(&label.as_str()) || label.is_empty() {
                label = format!("app_{label}");
            }
            while labels.iter().any(|(l, _)| *l == label) {
                label.push_str("_2");
            }
            comment.push(format!("{}: the label {label}", path));
            labels.push((label, format!("{{{path}}}")));
            optional |= opt;
        }
        comment.insert(
            0,
            "version, commit and build strings: one info series (value 1), the strings as labels"
                .to_string(),
        );
        rules.push(Rule {
            comment,
            name,
            description: format!("Version and build of the app, from {source}{whose}"),
            kind: Kind::Info,
            unit: None,
            each: g.each.clone(),
            path: None,
            labels,
            scale: None,
            parse: None,
            optional,
        });
    }
}
