//! The HTML page of one target, `GET /targets/NAME`: its URL (no user info,
//! query values hidden), the last poll (status, size, duration, error), and
//! per rule what its paths matched, the first series it made, and what
//! failed with the offending value and a hint. Plain server-rendered HTML,
//! no script; every text from a config, a target or a body is escaped. No
//! header, credential or body is ever shown, only the rules' own examples
//! (cut to 80 characters).

use std::fmt::Write as _;

use crate::model::explain::{Record, RuleRecord};
use crate::store::{unix_now, TargetState};

/// `s` escaped for HTML text and attribute values.
pub(super) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `name` as one path segment: every byte but unreserved ones percent-encoded.
pub(super) fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A percent-encoded path segment decoded; `None` when it is not valid UTF-8
/// or has a bad escape.
pub(super) fn decode_segment(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The link to a target's page.
pub(super) fn target_href(name: &str) -> String {
    format!("/targets/{}", encode_segment(name))
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em}td,th{padding:.2em .8em;text-align:left;vertical-align:top}\
table{border-collapse:collapse}tr{border-bottom:1px solid #ddd}.down,.failing td.failures{color:#b00}.up{color:#070}\
code{background:#f4f4f4}.hint{color:#333;font-style:italic}\
table#rules{table-layout:fixed;width:100%;max-width:1400px}table#rules td{overflow-wrap:anywhere}\
table#rules th:nth-child(1){width:14%}table#rules th:nth-child(2),table#rules th:nth-child(3){width:11%}\
table#rules th:nth-child(4){width:6%}table#rules th:nth-child(5){width:28%}table#rules th:nth-child(6){width:30%}";

/// The app's own health as its state sets say it: each family whose series
/// carry only a `state` label (a rule without `each`, such as a page's
/// overall `status`) gives `name: STATE`, the state whose series is 1.
/// A family an aggregation made (`count_by: state` gives series with only
/// a `state` label too, but its values are tallies) is not the app's
/// health. Empty when the target has no such rule or is down.
pub(super) fn app_health(t: &TargetState) -> String {
    let tallies = t
        .explain
        .as_ref()
        .map(|r| r.aggregated_families())
        .unwrap_or_default();
    let mut out = Vec::new();
    for f in t.families.iter() {
        if tallies.contains(&&*f.name) {
            continue;
        }
        let only_state = !f.series.is_empty()
            && f.series
                .iter()
                .all(|s| s.attributes.len() == 1 && s.attributes[0].key.as_str() == "state");
        if !only_state {
            continue;
        }
        if let Some(s) = f.series.iter().find(|s| s.value == 1.0) {
            out.push(format!("{}: {}", f.name, s.attributes[0].value.as_str()));
        }
    }
    out.join(", ")
}

/// Rules that failed at least once in the last good poll (0 without one).
pub(super) fn failing_rules(t: &TargetState) -> usize {
    t.explain.as_ref().map_or(0, |r| {
        r.rules.iter().filter(|r| !r.failures.is_empty()).count()
    })
}

fn age(last: Option<f64>) -> String {
    match last {
        Some(t) => format!("{:.1}s ago", (unix_now() - t).max(0.0)),
        None => "never".into(),
    }
}

/// The page of target `name` in state `t`.
pub(super) fn target_page(name: &str, t: &TargetState) -> String {
    let e = html_escape;
    let mut html = String::with_capacity(8192);
    let (class, up) = match (t.polled, t.up) {
        (false, _) => ("", "pending"),
        (true, true) => ("up", "up"),
        (true, false) => ("down", "down"),
    };
    let _ = write!(
        html,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>remora: {n}</title>\
         <style>{STYLE}</style></head><body><p><a href=\"/\">remora</a></p><h1>Target {n}</h1>\
         <table id=\"poll\">\
         <tr><th>url</th><td><code>{url}</code></td></tr>\
         <tr><th>state</th><td class=\"{class}\">{up}</td></tr>\
         <tr><th>last HTTP status</th><td>{status}</td></tr>\
         <tr><th>response size</th><td>{size} bytes</td></tr>\
         <tr><th>poll duration</th><td>{dur:.3} s</td></tr>\
         <tr><th>last success</th><td>{last}</td></tr>\
         <tr><th>series</th><td>{series}</td></tr>\
         <tr><th>series dropped (total)</th><td>{dropped}</td></tr>\
         <tr><th>last error</th><td>{error}</td></tr></table>",
        n = e(name),
        url = e(&t.url),
        status = t.http_status,
        size = t.response_size,
        dur = t.poll_duration,
        last = age(t.last_success),
        series = t.series,
        dropped = t.dropped,
        error = e(t.last_error.as_deref().unwrap_or("")),
    );
    match &t.explain {
        None if t.passthrough.is_some() => {
            let families = t.passthrough.as_ref().map_or(0, |f| f.len());
            let _ = write!(
                html,
                "<p>format: prometheus: {families} families passed through; no rules.</p>"
            );
        }
        None => html.push_str("<p>No successful poll yet: no rules to show.</p>"),
        Some(record) => {
            html.push_str("<h2>Rules</h2>");
            if !t.up {
                html.push_str("<p class=\"down\">The target is down: the rules below are from its last successful poll.</p>");
            }
            html.push_str(
                "<table id=\"rules\"><tr><th>rule</th><th>each</th><th>path</th><th>nodes matched</th>\
                 <th>series</th><th>failures</th></tr>",
            );
            for r in &record.rules {
                rule_row(&mut html, record, r);
            }
            html.push_str("</table>");
        }
    }
    if !t.extraction_errors.is_empty() {
        html.push_str("<h2>Extraction errors since start</h2><table id=\"errors\"><tr><th>metric</th><th>reason</th><th>count</th></tr>");
        for ((metric, reason), n) in &t.extraction_errors {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{n}</td></tr>",
                e(metric),
                e(reason)
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</body></html>\n");
    html
}

fn rule_row(html: &mut String, record: &Record, r: &RuleRecord) {
    let e = html_escape;
    let info = &r.info;
    let class = if r.failing() { "failing" } else { "ok" };
    let shown_paths = r.shown_paths();
    let mut paths: Vec<String> = if info.paths.len() == 1 {
        shown_paths
            .iter()
            .map(|(_, p)| format!("<code>{}</code>", e(p)))
            .collect()
    } else {
        shown_paths
            .iter()
            .map(|(n, p)| format!("{}: <code>{}</code>", e(n), e(p)))
            .collect()
    };
    if info.age {
        paths.push("age: now - timestamp, s".into());
    }
    if let Some(agg) = r.aggregation() {
        paths.push(format!("<span class=\"aggregate\">{}</span>", e(&agg)));
    }
    // Every level of `each` with the nodes it matched (the same record
    // methods `remora once --explain` prints from).
    let levels = r.levels();
    let each: Vec<String> = levels
        .iter()
        .enumerate()
        .map(|(i, (p, n))| {
            format!(
                "{}<code>{}</code> → {n}",
                if i == 0 { "" } else { "then " },
                e(p)
            )
        })
        .collect();
    let nodes = levels.last().map_or(r.nodes, |(_, n)| *n);
    let _ = write!(
        html,
        "<tr class=\"{class}\"><td class=\"metric\">{}</td><td class=\"each\">{}</td><td>{}</td><td class=\"nodes\">{}</td><td class=\"series\">",
        e(&info.metric),
        each.join("<br>"),
        paths.join("<br>"),
        nodes,
    );
    let mut shown = 0u64;
    for (name, labels, value) in record.series(r) {
        shown += 1;
        let mut s = name.to_string();
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|kv| format!("{}={:?}", kv.key, kv.value.as_str()))
                .collect();
            let _ = write!(s, "{{{}}}", inner.join(","));
        }
        let _ = write!(html, "<code>{} {value}</code><br>", e(&s));
    }
    let more = r.series_total.saturating_sub(shown);
    if more > 0 {
        let _ = write!(html, "… and {more} more<br>");
    }
    if r.series_total == 0 {
        html.push_str("none");
    }
    html.push_str("</td><td class=\"failures\">");
    for f in &r.failures {
        let _ = write!(
            html,
            "<div class=\"failure\"><b>{}</b> ×{}",
            e(f.reason),
            f.count
        );
        if let Some(v) = &f.value {
            let _ = write!(html, ", value <code class=\"value\">{}</code>", e(v));
        }
        let _ = write!(html, "<div class=\"hint\">{}</div></div>", e(&f.hint));
    }
    html.push_str("</td></tr>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_escape() {
        for name in ["checkout", "a b/c?d", "é<script>"] {
            let enc = encode_segment(name);
            assert!(!enc.contains(['/', '?', ' ', '<']));
            assert_eq!(decode_segment(&enc).as_deref(), Some(name));
        }
        assert_eq!(decode_segment("%zz"), None);
        assert_eq!(decode_segment("%"), None);
        assert_eq!(
            html_escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
