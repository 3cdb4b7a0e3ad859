//! A rule's `aggregate:` (`count`, `sum`, `min`, `max`) and `count_by:`,
//! linted against the rest of the rule: an aggregation makes one series (or
//! one per counted value), so its labels are constant except the counted
//! one, it reads one JSONPath (or none, to count the `each` nodes), and it
//! is a number, not a state set nor an info series.

use super::decode::{Ctx, MapReader};
use super::types::{Aggregate, RuleKind, Template};
use super::yaml::{Mark, Node};

/// The keys of a rule the aggregation is checked against, as written.
pub(super) struct Written<'n> {
    /// The rule itself (for a problem with no key of its own).
    pub(super) node: &'n Node,
    pub(super) aggregate: Option<&'n Node>,
    pub(super) count_by: Option<&'n Node>,
    /// `states:` as read.
    pub(super) states: Option<Vec<String>>,
    pub(super) path: Option<&'n Node>,
    pub(super) values: Option<&'n Node>,
    pub(super) scale: Option<&'n Node>,
    pub(super) parse: Option<&'n Node>,
    pub(super) map: Option<&'n Node>,
}

/// Reads and checks `aggregate:` and `count_by:`; `None` when neither is
/// set (or after recording a problem, which fails the load).
pub(super) fn decode(
    ctx: &mut Ctx<'_>,
    m: &MapReader<'_>,
    w: &Written<'_>,
    kind: &RuleKind,
    has_each: bool,
    (labels, marks): (&[(String, Template)], &[Mark]),
) -> Option<Aggregate> {
    let errors = ctx.errors.len();
    let mut agg = match w.aggregate {
        None => None,
        Some(n) => match ctx.string(n, &m.path("aggregate")).as_deref() {
            Some("count") => Some(Aggregate::Count),
            Some("sum") => Some(Aggregate::Sum),
            Some("min") => Some(Aggregate::Min),
            Some("max") => Some(Aggregate::Max),
            Some(other) => {
                ctx.err(
                    n.mark,
                    &m.path("aggregate"),
                    format!("{other:?} is not an aggregation (expected count, sum, min or max; count_by: LABEL counts per value)"),
                );
                None
            }
            None => None,
        },
    };
    // Where to point at: the aggregation's own key.
    let (at, key) = match (w.count_by, w.aggregate) {
        (Some(n), _) => (n.mark, m.path("count_by")),
        (None, Some(n)) => (n.mark, m.path("aggregate")),
        (None, None) => return None,
    };
    let mut counted = None;
    if let Some(n) = w.count_by {
        let ckey = m.path("count_by");
        if let Some(name) = ctx.nonempty_string(n, &ckey) {
            match labels.iter().position(|(k, _)| *k == name) {
                Some(i) => counted = Some(i),
                None => {
                    let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
                    ctx.err(
                        n.mark,
                        &ckey,
                        format!("{name:?} is not one of the rule's labels (expected one of [{}]; its template says what to count by, e.g. labels: {{{name}: \"{{$.status}}\"}})", names.join(", ")),
                    );
                }
            }
        }
        match &agg {
            None | Some(Aggregate::Count) => {}
            Some(other) => {
                let n = w.aggregate.unwrap_or(n);
                ctx.err(
                    n.mark,
                    &m.path("aggregate"),
                    format!("count_by: counts nodes per value: it takes no aggregate: {} (expected aggregate: count or none)", other.as_str()),
                );
            }
        }
        if !has_each {
            ctx.err(
                n.mark,
                &ckey,
                "needs each: (expected the nodes to count, e.g. each: $.checks[*])",
            );
        }
        if let Some(p) = w.path {
            ctx.err(p.mark, &m.path("path"), "count_by: counts the each nodes: it reads no path (its label's template reads the node)");
        }
        agg = counted.map(|label| Aggregate::CountBy {
            label,
            states: w.states.clone().unwrap_or_default(),
        });
    }
    match kind {
        RuleKind::StateSet(_) | RuleKind::Info => ctx.err(
            at,
            &key,
            "an aggregation is a number: it takes kind: gauge, counter or updowncounter (use count_by: with states: to count nodes per state)",
        ),
        _ => {}
    }
    if let Some(v) = w.values {
        ctx.err(
            v.mark,
            &m.path("values"),
            "an aggregation reads one path (expected path:, not values:)",
        );
    }
    let counts =
        matches!(agg, Some(Aggregate::Count | Aggregate::CountBy { .. })) || w.count_by.is_some();
    if counts {
        for (name, n) in [("scale", w.scale), ("parse", w.parse), ("map", w.map)] {
            if let Some(n) = n {
                ctx.err(
                    n.mark,
                    &m.path(name),
                    "a count reads no value (expected no parse:, scale: or map: on a count)",
                );
            }
        }
        if w.count_by.is_none() && !has_each && w.path.is_none() {
            ctx.err(
                w.node.mark,
                &key,
                "count needs each: or path: (expected the nodes to count)",
            );
        }
    } else if let Some(p) = w.path {
        if p.scalar_text()
            .is_some_and(|t| t.trim().parse::<f64>().is_ok())
        {
            ctx.err(
                p.mark,
                &m.path("path"),
                "an aggregation reads a JSONPath, not a number",
            );
        }
    }
    // One series: every label constant, but the counted one (unless the
    // counted one is unknown: that was said).
    let labels = if w.count_by.is_some() && counted.is_none() {
        &[][..]
    } else {
        labels
    };
    for (i, (name, t)) in labels.iter().enumerate() {
        if Some(i) == counted || !t.parts.iter().any(|p| p.reads_node()) {
            continue;
        }
        let why = match counted {
            Some(_) => "only the count_by label may read the nodes",
            None => "an aggregation makes one series: its labels are constant (count_by: LABEL counts per value of a label)",
        };
        let mark = marks.get(i).copied().unwrap_or(at);
        ctx.err(
            mark,
            &format!("{}.{name}", m.path("labels")),
            format!("{:?} reads the node: {why}", t.source),
        );
    }
    (ctx.errors.len() == errors).then_some(agg).flatten()
}
