//! Metric and label names under the escaping schemes of
//! <https://prometheus.io/docs/instrumenting/escaping_schemes>:
//! `underscores` (every character outside the legacy set becomes `_`),
//! `allow-utf-8` (names kept; the writer quotes those outside the legacy
//! set), `dots` (`.` -> `_dot_`, `_` -> `__`, any other character outside
//! the legacy set -> `__`) and `values` (`U__`, `_` doubled and every
//! character outside the legacy set written as `_HEX_`, its code point in
//! lower-case hexadecimal), as `EscapeName` of Prometheus' `common/model`
//! writes them. Under every scheme a name that is already a legacy one is
//! left as it is, as `EscapeMetricFamily` (what Prometheus' client
//! libraries write an exposition with) does: `dots` does not double the
//! underscores of `remora_target_up`.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::negotiate::Escaping;

fn legacy_char(c: char, first: bool, colon: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (colon && c == ':') || (!first && c.is_ascii_digit())
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(super) fn legacy_metric(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| legacy_char(c, i == 0, true))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(super) fn legacy_label(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| legacy_char(c, i == 0, false))
}

/// `name` under `escaping` (`colon`: `:` is legal, as in metric names).
pub(super) fn escape_name(name: &str, escaping: Escaping, colon: bool) -> Cow<'_, str> {
    let legacy = |n: &str| {
        if colon {
            legacy_metric(n)
        } else {
            legacy_label(n)
        }
    };
    match escaping {
        Escaping::AllowUtf8 => Cow::Borrowed(name),
        Escaping::Underscores if legacy(name) => Cow::Borrowed(name),
        Escaping::Underscores => Cow::Owned(
            name.chars()
                .enumerate()
                .map(|(i, c)| {
                    if legacy_char(c, i == 0, colon) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect(),
        ),
        Escaping::Dots if legacy(name) => Cow::Borrowed(name),
        Escaping::Dots => {
            let mut out = String::with_capacity(name.len() + 8);
            for (i, c) in name.chars().enumerate() {
                match c {
                    '_' => out.push_str("__"),
                    '.' => out.push_str("_dot_"),
                    c if legacy_char(c, i == 0, colon) => out.push(c),
                    _ => out.push_str("__"),
                }
            }
            Cow::Owned(out)
        }
        Escaping::Values if legacy(name) => Cow::Borrowed(name),
        Escaping::Values => {
            let mut out = String::with_capacity(name.len() + 16);
            out.push_str("U__");
            for (i, c) in name.chars().enumerate() {
                match c {
                    '_' => out.push_str("__"),
                    c if legacy_char(c, i == 0, colon) => out.push(c),
                    c => {
                        let _ = write!(out, "_{:x}_", c as u32);
                    }
                }
            }
            Cow::Owned(out)
        }
    }
}

/// Writes `name` between double quotes, `\`, `"` and newline escaped.
pub(super) fn write_quoted(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    for &b in name.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Writes a label name: quoted under `allow-utf-8` when it is not a legacy one.
pub(super) fn write_label_name(out: &mut Vec<u8>, name: &str, escaping: Escaping) {
    if escaping == Escaping::AllowUtf8 && !legacy_label(name) {
        write_quoted(out, name);
    } else {
        out.extend_from_slice(name.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schemes_as_the_document_gives_them() {
        use Escaping::*;
        let cases = [
            (
                "metric.name/with/slashes",
                Underscores,
                "metric_name_with_slashes",
            ),
            (
                "metric.name.with.dots",
                Dots,
                "metric_dot_name_dot_with_dot_dots",
            ),
            (
                "system.cpu.time_seconds_total",
                Dots,
                "system_dot_cpu_dot_time__seconds__total",
            ),
            // A legacy name is left as it is (EscapeMetricFamily).
            ("remora_target_up", Dots, "remora_target_up"),
            ("a/b", Dots, "a__b"),
            ("a.b_c", Dots, "a_dot_b__c"),
            ("remora_target_up", Values, "remora_target_up"),
            (
                "system.cpu.time_seconds",
                Values,
                "U__system_2e_cpu_2e_time__seconds",
            ),
            ("1st", Values, "U___31_st"),
            ("été", Values, "U___e9_t_e9_"),
            ("system.cpu.time", AllowUtf8, "system.cpu.time"),
            ("1st", Underscores, "_st"),
        ];
        for (name, e, want) in cases {
            assert_eq!(escape_name(name, e, true), want, "{name} {e:?}");
        }
        assert_eq!(escape_name("a:b", Underscores, false), "a_b");
        assert_eq!(escape_name("a:b", Underscores, true), "a:b");
        let mut out = Vec::new();
        write_label_name(&mut out, "cpu.mode", AllowUtf8);
        write_label_name(&mut out, "cpu_mode", AllowUtf8);
        write_quoted(&mut out, "a\"b\\c\nd");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"cpu.mode\"cpu_mode\"a\\\"b\\\\c\\nd\""
        );
    }
}
