//! Value conversion: a JSON value to a number under the rule's `map`,
//! `parse` and (in the rule plan) `scale`; label templates to text; error
//! examples cut to [`EXAMPLE_CHARS`] characters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use opentelemetry::{KeyValue, StringValue};
use serde_json::Value;

use super::path::{level, Level, NodeKey, PathPlan};
use super::{ErrorReason, EXAMPLE_CHARS};
use crate::config::Parse;
use crate::targets::value::{
    parse_bytes, parse_duration, parse_number, parse_percent, parse_timestamp,
};

/// A piece of a label template; `Key` and `Path` carry how many levels out
/// of the innermost `each` node they read (0: the node itself).
pub(super) enum Part {
    Literal(String),
    Key(usize),
    Path(usize, PathPlan),
}

pub(super) fn arc_value(s: &str) -> StringValue {
    StringValue::from(Arc::<str>::from(s))
}

/// Renders a label template for one node (the last of `chain`, its
/// `each` levels outermost first) into `buf`; an error comes with the
/// offending value, `None` when the text would pass `limit` bytes.
pub(super) fn render<'v>(
    parts: &[Part],
    chain: &[Level<'v>],
    optional: bool,
    limit: usize,
    buf: &mut String,
) -> Result<(), Option<(ErrorReason, Option<&'v Value>)>> {
    buf.clear();
    for part in parts {
        match part {
            Part::Literal(s) => buf.push_str(s),
            Part::Key(out) => match level(chain, *out).map_or(NodeKey::None, |l| l.key) {
                NodeKey::None => {}
                NodeKey::Name(name) => buf.push_str(name),
                NodeKey::Index(i) => {
                    let _ = write!(buf, "{i}");
                }
            },
            Part::Path(out, p) => match level(chain, *out).and_then(|l| p.first(l.node)) {
                Some(Value::String(s)) if buf.len().saturating_add(s.len()) > limit => {
                    return Err(None)
                }
                Some(v) => write_scalar(v, buf).map_err(|r| Some((r, Some(v))))?,
                None if optional => {}
                None => return Err(Some((ErrorReason::Missing, None))),
            },
        }
        if buf.len() > limit {
            return Err(None);
        }
    }
    Ok(())
}

/// An error's example: a string as is (cut to [`EXAMPLE_CHARS`]
/// characters), a scalar as JSON text, an object or array as `{…}` / `[…]`
/// (the parse keeps no content of a container a rule reads as a value).
pub(super) fn example(v: &Value) -> String {
    match v {
        Value::String(s) => cut(s),
        Value::Object(_) => "{…}".to_string(),
        Value::Array(_) => "[…]".to_string(),
        scalar => scalar.to_string(),
    }
}

/// `s` cut to [`EXAMPLE_CHARS`] characters, the last one `…` when cut.
pub(super) fn cut(s: &str) -> String {
    match s.char_indices().nth(EXAMPLE_CHARS) {
        Some(_) => {
            let end = s
                .char_indices()
                .nth(EXAMPLE_CHARS - 1)
                .map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..end])
        }
        None => s.to_string(),
    }
}

/// A series' labels as `k="v",...` (for a duplicate's example).
pub(super) fn labels_text(labels: &[KeyValue]) -> String {
    let mut out = String::new();
    for (i, kv) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}=\"{}\"", kv.key, kv.value);
        if out.len() > EXAMPLE_CHARS * 4 {
            break;
        }
    }
    out
}

/// Appends a scalar's label text: strings as is, numbers as the JSON wrote
/// them, booleans `true`/`false`, `null` nothing.
pub(super) fn write_scalar(v: &Value, buf: &mut String) -> Result<(), ErrorReason> {
    match v {
        Value::String(s) => buf.push_str(s),
        Value::Number(n) => {
            let _ = write!(buf, "{n}");
        }
        Value::Bool(true) => buf.push_str("true"),
        Value::Bool(false) => buf.push_str("false"),
        Value::Null => {}
        Value::Array(_) | Value::Object(_) => return Err(ErrorReason::InvalidLabel),
    }
    Ok(())
}

/// One JSON value to a number under `parse` and `map` (see the module doc).
pub(super) fn convert(
    v: &Value,
    parse: Parse,
    map: &BTreeMap<String, f64>,
    buf: &mut String,
) -> Result<Option<f64>, ErrorReason> {
    let v = match v {
        Value::Null => return Ok(None),
        Value::String(s) => {
            if let Some(m) = map.get(s.as_str()) {
                return Ok(Some(*m));
            }
            let parsed = match parse {
                // `auto` reads "12.5%" as the ratio 0.125, as `percent` does.
                Parse::Auto => parse_number(s).or_else(|| {
                    if s.trim_end().ends_with('%') {
                        parse_percent(s)
                    } else {
                        None
                    }
                }),
                Parse::Duration => parse_duration(s),
                // The rule takes the age from the timestamp.
                Parse::Timestamp | Parse::Age => parse_timestamp(s),
                Parse::Bytes => parse_bytes(s),
                Parse::Percent => parse_percent(s),
            };
            match parsed {
                Some(v) => v,
                None if map.is_empty() => return Err(ErrorReason::NotANumber),
                None => return Err(ErrorReason::UnmappedValue),
            }
        }
        Value::Bool(b) => {
            if let Some(m) = map.get(if *b { "true" } else { "false" }) {
                return Ok(Some(*m));
            }
            match parse {
                Parse::Auto => f64::from(u8::from(*b)),
                _ => return Err(ErrorReason::NotANumber),
            }
        }
        Value::Number(n) => {
            if !map.is_empty() {
                buf.clear();
                let _ = write!(buf, "{n}");
                if let Some(m) = map.get(buf.as_str()) {
                    return Ok(Some(*m));
                }
            }
            let v = n.as_f64().ok_or(ErrorReason::NotANumber)?;
            // `percent` reads plain numbers as percentages too.
            if parse == Parse::Percent {
                v / 100.0
            } else {
                v
            }
        }
        Value::Array(_) | Value::Object(_) => return Err(ErrorReason::NotANumber),
    };
    Ok(Some(v))
}
