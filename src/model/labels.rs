//! `global.labels`: the constant labels on every series remora serves,
//! whatever its source (JSON rules, pass-through families, host collectors,
//! remora's own instruments, the OTLP push). [`GlobalLabels`] is the one
//! place they are added: every path that writes or observes a series takes
//! its labels from it.
//!
//! They come last: a series' labels are its source's (a target's `target`
//! and `labels:`), its own, then the global ones. Where a key repeats, the
//! first one stays (the text writer and the SDK both keep the first), so a
//! label of the series or its source wins over a global one of that name.

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry::KeyValue;

/// `global.labels` of one config, shared (cloning is cheap).
#[derive(Debug, Clone, Default)]
pub struct GlobalLabels {
    labels: Arc<[KeyValue]>,
}

impl GlobalLabels {
    /// The labels of `global.labels`, in the order of their names.
    pub fn new(labels: &BTreeMap<String, String>) -> Self {
        GlobalLabels {
            labels: labels
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Every label of one series: its `source`'s, its `own`, then the
    /// global labels.
    pub fn of_series<'a>(
        &'a self,
        source: &'a [KeyValue],
        own: &'a [KeyValue],
    ) -> impl Iterator<Item = &'a KeyValue> + Clone + 'a {
        source.iter().chain(own).chain(self.labels.iter())
    }

    /// [`GlobalLabels::of_series`] into `buf` (cleared first), sorted by key
    /// (a stable sort: of one key, the first stays first), as the SDK is
    /// given them.
    pub fn sorted_into(&self, buf: &mut Vec<KeyValue>, source: &[KeyValue], own: &[KeyValue]) {
        buf.clear();
        buf.extend_from_slice(source);
        buf.extend_from_slice(own);
        self.add_sorted(buf);
    }

    /// The global labels appended to a series' `attrs`, then sorted by key
    /// (a stable sort).
    pub fn add_sorted(&self, attrs: &mut Vec<KeyValue>) {
        attrs.extend_from_slice(&self.labels);
        attrs.sort_by(|a, b| a.key.cmp(&b.key));
    }

    /// The labels a pass-through family's samples get: the `source`'s
    /// (the target's), then the global labels, as text pairs.
    pub fn of_passthrough(
        &self,
        source: impl IntoIterator<Item = (String, String)>,
    ) -> Vec<(String, String)> {
        source
            .into_iter()
            .chain(
                self.labels
                    .iter()
                    .map(|kv| (kv.key.as_str().to_string(), kv.value.as_str().into_owned())),
            )
            .collect()
    }
}
