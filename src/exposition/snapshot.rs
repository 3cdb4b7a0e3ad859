//! One snapshot of the store per render: every source's families with its
//! labels, the pass-through families, and the series of remora's own
//! instruments, taken under one read lock of the store. A render writes
//! everything it serves from it; it never reads the store again, so what it
//! serves is the store at one instant.
//!
//! The snapshot shares the store's families (it clones `Arc`s, no series);
//! only the own instruments' series (a few per target and collector) are
//! read into it.

use std::sync::Arc;

use opentelemetry::KeyValue;

use super::own::OwnReader;
use crate::model::labels::GlobalLabels;
use crate::model::passthrough::PromFamily;
use crate::model::Family;
use crate::store::{Inner, Store};

/// One source's labels (on every series of its families) and families.
pub(super) type Source<'a> = (&'a [KeyValue], &'a [Family]);
/// A [`Source`] as the store shares it.
pub(super) type SharedSource = (Arc<[KeyValue]>, Arc<Vec<Family>>);

/// One target's pass-through families, as the store shares them.
type SharedPassthrough = Arc<Vec<PromFamily>>;

/// Per own instrument (in the order of `own::own_instruments`), its series:
/// value and attributes, the global labels added, sorted by key.
pub(super) type OwnSeries = Vec<Vec<(f64, Vec<KeyValue>)>>;

/// Every source of `inner`, in the order they are written: targets (by
/// name), host collectors (by name), remora's own process.
pub(super) fn sources(
    inner: &Inner,
) -> impl Iterator<Item = (&Arc<[KeyValue]>, &Arc<Vec<Family>>)> {
    static NONE: std::sync::LazyLock<Arc<[KeyValue]>> = std::sync::LazyLock::new(Arc::default);
    inner
        .targets
        .values()
        .map(|t| (&t.labels, &t.families))
        .chain(inner.collectors.values().map(|c| (&*NONE, &c.families)))
        .chain(std::iter::once((&*NONE, &inner.own_process)))
}

/// The series of each own instrument `readers` reads from `inner`.
pub(super) fn own_series(inner: &Inner, readers: &[OwnReader], global: &GlobalLabels) -> OwnSeries {
    readers
        .iter()
        .map(|read| {
            let mut series = Vec::new();
            read(inner, &mut |v, mut attrs| {
                global.add_sorted(&mut attrs);
                series.push((v, attrs));
            });
            series
        })
        .collect()
}

/// What one render reads of the store.
#[derive(Debug)]
pub(super) struct Snapshot {
    /// Every source, as [`sources`] orders them.
    pub(super) sources: Vec<SharedSource>,
    /// The pass-through families of each `format: prometheus` target (by name).
    pub(super) passthrough: Vec<SharedPassthrough>,
    /// remora's own instruments' series.
    pub(super) own: OwnSeries,
}

impl Snapshot {
    /// Takes the snapshot under one read lock of `store`.
    pub(super) fn take(store: &Store, readers: &[OwnReader], global: &GlobalLabels) -> Self {
        let inner = store.read();
        Snapshot {
            sources: sources(&inner)
                .map(|(l, f)| (l.clone(), f.clone()))
                .collect(),
            passthrough: inner
                .targets
                .values()
                .filter_map(|t| t.passthrough.clone())
                .collect(),
            own: own_series(&inner, readers, global),
        }
    }

    /// The pass-through families, target by target.
    pub(super) fn passthrough(&self) -> impl Iterator<Item = &[PromFamily]> {
        self.passthrough.iter().map(|f| f.as_slice())
    }
}
