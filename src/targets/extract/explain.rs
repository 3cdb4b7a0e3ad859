//! The rule-by-rule account of one extraction ([`Report`]): what each rule
//! matched, the first series it made, and each failure with its offending
//! value and a hint saying what to change. One record serves
//! `remora once --explain` ([`write_target`]), the log lines of a rule that
//! starts failing or recovers, and the page `GET /targets/NAME`.
//!
//! Cheap when nothing fails: the extraction only notes, per rule, the nodes
//! matched and where its series start and end in the families ([`Trace`]);
//! [`Extractor::explain`] shares the families and the rules' text, and
//! copies nothing per series. A failure's hint may look at the body once more
//! (a streaming pass that keeps a few keys, never the document) to name the
//! keys that do exist where a path stopped matching.

use std::fmt::Write as _;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::convert::Part;
use super::path::{PathPlan, Step};
use super::plan::{EachPlan, LabelPlan, RulePlan, SourcePlan};
use super::sink::{NodeStep, PathAt, Sink};
use super::{ErrorReason, ExtractionError, Extractor, EXAMPLE_CHARS};
use crate::config::{MetricRule, Parse, RuleKind, TemplatePart, ValueSource};
use std::sync::Arc;

use crate::model::explain::{Failure, Report, RuleInfo, RuleReport};
use crate::model::Family;
use crate::store::TargetState;

/// Keys named as the nearest to a missing one.
const NEAREST: usize = 3;

/// Passes over the body one account may make to name keys in its hints:
/// the first failing rules get them, the others a hint without.
const MAX_WALKS: usize = 8;

/// What one extraction did per rule, noted as it ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Per rule: nodes matched (1 without `each`).
    nodes: Vec<u64>,
    /// Per value of each rule, in order: (family, first series, end).
    spans: Vec<(usize, usize, usize)>,
}

impl Trace {
    pub(super) fn with_rules(rules: &[RulePlan]) -> Self {
        let values = rules.iter().map(|r| r.values.len()).sum();
        Trace {
            nodes: vec![0; rules.len()],
            spans: vec![(0, 0, 0); values],
        }
    }

    /// Notes where `rule`'s families end before it runs. Returns where its
    /// spans are: after the earlier rules' (`first_span`), whatever the
    /// order rules run in.
    pub(super) fn before(&mut self, rule: &RulePlan, sink: &Sink) -> usize {
        let at = rule.first_span;
        for (span, (family, _)) in self.spans.iter_mut().skip(at).zip(&rule.values) {
            let len = sink.families.get(*family).map_or(0, |f| f.series.len());
            *span = (*family, len, len);
        }
        at
    }

    /// Notes what `rule` made since [`Trace::before`] returned `at`.
    pub(super) fn after(&mut self, sink: &Sink, at: usize, rule: &RulePlan, nodes: usize) {
        for span in self.spans.iter_mut().skip(at).take(rule.values.len()) {
            span.2 = sink.families.get(span.0).map_or(span.1, |f| f.series.len());
        }
        if let Some(n) = self.nodes.get_mut(rule.index) {
            *n = nodes as u64;
        }
    }
}

/// A rule as written, for the account.
#[derive(Debug)]
pub(super) struct RuleText {
    /// Name, `each` and paths, shared with every report.
    info: Arc<RuleInfo>,
    /// Per label: its name and the text of each part that is a path.
    labels: Vec<(String, Vec<Option<String>>)>,
    states: Option<Vec<String>>,
    parse: Parse,
    /// The first keys of `map`.
    map_keys: Vec<String>,
    scale: Option<f64>,
}

impl RuleText {
    pub(super) fn new(rule: &MetricRule) -> Self {
        RuleText {
            info: Arc::new(RuleInfo {
                metric: rule.name.clone(),
                each: rule.each.as_ref().map(ToString::to_string),
                paths: rule
                    .values
                    .iter()
                    .map(|v| {
                        let source = match &v.source {
                            ValueSource::Const(c) => c.to_string(),
                            ValueSource::Path(p) => p.to_string(),
                        };
                        (v.name.clone(), source)
                    })
                    .collect(),
            }),
            labels: rule
                .labels
                .iter()
                .map(|(k, t)| {
                    let parts = t
                        .parts
                        .iter()
                        .map(|p| match p {
                            TemplatePart::Path(p) => Some(p.to_string()),
                            _ => None,
                        })
                        .collect();
                    (k.clone(), parts)
                })
                .collect(),
            states: match &rule.kind {
                RuleKind::StateSet(states) => Some(states.clone()),
                _ => None,
            },
            parse: rule.parse,
            map_keys: rule.map.keys().take(5).cloned().collect(),
            scale: rule.scale,
        }
    }
}

impl Extractor {
    /// The rule-by-rule account of one extraction: its `families` (shared,
    /// not copied), `trace` and `errors`, of `body` (read again only to
    /// name existing keys in the hints of failures); the first `base_len`
    /// labels of each series are the target's own.
    pub fn explain(
        &self,
        families: Arc<Vec<Family>>,
        trace: Trace,
        errors: &[ExtractionError],
        body: Option<&[u8]>,
        base_len: usize,
    ) -> Report {
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut at = 0;
        let mut walks = MAX_WALKS;
        for (i, (plan, text)) in self.rules.iter().zip(&self.texts).enumerate() {
            let spans = at..(at + plan.values.len()).min(trace.spans.len());
            at = spans.end;
            let total = trace
                .spans
                .get(spans.clone())
                .unwrap_or_default()
                .iter()
                .map(|(_, start, end)| end.saturating_sub(*start) as u64)
                .sum();
            let failures: Vec<Failure> = errors
                .iter()
                .filter(|e| e.rule == i)
                .map(|e| Failure {
                    reason: e.reason.as_str(),
                    count: e.count,
                    value: shown_value(e),
                    hint: hint(e, plan, text, body, &mut walks),
                })
                .collect();
            let nodes = match plan.each {
                Some(_) => trace.nodes.get(i).copied().unwrap_or(0),
                // The value paths that matched: each missing one is counted.
                None => plan
                    .values
                    .iter()
                    .filter(|(_, s)| matches!(s, SourcePlan::Path(_)))
                    .count()
                    .saturating_sub(missing(&failures)) as u64,
            };
            rules.push(RuleReport {
                info: text.info.clone(),
                nodes,
                spans,
                series_total: total,
                failures,
            });
        }
        Report {
            families,
            base_len,
            spans: trace.spans,
            rules,
        }
    }
}

/// How many `missing` failures.
fn missing(failures: &[Failure]) -> usize {
    failures
        .iter()
        .filter(|f| f.reason == ErrorReason::Missing.as_str())
        .map(|f| usize::try_from(f.count).unwrap_or(usize::MAX))
        .sum()
}

/// The offending value as a person reads it: strings quoted as JSON.
fn shown_value(e: &ExtractionError) -> Option<String> {
    let v = e.example.as_deref()?;
    Some(match e.site.kind {
        Some("string") => serde_json::to_string(v).unwrap_or_else(|_| v.to_string()),
        _ => v.to_string(),
    })
}

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
                Part::Path(p) => p,
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
fn hint(
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
                "{shown} is not one of states: [{}]: add it to states:",
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

/// What a path finds in a body.
#[derive(Debug, PartialEq)]
enum Walked {
    /// The node `depth` steps down has no step `depth`: its type, the keys
    /// nearest the missing name (an object) or its length (an array).
    Stopped {
        depth: usize,
        kind: &'static str,
        near: Vec<String>,
        len: usize,
    },
    /// The path exists: the node's type and its first key (an object).
    Reached {
        kind: &'static str,
        first: Option<String>,
    },
}

/// Follows `steps` through `body` without keeping it (`None`: not JSON, or
/// a negative index).
fn walk(body: &[u8], steps: &[Step]) -> Option<Walked> {
    let mut de = serde_json::Deserializer::from_slice(body);
    Walk { steps, depth: 0 }.deserialize(&mut de).ok()
}

struct Walk<'s> {
    steps: &'s [Step],
    depth: usize,
}

impl Walk<'_> {
    fn scalar<E>(self, kind: &'static str) -> Result<Walked, E> {
        Ok(if self.steps.is_empty() {
            Walked::Reached { kind, first: None }
        } else {
            Walked::Stopped {
                depth: self.depth,
                kind,
                near: Vec::new(),
                len: 0,
            }
        })
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Walked;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Walked, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Walked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Walked, E> {
        self.scalar("boolean")
    }
    fn visit_i64<E>(self, _: i64) -> Result<Walked, E> {
        self.scalar("number")
    }
    fn visit_u64<E>(self, _: u64) -> Result<Walked, E> {
        self.scalar("number")
    }
    fn visit_f64<E>(self, _: f64) -> Result<Walked, E> {
        self.scalar("number")
    }
    fn visit_str<E>(self, _: &str) -> Result<Walked, E> {
        self.scalar("string")
    }
    fn visit_unit<E>(self) -> Result<Walked, E> {
        self.scalar("null")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Walked, A::Error> {
        let want = match self.steps.first() {
            None => None,
            Some(Step::Index(i)) => Some(
                usize::try_from(*i)
                    .map_err(|_| de::Error::custom("a negative index is not followed"))?,
            ),
            Some(Step::Name(_)) => Some(usize::MAX),
        };
        let mut len = 0usize;
        let mut found = None;
        loop {
            if Some(len) == want && found.is_none() {
                let seed = Walk {
                    steps: &self.steps[1..],
                    depth: self.depth + 1,
                };
                match seq.next_element_seed(seed)? {
                    Some(w) => found = Some(w),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            len += 1;
        }
        Ok(match (want, found) {
            (None, _) => Walked::Reached {
                kind: "array",
                first: None,
            },
            (_, Some(w)) => w,
            (Some(_), None) => Walked::Stopped {
                depth: self.depth,
                kind: "array",
                near: Vec::new(),
                len,
            },
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walked, A::Error> {
        let want = match self.steps.first() {
            Some(Step::Name(n)) => Some(n.as_str()),
            _ => None,
        };
        let mut first = None;
        let mut found = None;
        // The nearest keys so far, by edit distance.
        let mut near: Vec<(usize, String)> = Vec::new();
        let mut len = 0usize;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            len += 1;
            if first.is_none() {
                first = Some(super::convert::cut(&key));
            }
            match want {
                Some(w) if w == key && found.is_none() => {
                    found = Some(map.next_value_seed(Walk {
                        steps: &self.steps[1..],
                        depth: self.depth + 1,
                    })?);
                    continue;
                }
                Some(w) => {
                    let d = distance(w, &key);
                    if near.len() < NEAREST || near.last().is_some_and(|(x, _)| d < *x) {
                        let at = near.partition_point(|(x, _)| *x <= d);
                        near.insert(at, (d, super::convert::cut(&key)));
                        near.truncate(NEAREST);
                    }
                }
                None => {}
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(match (self.steps.first(), found) {
            (None, _) => Walked::Reached {
                kind: "object",
                first,
            },
            (_, Some(w)) => w,
            (Some(_), None) => Walked::Stopped {
                depth: self.depth,
                kind: "object",
                near: near.into_iter().map(|(_, k)| k).collect(),
                len,
            },
        })
    }
}

/// Edit distance (Levenshtein, by character) between `a` and `b`, each cut
/// to [`EXAMPLE_CHARS`] characters.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(EXAMPLE_CHARS).collect();
    let mut row: Vec<usize> = (0..=a.len()).collect();
    for (j, cb) in b.chars().take(EXAMPLE_CHARS).enumerate() {
        let mut diag = row[0];
        row[0] = j + 1;
        for (i, ca) in a.iter().enumerate() {
            let next = (diag + usize::from(*ca != cb))
                .min(row[i] + 1)
                .min(row[i + 1] + 1);
            diag = row[i + 1];
            row[i + 1] = next;
        }
    }
    row[a.len()]
}

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
        if let Some(each) = &info.each {
            let _ = write!(out, " each {each} matched {} node(s);", r.nodes);
        }
        for (i, (name, path)) in info.paths.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if info.paths.len() == 1 {
                let _ = write!(out, " path {path}");
            } else {
                let _ = write!(out, "{sep} {name} = {path}");
            }
        }
        if info.each.is_none() {
            let _ = write!(out, " matched {} node(s)", r.nodes);
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
    fn distance_counts_edits() {
        assert_eq!(distance("status", "status"), 0);
        assert_eq!(distance("statuss", "status"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn walk_names_the_nearest_keys_where_a_path_stops() {
        let body = br#"{"app": {"status": 1, "stats": 2, "zzz": 3, "uptime": 4}}"#;
        let steps = [Step::Name("app".into()), Step::Name("statuss".into())];
        let Some(Walked::Stopped {
            depth,
            kind,
            near,
            len,
        }) = walk(body, &steps)
        else {
            panic!("expected a stop");
        };
        assert_eq!((depth, kind, len), (1, "object", 4));
        assert_eq!(near, ["status", "stats", "uptime"]);
        let steps = [Step::Name("app".into())];
        assert_eq!(
            walk(body, &steps),
            Some(Walked::Reached {
                kind: "object",
                first: Some("status".into())
            })
        );
        let steps = [Step::Name("list".into()), Step::Index(5)];
        let body = br#"{"list": [1, 2]}"#;
        assert!(matches!(
            walk(body, &steps),
            Some(Walked::Stopped {
                depth: 1,
                kind: "array",
                len: 2,
                ..
            })
        ));
    }

    #[test]
    fn public_url_hides_query_values() {
        assert_eq!(
            public_url("http://h:1/health?token=abc&x"),
            "http://h:1/health?token=…&x"
        );
        assert_eq!(public_url("http://h:1/health"), "http://h:1/health");
    }
}
