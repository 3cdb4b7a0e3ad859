//! `format: prometheus` targets: the app's own `/metrics`, served in remora's
//! response unchanged (names, types, HELP, every sample) with the target's
//! and the global constant labels added.
//!
//! The text is checked line by line; anything malformed rejects the whole
//! body (the target goes down), so a broken app never breaks remora's
//! response. A family whose name collides with one of remora's own is dropped
//! and counted. Families of the same name from several targets are merged at
//! render time so each `# TYPE` appears once.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One passed-through family.
#[derive(Debug, Clone, PartialEq)]
pub struct PromFamily {
    pub name: String,
    pub help: Option<String>,
    pub kind: Option<String>,
    /// Sample lines, relabelled, each ending in `\n`.
    pub samples: String,
}

/// The result of relabelling one body.
#[derive(Debug, Default)]
pub struct Relabeled {
    pub families: Vec<PromFamily>,
    pub series: usize,
    pub dropped: u64,
    /// Names of families dropped because they collide with remora's.
    pub dropped_families: Vec<String>,
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

/// The family a sample belongs to, given the declared type of `family`.
fn belongs(sample: &str, family: &str, kind: Option<&str>) -> bool {
    if sample == family {
        return true;
    }
    let Some(suffix) = sample.strip_prefix(family) else {
        return false;
    };
    match kind {
        Some("histogram") => matches!(suffix, "_bucket" | "_sum" | "_count"),
        Some("summary") => matches!(suffix, "_sum" | "_count"),
        _ => false,
    }
}

/// Parses `{a="x",b="y"}` starting after `{`; returns the pairs (values kept escaped) and the rest.
/// Label pairs (values still escaped) and the text after the closing brace.
type Parsed<'a> = (Vec<(&'a str, &'a str)>, &'a str);

fn parse_labels(s: &str) -> Result<Parsed<'_>, String> {
    let mut pairs = Vec::new();
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
                (true, _) => escaped = false,
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

fn valid_value(s: &str) -> bool {
    matches!(s, "NaN" | "+Inf" | "-Inf" | "Inf") || s.parse::<f64>().is_ok()
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Checks and relabels a text-format exposition.
pub fn relabel(
    text: &str,
    labels: &[(String, String)],
    reserved: &[String],
    max_series: usize,
) -> Result<Relabeled, String> {
    let mut out = Relabeled::default();
    // Family name -> index in out.families.
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut current: Option<usize> = None;
    let added: String = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",");
    let family_at =
        |out: &mut Relabeled, index: &mut BTreeMap<String, usize>, name: &str| -> usize {
            *index.entry(name.to_string()).or_insert_with(|| {
                out.families.push(PromFamily {
                    name: name.to_string(),
                    help: None,
                    kind: None,
                    samples: String::new(),
                });
                out.families.len() - 1
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
            let i = family_at(&mut out, &mut index, name);
            let fam = &mut out.families[i];
            if keyword == "HELP" {
                fam.help = Some(arg.to_string());
            } else {
                if !matches!(
                    arg,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(format!("line {lineno}: unknown type {arg:?}"));
                }
                if fam.kind.is_some() {
                    return Err(format!("line {lineno}: second TYPE line for {name}"));
                }
                fam.kind = Some(arg.to_string());
            }
            current = Some(i);
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
        if !valid_value(value) {
            return Err(format!("line {lineno}: invalid value {value:?}"));
        }
        let timestamp = fields.next();
        if let Some(ts) = timestamp {
            if ts.parse::<i64>().is_err() {
                return Err(format!("line {lineno}: invalid timestamp {ts:?}"));
            }
        }
        if fields.next().is_some() {
            return Err(format!("line {lineno}: unexpected text after the value"));
        }
        let fam_idx = match current {
            Some(i) if belongs(name, &out.families[i].name, out.families[i].kind.as_deref()) => i,
            _ => family_at(&mut out, &mut index, name),
        };
        current = Some(fam_idx);
        if out.series >= max_series {
            out.dropped += 1;
            continue;
        }
        out.series += 1;
        let samples = &mut out.families[fam_idx].samples;
        samples.push_str(name);
        samples.push('{');
        let mut first = true;
        for (k, v) in &pairs {
            if !first {
                samples.push(',');
            }
            first = false;
            // A label remora adds wins; the app's is kept as exported_<name>.
            if labels.iter().any(|(a, _)| a == k) {
                samples.push_str("exported_");
            }
            let _ = write!(samples, "{k}=\"{v}\"");
        }
        if !added.is_empty() {
            if !first {
                samples.push(',');
            }
            samples.push_str(&added);
        }
        samples.push_str("} ");
        samples.push_str(value);
        if let Some(ts) = timestamp {
            samples.push(' ');
            samples.push_str(ts);
        }
        samples.push('\n');
    }
    // Drop families that collide with remora's own names.
    let mut kept = Vec::with_capacity(out.families.len());
    for fam in out.families.drain(..) {
        let collides = reserved.iter().any(|r| {
            r == &fam.name
                || belongs(r, &fam.name, fam.kind.as_deref())
                || fam.name.starts_with("remora_")
        });
        if collides {
            out.series -= fam.samples.lines().count();
            out.dropped_families.push(fam.name);
        } else if !fam.samples.is_empty() || fam.kind.is_some() {
            kept.push(fam);
        }
    }
    out.families = kept;
    Ok(out)
}

/// Writes families to the exposition, merging same-named families of several targets.
pub fn render<'a>(out: &mut Vec<u8>, sources: impl Iterator<Item = &'a [PromFamily]>) {
    type Merged<'a> = (Option<&'a str>, Option<&'a str>, Vec<&'a str>);
    let mut merged: BTreeMap<&str, Merged<'_>> = BTreeMap::new();
    for families in sources {
        for f in families {
            let e = merged.entry(&f.name).or_insert((None, None, Vec::new()));
            e.0 = e.0.or(f.help.as_deref());
            e.1 = e.1.or(f.kind.as_deref());
            e.2.push(&f.samples);
        }
    }
    for (name, (help, kind, samples)) in merged {
        if let Some(h) = help {
            out.extend_from_slice(format!("# HELP {name} {h}\n").as_bytes());
        }
        if let Some(k) = kind {
            out.extend_from_slice(format!("# TYPE {name} {k}\n").as_bytes());
        }
        for s in samples {
            out.extend_from_slice(s.as_bytes());
        }
    }
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
untyped_thing{target="app-own"} NaN
"#;

    fn labels() -> Vec<(String, String)> {
        vec![
            ("target".into(), "app".into()),
            ("cluster".into(), "eu\"1".into()),
        ]
    }

    #[test]
    fn relabels_and_keeps_everything() {
        let r = relabel(APP, &labels(), &["process_cpu_seconds_total".into()], 100).unwrap();
        let mut out = Vec::new();
        render(&mut out, std::iter::once(r.families.as_slice()));
        let text = String::from_utf8(out).unwrap();
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
        assert!(!text.contains("process_cpu_seconds_total"), "{text}");
        assert_eq!(
            r.dropped_families,
            vec!["process_cpu_seconds_total".to_string()]
        );
        assert_eq!(r.series, 10);
    }

    #[test]
    fn merges_families_of_two_targets() {
        let a = relabel(APP, &[("target".into(), "a".into())], &[], 100).unwrap();
        let b = relabel(APP, &[("target".into(), "b".into())], &[], 100).unwrap();
        let mut out = Vec::new();
        render(
            &mut out,
            [a.families.as_slice(), b.families.as_slice()].into_iter(),
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.matches("# TYPE http_requests_total counter").count(),
            1
        );
        assert_eq!(text.matches("http_requests_total{").count(), 4);
    }

    #[test]
    fn caps_series() {
        let r = relabel(APP, &labels(), &[], 3).unwrap();
        assert_eq!(r.series, 3);
        assert_eq!(r.dropped, 8);
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
        ] {
            assert!(
                relabel(bad, &labels(), &[], 100).is_err(),
                "accepted {bad:?}"
            );
        }
    }
}
