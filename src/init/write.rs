//! The YAML `remora init` prints: plain block style, every string quoted,
//! a comment above each rule saying what it reads.

use std::fmt::Write as _;

use super::infer::{Kind, Rule};
use super::recipe::Fit;
use super::status::Accept;

/// One target to write.
pub struct TargetOut {
    pub name: String,
    pub url: String,
    pub accept_status: Option<Accept>,
    pub prometheus: bool,
    /// A recipe that reads this kind of page better.
    pub hint: Option<&'static str>,
    /// The recipe whose rules the body's shape calls for.
    pub recipe: Option<Fit>,
    pub rules: Vec<Rule>,
    pub skipped: Vec<String>,
}

/// A double-quoted YAML string. `$` before `{` or `$` is doubled so that
/// `${VAR}` expansion gives the text back; control characters (C0, DEL,
/// C1), line and paragraph separators and the BOM are escaped as `\uXXXX`.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' if matches!(chars.peek(), Some('{' | '$')) => out.push_str("$$"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A comment line: no line breaks.
fn comment(out: &mut String, indent: &str, text: &str) {
    let one: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let _ = writeln!(out, "{indent}# {one}");
}

fn number(v: f64) -> String {
    format!("{v}")
}

/// The whole file.
pub fn yaml(urls: &[String], targets: &[TargetOut], notes: &[String]) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        "",
        &format!(
            "exporter.yaml written by `remora init {}` (remora {}).",
            urls.join(" "),
            crate::exposition::VERSION
        ),
    );
    out.push_str(
        "# Each rule says above it what it reads. Keep what you want, rename freely\n\
         # (names without unit suffixes: the unit adds _seconds, _bytes, _ratio).\n\
         # Every key is documented in docs/configuration.md.\n\
         #\n\
         # Next:  remora check --config.file=exporter.yaml\n\
         #        remora once --explain --config.file=exporter.yaml\n\
         #        remora --config.file=exporter.yaml\n\
         #\n\
         # What was probed:\n",
    );
    for n in notes {
        comment(&mut out, "", &format!("  {n}"));
    }
    out.push_str(
        "\nserver:\n  listen: 0.0.0.0:9479            # --web.listen-address overrides it\n  metrics_path: /metrics\n\n\
         global:\n  interval: 15s\n  timeout: 5s\n\n\
         # Host, container and process metrics are on by default (host: in the reference).\n\
         host:\n\
         \x20 # The app container's limits. In Kubernetes, k8s/components/remora-sidecar sets\n\
         \x20 # these variables from the Downward API; elsewhere they are empty: no series.\n\
         \x20 app_container:\n\
         \x20   name: ${APP_CONTAINER_NAME:-app}\n\
         \x20   memory_limit: ${APP_MEMORY_LIMIT:-}\n\
         \x20   cpu_limit: ${APP_CPU_LIMIT:-}\n\
         \x20   cpu_divisor: 1m\n\
         \x20 # The app's own processes (in Kubernetes: shareProcessNamespace, which the\n\
         \x20 # component sets), for example:\n\
         \x20 # processes:\n\
         \x20 #   - {name: app, cmdline: \"uvicorn .*main:app\"}\n\n\
         targets:\n",
    );
    for t in targets {
        target(&mut out, t);
    }
    out
}

fn target(out: &mut String, t: &TargetOut) {
    out.push('\n');
    let _ = writeln!(out, "  - name: {}", q(&t.name));
    let _ = writeln!(out, "    url: {}", q(&t.url));
    if let Some(accept) = &t.accept_status {
        comment(out, "    ", &accept.why);
        let codes: Vec<String> = accept.codes.iter().map(u16::to_string).collect();
        let _ = writeln!(out, "    accept_status: [{}]", codes.join(", "));
    }
    if t.prometheus {
        comment(
            out,
            "    ",
            "The app's own Prometheus metrics, served as they are (label target added).",
        );
        out.push_str("    format: prometheus\n");
        return;
    }
    if let Some(hint) = t.hint {
        comment(out, "    ", hint);
    }
    if !t.skipped.is_empty() {
        comment(out, "    ", "Left out (no number in them):");
        for s in &t.skipped {
            comment(out, "    ", &format!("  {s}"));
        }
    }
    out.push_str("    metrics:\n");
    if let Some(fit) = &t.recipe {
        comment(
            out,
            "      ",
            &format!(
                "The body has the shape of examples/recipes/{}/: its rules, as the recipe writes them.",
                fit.name
            ),
        );
        out.push_str(&fit.rules);
        if !t.rules.is_empty() {
            comment(out, "      ", "The rest of the body, read by remora init:");
        }
    }
    for r in &t.rules {
        rule(out, r);
    }
}

fn rule(out: &mut String, r: &Rule) {
    for c in &r.comment {
        comment(out, "      ", c);
    }
    let i = "        ";
    let _ = writeln!(out, "      - name: {}", q(&r.name));
    let _ = writeln!(out, "{i}description: {}", q(&r.description));
    match &r.kind {
        Kind::Gauge => {}
        Kind::Counter => {
            let _ = writeln!(out, "{i}kind: counter");
        }
        Kind::Info => {
            let _ = writeln!(out, "{i}kind: info");
        }
        Kind::StateSet(states) => {
            let _ = writeln!(out, "{i}kind: stateset");
            let s: Vec<String> = states.iter().map(|s| q(s)).collect();
            let _ = writeln!(out, "{i}states: [{}]", s.join(", "));
        }
    }
    if r.count {
        let _ = writeln!(out, "{i}aggregate: count");
    }
    if let Some((label, states)) = &r.count_by {
        let _ = writeln!(out, "{i}count_by: {}", q(label));
        let s: Vec<String> = states.iter().map(|s| q(s)).collect();
        let _ = writeln!(out, "{i}states: [{}]", s.join(", "));
    }
    if let Some(unit) = r.unit {
        let _ = writeln!(out, "{i}unit: {}", q(unit));
    }
    if let Some(each) = &r.each {
        let _ = writeln!(out, "{i}each: {}", q(each));
    }
    if let Some(path) = &r.path {
        let _ = writeln!(out, "{i}path: {}", q(path));
    }
    if let Some(scale) = r.scale {
        let _ = writeln!(out, "{i}scale: {}", number(scale));
    }
    if let Some(parse) = r.parse {
        let _ = writeln!(out, "{i}parse: {parse}");
    }
    if !r.map.is_empty() {
        let m: Vec<String> = r
            .map
            .iter()
            .map(|(k, v)| format!("{}: {}", q(k), number(*v)))
            .collect();
        let _ = writeln!(out, "{i}map: {{{}}}", m.join(", "));
    }
    if !r.labels.is_empty() {
        let _ = writeln!(out, "{i}labels:");
        for (k, v) in &r.labels {
            let _ = writeln!(out, "{i}  {}: {}", q(k), q(v));
        }
    }
    if r.optional {
        let _ = writeln!(out, "{i}optional: true");
    }
}
