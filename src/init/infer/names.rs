//! Names for what `init` writes: rule names made unique, snake_case keys,
//! label names for a collection's members, JSONPaths (and their display in
//! comments), example values.

use std::collections::BTreeSet;

use serde_json::Value;

/// Reserved by remora (labels it sets itself).
pub(super) const RESERVED_LABELS: [&str; 5] = ["target", "state", "process_name", "le", "quantile"];

/// A label name for the members of a container: the container's key in
/// the singular (`checks` -> `check`), else `fallback`.
pub fn label_name(container: &str, fallback: &str) -> String {
    let s = snake(container);
    let single = if let Some(x) = s.strip_suffix("ies") {
        format!("{x}y")
    } else if let Some(x) = s
        .strip_suffix("es")
        .filter(|x| ["ss", "sh", "ch", "x"].iter().any(|e| x.ends_with(e)))
    {
        x.to_string()
    } else if s.ends_with("ss") || s.ends_with("us") {
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

/// `PREFIX.a.b.c`, made unique among `names` with `_2`, `_3`...
pub(super) fn unique(names: &mut BTreeSet<String>, prefix: &str, parts: &[String]) -> String {
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
                    // RFC 9535: characters below U+0020 only escaped.
                    c if u32::from(c) < 0x20 => {
                        out.push_str(&format!("\\u{:04x}", u32::from(c)));
                    }
                    c => out.push(c),
                }
            }
            out.push_str("']");
        }
    }
    out
}

/// A path for comments (`<check>` placeholders kept as they are).
pub(super) fn json_path_display(keys: &[String]) -> String {
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
pub(super) fn example(v: &Value) -> String {
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
