//! The hint of a failure: what to change in the rule, naming the keys that
//! exist where a path stopped matching (read from the body by `walk`), the
//! states or `map:` keys to add, the `parse:` to use.

use std::fmt::Write as _;

use super::super::convert::Part;
use super::super::path::{PathPlan, Step};
use super::super::plan::{EachPlan, LabelPlan, RulePlan, SourcePlan};
use super::super::sink::{NodeStep, PathAt};
use super::super::{ErrorReason, ExtractionError};
use super::walk::{walk, Walked};
use super::{shown_value, RuleText};
use crate::config::Parse;

/// `s` as a YAML map key: as is when plain, else JSON-quoted.
fn yaml_key(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(s, "true" | "false" | "null" | "yes" | "no" | "on" | "off");
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| s.to_string())
    }
}

/// The path steps of `at` from the document root, when they are plain.
fn root_steps(plan: &RulePlan, at: PathAt, node: Option<&NodeStep>) -> Option<(Vec<Step>, usize)> {
    if !plan.inner.is_empty() {
        // The nodes of a list `each:` are not named by one key.
        return None;
    }
    let mut steps = match &plan.each {
        None => Vec::new(),
        Some(EachPlan::Members(container)) => {
            let mut steps = container.steps.clone();
            steps.push(match node? {
                NodeStep::Name(n) => Step::Name(n.clone()),
                NodeStep::Index(i) => Step::Index(i64::try_from(*i).ok()?),
            });
            steps
        }
        Some(EachPlan::Query(_)) => return None,
    };
    let prefix = steps.len();
    let path = match at {
        PathAt::Value(v) => match &plan.values.get(v)?.1 {
            SourcePlan::Path(p) => p,
            SourcePlan::Const(_) => return None,
        },
        PathAt::Label(l, part) => match &plan.labels.get(l)?.1 {
            LabelPlan::Template(parts) => match parts.get(part)? {
                Part::Path(0, p) => p,
                _ => return None,
            },
            LabelPlan::Const(_) => return None,
        },
    };
    match path {
        PathPlan::Simple(simple) => steps.extend(simple.steps.iter().cloned()),
        PathPlan::General(_) => return None,
    }
    Some((steps, prefix))
}

/// `$` then `steps` as JSONPath text.
fn steps_text(steps: &[Step]) -> String {
    let mut s = String::from("$");
    for step in steps {
        let _ = match step {
            Step::Name(n) => write!(s, ".{n}"),
            Step::Index(i) => write!(s, "[{i}]"),
        };
    }
    s
}

/// What to change in the config for error `e` of the rule `plan`.
pub(super) fn hint(
    e: &ExtractionError,
    plan: &RulePlan,
    text: &RuleText,
    body: Option<&[u8]>,
    walks: &mut usize,
) -> String {
    // The path that failed, as written, and what the body holds along it.
    let path_text = match e.site.path {
        Some(PathAt::Value(v)) => text.info.paths.get(v).map(|(_, p)| p.clone()),
        Some(PathAt::Label(l, p)) => text
            .labels
            .get(l)
            .and_then(|(_, parts)| parts.get(p).cloned().flatten()),
        None => None,
    }
    .unwrap_or_else(|| "the path".to_string());
    let label = match e.site.path {
        Some(PathAt::Label(l, _)) => text.labels.get(l).map(|(name, _)| name.as_str()),
        _ => None,
    };
    let mut walked = || {
        let (steps, prefix) = root_steps(plan, e.site.path?, e.site.node.as_ref())?;
        let body = body.filter(|_| *walks > 0)?;
        *walks -= 1;
        let walked = walk(body, &steps)?;
        Some((walked, steps, prefix))
    };
    let raw = e.example.as_deref().unwrap_or("");
    let shown = shown_value(e).unwrap_or_default();
    match e.reason {
        ErrorReason::Missing => {
            let mut h = match label {
                Some(l) => format!("label {l}: {path_text} matched nothing"),
                None => format!("{path_text} matched nothing"),
            };
            if let Some((Walked::Stopped { depth, kind, near, len }, steps, prefix)) = walked() {
                let at = steps_text(steps.get(prefix..depth).unwrap_or_default());
                let _ = match (kind, steps.get(depth)) {
                    ("object", Some(Step::Name(name))) if near.is_empty() => {
                        write!(h, " ({at} has no key {name:?}: it is an empty object)")
                    }
                    ("object", Some(Step::Name(name))) => write!(
                        h,
                        " ({at} has no key {name:?}; nearest keys: {})",
                        near.join(", ")
                    ),
                    ("array", Some(Step::Index(i))) => {
                        write!(h, " ({at} is an array of {len} items, no [{i}])")
                    }
                    (kind, _) => write!(h, " ({at} is {} {kind})", article(kind)),
                };
            }
            h.push_str(if label.is_some() {
                ": fix the path, or add optional: true (the label is then empty)"
            } else {
                ": fix the path, or add optional: true if it may be absent"
            });
            h
        }
        ErrorReason::NotANumber => match e.site.kind {
            Some("string") => {
                let parse = parse_name(text.parse);
                if parse == "auto" {
                    let k = yaml_key(raw);
                    let other = yaml_key(&format!("not_{raw}"));
                    format!("{shown} is not a number: add map: {{{k}: 1, {other}: 0}} or use kind: stateset")
                } else {
                    format!(
                        "{shown} cannot be read by parse: {parse} ({}): fix parse:, or add map: {{{}: 1}}",
                        parse_reads(&parse),
                        yaml_key(raw)
                    )
                }
            }
            Some("boolean") => format!(
                "{shown} is a boolean, which parse: {} does not read: remove parse:, or add map: {{\"true\": 1, \"false\": 0}}",
                parse_name(text.parse)
            ),
            Some(kind @ ("object" | "array")) => {
                let mut h = format!("{path_text} is an {kind}, not a number: use each: ");
                let deeper = match walked() {
                    Some((Walked::Reached { first: Some(k), .. }, ..)) if kind == "object" => {
                        format!("{path_text}.{k}")
                    }
                    _ if kind == "object" => format!("{path_text}.KEY"),
                    _ => format!("{path_text}[0]"),
                };
                let each = if kind == "object" { ".*" } else { "[*]" };
                let _ = write!(
                    h,
                    "{path_text}{each} (one series per member, with labels such as \"{{@key}}\"), or a deeper path such as {deeper}"
                );
                h
            }
            Some("number") => match text.scale {
                Some(s) => format!("{shown} scaled by {s} is not a finite number: check scale:"),
                None => format!("{shown} is not a finite number"),
            },
            _ => format!("{path_text}: not a number"),
        },
        ErrorReason::UnmappedValue => match &text.states {
            Some(states) => format!(
                "{shown} is not one of states: [{}] (served as state=\"other\"): add it to states:",
                states.join(", ")
            ),
            None => {
                let mut h = format!("{shown} is not in map: add {}: N to map:", yaml_key(raw));
                if !text.map_keys.is_empty() {
                    let _ = write!(h, " (it has {})", text.map_keys.join(", "));
                }
                h
            }
        },
        ErrorReason::DuplicateSeries => format!(
            "labels {raw} repeat an earlier series of this poll (the first is kept): add a label that tells them apart, such as id: \"{{@key}}\""
        ),
        ErrorReason::InvalidLabel => format!(
            "label {}: {path_text} is {} {}, not a label value: point it at a string or number inside",
            label.unwrap_or("?"),
            article(e.site.kind.unwrap_or("object")),
            e.site.kind.unwrap_or("object"),
        ),
    }
}

fn article(kind: &str) -> &'static str {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The name `parse:` is written with.
fn parse_name(p: Parse) -> String {
    format!("{p:?}").to_lowercase()
}

/// What a `parse:` mode reads.
fn parse_reads(parse: &str) -> &'static str {
    match parse {
        "duration" => "durations like \"2h15m30s\", \"150ms\", \"1.5s\" or seconds",
        "timestamp" => "RFC 3339 times or epoch seconds",
        "bytes" => "sizes like \"10.5GB\", \"512MiB\" or bytes",
        "percent" => "percentages like \"12.5%\"",
        _ => "numbers",
    }
}
