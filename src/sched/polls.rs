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
//! When the last poll holding or waiting for a place is done, the burst is
//! over: the heap is trimmed then (`crate::memory::trim`, on the blocking
//! pool, at most every [`TRIM_GAP`]), so what the burst freed goes back to
//! the system while the targets are idle.
//!
//! The queue never holds a poll back more than its own timeout: a poll
//! that has waited that long runs without a place (so targets that hang
//! until their timeout delay the others by at most one timeout, and
//! nothing is lost when a whole fleet hangs). A config of at most
//! [`MAX_IN_FLIGHT`] targets has no gate: its polls run as they always did.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Polls of one config in flight at once, when it has more targets.
pub const MAX_IN_FLIGHT: usize = 128;

/// The least time between two trims at the end of a burst.
pub const TRIM_GAP: Duration = Duration::from_secs(5);

/// The places, and the polls that hold or wait for one.
#[derive(Debug)]
struct Places {
    places: Arc<Semaphore>,
    /// Polls holding or waiting for a place.
    busy: AtomicUsize,
    /// When the heap was last trimmed at the end of a burst.
    trimmed: Mutex<Option<tokio::time::Instant>>,
    /// Trims started.
    trims: AtomicUsize,
    /// What trims the heap at the end of a burst (`crate::memory::trim`;
    /// none for a gate of its own).
    trim: Option<fn()>,
}

/// The polls of one config: a queue for a place among [`MAX_IN_FLIGHT`],
/// or nothing for a config of at most that many targets. Cloning shares
/// the places.
#[derive(Debug, Clone, Default)]
pub struct Gate(Option<Arc<Places>>);

/// A place among the polls in flight, given back when dropped; the last
/// poll of a burst to drop its place trims the heap (at most every
/// [`TRIM_GAP`]).
#[derive(Debug)]
pub struct Place {
    permit: Option<OwnedSemaphorePermit>,
    gate: Option<Arc<Places>>,
}

impl Place {
    /// Whether the poll holds a place (false: no gate, or it waited its
    /// timeout and runs anyway).
    pub fn held(&self) -> bool {
        self.permit.is_some()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        drop(self.permit.take());
        let Some(gate) = self.gate.take() else {
            return;
        };
        if gate.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            gate.burst_over();
        }
    }
}

impl Places {
    fn new(places: usize, trim: Option<fn()>) -> Self {
        Places {
            places: Arc::new(Semaphore::new(places.max(1))),
            busy: AtomicUsize::new(0),
            trimmed: Mutex::new(None),
            trims: AtomicUsize::new(0),
            trim,
        }
    }

    /// No poll holds or waits for a place: what the burst freed goes back
    /// to the system (`crate::memory::trim`, on the blocking pool), unless
    /// the last trim was less than [`TRIM_GAP`] ago.
    fn burst_over(&self) {
        let Some(trim) = self.trim else { return };
        let now = tokio::time::Instant::now();
        {
            let mut last = self.trimmed.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| now.duration_since(t) < TRIM_GAP) {
                return;
            }
            *last = Some(now);
        }
        self.trims.fetch_add(1, Ordering::AcqRel);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            drop(rt.spawn_blocking(trim));
        }
    }
}

impl Gate {
    /// The gate of a config of `targets` targets. Every config's gate
    /// shares the process's [`MAX_IN_FLIGHT`] places, so that while a
    /// reload runs two generations side by side they still poll that many
    /// at once together.
    pub fn for_targets(targets: usize) -> Self {
        static PLACES: OnceLock<Arc<Places>> = OnceLock::new();
        if targets <= MAX_IN_FLIGHT {
            return Gate(None);
        }
        Gate(Some(
            PLACES
                .get_or_init(|| Arc::new(Places::new(MAX_IN_FLIGHT, Some(crate::memory::trim))))
                .clone(),
        ))
    }

    /// A gate of `places` places of its own for `targets` targets (none
    /// when they all fit), which never trims.
    pub fn with_places(targets: usize, places: usize) -> Self {
        Gate((targets > places).then(|| Arc::new(Places::new(places, None))))
    }

    /// A gate of `places` places of its own that calls `trim` (on the
    /// blocking pool) at the end of each burst, at most every [`TRIM_GAP`].
    pub fn with_trim(places: usize, trim: fn()) -> Self {
        Gate(Some(Arc::new(Places::new(places, Some(trim)))))
    }

    /// Waits for a place, at most `wait` (the poll's timeout); without a
    /// gate, returns at once.
    pub async fn enter(&self, wait: Duration) -> Place {
        let Some(gate) = &self.0 else {
            return Place {
                permit: None,
                gate: None,
            };
        };
        gate.busy.fetch_add(1, Ordering::AcqRel);
        // Counted out when the place is dropped, also when this future is.
        let mut place = Place {
            permit: None,
            gate: Some(gate.clone()),
        };
        if let Ok(Ok(permit)) =
            tokio::time::timeout(wait, gate.places.clone().acquire_owned()).await
        {
            place.permit = Some(permit);
        }
        place
    }

    /// Places free now (`None` without a gate).
    pub fn free(&self) -> Option<usize> {
        self.0.as_ref().map(|g| g.places.available_permits())
    }

    /// Trims started at the end of a burst (`None` without a gate).
    pub fn trims(&self) -> Option<usize> {
        self.0.as_ref().map(|g| g.trims.load(Ordering::Acquire))
    }

    /// Polls holding or waiting for a place (`None` without a gate).
    pub fn busy(&self) -> Option<usize> {
        self.0.as_ref().map(|g| g.busy.load(Ordering::Acquire))
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
        assert_eq!(a.busy(), Some(0));
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
        assert_eq!((gate.free(), gate.busy()), (Some(1), Some(2)));
        drop(d);
        assert_eq!((gate.free(), gate.busy()), (Some(2), Some(1)));
        drop(c);
        assert_eq!(gate.busy(), Some(0));
        // Without a gate nothing waits.
        let none = Gate::with_places(2, 2);
        assert!(!none.enter(Duration::ZERO).await.held());
    }

    static TRIMS: AtomicUsize = AtomicUsize::new(0);

    fn count_trim() {
        TRIMS.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits (10 s at most, in real time) until `n` trims have run.
    async fn trims(n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TRIMS.load(Ordering::SeqCst) < n {
            assert!(std::time::Instant::now() < deadline, "trims: {TRIMS:?}");
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The heap is trimmed when the last poll of a burst gives its place
    /// back, not before, and not again within [`TRIM_GAP`].
    #[tokio::test(start_paused = true)]
    async fn the_end_of_a_burst_trims_the_heap_at_most_every_gap() {
        let gate = Gate::with_trim(2, count_trim);
        let t = Duration::from_secs(5);
        let (a, b) = (gate.enter(t).await, gate.enter(t).await);
        drop(a);
        assert_eq!(gate.busy(), Some(1));
        assert_eq!(gate.trims(), Some(0));
        drop(b);
        assert_eq!(gate.trims(), Some(1));
        trims(1).await;
        // A second burst within the gap: no trim.
        drop(gate.enter(t).await);
        assert_eq!(gate.trims(), Some(1));
        tokio::time::advance(TRIM_GAP).await;
        drop(gate.enter(t).await);
        assert_eq!(gate.trims(), Some(2));
        trims(2).await;
        // Without a trim (a gate of its own), nothing is started.
        let quiet = Gate::with_places(3, 2);
        drop(quiet.enter(t).await);
        assert_eq!(quiet.trims(), Some(0));
    }
}
