//! The explain report: the text `remora once --explain` prints for a target
//! from its state in the store and its explain record
//! ([`crate::model::explain::Record`], built by `extract::explain`), and the
//! public form of a target's URL shown there and on the target page. The
//! target page (`server::pages`) prints the same record as HTML.

use std::fmt::Write as _;

use crate::store::TargetState;

/// A URL with the values of its query hidden (`?token=…`): the text shown
/// by the explain output and the target page.
pub fn public_url(url: &str) -> String {
    let base = url.split_once('#').map_or(url, |(u, _)| u);
    match base.split_once('?') {
        None => base.to_string(),
        Some((path, query)) => {
            let hidden: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) => format!("{k}=…"),
                    None => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", hidden.join("&"))
        }
    }
}

/// A series as `name{k="v",...} value`.
pub fn series_text(name: &str, labels: &[opentelemetry::KeyValue], value: f64) -> String {
    let mut s = String::from(name);
    if !labels.is_empty() {
        s.push('{');
        for (i, kv) in labels.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let v = kv.value.as_str();
            let _ = write!(
                s,
                "{}={}",
                kv.key,
                serde_json::to_string(&*v).unwrap_or_default()
            );
        }
        s.push('}');
    }
    let _ = write!(s, " {value}");
    s
}

/// Appends the account of one target to `out` (the text of
/// `remora once --explain`): its state, then each rule with its paths, the
/// nodes matched, its first series and its failures with value and hint.
pub fn write_target(out: &mut String, name: &str, t: &TargetState) {
    let _ = write!(out, "target {name} ({})", public_url(&t.url));
    if !t.up {
        let _ = writeln!(
            out,
            ": DOWN: {} (HTTP status {}, {} bytes)",
            t.last_error.as_deref().unwrap_or("not polled"),
            t.http_status,
            t.response_size
        );
        return;
    }
    let _ = writeln!(
        out,
        ": up, HTTP {}, {} bytes in {:.3} s, {} series",
        t.http_status, t.response_size, t.poll_duration, t.series
    );
    let Some(report) = &t.explain else {
        let _ = writeln!(
            out,
            "  (format: prometheus: families passed through, no rules)"
        );
        return;
    };
    for r in &report.rules {
        let info = &r.info;
        let _ = write!(out, "  rule {}:", info.metric);
        let levels = r.levels();
        for (i, (path, n)) in levels.iter().enumerate() {
            let then = if i == 0 { " each" } else { ", then" };
            let _ = write!(out, "{then} {path} matched {n} node(s)");
        }
        if !levels.is_empty() {
            let _ = write!(out, ";");
        }
        // A count without `path:` counts the `each` nodes: no path to show.
        let paths = r.shown_paths();
        for (i, (name, path)) in paths.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if info.paths.len() == 1 {
                let _ = write!(out, " path {path}");
            } else {
                let _ = write!(out, "{sep} {name} = {path}");
            }
        }
        if info.age {
            let _ = write!(out, " (age: now - timestamp, s)");
        }
        if info.each.is_none() && info.aggregate.is_none() {
            let _ = write!(out, " matched {} node(s)", r.nodes);
        }
        if let Some(agg) = r.aggregation() {
            let sep = if paths.is_empty() && info.each.is_some() {
                ""
            } else {
                ";"
            };
            let _ = write!(out, "{sep} {agg}");
        }
        let _ = writeln!(out, ": {} series", r.series_total);
        let mut shown = 0u64;
        for (name, labels, value) in report.series(r) {
            let _ = writeln!(out, "    {}", series_text(name, labels, value));
            shown += 1;
        }
        let more = r.series_total.saturating_sub(shown);
        if more > 0 {
            let _ = writeln!(out, "    … and {more} more series");
        }
        for f in &r.failures {
            let _ = write!(out, "    FAILED {} ×{}", f.reason, f.count);
            if let Some(v) = &f.value {
                let _ = write!(out, ", value {v}");
            }
            let _ = writeln!(out, "\n      hint: {}", f.hint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_hides_query_values() {
        assert_eq!(
            public_url("http://h:1/health?token=abc&x"),
            "http://h:1/health?token=…&x"
        );
        assert_eq!(public_url("http://h:1/health"), "http://h:1/health");
    }
}
