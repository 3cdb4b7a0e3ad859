//! Reading the text format: names, label sets, values and HELP escapes.

use std::borrow::Cow;

pub(super) fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

pub(super) fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if is_name_start(f)) && c.all(is_name_char)
}

/// Label pairs (values still escaped) and the text after the closing brace.
pub(super) type Parsed<'a> = (Vec<(&'a str, &'a str)>, &'a str);

/// Parses `a="x",b="y"}` (the text after `{`): names checked, no name twice,
/// values with valid escapes only.
pub(super) fn parse_labels(s: &str) -> Result<Parsed<'_>, String> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((pairs, r));
        }
        let end = rest
            .find(|c: char| !is_name_char(c))
            .ok_or("unterminated label set")?;
        let name = &rest[..end];
        if name.is_empty() || !valid_name(name) || name.contains(':') {
            return Err(format!("invalid label name {name:?}"));
        }
        if name == "__name__" {
            return Err("label name \"__name__\" is reserved".into());
        }
        if pairs.iter().any(|(k, _)| *k == name) {
            return Err(format!("label name {name:?} appears twice"));
        }
        rest = rest[end..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or("expected '=' after a label name")?;
        rest = rest
            .trim_start()
            .strip_prefix('"')
            .ok_or("expected a quoted label value")?;
        let mut escaped = false;
        let mut close = None;
        for (i, c) in rest.char_indices() {
            match (escaped, c) {
                (true, '\\' | '"' | 'n') => escaped = false,
                (true, other) => {
                    return Err(format!(
                        "invalid escape \\{other} in the value of label {name:?} (expected \\\\, \\\" or \\n)"
                    ))
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let close = close.ok_or("unterminated label value")?;
        pairs.push((name, &rest[..close]));
        rest = rest[close + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}' in a label set".into());
        }
    }
}

/// A plain decimal number, written as every parser reads it.
pub(super) fn plain_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next().unwrap_or("");
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// A float as Prometheus reads it (`le` and `quantile` values).
pub(super) fn valid_float(s: &str) -> bool {
    plain_decimal(s) || matches!(s, "NaN" | "+Inf" | "-Inf" | "Inf")
}

/// The sample value re-written so every parser reads it; `None` when it is not a number.
pub(super) fn value_text(s: &str) -> Option<Cow<'_, str>> {
    if plain_decimal(s) {
        return Some(Cow::Borrowed(s));
    }
    let v: f64 = s.parse().ok()?;
    Some(Cow::Owned(if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:e}")
    }))
}

/// HELP text as written, unescaped: `\\` and `\n` are escapes; any other
/// backslash is a literal one.
pub(super) fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
