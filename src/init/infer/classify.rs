//! How one leaf of a document reads: a number with the unit and scale its
//! key's suffix says, a boolean, a percentage, a duration, a timestamp, a
//! byte size, a state (of a known vocabulary, `init::vocab`, or under a
//! status-like key), a version.

use serde_json::Value;

use super::names::snake;
use super::Leaf;
use crate::units::{parse_bytes, parse_duration, parse_number, parse_percent, parse_timestamp};

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

/// How a leaf at `keys` (from the document's root, the leaf's own key
/// last) reads, or None for text. `depth` is how deep the leaf sits in its
/// group's node: a state word under a key that does not say "status"
/// (Grafana's `database: "ok"`) is a state only at depth 1, not inside
/// free-form details (MicroProfile's `data`, where the same key holds an
/// error message when the check fails).
pub(super) fn classify(keys: &[String], depth: usize, v: &Value) -> Option<Leaf> {
    let key = keys.last().map(String::as_str).unwrap_or("");
    let k = snake(key);
    let version_key = VERSION_KEYS.contains(&k.as_str())
        || ["_version", "_commit", "_sha", "_revision"]
            .iter()
            .any(|s| k.ends_with(s));
    match v {
        Value::Bool(_) => Some(Leaf::Bool),
        Value::Number(_) if version_key => Some(Leaf::Version),
        Value::Number(_) => Some(number_leaf(keys)),
        Value::String(s) if version_key && s.trim().is_empty() => None,
        Value::String(_) if version_key => Some(Leaf::Version),
        Value::String(s) => {
            let t = s.trim();
            if matches!(t.to_ascii_lowercase().as_str(), "true" | "false") {
                return Some(Leaf::BoolText);
            }
            if parse_number(t).is_some() {
                return Some(number_leaf(keys));
            }
            if t.ends_with('%') && parse_percent(t).is_some() {
                return Some(Leaf::Percent);
            }
            if is_status(&k, t, depth) {
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

fn is_status(key: &str, value: &str, depth: usize) -> bool {
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
    words && (status_key || (depth <= 1 && crate::init::vocab::known(&v)))
}

/// Go's runtime.MemStats fields that are sizes in bytes (expvar `memstats`).
const MEMSTATS_BYTES: [&str; 16] = [
    "alloc",
    "sys",
    "heap_alloc",
    "heap_sys",
    "heap_idle",
    "heap_inuse",
    "heap_released",
    "stack_inuse",
    "stack_sys",
    "m_span_inuse",
    "m_span_sys",
    "m_cache_inuse",
    "m_cache_sys",
    "buck_hash_sys",
    "gc_sys",
    "other_sys",
];

/// Go's runtime.MemStats fields that only grow.
const MEMSTATS_COUNTERS: [&str; 5] = ["num_gc", "mallocs", "frees", "lookups", "num_forced_gc"];

/// Cumulative message counts of a broker (RabbitMQ `message_stats`,
/// `churn_rates`): the keys themselves, no suffix says so.
const BROKER_COUNTERS: [&str; 14] = [
    "ack",
    "confirm",
    "deliver",
    "deliver_get",
    "deliver_no_ack",
    "disk_reads",
    "disk_writes",
    "drop_unroutable",
    "get",
    "get_empty",
    "get_no_ack",
    "publish",
    "redeliver",
    "return_unroutable",
];

/// Words before `_count` that say the count goes down too (a gauge).
const GAUGE_COUNTS: [&str; 12] = [
    "active",
    "current",
    "pending",
    "open",
    "in_flight",
    "queued",
    "live",
    "idle",
    "running",
    "waiting",
    "connected",
    "node",
];

/// A number's unit, scale and kind from its key (and its parents' keys):
/// unit suffixes (`_ms`, `_bytes`, `_pct`...), sizes by name (`free`,
/// `total` and `threshold` under a disk check, `heap*`, memstats sizes),
/// cumulative counts (`total_*`, `*_total`, growing `*_count`, memstats
/// and broker totals).
fn number_leaf(keys: &[String]) -> Leaf {
    const SUFFIXES: [(&str, &str, f64, &str); 28] = [
        ("_percent_as_number", "1", 0.01, "percent -> ratio"),
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
    let key = snake(keys.last().map(String::as_str).unwrap_or(""));
    let parents: Vec<String> = keys
        .iter()
        .take(keys.len().saturating_sub(1))
        .map(|k| snake(k))
        .collect();
    let parent = parents.last().map(String::as_str).unwrap_or("");
    let under = |word: &str| parents.iter().any(|p| p.contains(word));
    // memstats: sizes, the growing totals, the GC pause total.
    if under("memstats") {
        if MEMSTATS_BYTES.contains(&key.as_str()) || key == "next_gc" {
            return number(Some("By"), None, &key, "bytes", false);
        }
        if key == "total_alloc" {
            return number(Some("By"), None, &key, "bytes, cumulative", true);
        }
        if MEMSTATS_COUNTERS.contains(&key.as_str()) {
            return number(None, None, &key, "cumulative", true);
        }
        if key == "pause_total_ns" {
            return number(
                Some("s"),
                Some(1e-9),
                "pause_total",
                "nanoseconds -> seconds, cumulative",
                true,
            );
        }
        if key == "last_gc" {
            return number(
                Some("s"),
                Some(1e-9),
                &key,
                "nanoseconds since the epoch -> seconds",
                false,
            );
        }
    }
    let broker = matches!(parent, "message_stats" | "churn_rates");
    if broker
        && (BROKER_COUNTERS.contains(&key.as_str())
            || ["_created", "_closed", "_declared", "_deleted"]
                .iter()
                .any(|s| key.ends_with(s)))
    {
        return number(None, None, &key, "cumulative", true);
    }
    if (parent.contains("disk") || under("disk_space"))
        && matches!(key.as_str(), "free" | "total" | "threshold" | "used")
    {
        return number(Some("By"), None, &key, "bytes (a disk check)", false);
    }
    if key.starts_with("heap") && !key.contains("object") && !key.contains("percent") {
        if let Leaf::Number { unit: None, .. } = plain(&key, &SUFFIXES) {
            return number(Some("By"), None, &key, "bytes (heap)", false);
        }
    }
    let counter = counter_key(&key);
    let stem_key = key
        .strip_suffix("_total")
        .filter(|s| counter && !s.is_empty())
        .unwrap_or(&key)
        .to_string();
    match plain(&stem_key, &SUFFIXES) {
        Leaf::Number {
            unit,
            scale,
            stem,
            note,
            ..
        } => Leaf::Number {
            unit,
            scale,
            stem,
            note,
            counter,
        },
        other => other,
    }
}

/// Whether a key names a count that only grows.
fn counter_key(key: &str) -> bool {
    if key.starts_with("total_") || key.ends_with("_total") {
        return true;
    }
    match key.strip_suffix("_count") {
        Some(stem) => !GAUGE_COUNTS.iter().any(|w| stem.contains(w)),
        None => false,
    }
}

fn number(
    unit: Option<&'static str>,
    scale: Option<f64>,
    stem: &str,
    note: &'static str,
    counter: bool,
) -> Leaf {
    Leaf::Number {
        unit,
        scale,
        stem: stem.to_string(),
        note,
        counter,
    }
}

/// The unit and scale a key's suffix says.
fn plain(key: &str, suffixes: &[(&str, &'static str, f64, &'static str)]) -> Leaf {
    for (suffix, unit, scale, note) in suffixes {
        if let Some(stem) = key.strip_suffix(suffix) {
            if !stem.is_empty() {
                return number(
                    Some(unit),
                    (*scale != 1.0).then_some(*scale),
                    stem,
                    note,
                    false,
                );
            }
        }
    }
    number(None, None, key, "as reported", false)
}
