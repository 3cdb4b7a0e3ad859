//! The table of open connections: the cap on them, and which one to close
//! to make room (the oldest that never sent a request, else the oldest
//! kept-alive one; never one with a request in flight).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// What a connection is doing, for choosing which one to shed.
pub(super) const FRESH: u8 = 0; // no request yet (TLS handshake, or waiting for headers)
pub(super) const BUSY: u8 = 1; // a request in flight
pub(super) const KEPT: u8 = 2; // answered, kept alive for the next request

/// One open connection.
pub(super) struct Slot {
    pub(super) state: AtomicU8,
    /// Set when the connection was asked to close to make room.
    evicting: AtomicBool,
    pub(super) evict: Notify,
}

/// Open connections by id (oldest first), with their tasks' abort handles.
type Open = BTreeMap<u64, (Arc<Slot>, Option<AbortHandle>)>;

/// The open connections and the cap on them.
pub(super) struct Conns {
    max: usize,
    open: Mutex<Open>,
    /// Signalled whenever a connection closes or finishes a request.
    pub(super) changed: Notify,
}

/// Removes its connection from [`Conns`] when the connection's task ends.
pub(super) struct SlotGuard {
    pub(super) conns: Arc<Conns>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.conns.lock().remove(&self.id);
        self.conns.changed.notify_one();
    }
}

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once a new connection fits under the cap. When full, asks the
    /// oldest connection that never sent a request to close (else the oldest
    /// kept-alive one between requests); when every connection has a request
    /// in flight, waits for one to close.
    pub(super) async fn make_room(&self) {
        loop {
            {
                let open = self.lock();
                if open.len() < self.max {
                    return;
                }
                let closing = open
                    .values()
                    .filter(|(s, _)| s.evicting.load(Ordering::Acquire))
                    .count();
                if open.len() - closing >= self.max {
                    let idle = |want: u8| {
                        open.values().map(|(s, _)| s).find(|s| {
                            !s.evicting.load(Ordering::Acquire)
                                && s.state.load(Ordering::Acquire) == want
                        })
                    };
                    if let Some(victim) = idle(FRESH).or_else(|| idle(KEPT)) {
                        tracing::debug!(
                            max = self.max,
                            "connection limit reached; closing the oldest idle connection"
                        );
                        victim.evicting.store(true, Ordering::Release);
                        victim.evict.notify_one();
                    } else {
                        tracing::debug!(
                            max = self.max,
                            "connection limit reached, every connection busy; the new one waits"
                        );
                    }
                }
            }
            self.changed.notified().await;
        }
    }

    pub(super) fn admit(self: &Arc<Self>, id: u64) -> (Arc<Slot>, SlotGuard) {
        let slot = Arc::new(Slot {
            state: AtomicU8::new(FRESH),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
        });
        self.lock().insert(id, (slot.clone(), None));
        let guard = SlotGuard {
            conns: self.clone(),
            id,
        };
        (slot, guard)
    }

    pub(super) fn set_abort(&self, id: u64, handle: AbortHandle) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.1 = Some(handle);
        }
    }

    /// Waits until every connection closed.
    pub(super) async fn drained(&self) {
        while !self.lock().is_empty() {
            self.changed.notified().await;
        }
    }

    pub(super) fn abort_all(&self) {
        for (_, abort) in self.lock().values() {
            if let Some(a) = abort {
                a.abort();
            }
        }
    }
}

impl Conns {
    /// An empty table for at most `max` connections.
    pub(super) fn new(max: usize) -> Self {
        Conns {
            max,
            open: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
        }
    }
}
