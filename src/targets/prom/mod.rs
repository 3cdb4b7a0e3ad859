//! `format: prometheus` targets: the app's own `/metrics`, served in remora's
//! response with the target's and the global constant labels added. An app
//! answering OpenMetrics (remora asks for it first, as Prometheus 2.x does)
//! is read by `openmetrics` into the text 0.0.4 checked below.
//!
//! The text is checked line by line; anything malformed or ambiguous rejects
//! the whole body (the target goes down), so an app never breaks remora's
//! response:
//!
//! - label values may only use the escapes `\\`, `\"` and `\n`; a label name
//!   appears once per sample and is never `__name__`;
//! - a `# TYPE` line comes once per family and before its samples;
//! - a histogram's samples are `_bucket` (with a float `le`), `_sum` and
//!   `_count`; a summary's are the bare name (with a float `quantile`), `_sum`
//!   and `_count`;
//! - no two families of one body claim the same sample name (a histogram
//!   `foo` claims `foo`, `foo_bucket`, `foo_sum` and `foo_count`).
//!
//! What is unambiguous is normalised instead: a family split in several
//! blocks is served as one block, HELP text is re-escaped (an unknown escape
//! is kept as a literal backslash), values and timestamps are re-written in
//! a form every parser reads.
//!
//! An app label whose name remora adds is renamed `exported_<name>`, the
//! prefix repeated while the name is taken (Prometheus's `honor_labels:
//! false`), at most [`MAX_EXPORTED_PREFIXES`] times: a sample whose label
//! would need more (remora's own output scraped back through remora) is
//! dropped and counted as `exported_prefix_depth` in
//! `remora_extraction_errors_total`.
//!
//! Every family name appears once in the response (see `exposition`'s encoding). A
//! pass-through family whose name remora serves itself (its own instruments,
//! a host collector's, a JSON rule's, `target_info`) is merged into that
//! family when the types are the same, and dropped (counted as
//! `name_collision`) when they are not, or when one family claims a sample
//! name of the other.

mod openmetrics;
mod parse;
mod relabel;
#[cfg(test)]
mod tests;

pub use crate::model::passthrough::{Kind, OmFacts, PromFamily, Served, ServedNames};
pub use openmetrics::{is_openmetrics, ACCEPT};
pub use relabel::{relabel, RelabelError, Relabeled, MAX_EXPORTED_PREFIXES};

/// [`relabel`] for an OpenMetrics body: read as the text 0.0.4 Prometheus
/// would store (see `openmetrics`), then relabelled as any other; each
/// family keeps what the body said of it beyond 0.0.4 (`info`, `stateset`,
/// `# UNIT`) for remora's OpenMetrics output.
pub fn relabel_openmetrics(
    text: &str,
    labels: &[(String, String)],
    served: &ServedNames,
    max_series: usize,
) -> Result<Relabeled, RelabelError> {
    let (text, mut facts) = openmetrics::to_text_004(text)?;
    let mut r = relabel(&text, labels, served, max_series)?;
    for f in &mut r.families {
        f.openmetrics = facts.remove(&f.name);
    }
    Ok(r)
}
