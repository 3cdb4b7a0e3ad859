//! Pass-through families: what a `format: prometheus` target publishes (its
//! families, relabelled) and the names remora serves itself, with the rule
//! for which sample names a family claims. Shared by the poller (which
//! relabels) and the exposition (which merges).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// A family's type, as in `# TYPE`. Two families agree only when their
/// types are equal: `untyped` and `gauge` are different types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl Kind {
    /// The type named in a `# TYPE` line.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            "untyped" => Kind::Untyped,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
            Kind::Untyped => "untyped",
        }
    }

    /// Suffixes of the sample names a family of this type uses besides its own name.
    pub(crate) fn suffixes(self) -> &'static [&'static str] {
        match self {
            Kind::Histogram => &["_bucket", "_sum", "_count"],
            Kind::Summary => &["_sum", "_count"],
            _ => &[],
        }
    }
}

/// A family remora's own pipeline serves: its type and HELP text.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub kind: Kind,
    pub help: String,
}

/// Every family name remora's pipeline serves (its own instruments, the host
/// collectors', the JSON rules', `target_info`).
pub type ServedNames = BTreeMap<String, Served>;

/// One passed-through family.
#[derive(Debug, Clone, PartialEq)]
pub struct PromFamily {
    pub name: String,
    /// HELP text, unescaped.
    pub help: Option<String>,
    pub kind: Kind,
    /// Sample lines, relabelled, each ending in `\n`.
    pub samples: String,
    /// What the app's OpenMetrics body said of it beyond text 0.0.4 (`None`
    /// for a text 0.0.4 body), for remora's OpenMetrics output.
    pub openmetrics: Option<OmFacts>,
}

/// A pass-through family's OpenMetrics type beyond text 0.0.4's and its
/// `# UNIT`, as the app's OpenMetrics body declared them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OmFacts {
    /// `info` (served in 0.0.4 as the gauge `NAME_info`).
    pub info: bool,
    /// `stateset` (served in 0.0.4 as a gauge).
    pub stateset: bool,
    /// The `# UNIT` word.
    pub unit: Option<String>,
}

/// Where a family goes beside the families already placed.
#[derive(Debug, PartialEq)]
pub(crate) enum Fit {
    /// No name in common: a family of its own.
    New,
    /// Same name and type as a placed family: one family.
    Merge,
    /// Another type under the same name, or a sample name in common.
    Collides(String),
}

/// Sample names owned by the families placed so far.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    owner: HashMap<String, (String, Kind)>,
}

pub(crate) fn sample_names(name: &str, kind: Kind) -> impl Iterator<Item = Cow<'_, str>> {
    std::iter::once(Cow::Borrowed(name)).chain(
        kind.suffixes()
            .iter()
            .map(move |s| Cow::Owned(format!("{name}{s}"))),
    )
}

impl Claims {
    pub(crate) fn fit(&self, name: &str, kind: Kind) -> Fit {
        if let Some((family, k)) = self.owner.get(name) {
            if family == name && *k == kind {
                return Fit::Merge;
            }
        }
        for s in sample_names(name, kind) {
            if let Some((family, _)) = self.owner.get(s.as_ref()) {
                return Fit::Collides(family.clone());
            }
        }
        Fit::New
    }

    pub(crate) fn add(&mut self, name: &str, kind: Kind) {
        for s in sample_names(name, kind) {
            self.owner
                .entry(s.into_owned())
                .or_insert_with(|| (name.to_string(), kind));
        }
    }

    pub(crate) fn of_served(served: &ServedNames) -> Self {
        let mut claims = Claims::default();
        for (name, s) in served {
            claims.add(name, s.kind);
        }
        claims
    }
}

/// HELP text escaped for the text format.
pub(crate) fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}
