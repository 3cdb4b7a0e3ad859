//! The running sources of one config (target pollers and the host loop): a
//! task and a store [`Slot`] each, started together and stopped together
//! under one deadline.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::build::{poll_context, Prepared};
use crate::host::{self, Roots};
use crate::readiness::Readiness;
use crate::store::{Slot, SlotKey, Store};
use crate::targets::poller;

/// The running sources of one config: each is a task and the [`Slot`] that
/// owns its part of the store. Dropping `Sources` aborts every task and frees
/// every slot; [`Sources::stop`] does it in order, under one deadline.
pub(crate) struct Sources {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    slots: Vec<Slot>,
}

impl Sources {
    pub(crate) fn new() -> Self {
        Sources {
            stop: watch::channel(false).0,
            tasks: JoinSet::new(),
            slots: Vec::new(),
        }
    }

    /// Claims every source's slot (a source kept across a reload takes its
    /// state over from the old one) and starts its task.
    pub(crate) fn launch(
        p: Prepared,
        roots: &Roots,
        store: &Arc<Store>,
        ready: &Arc<Readiness>,
    ) -> Self {
        let mut sources = Sources::new();
        let ctx = poll_context(&p);
        let round = ready.arm(p.pollers.len() + 1);
        for poller in p.pollers {
            let slot = store.claim(vec![SlotKey::Target(poller.target.name.clone())]);
            let (writer, ready, rx, ctx) = (
                slot.writer(),
                ready.clone(),
                sources.stop.subscribe(),
                ctx.clone(),
            );
            sources.spawn(
                slot,
                poller::run(poller, ctx, writer, move || ready.one_done(round), rx),
            );
        }
        let slot = store.claim(host::runner::keys(p.host.as_ref()));
        let (writer, ready, rx) = (slot.writer(), ready.clone(), sources.stop.subscribe());
        sources.spawn(
            slot,
            host::runner::run(
                p.host,
                roots.proc.clone(),
                p.config.host.interval,
                writer,
                move || ready.one_done(round),
                rx,
            ),
        );
        sources
    }

    pub(crate) fn spawn(&mut self, slot: Slot, task: impl Future<Output = ()> + Send + 'static) {
        self.slots.push(slot);
        self.tasks.spawn(task);
    }

    /// Stops every source: their slots are freed first (what a removed source
    /// held is gone from the next scrape, and nothing a stopped source still
    /// does can be published), then all are told to stop at once and joined
    /// until `deadline`; those still running then are aborted. Returns how
    /// many were aborted.
    pub(crate) async fn stop(self, deadline: tokio::time::Instant) -> usize {
        let Sources {
            stop,
            mut tasks,
            slots,
        } = self;
        drop(slots);
        let _ = stop.send(true);
        let all = async { while tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout_at(deadline, all).await;
        let left = tasks.len();
        if left > 0 {
            tracing::warn!(sources = left, "sources did not stop in time; aborted");
            tasks.abort_all();
        }
        left
    }
}
