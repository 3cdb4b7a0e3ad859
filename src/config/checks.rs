//! Checks across keys and targets that no single section can make: one
//! instrument name means one kind and unit in every target; and where each
//! rule's name is written, for the checks made after loading.

use std::collections::BTreeMap;

use super::decode::{node_of, Ctx};
use super::types::{Located, RuleKind, Target};
use super::yaml::{Mark, Node, NodeKind};

/// Labels remora sets itself, and `le` and `quantile`, which a
/// pass-through histogram or summary needs as the app wrote them.
pub(super) const RESERVED_LABELS: [&str; 5] = ["target", "state", "process_name", "le", "quantile"];

/// Where `targets[i].metrics[j].name` is written, for errors found after
/// loading (a served name taken by remora, checked where the names are known).
pub(super) fn rule_name_positions(targets: Option<&Node>) -> BTreeMap<(usize, usize), Located> {
    fn items(node: Option<&Node>) -> &[Node] {
        match node.map(|n| &n.kind) {
            Some(NodeKind::Seq(items)) => items,
            _ => &[],
        }
    }
    let mut out = BTreeMap::new();
    for (ti, t) in items(targets).iter().enumerate() {
        for (ri, r) in items(node_of(t, "metrics")).iter().enumerate() {
            if let Some(name) = node_of(r, "name") {
                out.insert(
                    (ti, ri),
                    Located {
                        mark: name.mark,
                        key: format!("targets[{ti}].metrics[{ri}].name"),
                    },
                );
            }
        }
    }
    out
}

/// Where `targets[i].url` is written, by target index.
pub(super) fn target_url_positions(targets: Option<&Node>) -> Vec<Located> {
    let items: &[Node] = match targets.map(|n| &n.kind) {
        Some(NodeKind::Seq(items)) => items,
        _ => &[],
    };
    items
        .iter()
        .enumerate()
        .map(|(i, t)| Located {
            mark: node_of(t, "url").map_or(t.mark, |n| n.mark),
            key: format!("targets[{i}].url"),
        })
        .collect()
}

/// The same instrument name in two targets must mean the same instrument;
/// a conflict is reported at the `targets:` list (`targets_mark`).
pub(super) fn check_instrument_conflicts(
    ctx: &mut Ctx<'_>,
    targets_mark: Mark,
    targets: &[std::sync::Arc<Target>],
) {
    let mut seen: BTreeMap<&str, (&RuleKind, &str, &str)> = BTreeMap::new();
    for t in targets {
        for rule in &t.metrics {
            for v in &rule.values {
                if let Some((kind, unit, target)) = seen.get(v.name.as_str()) {
                    if std::mem::discriminant(*kind) != std::mem::discriminant(&rule.kind)
                        || *unit != rule.unit
                    {
                        ctx.err(targets_mark, &format!("targets.{}.metrics.{}", t.name, rule.name), format!(
                            "instrument {:?} is also defined by target {target:?} with another kind or unit (expected the same kind and unit, or another name)",
                            v.name
                        ));
                    }
                } else {
                    seen.insert(&v.name, (&rule.kind, &rule.unit, &t.name));
                }
            }
        }
    }
}
