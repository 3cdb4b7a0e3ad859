//! The readiness latch behind `/-/ready` (the same idea as linkerd's admin
//! server): it is set once every source of the current config attempted its
//! first poll, and never unset. A reload arms a new round; sources it stopped
//! never count. Written by the sources (one call each at the end of their
//! first poll), read by the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The readiness latch: set once the first poll round was attempted, never unset.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    /// The current round and how many of its sources have not finished their
    /// first poll. A reload starts a new round: sources it stopped never count.
    round: Mutex<(u64, usize)>,
}

impl Readiness {
    /// Starts a round of `sources` first polls; returns its id.
    pub(crate) fn arm(&self, sources: usize) -> u64 {
        let mut round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        *round = (round.0 + 1, sources);
        if sources == 0 {
            self.ready.store(true, Ordering::Release);
        }
        round.0
    }

    pub(crate) fn one_done(&self, id: u64) {
        let mut round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        if round.0 != id || round.1 == 0 {
            return;
        }
        round.1 -= 1;
        if round.1 == 0 {
            // Each source's first poll ran at once, all together: what their
            // connections and bodies took at that peak goes back to the system.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                drop(rt.spawn_blocking(crate::memory::trim));
            }
            if !self.ready.swap(true, Ordering::AcqRel) {
                tracing::info!("first poll round done; ready");
            }
        }
    }

    /// Whether the first round ended.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload before the first round ended starts a new round: the
    /// sources it stopped never count, the new ones do.
    #[test]
    fn readiness_counts_the_current_round_only() {
        let r = Readiness::default();
        let first = r.arm(2);
        r.one_done(first);
        let second = r.arm(1);
        r.one_done(first);
        assert!(!r.is_ready());
        r.one_done(second);
        assert!(r.is_ready());
        r.arm(3);
        assert!(r.is_ready(), "the latch is never unset");
    }
}
