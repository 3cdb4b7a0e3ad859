//! `format: prometheus` targets: the app's own `/metrics`, served in remora's
//! response with the target's and the global constant labels added.
//!
//! The text is checked line by line; anything malformed or ambiguous rejects
//! the whole body (the target goes down), so an app never breaks remora's
//! response:
//!
//! - label values may only use the escapes `\\`, `\"` and `\n`; a label name
//!   appears once per sample and is never `__name__`;
//! - a `# TYPE` line comes once per family and before its samples;
//! - a histogram's samples are `_bucket` (with a float `le`), `_sum` and
//!   `_count`; a summary's are the bare name (with a float `quantile`), `_sum`
//!   and `_count`;
//! - no two families of one body claim the same sample name (a histogram
//!   `foo` claims `foo`, `foo_bucket`, `foo_sum` and `foo_count`).
//!
//! What is unambiguous is normalised instead: a family split in several
//! blocks is served as one block, HELP text is re-escaped (an unknown escape
//! is kept as a literal backslash), values and timestamps are re-written in
//! a form every parser reads.
//!
//! An app label whose name remora adds is renamed `exported_<name>`, the
//! prefix repeated while the name is taken (Prometheus's `honor_labels:
//! false`).
//!
//! Every family name appears once in the response ([`write_exposition`]). A
//! pass-through family whose name remora serves itself (its own instruments,
//! a host collector's, a JSON rule's, `target_info`) is merged into that
//! family when the types are the same, and dropped (counted as
//! `name_collision`) when they are not, or when one family claims a sample
//! name of the other.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// A family's type, as in `# TYPE`. Two families agree only when their
/// types are equal: `untyped` and `gauge` are different types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl Kind {
    /// The type named in a `# TYPE` line.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            "untyped" => Kind::Untyped,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
            Kind::Untyped => "untyped",
        }
    }

    /// Suffixes of the sample names a family of this type uses besides its own name.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Kind::Histogram => &["_bucket", "_sum", "_count"],
            Kind::Summary => &["_sum", "_count"],
            _ => &[],
        }
    }
}

/// A family remora's own pipeline serves: its type and HELP text.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub kind: Kind,
    pub help: String,
}

/// Every family name remora's pipeline serves (its own instruments, the host
/// collectors', the JSON rules', `target_info`).
pub type ServedNames = BTreeMap<String, Served>;

/// One passed-through family.
#[derive(Debug, Clone, PartialEq)]
pub struct PromFamily {
    pub name: String,
    /// HELP text, unescaped.
    pub help: Option<String>,
    pub kind: Kind,
    /// Sample lines, relabelled, each ending in `\n`.
    pub samples: String,
}

/// The result of relabelling one body.
#[derive(Debug, Default)]
pub struct Relabeled {
    pub families: Vec<PromFamily>,
    pub series: usize,
    pub dropped: u64,
    /// Names of families dropped because they collide with one remora serves.
    pub dropped_families: Vec<String>,
}

/// Where a family goes beside the families already placed.
#[derive(Debug, PartialEq)]
enum Fit {
    /// No name in common: a family of its own.
    New,
    /// Same name and type as a placed family: one family.
    Merge,
    /// Another type under the same name, or a sample name in common.
    Collides(String),
}

/// Sample names owned by the families placed so far.
#[derive(Debug, Default)]
struct Claims {
    owner: HashMap<String, (String, Kind)>,
}

fn sample_names(name: &str, kind: Kind) -> impl Iterator<Item = Cow<'_, str>> {
    std::iter::once(Cow::Borrowed(name)).chain(
        kind.suffixes()
            .iter()
            .map(move |s| Cow::Owned(format!("{name}{s}"))),
    )
}

impl Claims {
    fn fit(&self, name: &str, kind: Kind) -> Fit {
        if let Some((family, k)) = self.owner.get(name) {
            if family == name && *k == kind {
                return Fit::Merge;
            }
        }
        for s in sample_names(name, kind) {
            if let Some((family, _)) = self.owner.get(s.as_ref()) {
                return Fit::Collides(family.clone());
            }
        }
        Fit::New
    }

    fn add(&mut self, name: &str, kind: Kind) {
        for s in sample_names(name, kind) {
            self.owner
                .entry(s.into_owned())
                .or_insert_with(|| (name.to_string(), kind));
        }
    }

    fn of_served(served: &ServedNames) -> Self {
        let mut claims = Claims::default();
        for (name, s) in served {
            claims.add(name, s.kind);
        }
        claims
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if is_name_start(f)) && c.all(is_name_char)
}

/// Label pairs (values still escaped) and the text after the closing brace.
type Parsed<'a> = (Vec<(&'a str, &'a str)>, &'a str);

/// Parses `a="x",b="y"}` (the text after `{`): names checked, no name twice,
/// values with valid escapes only.
fn parse_labels(s: &str) -> Result<Parsed<'_>, String> {
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
fn plain_decimal(s: &str) -> bool {
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
fn valid_float(s: &str) -> bool {
    plain_decimal(s) || matches!(s, "NaN" | "+Inf" | "-Inf" | "Inf")
}

/// The sample value re-written so every parser reads it; `None` when it is not a number.
fn value_text(s: &str) -> Option<Cow<'_, str>> {
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
fn unescape_help(s: &str) -> String {
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

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The label names of a sample with the app's names that remora adds renamed
/// `exported_<name>`, `exported_exported_<name>`, ... until free; shorter
/// names are renamed first, as Prometheus does.
fn exported_names<'a>(app: &[(&'a str, &str)], added: &[(String, String)]) -> Vec<Cow<'a, str>> {
    let mut names: Vec<Cow<'a, str>> = app.iter().map(|(k, _)| Cow::Borrowed(*k)).collect();
    let mut clashing: Vec<usize> = (0..app.len())
        .filter(|&i| added.iter().any(|(a, _)| a == app[i].0))
        .collect();
    if clashing.is_empty() {
        return names;
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
        taken.push(name.clone());
        names[i] = Cow::Owned(name);
    }
    names
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
) -> Result<Relabeled, String> {
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
                return Err(format!("line {lineno}: invalid metric name {name:?}"));
            }
            let arg = words.next().unwrap_or("").trim();
            let i = family_at(&mut families, &mut index, name);
            let fam = &mut families[i];
            if keyword == "HELP" {
                fam.help.get_or_insert_with(|| unescape_help(arg));
            } else {
                let kind = Kind::parse(arg)
                    .ok_or_else(|| format!("line {lineno}: unknown type {arg:?}"))?;
                if fam.kind.is_some() {
                    return Err(format!("line {lineno}: second TYPE line for {name}"));
                }
                if fam.seen > 0 {
                    return Err(format!(
                        "line {lineno}: TYPE line for {name} after its samples"
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
            return Err(format!("line {lineno}: invalid metric name {name:?}"));
        }
        let rest = &line[name_end..];
        let (pairs, rest) = match rest.strip_prefix('{') {
            Some(r) => parse_labels(r).map_err(|e| format!("line {lineno}: {e}"))?,
            None => (Vec::new(), rest),
        };
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .ok_or(format!("line {lineno}: missing value"))?;
        let value =
            value_text(value).ok_or_else(|| format!("line {lineno}: invalid value {value:?}"))?;
        let timestamp = match fields.next() {
            Some(ts) => Some(
                ts.parse::<i64>()
                    .map_err(|_| format!("line {lineno}: invalid timestamp {ts:?}"))?,
            ),
            None => None,
        };
        if fields.next().is_some() {
            return Err(format!("line {lineno}: unexpected text after the value"));
        }
        let fam_idx = match route(&index, &families, name) {
            Some(i) => i,
            None => family_at(&mut families, &mut index, name),
        };
        let fam = &mut families[fam_idx];
        check_sample(fam, name, &pairs).map_err(|e| format!("line {lineno}: {e}"))?;
        fam.seen += 1;
        if series >= max_series {
            dropped += 1;
            continue;
        }
        series += 1;
        fam.kept += 1;
        let names = exported_names(&pairs, labels);
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
            return Err(format!(
                "family {} ({}) uses a sample name of family {other}",
                f.name,
                kind.as_str()
            ));
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
        });
    }
    Ok(out)
}

/// One family of remora's own pipeline, already encoded (HELP, TYPE, samples).
#[derive(Debug)]
pub struct OwnBlock {
    pub name: String,
    pub kind: Kind,
    pub text: Vec<u8>,
}

/// Writes remora's own families and the pass-through families of every
/// target (`sources`, in a stable order), one block per family name, sorted
/// by name.
///
/// A pass-through family with a name remora serves (`served`, present now or
/// not) joins that family when the types are the same and is left out when
/// not; remora's HELP text wins. Between targets, the first family placed
/// wins and a later family that collides with it is left out. The poller
/// already dropped (and counted) what collides with `served`; the check here
/// makes the response valid whatever the store holds, e.g. right after a
/// reload.
pub fn write_exposition<'a>(
    out: &mut Vec<u8>,
    own: Vec<OwnBlock>,
    served: &ServedNames,
    sources: impl Iterator<Item = &'a [PromFamily]>,
) {
    struct Entry<'a> {
        own: Option<Vec<u8>>,
        help: Option<&'a str>,
        kind: Kind,
        samples: Vec<&'a str>,
    }
    let mut claims = Claims::of_served(served);
    let mut entries: BTreeMap<String, Entry<'a>> = BTreeMap::new();
    for block in own {
        if claims.fit(&block.name, block.kind) == Fit::New {
            claims.add(&block.name, block.kind);
        }
        entries.insert(
            block.name,
            Entry {
                own: Some(block.text),
                help: None,
                kind: block.kind,
                samples: Vec::new(),
            },
        );
    }
    for families in sources {
        for f in families {
            match claims.fit(&f.name, f.kind) {
                Fit::Collides(_) => continue,
                Fit::New => claims.add(&f.name, f.kind),
                Fit::Merge => {}
            }
            let e = entries.entry(f.name.clone()).or_insert_with(|| Entry {
                own: None,
                help: None,
                kind: f.kind,
                samples: Vec::new(),
            });
            if e.help.is_none() {
                e.help = f.help.as_deref();
            }
            e.samples.push(&f.samples);
        }
    }
    for (name, e) in entries {
        match e.own {
            Some(text) => out.extend_from_slice(&text),
            None => {
                let help = served.get(&name).map(|s| s.help.as_str()).or(e.help);
                if let Some(h) = help.filter(|h| !h.is_empty()) {
                    let _ = writeln_bytes(out, format_args!("# HELP {name} {}", escape_help(h)));
                }
                let _ = writeln_bytes(out, format_args!("# TYPE {name} {}", e.kind.as_str()));
            }
        }
        for s in e.samples {
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn writeln_bytes(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write as _;
    out.write_fmt(args)?;
    out.push(b'\n');
    Ok(())
}

/// Writes pass-through families alone (no pipeline families).
pub fn render<'a>(out: &mut Vec<u8>, sources: impl Iterator<Item = &'a [PromFamily]>) {
    write_exposition(out, Vec::new(), &ServedNames::new(), sources);
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="GET",code="200"} 1027 1395066363000
http_requests_total{method="POST",code="400"} 3
# HELP request_seconds Latency.
# TYPE request_seconds histogram
request_seconds_bucket{le="0.1"} 5
request_seconds_bucket{le="+Inf"} 7
request_seconds_sum 1.5
request_seconds_count 7
# TYPE rpc summary
rpc{quantile="0.5"} 0.2
rpc_sum 10
rpc_count 50
# HELP process_cpu_seconds_total CPU.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# TYPE process_open_fds untyped
process_open_fds 12
untyped_thing{target="app-own"} NaN
"#;

    fn labels() -> Vec<(String, String)> {
        vec![
            ("target".into(), "app".into()),
            ("cluster".into(), "eu\"1".into()),
        ]
    }

    /// What remora serves itself in these tests.
    fn served() -> ServedNames {
        let s = |kind| Served {
            kind,
            help: "remora's".into(),
        };
        [
            ("process_cpu_seconds_total".to_string(), s(Kind::Counter)),
            ("process_open_fds".to_string(), s(Kind::Gauge)),
        ]
        .into_iter()
        .collect()
    }

    fn text(families: &[PromFamily]) -> String {
        let mut out = Vec::new();
        render(&mut out, std::iter::once(families));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn relabels_and_keeps_everything() {
        let r = relabel(APP, &labels(), &served(), 100).unwrap();
        let text = text(&r.families);
        assert!(
            text.contains("# TYPE http_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains(r#"http_requests_total{method="GET",code="200",target="app",cluster="eu\"1"} 1027 1395066363000"#), "{text}");
        assert!(
            text.contains(r#"request_seconds_bucket{le="+Inf",target="app",cluster="eu\"1"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(r#"request_seconds_count{target="app",cluster="eu\"1"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rpc{quantile="0.5",target="app",cluster="eu\"1"} 0.2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"untyped_thing{exported_target="app-own",target="app",cluster="eu\"1"} NaN"#
            ),
            "{text}"
        );
        // Same name and type as remora's own: kept (merged at render).
        assert!(
            text.contains(r#"process_cpu_seconds_total{target="app",cluster="eu\"1"} 12.5"#),
            "{text}"
        );
        // Same name, another type: dropped and named.
        assert!(!text.contains("process_open_fds"), "{text}");
        assert_eq!(r.dropped_families, vec!["process_open_fds".to_string()]);
        assert_eq!(r.series, 11);
    }

    #[test]
    fn merges_with_remoras_own_family_and_its_help() {
        let r = relabel(APP, &labels(), &served(), 100).unwrap();
        let own = OwnBlock {
            name: "process_cpu_seconds_total".into(),
            kind: Kind::Counter,
            text: b"# HELP process_cpu_seconds_total remora's\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\n".to_vec(),
        };
        let mut out = Vec::new();
        write_exposition(
            &mut out,
            vec![own],
            &served(),
            std::iter::once(r.families.as_slice()),
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.matches("# TYPE process_cpu_seconds_total").count(),
            1,
            "{text}"
        );
        assert!(text.contains("# HELP process_cpu_seconds_total remora's\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\nprocess_cpu_seconds_total{target=\"app\""), "{text}");
        assert!(!text.contains("CPU."), "remora's HELP wins: {text}");
    }

    #[test]
    fn merges_families_of_two_targets_and_leaves_out_a_clash() {
        let a = relabel(
            APP,
            &[("target".into(), "a".into())],
            &ServedNames::new(),
            100,
        )
        .unwrap();
        let b = relabel(
            APP,
            &[("target".into(), "b".into())],
            &ServedNames::new(),
            100,
        )
        .unwrap();
        let c = relabel(
            "# TYPE http_requests_total gauge\nhttp_requests_total 1\n# TYPE request_seconds_count gauge\nrequest_seconds_count 1\n",
            &[("target".into(), "c".into())],
            &ServedNames::new(),
            100,
        )
        .unwrap();
        let mut out = Vec::new();
        render(
            &mut out,
            [
                a.families.as_slice(),
                b.families.as_slice(),
                c.families.as_slice(),
            ]
            .into_iter(),
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("# TYPE http_requests_total ").count(), 1);
        assert_eq!(text.matches("http_requests_total{").count(), 4);
        assert!(!text.contains("target=\"c\""), "{text}");
        assert_eq!(text.matches("request_seconds_count{").count(), 2);
    }

    #[test]
    fn exported_prefix_repeats_while_taken() {
        let r = relabel(
            "m{exported_target=\"x\",target=\"y\",exported_exported_target=\"z\",cluster=\"w\"} 1\n",
            &labels(),
            &ServedNames::new(),
            100,
        )
        .unwrap();
        assert_eq!(
            r.families[0].samples,
            "m{exported_target=\"x\",exported_exported_exported_target=\"y\",exported_exported_target=\"z\",exported_cluster=\"w\",target=\"app\",cluster=\"eu\\\"1\"} 1\n"
        );
    }

    #[test]
    fn groups_split_families_and_normalises() {
        let body = "# TYPE a gauge\na{x=\"1\"} 1\n# HELP b bad \\d help\n# TYPE b gauge\nb +1e3\n\
                    a{x=\"2\"} infinity\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nb2 1\nh_sum -nan\nh_count 1\n";
        let r = relabel(body, &[], &ServedNames::new(), 100).unwrap();
        let text = text(&r.families);
        assert_eq!(
            text,
            "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} +Inf\n# HELP b bad \\\\d help\n# TYPE b gauge\nb +1e3\n\
             # TYPE b2 untyped\nb2 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum NaN\nh_count 1\n"
        );
    }

    #[test]
    fn caps_series() {
        let r = relabel(APP, &labels(), &ServedNames::new(), 3).unwrap();
        assert_eq!(r.series, 3);
        assert_eq!(r.dropped, 9);
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "metric{a=\"1\" 1\n",
            "metric 1 2 3\n",
            "metric abc\n",
            "1metric 1\n",
            "metric{a=1} 1\n",
            "# TYPE m counter\n# TYPE m gauge\nm 1\n",
            "# TYPE m banana\n",
            "metric{a=\"unterminated} 1\n",
            "metric{a=\"\\d\"} 1\n",
            "metric{a=\"1\",a=\"2\"} 1\n",
            "metric{__name__=\"x\"} 1\n",
            "m 1\n# TYPE m gauge\n",
            "m_sum 1\n# TYPE m summary\nm_count 1\n",
            "# TYPE h histogram\nh 1\n",
            "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
            "# TYPE s summary\ns{quantile=\"p50\"} 1\n",
            "# TYPE h histogram\nh_count 1\n# TYPE h_count gauge\n",
        ] {
            assert!(
                relabel(bad, &labels(), &ServedNames::new(), 100).is_err(),
                "accepted {bad:?}"
            );
        }
    }
}
