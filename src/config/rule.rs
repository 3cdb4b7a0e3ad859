//! One `metrics:` rule of a JSON target: name, kind, the value paths, label
//! templates (read by [`super::template`]), scale, parser, map and optional.

use std::collections::BTreeMap;

use serde_json_path::JsonPath;

use super::aggregate::{self, Written};
use super::decode::{valid_instrument_name, valid_label_name, Ctx, MapReader};
use super::template::{parse_template, relative_path};
use super::types::{
    MetricRule, Parse, RuleKind, RuleValue, TemplatePart, ValueSource, OTHER_STATE,
};
use super::yaml::{Node, NodeKind};

const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "kind",
    "unit",
    "each",
    "path",
    "values",
    "labels",
    "scale",
    "parse",
    "map",
    "optional",
    "states",
    "aggregate",
    "count_by",
];

/// A value source: a number literal or a JSONPath.
fn value_source(ctx: &mut Ctx<'_>, node: &Node, key: &str) -> Option<ValueSource> {
    let s = ctx.nonempty_string(node, key)?;
    if let Ok(v) = s.trim().parse::<f64>() {
        return v.is_finite().then_some(ValueSource::Const(v));
    }
    let text = relative_path(&s);
    ctx.jsonpath(node, key, &text).map(ValueSource::Path)
}

pub(super) fn decode_rule(ctx: &mut Ctx<'_>, node: &Node, key: &str) -> Option<MetricRule> {
    let mut m = MapReader::new(ctx, node, key)?;
    let name = match m.get("name") {
        Some(n) => ctx.nonempty_string(n, &m.path("name")).filter(|s| {
            let ok = valid_instrument_name(s) && !s.starts_with("remora.");
            if !ok {
                ctx.err(n.mark, &m.path("name"), format!("{s:?} is not a valid instrument name (expected [a-zA-Z][a-zA-Z0-9_.]*, not starting with remora.)"));
            }
            ok
        }),
        None => {
            ctx.err(node.mark, &m.path("name"), "missing (expected an instrument name such as app.dependency.latency)");
            None
        }
    };
    // Absent means empty; a value that cannot be read has been recorded in
    // ctx and fails the load (see `Ctx`), so the empty default is never served.
    let description = m
        .get("description")
        .and_then(|n| ctx.string(n, &m.path("description")))
        .unwrap_or_default();
    let unit = m
        .get("unit")
        .and_then(|n| ctx.string(n, &m.path("unit")))
        .unwrap_or_default();
    let states_node = m.get("states");
    let states = states_node.map(|sn| decode_states(ctx, sn, &m.path("states")));
    let kind = match m.get("kind") {
        Some(n) => match ctx.string(n, &m.path("kind")).as_deref() {
            Some("gauge") | None => RuleKind::Gauge,
            Some("counter") => RuleKind::Counter,
            Some("updowncounter") => RuleKind::UpDownCounter,
            Some("info") => RuleKind::Info,
            Some("stateset") => {
                if states.is_none() {
                    ctx.err(
                        n.mark,
                        &m.path("states"),
                        "missing (a stateset expects states: [ok, degraded, ...])",
                    );
                }
                RuleKind::StateSet(states.clone().unwrap_or_default())
            }
            Some(other) => {
                ctx.err(n.mark, &m.path("kind"), format!("{other:?} is not a kind (expected gauge, counter, updowncounter, info or stateset)"));
                RuleKind::Gauge
            }
        },
        None => RuleKind::Gauge,
    };
    let count_by_node = m.get("count_by");
    if let (Some(sn), false, None) = (
        states_node,
        matches!(kind, RuleKind::StateSet(_)),
        count_by_node,
    ) {
        ctx.err(
            sn.mark,
            &m.path("states"),
            "states only apply to kind: stateset or count_by:",
        );
    }
    let (each, each_inner, list_each) = match m.get("each") {
        Some(n) => decode_each(ctx, n, &m.path("each")),
        None => (None, Vec::new(), false),
    };
    // Levels of nodes label templates may read: the document, or each
    // level of `each:`.
    let levels = 1 + each_inner.len();
    let mut values = Vec::new();
    let path_node = m.get("path");
    let values_node = m.get("values");
    match (path_node, values_node) {
        (Some(_), Some(vn)) => ctx.err(
            vn.mark,
            &m.path("values"),
            "path and values both set (expected one of them)",
        ),
        (Some(pn), None) => {
            if let (Some(src), Some(name)) = (value_source(ctx, pn, &m.path("path")), &name) {
                values.push(RuleValue {
                    name: name.clone(),
                    source: src,
                });
            }
        }
        (None, Some(vn)) => {
            let vkey = m.path("values");
            if let Some(mut vm) = MapReader::new(ctx, vn, &vkey) {
                let entries = vm.take_all();
                if entries.is_empty() {
                    ctx.err(
                        vn.mark,
                        &vkey,
                        "is empty (expected at least one NAME: PATH)",
                    );
                }
                for ((k, kmark), v) in entries {
                    let path = format!("{vkey}.{k}");
                    if k.is_empty()
                        || !k
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                    {
                        ctx.err(
                            *kmark,
                            &path,
                            "not a valid name suffix (expected [a-zA-Z0-9_.]+)",
                        );
                        continue;
                    }
                    if let (Some(src), Some(name)) = (value_source(ctx, v, &path), &name) {
                        values.push(RuleValue {
                            name: format!("{name}.{k}"),
                            source: src,
                        });
                    }
                }
            }
        }
        (None, None) => {
            // A count without a path counts the `each` nodes (the
            // aggregation's check wants each: then).
            let counts = count_by_node.is_some()
                || m.get("aggregate")
                    .is_some_and(|n| n.scalar_text() == Some("count"));
            if kind == RuleKind::Info || counts {
                if let Some(name) = &name {
                    values.push(RuleValue {
                        name: name.clone(),
                        source: ValueSource::Const(1.0),
                    });
                }
            } else {
                ctx.err(
                    node.mark,
                    &m.path("path"),
                    "missing (expected path: a JSONPath or a number, or values:)",
                );
            }
        }
    }
    if let RuleKind::StateSet(_) = kind {
        if values
            .iter()
            .any(|v| matches!(v.source, ValueSource::Const(_)))
            || values.len() > 1
        {
            ctx.err(
                node.mark,
                &m.path("path"),
                "a stateset reads one JSONPath (expected path: to the state string)",
            );
        }
    }
    let mut labels = Vec::new();
    let mut label_marks = Vec::new();
    if let Some(n) = m.get("labels") {
        let lkey = m.path("labels");
        for (k, v, mark) in ctx.string_map(n, &lkey) {
            let path = format!("{lkey}.{k}");
            if !valid_label_name(&k) || k.starts_with("__") {
                ctx.err(mark, &path, format!("{k:?} is not a valid label name (expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"));
                continue;
            }
            if k == "target" || (k == "state" && matches!(kind, RuleKind::StateSet(_))) {
                ctx.err(
                    mark,
                    &path,
                    format!("label {k:?} is set by remora (expected another name)"),
                );
                continue;
            }
            match parse_template(&v) {
                Ok(t) => {
                    if each.is_none() && t.parts.iter().any(|p| matches!(p, TemplatePart::Key)) {
                        ctx.err(
                            mark,
                            &path,
                            "{@key} needs each: (expected an each: JSONPath on this rule)",
                        );
                    }
                    if let Some(n) = t.parts.iter().map(TemplatePart::levels_out).max() {
                        if n > 0 && !list_each {
                            ctx.err(mark, &path, format!("{v:?} reads {n} level(s) out: that needs each: as a list of levels (expected each: ['$.outer.*', '$.inner.*'])"));
                        } else if n >= levels {
                            ctx.err(mark, &path, format!("{v:?} reads {n} level(s) out, beyond the {levels} level(s) of each: (expected N below {levels})"));
                        }
                    }
                    labels.push((k, t));
                    label_marks.push(mark);
                }
                Err(e) => ctx.err(mark, &path, e.to_string()),
            }
        }
    }
    let scale = m.get("scale").and_then(|n| ctx.number(n, &m.path("scale")));
    let parse = match m.get("parse") {
        Some(n) => match ctx.string(n, &m.path("parse")).as_deref() {
            Some("auto") | None => Parse::Auto,
            Some("duration") => Parse::Duration,
            Some("timestamp") => Parse::Timestamp,
            Some("bytes") => Parse::Bytes,
            Some("percent") => Parse::Percent,
            Some("age") => Parse::Age,
            Some(other) => {
                ctx.err(n.mark, &m.path("parse"), format!("{other:?} is not a parser (expected auto, duration, timestamp, age, bytes or percent)"));
                Parse::Auto
            }
        },
        None => Parse::Auto,
    };
    let mut map = BTreeMap::new();
    if let Some(n) = m.get("map") {
        let mkey = m.path("map");
        if let Some(mut mm) = MapReader::new(ctx, n, &mkey) {
            for ((k, _), v) in mm.take_all() {
                if let Some(num) = ctx.number(v, &format!("{mkey}.{k}")) {
                    map.insert(k.clone(), num);
                }
            }
        }
    }
    let optional = m
        .get("optional")
        .and_then(|n| ctx.boolean(n, &m.path("optional")))
        .unwrap_or(false);
    let written = Written {
        node,
        aggregate: m.get("aggregate"),
        count_by: count_by_node,
        states,
        path: path_node,
        values: values_node,
        scale: m.get("scale"),
        parse: m.get("parse"),
        map: m.get("map"),
    };
    let aggregate = aggregate::decode(
        ctx,
        &m,
        &written,
        &kind,
        each.is_some(),
        (&labels, &label_marks),
    );
    m.finish(ctx, RULE_KEYS);
    let name = name?;
    // Kept for the config's life: most rules have one value, not four slots.
    values.shrink_to_fit();
    Some(MetricRule {
        description: if description.is_empty() {
            format!("{name} (extracted by remora)")
        } else {
            description
        },
        name,
        kind,
        unit,
        each,
        each_inner,
        values,
        labels,
        scale,
        parse,
        map,
        optional,
        aggregate,
    })
}

/// `each:`: one JSONPath, or a list of them (levels, each evaluated from
/// the nodes of the level before). Returns the first level, the further
/// ones, and whether it was written as a list.
fn decode_each(
    ctx: &mut Ctx<'_>,
    node: &Node,
    key: &str,
) -> (Option<JsonPath>, Vec<JsonPath>, bool) {
    let NodeKind::Seq(items) = &node.kind else {
        let each = ctx
            .nonempty_string(node, key)
            .and_then(|s| ctx.jsonpath(node, key, &relative_path(&s)));
        return (each, Vec::new(), false);
    };
    if items.is_empty() {
        ctx.err(
            node.mark,
            key,
            "is an empty list (expected a JSONPath, or a list of JSONPaths: one per level)",
        );
        return (None, Vec::new(), true);
    }
    let mut levels = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ikey = format!("{key}[{i}]");
        if let Some(p) = ctx
            .nonempty_string(item, &ikey)
            .and_then(|s| ctx.jsonpath(item, &ikey, &relative_path(&s)))
        {
            levels.push(p);
        }
    }
    if levels.len() < items.len() {
        // An error was recorded: the load fails.
        return (None, Vec::new(), true);
    }
    let mut levels = levels.into_iter();
    let first = levels.next();
    (first, levels.collect(), true)
}

/// `states:`: a non-empty list of distinct names, none of them `other`.
fn decode_states(ctx: &mut Ctx<'_>, sn: &Node, skey: &str) -> Vec<String> {
    let mut states = Vec::new();
    for (i, s) in ctx.seq(sn, skey).iter().enumerate() {
        if let Some(s) = ctx.nonempty_string(s, &format!("{skey}[{i}]")) {
            if states.contains(&s) {
                ctx.err(sn.mark, skey, format!("state {s:?} is listed twice"));
            }
            if s == OTHER_STATE {
                ctx.err(sn.mark, &format!("{skey}[{i}]"), "\"other\" is the state remora serves for a value outside states (expected another name)");
            }
            states.push(s);
        }
    }
    if states.is_empty() {
        ctx.err(sn.mark, skey, "is empty (expected the list of states)");
    }
    states
}
