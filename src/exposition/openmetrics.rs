//! OpenMetrics 1.0.0, and text 1.0.0 with another escaping than
//! `underscores`, written from the render's text 0.0.4: one pass over the
//! lines of the exposition every format shares (the merge of remora's
//! families and the pass-through's is done once, in 0.0.4), each family
//! rewritten with what [`Meta`] knows of it.
//!
//! OpenMetrics:
//!
//! - `# TYPE`, then `# UNIT` (when the family name ends with the unit's
//!   word), then `# HELP` (a `"` escaped too); `# EOF` last;
//! - a counter's family is named without `_total`, its samples keep it;
//!   remora's own counters get a `_created` sample (the process's start);
//!   a counter whose name does not end with `_total` (from an app's 0.0.4
//!   text) is served as `unknown`, so that its series keep their name;
//! - an `info` family (`kind: info` rules, `remora_build_info`,
//!   `target_info`) is named without `_info`, its samples keep it; an info
//!   rule whose name does not end with `_info` stays a `gauge`, so that its
//!   series keep their name whatever the format;
//! - a `stateset` family (`kind: stateset` rules) gets, beside remora's
//!   `state` label, the label named as the family that OpenMetrics requires
//!   (same value): queries on `state` work in every format;
//! - `untyped` is `unknown`; histograms and summaries are written as they are;
//! - an app's OpenMetrics `info` and `stateset` families and its `# UNIT`s
//!   (pass-through, kept beside the 0.0.4 text as `OmFacts`) are served as
//!   they came (its stateset samples carry their family-named label already);
//! - sample timestamps (from pass-through apps, milliseconds in 0.0.4) in seconds.
//!
//! With `--web.utf8-names` (the render is asked for a variant of another
//! escaping than `underscores` only then: see `Variant::body`), under
//! `allow-utf-8`, `dots` and `values` a family's name is its UTF-8 name (the
//! OpenTelemetry name with its dots, and the same suffixes) and a label's its
//! attribute key, escaped as the scheme says (`escape`), the whole sample
//! name at once; under `allow-utf-8` a name outside the legacy set is quoted,
//! a metric name inside the braces:
//! `{"system.cpu.time_seconds_total","cpu.mode"="user"} 1`.

use std::borrow::Cow;
use std::collections::HashMap;

use super::escape::{escape_name, legacy_metric, write_label_name, write_quoted};
use super::meta::{FamilyMeta, Meta, OmKind};
use super::negotiate::{Escaping, Syntax, Variant};
use crate::model::passthrough::Kind;

/// Dotted label keys per family (see `meta::dotted_labels`).
pub(super) type LabelMap<'a> = HashMap<&'a str, Vec<(String, String)>>;

/// What one conversion knows.
pub(super) struct Convert<'a> {
    pub(super) variant: Variant,
    pub(super) meta: &'a Meta,
    pub(super) labels: &'a LabelMap<'a>,
    /// The pass-through families an app's OpenMetrics body made `info` or
    /// `stateset` or gave a unit (by name; remora's own facts come first).
    pub(super) passthrough: &'a HashMap<&'a str, FamilyMeta>,
    /// `_created` of remora's own counters (Unix seconds).
    pub(super) start: f64,
}

/// The family being written.
struct Current<'t> {
    name004: &'t str,
    /// The suffix OpenMetrics takes off the family name (`_total`, `_info`)
    /// and its samples keep.
    stripped: &'static str,
    /// The escaped family name as `# TYPE` names it (OpenMetrics: without the
    /// stripped suffix).
    family: String,
    /// The `# TYPE` it is written with.
    kind: &'static str,
    /// Whether samples and labels need renaming (else lines are copied).
    rename: bool,
    /// The escaped label OpenMetrics requires of a stateset.
    stateset: Option<String>,
    /// The escaped `_created` sample name, for remora's own counters.
    created: Option<String>,
    labels: &'t [(String, String)],
}

const NO_LABELS: &[(String, String)] = &[];

impl Convert<'_> {
    /// `text` (text 0.0.4 as the render wrote it) in this conversion's variant.
    pub(super) fn convert(&self, text: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(text);
        let mut out = Vec::with_capacity(text.len() + text.len() / 8 + 64);
        let om = self.variant.syntax == Syntax::OpenMetrics;
        let mut help: Option<(&str, &str)> = None;
        let mut cur: Option<Current<'_>> = None;
        let default = FamilyMeta::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, h) = rest.split_once(' ').unwrap_or((rest, ""));
                help = Some((name, h));
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
                let kind = Kind::parse(kind).unwrap_or(Kind::Untyped);
                let meta = self
                    .meta
                    .families
                    .get(name)
                    .or_else(|| self.passthrough.get(name))
                    .unwrap_or(&default);
                let c = self.family(name, kind, meta);
                self.header(&mut out, &c, meta, help.take().filter(|h| h.0 == name));
                cur = Some(c);
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match &cur {
                Some(c) => self.sample(&mut out, c, line, om),
                None => {
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
            }
        }
        if om {
            out.extend_from_slice(b"# EOF\n");
        }
        out
    }

    /// The state of a family named `name004` in 0.0.4.
    fn family<'t>(&'t self, name004: &'t str, kind: Kind, meta: &'t FamilyMeta) -> Current<'t> {
        let e = self.variant.escaping;
        let om = self.variant.syntax == Syntax::OpenMetrics;
        let base: &str = match (&meta.utf8, e) {
            (Some(u), Escaping::AllowUtf8 | Escaping::Dots | Escaping::Values) => u,
            _ => name004,
        };
        let labels = self
            .labels
            .get(name004)
            .map(Vec::as_slice)
            .filter(|_| e != Escaping::Underscores)
            .or_else(|| {
                Some(meta.labels.as_slice()).filter(|l| !l.is_empty() && e != Escaping::Underscores)
            })
            .unwrap_or(NO_LABELS);
        // Legacy names are the same under every escaping: only a UTF-8
        // name or a dotted label key is renamed.
        let rename = e != Escaping::Underscores && (meta.utf8.is_some() || !labels.is_empty());
        let stripped = match (om, kind, meta.om) {
            (true, Kind::Counter, _) if name004.ends_with("_total") && base.ends_with("_total") => {
                "_total"
            }
            (true, Kind::Gauge, OmKind::Info)
                if name004.ends_with("_info") && base.ends_with("_info") =>
            {
                "_info"
            }
            _ => "",
        };
        // The whole sample name is escaped (`values` and `dots` apply to a
        // name as a whole), the family name is that less the suffix
        // OpenMetrics takes off: under `dots` and `values` the suffix's `_`
        // is doubled, so the family name ends with `_`
        // (`system_dot_cpu_dot_time__seconds_` of the samples
        // `system_dot_cpu_dot_time__seconds__total`), as Prometheus' Go
        // library writes an escaped counter.
        let whole = escape_name(base, e, true);
        let (family, strip) = match whole.strip_suffix(stripped) {
            Some(f) => (f.to_string(), stripped.len()),
            None => (whole.clone().into_owned(), 0),
        };
        let stripped = if strip > 0 { stripped } else { "" };
        let stem = &base[..base.len().saturating_sub(strip)];
        let stateset = (om && kind == Kind::Gauge && meta.om == OmKind::StateSet)
            .then(|| escape_name(stem, e, false).into_owned());
        let created = (om && strip > 0 && kind == Kind::Counter && meta.created)
            .then(|| format!("{family}_created"));
        let kind = match (om, kind) {
            (false, k) => k.as_str(),
            (true, Kind::Counter) if strip > 0 => "counter",
            (true, Kind::Counter | Kind::Untyped) => "unknown",
            (true, Kind::Gauge) if stateset.is_some() => "stateset",
            (true, Kind::Gauge) if strip > 0 => "info",
            (true, Kind::Gauge) => "gauge",
            (true, Kind::Histogram) => "histogram",
            (true, Kind::Summary) => "summary",
        };
        Current {
            name004,
            stripped,
            family,
            kind,
            rename,
            stateset,
            created,
            labels,
        }
    }

    /// `# TYPE`, `# UNIT` and `# HELP` (OpenMetrics' order), or `# HELP`
    /// and `# TYPE` (text 1.0.0).
    fn header(
        &self,
        out: &mut Vec<u8>,
        c: &Current<'_>,
        meta: &FamilyMeta,
        help: Option<(&str, &str)>,
    ) {
        let om = self.variant.syntax == Syntax::OpenMetrics;
        let name = |out: &mut Vec<u8>| {
            if self.variant.escaping == Escaping::AllowUtf8 && !legacy_metric(&c.family) {
                write_quoted(out, &c.family);
            } else {
                out.extend_from_slice(c.family.as_bytes());
            }
        };
        let write_help = |out: &mut Vec<u8>| {
            if let Some((_, h)) = help {
                out.extend_from_slice(b"# HELP ");
                name(out);
                out.push(b' ');
                if om {
                    // 0.0.4 escapes `\` and newline; OpenMetrics `"` too.
                    for &b in h.as_bytes() {
                        if b == b'"' {
                            out.push(b'\\');
                        }
                        out.push(b);
                    }
                } else {
                    out.extend_from_slice(h.as_bytes());
                }
                out.push(b'\n');
            }
        };
        if !om {
            write_help(out);
        }
        out.extend_from_slice(b"# TYPE ");
        name(out);
        out.push(b' ');
        let t = c.kind;
        out.extend_from_slice(t.as_bytes());
        out.push(b'\n');
        if om {
            if let Some(u) = meta.unit.as_deref() {
                let suffix = format!("_{u}");
                if matches!(t, "counter" | "gauge") && c.family.ends_with(&suffix) {
                    out.extend_from_slice(b"# UNIT ");
                    name(out);
                    out.push(b' ');
                    out.extend_from_slice(u.as_bytes());
                    out.push(b'\n');
                }
            }
            write_help(out);
        }
    }

    /// One sample line.
    fn sample(&self, out: &mut Vec<u8>, c: &Current<'_>, line: &str, om: bool) {
        if !c.rename && c.stateset.is_none() && c.created.is_none() {
            // Nothing to rename or add: the line as it is, unless it has a
            // timestamp OpenMetrics wants in seconds (the last `}` closes
            // the label set: no value or timestamp holds one).
            let (after, fields) = match line.rfind('}') {
                Some(i) => (&line[i + 1..], 1),
                None => (line, 2),
            };
            if !om || after.split_whitespace().count() <= fields {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
                return;
            }
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let (sname, rest) = line.split_at(name_end);
        let (pairs, tail) = match rest.strip_prefix('{') {
            Some(r) => match split_labels(r) {
                Some(p) => p,
                None => {
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                    return;
                }
            },
            None => (Vec::new(), rest),
        };
        let tail = tail.trim_start();
        let (value, ts) = match tail.split_once(' ') {
            Some((v, ts)) => (v, Some(ts.trim())),
            None => (tail, None),
        };
        let plain =
            !c.rename && c.stateset.is_none() && c.created.is_none() && !(om && ts.is_some());
        if plain {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
            return;
        }
        let e = self.variant.escaping;
        let name: Cow<'_, str> = if c.rename {
            // The escaped family name and the suffixes, as written: a
            // parser that does not unescape still sees one family.
            let suffix = sname.strip_prefix(c.name004).unwrap_or("");
            Cow::Owned(format!("{}{}{suffix}", c.family, c.stripped))
        } else {
            Cow::Borrowed(sname)
        };
        // The label set, without braces.
        let mut labels = Vec::with_capacity(rest.len() + 32);
        for (k, v) in &pairs {
            if !labels.is_empty() {
                labels.push(b',');
            }
            if c.rename {
                let key = c
                    .labels
                    .iter()
                    .find(|(s, _)| s == k)
                    .map_or(*k, |(_, o)| o.as_str());
                write_label_name(&mut labels, &escape_name(key, e, false), e);
            } else {
                labels.extend_from_slice(k.as_bytes());
            }
            labels.extend_from_slice(b"=\"");
            labels.extend_from_slice(v.as_bytes());
            labels.push(b'"');
        }
        if let Some(set) = &c.stateset {
            let has = |n: &str| pairs.iter().any(|(k, _)| *k == n);
            if let (false, Some((_, state))) = (has(set), pairs.iter().find(|(k, _)| *k == "state"))
            {
                if !labels.is_empty() {
                    labels.push(b',');
                }
                write_label_name(&mut labels, set, e);
                labels.extend_from_slice(b"=\"");
                labels.extend_from_slice(state.as_bytes());
                labels.push(b'"');
            }
        }
        let mut tail = Vec::with_capacity(32);
        tail.push(b' ');
        tail.extend_from_slice(value.as_bytes());
        if let Some(ts) = ts {
            tail.push(b' ');
            match (om, ts.parse::<i64>()) {
                (true, Ok(ms)) => tail.extend_from_slice(
                    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000)).as_bytes(),
                ),
                _ => tail.extend_from_slice(ts.as_bytes()),
            }
        }
        self.series(out, &name, &labels, &tail);
        if let Some(created) = &c.created {
            if sname.ends_with("_total") {
                let mut t = Vec::with_capacity(24);
                t.push(b' ');
                super::text::write_value(&mut t, self.start);
                self.series(out, created, &labels, &t);
            }
        }
    }

    /// Writes `name{labels}tail\n`, the name inside the braces when it must be quoted.
    fn series(&self, out: &mut Vec<u8>, name: &str, labels: &[u8], tail: &[u8]) {
        if self.variant.escaping == Escaping::AllowUtf8 && !legacy_metric(name) {
            out.push(b'{');
            write_quoted(out, name);
            if !labels.is_empty() {
                out.push(b',');
                out.extend_from_slice(labels);
            }
            out.push(b'}');
        } else {
            out.extend_from_slice(name.as_bytes());
            if !labels.is_empty() {
                out.push(b'{');
                out.extend_from_slice(labels);
                out.push(b'}');
            }
        }
        out.extend_from_slice(tail);
        out.push(b'\n');
    }
}

/// The label pairs of `a="x",b="y"}rest` (values still escaped) and `rest`;
/// `None` when the set is not closed.
fn split_labels(s: &str) -> Option<(Vec<(&str, &str)>, &str)> {
    let mut pairs = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(r) = rest.strip_prefix('}') {
            return Some((pairs, r));
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut escaped = false;
        let mut close = None;
        for (i, b) in after.bytes().enumerate() {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let close = close?;
        pairs.push((name, &after[..close]));
        rest = &after[close + 1..];
    }
}

impl super::pipeline::Pipeline {
    /// `text`, the render of `snap` in text 0.0.4, in each of `variants`.
    pub(super) fn convert(
        &self,
        snap: &super::snapshot::Snapshot,
        text: &[u8],
        variants: &[Variant],
    ) -> Vec<(Variant, Vec<u8>)> {
        let labels = if variants.iter().any(|v| v.escaping != Escaping::Underscores) {
            super::meta::dotted_labels(snap, |n| self.family_of(n))
        } else {
            LabelMap::new()
        };
        let start = super::meta::process_start(snap);
        let passthrough = if variants.iter().any(|v| v.syntax == Syntax::OpenMetrics) {
            passthrough_meta(snap)
        } else {
            HashMap::new()
        };
        variants
            .iter()
            .map(|&variant| {
                let c = Convert {
                    variant,
                    meta: &self.meta,
                    labels: &labels,
                    passthrough: &passthrough,
                    start,
                };
                (variant, c.convert(text))
            })
            .collect()
    }
}

/// The facts of the pass-through families an app's OpenMetrics body
/// declared `info` or `stateset` or gave a `# UNIT` (the first target's,
/// when two pass one name).
fn passthrough_meta(snap: &super::snapshot::Snapshot) -> HashMap<&str, FamilyMeta> {
    let mut out = HashMap::new();
    for f in snap.passthrough().flatten() {
        let Some(om) = &f.openmetrics else { continue };
        out.entry(f.name.as_str()).or_insert_with(|| FamilyMeta {
            unit: om.unit.clone(),
            om: if om.info {
                OmKind::Info
            } else if om.stateset {
                OmKind::StateSet
            } else {
                OmKind::Plain
            },
            ..Default::default()
        });
    }
    out
}
