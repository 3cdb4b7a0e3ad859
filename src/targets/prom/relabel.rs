//! Checking and relabelling one body: families grouped, the target's labels
//! added (`exported_` renames), histogram and summary samples checked, the
//! series cap applied, families colliding with served names dropped.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;

use super::parse::{
    escape, is_name_char, parse_labels, unescape_help, valid_float, valid_name, value_text,
};
use crate::model::passthrough::{Claims, Fit, Kind, PromFamily, ServedNames};

/// The result of relabelling one body.
#[derive(Debug, Default)]
pub struct Relabeled {
    pub families: Vec<PromFamily>,
    pub series: usize,
    pub dropped: u64,
    /// Names of families dropped because they collide with one remora serves.
    pub dropped_families: Vec<String>,
    /// Samples dropped because a label would need more than
    /// [`MAX_EXPORTED_PREFIXES`] `exported_` prefixes, by family name.
    pub too_deep: Vec<(String, u64)>,
}

/// The most `exported_` prefixes one label name gets; a sample needing more
/// (a target that serves remora's own output, scraped through several
/// remora) is dropped and counted.
pub const MAX_EXPORTED_PREFIXES: usize = 4;

/// Why a body was rejected (the target goes down with `invalid_body`).
#[derive(Debug, thiserror::Error)]
pub enum RelabelError {
    /// A malformed or ambiguous line.
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
    /// Two families of the body claim one sample name.
    #[error("family {family} ({kind}) uses a sample name of family {other}")]
    Collision {
        family: String,
        kind: &'static str,
        other: String,
    },
}

impl RelabelError {
    fn line(line: usize, problem: String) -> Self {
        RelabelError::Line { line, problem }
    }
}

/// The label names of a sample with the app's names that remora adds renamed
/// `exported_<name>`, `exported_exported_<name>`, ... until free; shorter
/// names are renamed first, as Prometheus does. `None` when a name would
/// have more than [`MAX_EXPORTED_PREFIXES`] prefixes (its own included).
fn exported_names<'a>(
    app: &[(&'a str, &str)],
    added: &[(String, String)],
) -> Option<Vec<Cow<'a, str>>> {
    let mut names: Vec<Cow<'a, str>> = app.iter().map(|(k, _)| Cow::Borrowed(*k)).collect();
    let mut clashing: Vec<usize> = (0..app.len())
        .filter(|&i| added.iter().any(|(a, _)| a == app[i].0))
        .collect();
    if clashing.is_empty() {
        return Some(names);
    }
    clashing.sort_by_key(|&i| app[i].0.len());
    let mut taken: Vec<String> = app
        .iter()
        .map(|(k, _)| k.to_string())
        .chain(added.iter().map(|(k, _)| k.clone()))
        .collect();
    for i in clashing {
        let mut name = app[i].0.to_string();
        loop {
            name.insert_str(0, "exported_");
            if !taken.contains(&name) {
                break;
            }
        }
        if prefixes(&name) > MAX_EXPORTED_PREFIXES {
            return None;
        }
        taken.push(name.clone());
        names[i] = Cow::Owned(name);
    }
    Some(names)
}

/// How many `exported_` prefixes `name` starts with.
fn prefixes(mut name: &str) -> usize {
    let mut n = 0;
    while let Some(rest) = name.strip_prefix("exported_") {
        n += 1;
        name = rest;
    }
    n
}

/// A family while its body is read.
struct Building {
    name: String,
    help: Option<String>,
    kind: Option<Kind>,
    samples: String,
    /// Sample lines seen (kept or over the cap).
    seen: usize,
    /// Sample lines kept.
    kept: usize,
    /// Samples dropped for a label needing too many `exported_` prefixes.
    too_deep: u64,
}

/// The family a sample named `name` belongs to: the family of that name,
/// else the histogram or summary it is a `_bucket`, `_sum` or `_count` of.
fn route(index: &HashMap<String, usize>, families: &[Building], name: &str) -> Option<usize> {
    if let Some(&i) = index.get(name) {
        return Some(i);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        let &i = index.get(base)?;
        families[i]
            .kind
            .is_some_and(|k| k.suffixes().contains(suffix))
            .then_some(i)
    })
}

/// Checks the sample names a histogram or summary uses, and its `le` and `quantile`.
fn check_sample(fam: &Building, name: &str, pairs: &[(&str, &str)]) -> Result<(), String> {
    let float_label = |label: &str| -> Result<(), String> {
        match pairs.iter().find(|(k, _)| *k == label) {
            Some((_, v)) if !valid_float(v) => Err(format!(
                "{label}=\"{v}\" of {name} is not a float (expected a number such as 0.5 or +Inf)"
            )),
            _ => Ok(()),
        }
    };
    match fam.kind {
        Some(Kind::Histogram) if name == fam.name => Err(format!(
            "sample {name} of histogram {name} (expected {name}_bucket, {name}_sum or {name}_count)"
        )),
        Some(Kind::Histogram) if name.ends_with("_bucket") => float_label("le"),
        Some(Kind::Summary) if name == fam.name => float_label("quantile"),
        _ => Ok(()),
    }
}

/// Checks and relabels a text-format exposition. `served` is what remora's
/// pipeline serves: a family with one of those names and the same type is
/// kept (and merged at render), a colliding one is dropped and named in
/// [`Relabeled::dropped_families`].
pub fn relabel(
    text: &str,
    labels: &[(String, String)],
    served: &ServedNames,
    max_series: usize,
) -> Result<Relabeled, RelabelError> {
    let mut families: Vec<Building> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut series = 0usize;
    let mut dropped = 0u64;
    let added: String = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",");
    let family_at =
        |families: &mut Vec<Building>, index: &mut HashMap<String, usize>, name: &str| -> usize {
            *index.entry(name.to_string()).or_insert_with(|| {
                families.push(Building {
                    name: name.to_string(),
                    help: None,
                    kind: None,
                    samples: String::new(),
                    seen: 0,
                    kept: 0,
                    too_deep: 0,
                });
                families.len() - 1
            })
        };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let lineno = n + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, char::is_whitespace);
            let keyword = words.next().unwrap_or("");
            if keyword != "HELP" && keyword != "TYPE" {
                continue;
            }
            let name = words.next().unwrap_or("");
            if !valid_name(name) {
                return Err(RelabelError::line(
                    lineno,
                    format!("invalid metric name {name:?}"),
                ));
            }
            let arg = words.next().unwrap_or("").trim();
            let i = family_at(&mut families, &mut index, name);
            let fam = &mut families[i];
            if keyword == "HELP" {
                fam.help.get_or_insert_with(|| unescape_help(arg));
            } else {
                let kind = Kind::parse(arg)
                    .ok_or_else(|| RelabelError::line(lineno, format!("unknown type {arg:?}")))?;
                if fam.kind.is_some() {
                    return Err(RelabelError::line(
                        lineno,
                        format!("second TYPE line for {name}"),
                    ));
                }
                if fam.seen > 0 {
                    return Err(RelabelError::line(
                        lineno,
                        format!("TYPE line for {name} after its samples"),
                    ));
                }
                fam.kind = Some(kind);
            }
            continue;
        }
        // A sample line.
        let name_end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(RelabelError::line(
                lineno,
                format!("invalid metric name {name:?}"),
            ));
        }
        let rest = &line[name_end..];
        let (pairs, rest) = match rest.strip_prefix('{') {
            Some(r) => parse_labels(r).map_err(|e| RelabelError::line(lineno, e))?,
            None => (Vec::new(), rest),
        };
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .ok_or_else(|| RelabelError::line(lineno, "missing value".into()))?;
        let value = value_text(value)
            .ok_or_else(|| RelabelError::line(lineno, format!("invalid value {value:?}")))?;
        let timestamp = match fields.next() {
            Some(ts) => Some(
                ts.parse::<i64>()
                    .map_err(|_| RelabelError::line(lineno, format!("invalid timestamp {ts:?}")))?,
            ),
            None => None,
        };
        if fields.next().is_some() {
            return Err(RelabelError::line(
                lineno,
                "unexpected text after the value".into(),
            ));
        }
        let fam_idx = match route(&index, &families, name) {
            Some(i) => i,
            None => family_at(&mut families, &mut index, name),
        };
        let fam = &mut families[fam_idx];
        check_sample(fam, name, &pairs).map_err(|e| RelabelError::line(lineno, e))?;
        fam.seen += 1;
        if series >= max_series {
            dropped += 1;
            continue;
        }
        let Some(names) = exported_names(&pairs, labels) else {
            fam.too_deep += 1;
            continue;
        };
        series += 1;
        fam.kept += 1;
        let samples = &mut fam.samples;
        samples.push_str(name);
        let mut first = true;
        for (k, (_, v)) in names.iter().zip(&pairs) {
            samples.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(samples, "{k}=\"{v}\"");
        }
        if !added.is_empty() {
            samples.push(if first { '{' } else { ',' });
            first = false;
            samples.push_str(&added);
        }
        if !first {
            samples.push('}');
        }
        samples.push(' ');
        samples.push_str(&value);
        if let Some(ts) = timestamp {
            let _ = write!(samples, " {ts}");
        }
        samples.push('\n');
    }

    // A HELP line alone declares nothing.
    families.retain(|f| f.seen > 0 || f.kind.is_some());
    // The body must be unambiguous on its own.
    let mut own = Claims::default();
    for f in &families {
        let kind = f.kind.unwrap_or(Kind::Untyped);
        if let Fit::Collides(other) = own.fit(&f.name, kind) {
            return Err(RelabelError::Collision {
                family: f.name.clone(),
                kind: kind.as_str(),
                other,
            });
        }
        own.add(&f.name, kind);
    }
    // Beside remora's own families: merged when the types agree, else dropped.
    let served_claims = Claims::of_served(served);
    let mut out = Relabeled {
        dropped,
        ..Default::default()
    };
    for f in families {
        if f.too_deep > 0 {
            out.too_deep.push((f.name.clone(), f.too_deep));
        }
        let kind = f.kind.unwrap_or(Kind::Untyped);
        if let Fit::Collides(_) = served_claims.fit(&f.name, kind) {
            out.dropped_families.push(f.name);
            continue;
        }
        out.series += f.kept;
        out.families.push(PromFamily {
            name: f.name,
            help: f.help,
            kind,
            samples: f.samples,
            openmetrics: None,
        });
    }
    Ok(out)
}
