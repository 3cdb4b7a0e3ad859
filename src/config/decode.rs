//! The decoder every section is read through: a [`Ctx`] that collects
//! [`ConfigError`]s with their position and key path, and a [`MapReader`]
//! that reads a mapping's keys and reports the unknown ones with a "did you
//! mean". Decoding never stops at a problem: it records it and goes on, so a
//! user sees every problem in one run.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use regex::Regex;
use serde_json_path::JsonPath;

use super::env::{expand_env, Env};
use super::yaml::{Mark, Node, NodeKind};

/// One problem in the file, shown as `FILE:LINE:COLUMN: key: problem`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{}:{}: {key}: {problem}", .mark.line, .mark.column)]
pub struct ConfigError {
    pub file: String,
    pub mark: Mark,
    /// Dotted key path, e.g. `targets[0].metrics[2].path`.
    pub key: String,
    pub problem: String,
}

/// Parses sizes such as `4MiB`, `10.5GB`, `512Mi`, `1024` (the same rules as
/// `parse: bytes`); negative sizes are refused.
pub fn parse_size(s: &str) -> Option<f64> {
    crate::units::parse_bytes(s).filter(|v| *v >= 0.0)
}

pub(super) fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok()
}

pub(super) fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn valid_instrument_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The decoding state: the file name for messages, the problems found so
/// far and the environment for `${VAR}`.
///
/// Every reader returns `None` after recording a problem, and [`super::parse_str`]
/// fails whenever one was recorded; so a fallback a decoder takes after a
/// `None` (an empty description, the default redirect policy) only lets it
/// go on to find the next problem, and never reaches a [`super::Config`].
pub(super) struct Ctx<'e> {
    pub(super) file: String,
    pub(super) errors: Vec<ConfigError>,
    pub(super) env: Env<'e>,
}

impl Ctx<'_> {
    pub(super) fn err(&mut self, mark: Mark, key: &str, problem: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            mark,
            key: key.to_string(),
            problem: problem.into(),
        });
    }

    /// The text of a scalar, env-expanded. Errors on collections.
    pub(super) fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar { text, .. } => match expand_env(text, self.env) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.err(node.mark, key, e.to_string());
                    None
                }
            },
            _ => {
                self.err(
                    node.mark,
                    key,
                    format!("got {} (expected a string)", node.type_name()),
                );
                None
            }
        }
    }

    pub(super) fn nonempty_string(&mut self, node: &Node, key: &str) -> Option<String> {
        let s = self.string(node, key)?;
        if s.is_empty() {
            self.err(node.mark, key, "is empty (expected a non-empty string)");
            return None;
        }
        Some(s)
    }

    pub(super) fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        match self.string(node, key)?.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            other => {
                self.err(
                    node.mark,
                    key,
                    format!("{other:?} is not a boolean (expected true or false)"),
                );
                None
            }
        }
    }

    pub(super) fn number(&mut self, node: &Node, key: &str) -> Option<f64> {
        let s = self.string(node, key)?;
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                self.err(
                    node.mark,
                    key,
                    format!("{s:?} is not a number (expected a number)"),
                );
                None
            }
        }
    }

    pub(super) fn duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
        let s = self.string(node, key)?;
        match parse_duration(&s) {
            Some(d) if !d.is_zero() => Some(d),
            Some(_) => {
                self.err(
                    node.mark,
                    key,
                    "must be greater than zero (expected a duration such as 15s)",
                );
                None
            }
            None => {
                self.err(
                    node.mark,
                    key,
                    format!(
                        "{s:?} is not a duration (expected a duration such as 15s, 500ms or 1m30s)"
                    ),
                );
                None
            }
        }
    }

    pub(super) fn regex(&mut self, node: &Node, key: &str) -> Option<Regex> {
        let s = self.string(node, key)?;
        match Regex::new(&s) {
            Ok(r) => Some(r),
            Err(e) => {
                let msg = e.to_string().replace('\n', " ");
                self.err(node.mark, key, format!("invalid regular expression: {msg}"));
                None
            }
        }
    }

    pub(super) fn jsonpath(&mut self, node: &Node, key: &str, text: &str) -> Option<JsonPath> {
        match JsonPath::parse(text) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(
                    node.mark,
                    key,
                    format!("invalid JSONPath {text:?}: {e} (expected an RFC 9535 JSONPath such as $.checks.*)"),
                );
                None
            }
        }
    }

    pub(super) fn seq<'n>(&mut self, node: &'n Node, key: &str) -> &'n [Node] {
        match &node.kind {
            NodeKind::Seq(items) => items,
            _ if node.is_null() => &[],
            _ => {
                self.err(
                    node.mark,
                    key,
                    format!("got {} (expected a list)", node.type_name()),
                );
                &[]
            }
        }
    }

    /// A mapping of strings to strings (labels, headers, resource).
    pub(super) fn string_map(&mut self, node: &Node, key: &str) -> Vec<(String, String, Mark)> {
        let mut out = Vec::new();
        let Some(mut m) = MapReader::new(self, node, key) else {
            return out;
        };
        for (k, v) in m.take_all() {
            let path = format!("{key}.{}", k.0);
            if let Some(s) = self.string(v, &path) {
                out.push((k.0.clone(), s, k.1));
            }
        }
        out
    }

    pub(super) fn labels(&mut self, node: &Node, key: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v, mark) in self.string_map(node, key) {
            let path = format!("{key}.{k}");
            if !valid_label_name(&k) || k.starts_with("__") {
                self.err(mark, &path, format!("{k:?} is not a valid label name (expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"));
            } else {
                out.insert(k, v);
            }
        }
        out
    }
}

/// Reads a mapping's keys, remembering which were used so the rest can be reported.
pub(super) struct MapReader<'n> {
    key: String,
    entries: Vec<((String, Mark), &'n Node)>,
    used: Vec<bool>,
}

impl<'n> MapReader<'n> {
    pub(super) fn new(ctx: &mut Ctx<'_>, node: &'n Node, key: &str) -> Option<Self> {
        let mut entries = Vec::new();
        match &node.kind {
            NodeKind::Map(pairs) => {
                let mut seen = HashSet::new();
                for (k, v) in pairs {
                    let name = match &k.kind {
                        NodeKind::Scalar { text, .. } => text.clone(),
                        _ => {
                            ctx.err(k.mark, key, "a key must be a string");
                            continue;
                        }
                    };
                    if !seen.insert(name.clone()) {
                        ctx.err(k.mark, &join(key, &name), "key given twice");
                        continue;
                    }
                    entries.push(((name, k.mark), v));
                }
            }
            _ if node.is_null() => {}
            _ => {
                ctx.err(
                    node.mark,
                    key,
                    format!("got {} (expected a mapping)", node.type_name()),
                );
                return None;
            }
        }
        let used = vec![false; entries.len()];
        Some(MapReader {
            key: key.to_string(),
            entries,
            used,
        })
    }

    /// The value of `name`, or None when absent or null.
    pub(super) fn get(&mut self, name: &str) -> Option<&'n Node> {
        let i = self.entries.iter().position(|((k, _), _)| k == name)?;
        self.used[i] = true;
        let node = self.entries[i].1;
        (!node.is_null()).then_some(node)
    }

    /// Every entry (for free-form maps such as labels).
    pub(super) fn take_all(&mut self) -> Vec<(&(String, Mark), &'n Node)> {
        self.used.iter_mut().for_each(|u| *u = true);
        self.entries.iter().map(|(k, v)| (k, *v)).collect()
    }

    pub(super) fn path(&self, name: &str) -> String {
        join(&self.key, name)
    }

    /// Reports every key that was not read.
    pub(super) fn finish(self, ctx: &mut Ctx<'_>, allowed: &[&str]) {
        for (((name, mark), _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let best = allowed
                .iter()
                .map(|a| (distance(name, a), *a))
                .min()
                .filter(|(d, _)| *d <= 3);
            let hint = match best {
                Some((_, a)) => format!("did you mean {a:?}? "),
                None => String::new(),
            };
            ctx.err(
                *mark,
                &join(&self.key, name),
                format!(
                    "unknown key ({hint}expected one of: {})",
                    allowed.join(", ")
                ),
            );
        }
    }
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

pub(super) fn node_of<'n>(root: &'n Node, key: &str) -> Option<&'n Node> {
    match &root.kind {
        NodeKind::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| matches!(&k.kind, NodeKind::Scalar { text, .. } if text == key))
            .map(|(_, v)| v),
        _ => None,
    }
}
