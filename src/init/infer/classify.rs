//! How one leaf of a document reads: a number with the unit and scale its
//! key's suffix says, a boolean, a percentage, a duration, a timestamp, a
//! byte size, a state (of a known vocabulary or under a status-like key), a
//! version; and the states a state set lists.

use std::collections::BTreeSet;

use serde_json::Value;

use super::names::snake;
use super::Leaf;
use crate::units::{parse_bytes, parse_duration, parse_number, parse_percent, parse_timestamp};

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

/// How a leaf at `key` reads, or None for text.
pub(super) fn classify(key: &str, v: &Value) -> Option<Leaf> {
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
pub(super) fn states(seen: &BTreeSet<String>) -> (Vec<String>, bool) {
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
