//! From one JSON document to metric rules: every number, boolean and
//! status-like string becomes a rule; version strings one `info` rule;
//! objects of like objects and arrays of named objects one `each` rule per
//! field; text is listed as skipped.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::units::{parse_bytes, parse_duration, parse_number, parse_percent, parse_timestamp};

/// Reserved by remora (labels it sets itself).
const RESERVED_LABELS: [&str; 5] = ["target", "state", "process_name", "le", "quantile"];

/// States apps report together; a state set gets the whole family of a
/// state it saw, so a state not seen while probing is not an error later.
const VOCABULARIES: [&[&str]; 10] = [
    &["healthy", "degraded", "unhealthy"],
    &["up", "down", "out_of_service", "unknown"],
    &["pass", "warn", "fail"],
    &["ok", "warning", "error"],
    &["ready", "not_ready"],
    &["alive", "dead"],
    &["green", "yellow", "red"],
    &["serving", "not_serving", "service_unknown"],
    &["running", "starting", "stopped", "failed"],
    &["online", "offline"],
];

/// Keys whose string value is a state.
const STATUS_KEYS: [&str; 6] = ["status", "state", "health", "phase", "condition", "result"];

/// Keys whose string value is a version, a commit or a build name.
const VERSION_KEYS: [&str; 14] = [
    "version",
    "commit",
    "revision",
    "build",
    "branch",
    "sha",
    "git_sha",
    "git_commit",
    "git_branch",
    "build_version",
    "build_number",
    "go_version",
    "release",
    "tag",
];

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

/// A label name for the members of a container: the container's key in
/// the singular (`checks` -> `check`), else `fallback`.
fn label_name(container: &str, fallback: &str) -> String {
    let s = snake(container);
    let single = if let Some(x) = s.strip_suffix("ies") {
        format!("{x}y")
    } else if s.ends_with("ss") {
        s.clone()
    } else if let Some(x) = s.strip_suffix('s') {
        x.to_string()
    } else {
        s.clone()
    };
    let ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with("__")
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && !RESERVED_LABELS.contains(&n)
    };
    if ok(&single) {
        single
    } else {
        snake(fallback)
    }
}

/// How a leaf at `key` reads, or None for text.
fn classify(key: &str, v: &Value) -> Option<Leaf> {
    let k = snake(key);
    let version_key = VERSION_KEYS.contains(&k.as_str())
        || ["_version", "_commit", "_sha", "_revision"]
            .iter()
            .any(|s| k.ends_with(s));
    match v {
        Value::Bool(_) => Some(Leaf::Bool),
        Value::Number(_) if version_key => Some(Leaf::Version),
        Value::Number(_) => Some(number_leaf(&k)),
        Value::String(_) if version_key => Some(Leaf::Version),
        Value::String(s) => {
            let t = s.trim();
            if parse_number(t).is_some() {
                return Some(number_leaf(&k));
            }
            if t.ends_with('%') && parse_percent(t).is_some() {
                return Some(Leaf::Percent);
            }
            if is_status(&k, t) {
                return Some(Leaf::Status(s.clone()));
            }
            if t.contains('-') && parse_timestamp(t).is_some() {
                return Some(Leaf::Timestamp);
            }
            let bytes_key = [
                "byte", "size", "mem", "free", "used", "total", "heap", "disk",
            ]
            .iter()
            .any(|h| k.contains(h));
            if bytes_key && parse_bytes(t).is_some() {
                return Some(Leaf::Bytes);
            }
            if t.chars().any(|c| c.is_ascii_alphabetic() || c == ':') && parse_duration(t).is_some()
            {
                return Some(Leaf::Duration);
            }
            if parse_bytes(t).is_some() {
                return Some(Leaf::Bytes);
            }
            None
        }
        _ => None,
    }
}

fn is_status(key: &str, value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    let words = !value.is_empty()
        && value.len() <= 40
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '));
    let status_key = STATUS_KEYS.contains(&key)
        || STATUS_KEYS
            .iter()
            .any(|s| key.ends_with(&format!("_{s}")) || key.starts_with(&format!("{s}_")));
    words && (status_key || VOCABULARIES.iter().any(|voc| voc.contains(&v.as_str())))
}

/// A number's unit and scale from its key's suffix.
fn number_leaf(key: &str) -> Leaf {
    const SUFFIXES: [(&str, &str, f64, &str); 27] = [
        ("_milliseconds", "s", 0.001, "milliseconds -> seconds"),
        ("_millis", "s", 0.001, "milliseconds -> seconds"),
        ("_ms", "s", 0.001, "milliseconds -> seconds"),
        ("_microseconds", "s", 1e-6, "microseconds -> seconds"),
        ("_us", "s", 1e-6, "microseconds -> seconds"),
        ("_nanoseconds", "s", 1e-9, "nanoseconds -> seconds"),
        ("_ns", "s", 1e-9, "nanoseconds -> seconds"),
        ("_seconds", "s", 1.0, "seconds"),
        ("_secs", "s", 1.0, "seconds"),
        ("_sec", "s", 1.0, "seconds"),
        ("_minutes", "s", 60.0, "minutes -> seconds"),
        ("_hours", "s", 3600.0, "hours -> seconds"),
        ("_days", "s", 86400.0, "days -> seconds"),
        ("_bytes", "By", 1.0, "bytes"),
        ("_kb", "By", 1e3, "kB -> bytes"),
        ("_mb", "By", 1e6, "MB -> bytes"),
        ("_gb", "By", 1e9, "GB -> bytes"),
        ("_tb", "By", 1e12, "TB -> bytes"),
        ("_kib", "By", 1024.0, "KiB -> bytes"),
        ("_mib", "By", 1_048_576.0, "MiB -> bytes"),
        ("_gib", "By", 1_073_741_824.0, "GiB -> bytes"),
        ("_percent", "1", 0.01, "percent -> ratio"),
        ("_percentage", "1", 0.01, "percent -> ratio"),
        ("_pct", "1", 0.01, "percent -> ratio"),
        ("_ratio", "1", 1.0, "ratio"),
        ("_s", "s", 1.0, "seconds"),
        ("_b", "By", 1.0, "bytes"),
    ];
    for (suffix, unit, scale, note) in SUFFIXES {
        if let Some(stem) = key.strip_suffix(suffix) {
            if !stem.is_empty() {
                return Leaf::Number {
                    unit: Some(unit),
                    scale: (scale != 1.0).then_some(scale),
                    stem: stem.to_string(),
                    note,
                };
            }
        }
    }
    Leaf::Number {
        unit: None,
        scale: None,
        stem: key.to_string(),
        note: "as reported",
    }
}

/// The state set of a status field: the states seen, then the rest of
/// each vocabulary one of them belongs to (in the case the app writes).
fn states(seen: &BTreeSet<String>) -> (Vec<String>, bool) {
    let mut out: Vec<String> = Vec::new();
    let mut known = false;
    for s in seen {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    for s in seen {
        let lower = s.to_ascii_lowercase();
        let upper =
            s.chars().any(|c| c.is_ascii_uppercase()) && !s.chars().any(|c| c.is_ascii_lowercase());
        for voc in VOCABULARIES {
            if voc.contains(&lower.as_str()) {
                known = true;
                for w in voc.iter() {
                    let w = if upper {
                        w.to_ascii_uppercase()
                    } else {
                        (*w).to_string()
                    };
                    if !out.contains(&w) {
                        out.push(w);
                    }
                }
            }
        }
    }
    (out, known)
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

/// `PREFIX.a.b.c`, made unique among `names` with `_2`, `_3`...
fn unique(names: &mut BTreeSet<String>, prefix: &str, parts: &[String]) -> String {
    let base = std::iter::once(prefix.to_string())
        .chain(parts.iter().cloned())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(".");
    let mut name = base.clone();
    let mut n = 2;
    while !names.insert(name.clone()) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// `camelCase`, `kebab-case` and `Other Text` in snake_case, ASCII only,
/// never starting with a digit.
pub fn snake(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        if c.is_ascii_uppercase() {
            // A word starts at `aB` and at the last capital of `ABc` (GCCPUFraction).
            let starts = prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase())
                    && next.is_some_and(|n| n.is_ascii_lowercase()));
            if starts && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let t = out.trim_matches('_').to_string();
    if t.starts_with(|c: char| c.is_ascii_digit()) {
        format!("n{t}")
    } else {
        t
    }
}

/// A JSONPath from the root through `keys` (`$.a['b-c']`).
pub fn json_path(keys: &[String]) -> String {
    let mut out = String::from("$");
    for k in keys {
        let plain = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain {
            out.push('.');
            out.push_str(k);
        } else {
            out.push_str("['");
            for c in k.chars() {
                match c {
                    '\'' => out.push_str("\\'"),
                    '\\' => out.push_str("\\\\"),
                    c => out.push(c),
                }
            }
            out.push_str("']");
        }
    }
    out
}

/// A path for comments (`<check>` placeholders kept as they are).
fn json_path_display(keys: &[String]) -> String {
    let mut out = String::from("$");
    for k in keys {
        if k.starts_with('<') {
            out.push('.');
            out.push_str(k);
        } else {
            out.push_str(&json_path(std::slice::from_ref(k))[1..]);
        }
    }
    out
}

/// A value as a comment shows it: one line, at most 60 characters.
fn example(v: &Value) -> String {
    let text = v.to_string();
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}
