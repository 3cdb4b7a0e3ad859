//! The host loop: one round of the host collectors and remora's own process
//! per `host.interval`, on the blocking pool, published through the loop's
//! store slot.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{CollectorReport, HostCollectors, SelfProcess};
use crate::model::Family;
use crate::store::{unix_now, CollectorState, SlotKey, SlotWriter};

/// Publishes host collector reports through the host loop's slot; logs a
/// collector only when it fails or recovers. False (nothing published) when
/// the slot no longer owns its keys.
pub(crate) fn publish(
    slot: &SlotWriter,
    reports: Vec<CollectorReport>,
    own: Option<Vec<Family>>,
) -> bool {
    let now = unix_now();
    let Some(mut inner) = slot.write() else {
        return false;
    };
    for r in reports {
        let state = inner
            .collectors
            .entry(r.collector.to_string())
            .or_insert_with(|| CollectorState {
                up: true,
                ..Default::default()
            });
        let was_up = state.up;
        state.duration = r.duration.as_secs_f64();
        for (reason, n) in r.errors.nonzero() {
            *state.errors.entry(reason.as_str()).or_default() += n;
        }
        match r.result {
            Ok(()) => {
                if !was_up {
                    tracing::info!(collector = r.collector, "collector recovered");
                }
                state.up = true;
                state.last_error = None;
                state.last_success = Some(now);
                state.families = Arc::new(r.families);
            }
            Err(e) => {
                if was_up {
                    tracing::warn!(collector = r.collector, error = %e, "collector failed");
                }
                state.up = false;
                state.last_error = Some(e.to_string());
                state.families = Arc::new(Vec::new());
            }
        }
    }
    if let Some(own) = own {
        inner.own_process = Arc::new(own);
    }
    true
}

/// One round of the host loop (collectors and remora's own process), off the async threads.
/// Gives back the collectors and the process reader (`None` if the task
/// failed) with what they read.
pub(crate) async fn round(
    host: Option<HostCollectors>,
    own: SelfProcess,
) -> (
    Option<HostCollectors>,
    Option<SelfProcess>,
    Vec<CollectorReport>,
    Option<Vec<Family>>,
) {
    let joined = tokio::task::spawn_blocking(move || {
        let (mut host, mut own) = (host, own);
        let reports = host.as_mut().map_or_else(Vec::new, HostCollectors::poll);
        let families = own.read().ok();
        (host, Some(own), reports, families)
    })
    .await;
    joined.unwrap_or_else(|e| {
        tracing::error!(error = %e, "host poll task failed");
        (None, None, Vec::new(), None)
    })
}

/// The host loop: collectors and remora's own process, one round per
/// interval. A round runs on the blocking pool and cannot be interrupted, but
/// the loop stops waiting for it at `shutdown`, and its result goes through
/// `slot`, so a round that ends after its source was stopped is dropped.
pub(crate) async fn run(
    mut host: Option<HostCollectors>,
    proc_root: PathBuf,
    interval: Duration,
    slot: SlotWriter,
    first_done: impl FnOnce(),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut first_done = Some(first_done);
    let mut own = Some(SelfProcess::new(&proc_root));
    loop {
        let reader = own.take().unwrap_or_else(|| SelfProcess::new(&proc_root));
        let (h, o, reports, families) = tokio::select! {
            round = round(host.take(), reader) => round,
            _ = shutdown.changed() => return,
        };
        (host, own) = (h, o);
        if !publish(&slot, reports, families) {
            return;
        }
        if let Some(done) = first_done.take() {
            done();
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The store keys the host loop of `host` writes.
pub(crate) fn keys(host: Option<&HostCollectors>) -> Vec<SlotKey> {
    let mut keys: Vec<SlotKey> = host
        .map_or_else(Vec::new, |h| h.collector_names())
        .into_iter()
        .map(|n| SlotKey::Collector(n.to_string()))
        .collect();
    keys.push(SlotKey::OwnProcess);
    keys
}
