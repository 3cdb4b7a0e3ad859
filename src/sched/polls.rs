//! How many polls of one config run at once ([`Gate`]).
//!
//! Targets fire within a tenth of their interval of each other (the
//! poller's jitter), so with thousands of targets thousands of polls are
//! in flight together, each holding its connection, the HTTP client's
//! buffers and its request and response (about 10 KB). Once the burst is
//! over the heap keeps what it freed (glibc gives back only whole free
//! pages at the top of the heap), and that was most of an idle target's
//! cost (issue 28: 28 of 37 KiB per target at 2,000 targets). A config of
//! more than [`MAX_IN_FLIGHT`] targets therefore lets that many polls run
//! at once and queues the others, first come first served (the places are
//! the process's: while a reload runs two generations, they share them).
//!
//! What a round freed goes back to the system when the render that follows
//! it leaves nothing more to render (`exposition::render` trims the heap
//! then). The end of a burst trimmed it too until issue 28's third pass:
//! without that trim 2,000 targets took 16.1 and 17.0 KiB per idle target
//! and 41.4-42.8 MiB after 3 reloads, as with it (16.8-16.9; 41.6-45.6).
//!
//! The queue never holds a poll back more than its own timeout: a poll
//! that has waited that long runs without a place (so targets that hang
//! until their timeout delay the others by at most one timeout, and
//! nothing is lost when a whole fleet hangs). A config of at most
//! [`MAX_IN_FLIGHT`] targets has no gate: its polls run as they always did.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Polls of one config in flight at once, when it has more targets.
pub const MAX_IN_FLIGHT: usize = 128;

/// The polls of one config: a queue for a place among [`MAX_IN_FLIGHT`],
/// or nothing for a config of at most that many targets. Cloning shares
/// the places.
#[derive(Debug, Clone, Default)]
pub struct Gate(Option<Arc<Semaphore>>);

/// A place among the polls in flight, given back when dropped.
#[derive(Debug)]
pub struct Place {
    permit: Option<OwnedSemaphorePermit>,
}

impl Place {
    /// Whether the poll holds a place (false: no gate, or it waited its
    /// timeout and runs anyway).
    pub fn held(&self) -> bool {
        self.permit.is_some()
    }
}

impl Gate {
    /// The gate of a config of `targets` targets. Every config's gate
    /// shares the process's [`MAX_IN_FLIGHT`] places, so that while a
    /// reload runs two generations side by side they still poll that many
    /// at once together.
    pub fn for_targets(targets: usize) -> Self {
        static PLACES: OnceLock<Arc<Semaphore>> = OnceLock::new();
        if targets <= MAX_IN_FLIGHT {
            return Gate(None);
        }
        Gate(Some(
            PLACES
                .get_or_init(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT)))
                .clone(),
        ))
    }

    /// A gate of `places` places of its own for `targets` targets (none
    /// when they all fit).
    pub fn with_places(targets: usize, places: usize) -> Self {
        Gate((targets > places).then(|| Arc::new(Semaphore::new(places.max(1)))))
    }

    /// Waits for a place, at most `wait` (the poll's timeout); without a
    /// gate, returns at once.
    pub async fn enter(&self, wait: Duration) -> Place {
        let Some(places) = &self.0 else {
            return Place { permit: None };
        };
        let permit = tokio::time::timeout(wait, places.clone().acquire_owned()).await;
        Place {
            permit: permit.ok().and_then(Result::ok),
        }
    }

    /// Places free now (`None` without a gate).
    pub fn free(&self) -> Option<usize> {
        self.0.as_ref().map(|g| g.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_configs_have_no_gate() {
        assert_eq!(Gate::for_targets(MAX_IN_FLIGHT).free(), None);
        assert_eq!(Gate::for_targets(0).free(), None);
        let a = Gate::for_targets(MAX_IN_FLIGHT + 1);
        let b = Gate::for_targets(10 * MAX_IN_FLIGHT);
        assert!(a.free().is_some());
        // One set of places for every config (a reload's two generations).
        assert!(matches!((&a.0, &b.0), (Some(x), Some(y)) if Arc::ptr_eq(x, y)));
    }

    /// Past the places, a poll waits for one to be given back, first come
    /// first served, and at most its timeout: then it runs without one.
    #[tokio::test(start_paused = true)]
    async fn a_poll_waits_for_a_place_at_most_its_timeout() {
        let gate = Gate::with_places(3, 2);
        let timeout = Duration::from_secs(5);
        let a = gate.enter(timeout).await;
        let b = gate.enter(timeout).await;
        assert!(a.held() && b.held());
        assert_eq!(gate.free(), Some(0));
        let start = tokio::time::Instant::now();
        let c = gate.enter(timeout).await;
        assert!(!c.held());
        assert_eq!(start.elapsed(), timeout);
        let g = gate.clone();
        let waiting = tokio::spawn(async move { g.enter(timeout).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(a);
        let d = waiting.await.unwrap();
        assert!(d.held());
        drop(b);
        assert_eq!(gate.free(), Some(1));
        drop(d);
        assert_eq!(gate.free(), Some(2));
        // A poll that ran without a place gives none back.
        drop(c);
        assert_eq!(gate.free(), Some(2));
        // Without a gate nothing waits.
        let none = Gate::with_places(2, 2);
        assert!(!none.enter(Duration::ZERO).await.held());
    }
}
