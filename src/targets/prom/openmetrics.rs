//! An app's OpenMetrics 1.0 body (`Content-Type: application/openmetrics-text`)
//! as the text 0.0.4 the relabelling reads, series for series what
//! Prometheus stores when it scrapes the app itself:
//!
//! - `# EOF` is required, and nothing but an empty line may follow it;
//! - a `counter` family `foo` becomes `foo_total` (its samples' name); an
//!   `info` family `foo` the gauge `foo_info`; a `stateset` a gauge (its
//!   samples already carry the family-named label); `unknown` is `untyped`;
//!   a `gaugehistogram`'s `_bucket`, `_gsum` and `_gcount` samples are
//!   passed as untyped families of their own names;
//! - `_created` samples of counters, histograms and summaries are dropped
//!   (a start time, not a measurement); `# UNIT` lines are dropped from the
//!   text, and kept with the `info` and `stateset` types as [`OmFacts`] per
//!   0.0.4 family name, for remora's own OpenMetrics output;
//! - exemplars are dropped; timestamps (seconds) become milliseconds;
//! - HELP's `\"` escape becomes a plain `"`.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::relabel::RelabelError;
use crate::model::passthrough::OmFacts;

/// What an OpenMetrics body said beyond 0.0.4, by 0.0.4 family name.
pub(super) type Facts = HashMap<String, OmFacts>;

fn line_err(line: usize, problem: impl Into<String>) -> RelabelError {
    RelabelError::Line {
        line,
        problem: problem.into(),
    }
}

/// The 0.0.4 family name and type of an OpenMetrics family (`None`: no TYPE line).
fn as_004(name: &str, kind: &str) -> Option<(String, &'static str)> {
    Some(match kind {
        "counter" if name.ends_with("_total") => (name.to_string(), "counter"),
        "counter" => (format!("{name}_total"), "counter"),
        "gauge" => (name.to_string(), "gauge"),
        "histogram" => (name.to_string(), "histogram"),
        "summary" => (name.to_string(), "summary"),
        "info" => (format!("{name}_info"), "gauge"),
        "stateset" => (name.to_string(), "gauge"),
        "unknown" => (name.to_string(), "untyped"),
        _ => return None,
    })
}

/// `text` (OpenMetrics 1.0) as text 0.0.4, and its families' types and
/// units beyond 0.0.4.
pub(super) fn to_text_004(text: &str) -> Result<(String, Facts), RelabelError> {
    let lines: Vec<&str> = text.lines().collect();
    let eof = lines
        .iter()
        .rposition(|l| *l == "# EOF")
        .ok_or_else(|| line_err(lines.len(), "no # EOF at the end of an OpenMetrics body"))?;
    if let Some(extra) = lines[eof + 1..].iter().position(|l| !l.is_empty()) {
        return Err(line_err(eof + 2 + extra, "text after # EOF"));
    }
    // The declared types, first.
    let mut types: HashMap<&str, &str> = HashMap::new();
    for l in &lines[..eof] {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            if let (Some(n), Some(t)) = (w.next(), w.next()) {
                if t != "gaugehistogram" && as_004(n, t).is_none() {
                    return Err(line_err(
                        0,
                        format!("unknown OpenMetrics type {t:?} of {n}"),
                    ));
                }
                types.insert(n, t);
            }
        }
    }
    let mut facts = Facts::new();
    let mut out = String::with_capacity(text.len());
    for (i, l) in lines[..eof].iter().enumerate() {
        let lineno = i + 1;
        if l.is_empty() {
            continue;
        }
        if let Some(comment) = l.strip_prefix('#') {
            let mut w = comment.trim_start().splitn(3, ' ');
            let (keyword, name, arg) = (
                w.next().unwrap_or(""),
                w.next().unwrap_or(""),
                w.next().unwrap_or(""),
            );
            let kind = types.get(name).copied().unwrap_or("unknown");
            let Some((name004, type004)) = as_004(name, kind) else {
                continue; // gaugehistogram: no family of that name in 0.0.4
            };
            match keyword {
                "TYPE" => {
                    let _ = writeln!(out, "# TYPE {name004} {type004}");
                    if matches!(kind, "info" | "stateset") {
                        let f = facts.entry(name004).or_default();
                        f.info = kind == "info";
                        f.stateset = kind == "stateset";
                    }
                }
                "HELP" => {
                    let _ = writeln!(out, "# HELP {name004} {}", arg.replace("\\\"", "\""));
                }
                "UNIT" if !arg.trim().is_empty() => {
                    facts.entry(name004).or_default().unit = Some(arg.trim().to_string());
                }
                _ => {}
            }
            continue;
        }
        let name_end = l.find(['{', ' ']).unwrap_or(l.len());
        let name = &l[..name_end];
        // The family it belongs to, by the suffixes of its type.
        let created_of = name
            .strip_suffix("_created")
            .and_then(|base| types.get(base))
            .is_some_and(|t| matches!(*t, "counter" | "histogram" | "summary"));
        if created_of {
            continue;
        }
        // Labels end at the last `}` before any exemplar (` # {`).
        let body_end = match l.find(" # ") {
            Some(i) if l[..i].matches('"').count() % 2 == 0 => i,
            _ => l.len(),
        };
        let sample = &l[..body_end];
        let set_end = match sample.rfind('}') {
            Some(i) if sample[name_end..].starts_with('{') => i + 1,
            _ => name_end,
        };
        let mut fields = sample[set_end..].split_whitespace();
        let value = fields
            .next()
            .ok_or_else(|| line_err(lineno, "missing value"))?;
        out.push_str(&sample[..set_end]);
        out.push(' ');
        out.push_str(value);
        if let Some(ts) = fields.next() {
            let secs: f64 = ts
                .parse()
                .map_err(|_| line_err(lineno, format!("invalid timestamp {ts:?}")))?;
            if !secs.is_finite() {
                return Err(line_err(lineno, format!("invalid timestamp {ts:?}")));
            }
            let _ = write!(out, " {}", (secs * 1000.0).round() as i64);
        }
        if fields.next().is_some() {
            return Err(line_err(lineno, "unexpected text after the timestamp"));
        }
        out.push('\n');
    }
    Ok((out, facts))
}

/// Whether a response's Content-Type is OpenMetrics.
pub fn is_openmetrics(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| {
        t.trim()
            .eq_ignore_ascii_case("application/openmetrics-text")
    })
}

/// What remora's polls of `format: prometheus` targets accept: Prometheus
/// 2.x's preference, OpenMetrics first, then text 0.0.4.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[cfg(test)]
mod tests {
    use super::*;

    const OM: &str = "# TYPE jobs counter
# UNIT jobs_seconds seconds
# HELP jobs Jobs \\\"done\\\".
jobs_total{q=\"a\"} 3 1700000000.5 # {trace_id=\"x\"} 1 1700000000
jobs_created{q=\"a\"} 1690000000
# TYPE build info
build_info{version=\"1\"} 1
# TYPE health stateset
health{health=\"up\"} 1
health{health=\"down\"} 0
# TYPE q gaugehistogram
q_bucket{le=\"+Inf\"} 2
q_gsum 3
q_gcount 2
# TYPE lat histogram
lat_bucket{le=\"+Inf\",x=\"}\"} 2 # {a=\"b\"} 0.5
lat_sum{x=\"}\"} 1
lat_count{x=\"}\"} 2
lat_created{x=\"}\"} 1690000000
# TYPE other unknown
other 1
# EOF
";

    #[test]
    fn openmetrics_becomes_the_text_prometheus_would_store() {
        let (t, facts) = to_text_004(OM).unwrap();
        assert_eq!(
            t,
            "# TYPE jobs_total counter
# HELP jobs_total Jobs \"done\".
jobs_total{q=\"a\"} 3 1700000000500
# TYPE build_info gauge
build_info{version=\"1\"} 1
# TYPE health gauge
health{health=\"up\"} 1
health{health=\"down\"} 0
q_bucket{le=\"+Inf\"} 2
q_gsum 3
q_gcount 2
# TYPE lat histogram
lat_bucket{le=\"+Inf\",x=\"}\"} 2
lat_sum{x=\"}\"} 1
lat_count{x=\"}\"} 2
# TYPE other untyped
other 1
"
        );
        assert!(super::super::relabel(&t, &[], &Default::default(), 100).is_ok());
        // What 0.0.4 cannot say is kept beside it.
        let info = |i, s, u: Option<&str>| OmFacts {
            info: i,
            stateset: s,
            unit: u.map(String::from),
        };
        assert_eq!(facts.get("build_info"), Some(&info(true, false, None)));
        assert_eq!(facts.get("health"), Some(&info(false, true, None)));
        assert_eq!(facts.get("jobs_total"), None);
        let (_, facts) = to_text_004(
            "# TYPE a_seconds counter\n# UNIT a_seconds seconds\na_seconds_total 1\n# EOF\n",
        )
        .unwrap();
        assert_eq!(
            facts.get("a_seconds_total"),
            Some(&info(false, false, Some("seconds")))
        );
    }

    #[test]
    fn eof_is_required_and_last() {
        assert!(to_text_004("# TYPE a gauge\na 1\n").is_err());
        assert!(to_text_004("a 1\n# EOF\na 2\n").is_err());
        assert!(to_text_004("# TYPE a gauge\na 1\n# EOF\n").is_ok());
        assert!(to_text_004("# TYPE a klingon\na 1\n# EOF\n").is_err());
        assert!(is_openmetrics(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        ));
        assert!(!is_openmetrics("text/plain; version=0.0.4"));
    }
}
