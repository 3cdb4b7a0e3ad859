//! The rules of a group of leaves: a gauge, counter, state set or boolean
//! per leaf, one `info` rule for its version strings (labels named by
//! their parent keys), and the cap: rules past the target's series cap are
//! left out and listed.

use std::collections::BTreeSet;

use super::names::{json_path_display, snake, unique, RESERVED_LABELS};
use super::{full, json_path, shown, Group, Inferred, Kind, Leaf, Rule};
use crate::init::vocab::{names_failure, states};

/// `map:` of a boolean written as a string.
const BOOL_TEXT: [(&str, f64); 6] = [
    ("true", 1.0),
    ("false", 0.0),
    ("True", 1.0),
    ("False", 0.0),
    ("TRUE", 1.0),
    ("FALSE", 0.0),
];

/// A version leaf of a group: its keys, path and whether some member lacks it.
struct Version {
    rel: Vec<String>,
    path: String,
    count: usize,
}

/// The rules of `g` (`root`: the document itself) into `rules`; the
/// fields no single reading fits into `skipped`.
pub(super) fn emit(
    g: &Group,
    root: bool,
    prefix: &str,
    source: &str,
    names: &mut BTreeSet<String>,
    rules: &mut Vec<Rule>,
    skipped: &mut Vec<String>,
) {
    let mut labels: Vec<(String, String)> = g.label.iter().cloned().collect();
    labels.extend(g.tags.iter().cloned());
    let whose = match &g.label {
        Some((label, _)) => format!(" of each {label} in {}", json_path_display(&g.at)),
        None => String::new(),
    };
    let mut versions: Vec<Version> = Vec::new();
    for f in &g.fields {
        let place = shown(g, &f.rel);
        if let Some(other) = &f.mixed {
            skipped.push(format!(
                "{place}: {} in one member, {other} in another (no single reading fits both)",
                f.example
            ));
            continue;
        }
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
            map: Vec::new(),
            count: false,
            count_by: None,
            optional: true,
            series: g.members.max(1),
        };
        let (stem, what) = match &f.leaf {
            Leaf::Version => {
                versions.push(Version {
                    rel: f.rel.clone(),
                    path: rule.path.clone().unwrap_or_default(),
                    count: f.count,
                });
                continue;
            }
            Leaf::Number {
                unit,
                scale,
                stem,
                note,
                counter,
            } => {
                rule.unit = *unit;
                rule.scale = *scale;
                if *counter {
                    rule.kind = Kind::Counter;
                }
                let kind = if *counter { "a counter" } else { "a number" };
                (stem.clone(), format!("{kind}, {note}"))
            }
            Leaf::Bool => (snake(last), "a boolean, true 1 and false 0".to_string()),
            Leaf::BoolText => {
                rule.map = BOOL_TEXT
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), *v))
                    .collect();
                rule.optional = !(root && f.count >= g.members);
                (
                    snake(last),
                    "a boolean written as a string, \"true\" 1 and \"false\" 0".to_string(),
                )
            }
            Leaf::List => {
                rule.count = true;
                rule.optional = false;
                rule.path = Some(format!("{}[*]", json_path(&full(g, &f.rel))));
                rule.series = 1;
                let stem = if f.rel.is_empty() {
                    "items".to_string()
                } else {
                    format!("{}.count", snake(last))
                };
                (
                    stem,
                    "a list: how many items it holds (0 when empty or absent)".to_string(),
                )
            }
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
                rule.series = rule.series.saturating_mul(states.len() + 1);
                // The app's own verdict stays required: its absence is news.
                rule.optional = !(root && f.count >= g.members && names_failure(&states));
                rule.kind = Kind::StateSet(states);
                let hint = if known {
                    "; a value outside them is served as state=\"other\""
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
        if !f.rel.is_empty() || f.leaf == Leaf::List {
            parts.push(if stem.is_empty() {
                "value".to_string()
            } else {
                stem
            });
        }
        rule.name = unique(names, prefix, &parts);
        rule.comment.push(format!("{place}: {}, {what}", f.example));
        rule.description = format!("{place} from {source}{whose}");
        let per_state = per_state(g, &rule, &parts, prefix, names, &whose);
        rules.push(rule);
        rules.extend(per_state);
    }
    if !versions.is_empty() {
        rules.push(info(g, &versions, labels, prefix, source, &whose, names));
    }
}

/// For the state set `r` of a collection's members, the members per state
/// (`count_by`, every state served, 0 when none has it): "how many checks
/// are failing" in one series.
fn per_state(
    g: &Group,
    r: &Rule,
    parts: &[String],
    prefix: &str,
    names: &mut BTreeSet<String>,
    whose: &str,
) -> Option<Rule> {
    let (Kind::StateSet(states), Some(each), Some(path)) = (&r.kind, &g.each, &r.path) else {
        return None;
    };
    let label = snake(parts.last().map_or("state", String::as_str));
    let label = if label.is_empty() {
        "state".to_string()
    } else {
        label
    };
    let mut p: Vec<String> = parts.to_vec();
    p.pop();
    p.push("count".to_string());
    let name = unique(names, prefix, &p);
    let template = if path == "@" {
        "{@}".to_string()
    } else {
        format!("{{{path}}}")
    };
    Some(Rule {
        comment: vec![format!(
            "How many members are in each state (every state served, 0 when none is; a value outside them is counted under {label}=\"other\")"
        )],
        description: format!("Members per {label}{whose}"),
        name,
        kind: Kind::Gauge,
        unit: None,
        each: Some(each.clone()),
        path: None,
        labels: vec![(label.clone(), template)],
        scale: None,
        parse: None,
        map: Vec::new(),
        count: false,
        count_by: Some((label, states.clone())),
        optional: false,
        series: states.len() + 1,
    })
}

/// The `info` rule of a group's version strings: one label per string,
/// named by its key, or by its parent's key and its own when the key alone
/// says too little (`java.version` -> `java_version`); served only while
/// the most common string is there, so never with every label empty.
fn info(
    g: &Group,
    versions: &[Version],
    mut labels: Vec<(String, String)>,
    prefix: &str,
    source: &str,
    whose: &str,
    names: &mut BTreeSet<String>,
) -> Rule {
    let mut parts: Vec<String> = g.at.iter().map(|k| snake(k)).collect();
    parts.push("build_info".to_string());
    let name = unique(names, prefix, &parts);
    let mut comment = vec![
        "version, commit and build strings: one info series (value 1), the strings as labels"
            .to_string(),
    ];
    let own = labels.len();
    for v in versions {
        let label = version_label(&v.rel, &labels);
        comment.push(format!("{}: the label {label}", v.path));
        labels.push((label, format!("{{{}}}", v.path)));
    }
    // The series is there while the string most members have is.
    let first = versions
        .iter()
        .enumerate()
        .max_by_key(|(i, v)| {
            let version = v.rel.last().is_some_and(|k| snake(k) == "version");
            (v.count, version, usize::MAX - v.rel.len(), usize::MAX - i)
        })
        .map(|(_, v)| v.path.clone());
    if labels.len() > own + 1 {
        comment.push("optional: a label whose string is missing is empty".to_string());
    }
    Rule {
        comment,
        name,
        description: format!("Version and build of the app, from {source}{whose}"),
        kind: Kind::Info,
        unit: None,
        each: g.each.clone(),
        path: first,
        labels,
        scale: None,
        parse: None,
        map: Vec::new(),
        count: false,
        count_by: None,
        optional: true,
        series: g.members.max(1),
    }
}

/// A label name for a version string at `rel`: its key, with its parents'
/// keys in front while the key alone is taken or too generic.
fn version_label(rel: &[String], taken: &[(String, String)]) -> String {
    let keys: Vec<String> = rel
        .iter()
        .map(|k| snake(k))
        .filter(|k| !k.is_empty())
        .collect();
    let clash = |l: &str| {
        l.is_empty()
            || RESERVED_LABELS.contains(&l)
            || l.starts_with("__")
            || taken.iter().any(|(t, _)| t == l)
    };
    let mut label = keys.last().cloned().unwrap_or_default();
    let generic = matches!(
        label.as_str(),
        "version" | "build" | "commit" | "release" | "tag"
    );
    let mut up = keys.len().saturating_sub(1);
    if generic && up > 0 && keys.len() > 1 {
        up -= 1;
        label = join(keys.get(up), &label);
    }
    while clash(&label) && up > 0 {
        up -= 1;
        label = join(keys.get(up), &label);
    }
    if clash(&label) {
        label = format!("app_{label}");
    }
    let base = label.clone();
    let mut n = 2;
    while clash(&label) {
        label = format!("{base}{n}");
        n += 1;
    }
    label
}

/// `parent_label`, without repeating a word the label starts with.
fn join(parent: Option<&String>, label: &str) -> String {
    match parent {
        Some(p) if !label.starts_with(&format!("{p}_")) => format!("{p}_{label}"),
        _ => label.to_string(),
    }
}

/// Keeps the rules within `max_series` series on the probed body: the
/// app's own states first, then the rules in document order; the rest are
/// listed in `skipped`.
pub(super) fn cap(out: &mut Inferred, max_series: usize) {
    let total: usize = out.rules.iter().map(|r| r.series).sum();
    if total <= max_series {
        return;
    }
    let first = |r: &Rule| matches!(r.kind, Kind::StateSet(_)) && r.each.is_none();
    let mut order: Vec<usize> = (0..out.rules.len()).collect();
    order.sort_by_key(|i| out.rules.get(*i).map_or(1, |r| usize::from(!first(r))));
    let mut kept = vec![false; out.rules.len()];
    let mut used = 0usize;
    for i in order {
        if let (Some(r), Some(k)) = (out.rules.get(i), kept.get_mut(i)) {
            if used + r.series <= max_series {
                used += r.series;
                *k = true;
            }
        }
    }
    let rules = std::mem::take(&mut out.rules);
    let mut left = Vec::new();
    for (r, k) in rules.into_iter().zip(kept) {
        if k {
            out.rules.push(r);
        } else {
            left.push(format!("{} ({} series)", r.name, r.series));
        }
    }
    out.skipped.push(format!(
        "{} rule(s) left out: the body gives about {total} series, over the target's cap of {max_series} (limits.max_series_per_target); the kept ones give {used}:",
        left.len()
    ));
    const SHOWN: usize = 20;
    let more = left.len().saturating_sub(SHOWN);
    out.skipped
        .extend(left.into_iter().take(SHOWN).map(|l| format!("  {l}")));
    if more > 0 {
        out.skipped.push(format!("  ... and {more} more"));
    }
}
