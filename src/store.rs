//! The latest state of every source, shared between pollers (writers), the
//! render thread (one snapshot a render), the OTLP push's callbacks and the
//! HTTP server (readers).
//!
//! Each write bumps a generation number and wakes the render thread, which
//! re-renders only when it changed. Counters here are cumulative over the life of the process and
//! survive reloads, so Prometheus sees no resets when the config changes.
//!
//! Every running source owns its part of the store through a [`Slot`]: only
//! the current owner can publish (a [`SlotWriter`] checks the owner under the
//! write lock), and dropping the slot removes what it owned. A source kept
//! across a reload is claimed again by its new poller: its state (and its
//! counters) stays, only the ownership moves, and the old slot's drop leaves
//! it alone.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::Family;

/// The outcome of one poll, as counted in `remora_target_polls_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PollResult {
    Success,
    Timeout,
    ConnectError,
    HttpStatus,
    BodyTooLarge,
    InvalidBody,
    /// Not made: no open-file descriptor was free within the timeout.
    FdLimit,
    /// Refused: the response came from this remora process itself
    /// (`crate::instance`), through an address the load check cannot know.
    SelfScrape,
}

impl PollResult {
    pub const ALL: [PollResult; 8] = [
        PollResult::Success,
        PollResult::Timeout,
        PollResult::ConnectError,
        PollResult::HttpStatus,
        PollResult::BodyTooLarge,
        PollResult::InvalidBody,
        PollResult::FdLimit,
        PollResult::SelfScrape,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PollResult::Success => "success",
            PollResult::Timeout => "timeout",
            PollResult::ConnectError => "connect_error",
            PollResult::HttpStatus => "http_status",
            PollResult::BodyTooLarge => "body_too_large",
            PollResult::InvalidBody => "invalid_body",
            PollResult::FdLimit => "fd_limit",
            PollResult::SelfScrape => "self_scrape",
        }
    }
}

/// What is known about one target.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    /// The URL without credentials (for `/` and `/-/status`).
    pub url: String,
    /// Whether at least one poll has finished.
    pub polled: bool,
    pub up: bool,
    pub poll_duration: f64,
    /// Last HTTP status, 0 without a response.
    pub http_status: u16,
    pub response_size: u64,
    /// Unix seconds of the last good poll.
    pub last_success: Option<f64>,
    pub last_error: Option<String>,
    /// Series produced by the last poll.
    pub series: usize,
    pub polls: BTreeMap<PollResult, u64>,
    /// (metric, reason) -> count.
    pub extraction_errors: BTreeMap<(String, &'static str), u64>,
    pub dropped: u64,
    /// The extracted families of the last good poll; empty while down.
    pub families: Arc<Vec<Family>>,
    /// The labels every series of `families` carries besides its own
    /// (`target` and the target's `labels:`), kept once, not per series.
    pub labels: Arc<[opentelemetry::KeyValue]>,
    /// Families of a `format: prometheus` target's last good poll.
    pub passthrough: Option<Arc<Vec<crate::model::passthrough::PromFamily>>>,
    /// The rule-by-rule account of the last good poll of a JSON target.
    pub explain: Option<Arc<crate::model::explain::Record>>,
}

/// What is known about one host collector.
#[derive(Debug, Clone, Default)]
pub struct CollectorState {
    pub up: bool,
    pub duration: f64,
    pub last_error: Option<String>,
    pub last_success: Option<f64>,
    pub families: Arc<Vec<Family>>,
    /// Entries dropped since start (odd lines, stuck mounts), by reason
    /// (`remora_collector_errors_total`).
    pub errors: BTreeMap<&'static str, u64>,
}

/// Reload bookkeeping.
#[derive(Debug, Clone, Default)]
pub struct ReloadState {
    pub last_successful: bool,
    pub last_success_timestamp: f64,
    pub last_attempt: Option<f64>,
    pub last_error: Option<String>,
}

/// OTLP push bookkeeping (`remora_otlp_*`).
#[derive(Debug, Clone, Default)]
pub struct OtlpState {
    pub success: u64,
    pub failure: u64,
    pub last_success: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Inner {
    pub targets: BTreeMap<String, TargetState>,
    pub collectors: BTreeMap<String, CollectorState>,
    /// remora's own `process_*` families.
    pub own_process: Arc<Vec<Family>>,
    pub reload: ReloadState,
    /// OTLP pushes, once `otlp:` was set (counted across reloads).
    pub otlp: Option<OtlpState>,
    /// The current owner of each claimed part of the store.
    owners: BTreeMap<SlotKey, u64>,
}

impl Inner {
    /// Forgets what `key` holds (the counters of a removed target included).
    fn remove(&mut self, key: &SlotKey) {
        match key {
            SlotKey::Target(name) => {
                self.targets.remove(name);
            }
            SlotKey::Collector(name) => {
                self.collectors.remove(name);
            }
            SlotKey::OwnProcess => self.own_process = Arc::new(Vec::new()),
        }
    }
}

/// A part of the store that one source writes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SlotKey {
    /// A target's state, by name.
    Target(String),
    /// A host collector's state, by name.
    Collector(String),
    /// remora's own `process_*` families.
    OwnProcess,
}

/// The shared state.
#[derive(Debug, Default)]
pub struct Store {
    inner: RwLock<Inner>,
    generation: AtomicU64,
    next_owner: AtomicU64,
    /// Wakes the render thread when the generation changes.
    changed: (Mutex<()>, Condvar),
    /// Read locks taken (tests count a render's).
    #[cfg(test)]
    reads: AtomicU64,
}

/// Ownership of some keys of the store by one running source. Dropping it
/// removes every key it still owns; keys claimed since by another slot are
/// left alone.
#[derive(Debug)]
pub struct Slot {
    writer: SlotWriter,
}

/// What a source publishes through: writes only while its [`Slot`] still
/// owns every one of its keys.
#[derive(Debug, Clone)]
pub struct SlotWriter {
    store: Arc<Store>,
    keys: Arc<[SlotKey]>,
    owner: u64,
}

impl Slot {
    /// The writer handed to the source's task.
    pub fn writer(&self) -> SlotWriter {
        self.writer.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let w = &self.writer;
        let mut inner = w.store.write();
        for key in w.keys.iter() {
            if inner.owners.get(key) == Some(&w.owner) {
                inner.owners.remove(key);
                inner.remove(key);
            }
        }
    }
}

impl SlotWriter {
    /// Write access, or None once the slot was dropped or its keys claimed
    /// by another slot (the check and the write happen under one lock).
    pub fn write(&self) -> Option<RwLockWriteGuard<'_, Inner>> {
        let inner = self.store.write();
        self.keys
            .iter()
            .all(|k| inner.owners.get(k) == Some(&self.owner))
            .then_some(inner)
    }
}

impl Store {
    pub fn new() -> Arc<Self> {
        Arc::new(Store::default())
    }

    /// Read access (poisoning is ignored: a panicking writer cannot leave
    /// the plain data here in a state worse than stale).
    pub fn read(&self) -> RwLockReadGuard<'_, Inner> {
        #[cfg(test)]
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// How many read locks were taken.
    #[cfg(test)]
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Write access; bumps the generation so the next scrape re-renders.
    pub fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        let guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::Release);
        self.notify_change();
        guard
    }

    /// Changes whenever anything served may have changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forces a re-render (after a reload swapped the pipeline).
    pub fn touch(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        self.notify_change();
    }

    /// Wakes every thread in [`Store::wait_change`] (to re-check its stop flag too).
    pub fn notify_change(&self) {
        // Taking the lock orders this wake-up after a waiter's check.
        drop(self.changed.0.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.1.notify_all();
    }

    /// Blocks the calling thread until the generation differs from `seen` or
    /// `stop()` holds; returns the generation. A burst of writes wakes it once.
    pub fn wait_change(&self, seen: u64, stop: impl Fn() -> bool) -> u64 {
        let mut lock = self.changed.0.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = self.generation();
            if now != seen || stop() {
                return now;
            }
            lock = self.changed.1.wait(lock).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Claims `keys` for a new source: what they hold stays (a target kept
    /// across a reload keeps its counters), earlier owners can no longer
    /// publish to them, and their slots' drop no longer removes them.
    pub fn claim(self: &Arc<Self>, keys: Vec<SlotKey>) -> Slot {
        let owner = self.next_owner.fetch_add(1, Ordering::Relaxed) + 1;
        let mut inner = self.write();
        for key in &keys {
            inner.owners.insert(key.clone(), owner);
        }
        drop(inner);
        Slot {
            writer: SlotWriter {
                store: self.clone(),
                keys: keys.into(),
                owner,
            },
        }
    }
}

impl Store {
    /// Claims every key some source owns, so the state stays as it is: the
    /// sources can no longer publish, and stopping them removes nothing
    /// until the returned slot is dropped (shutdown: the last OTLP push
    /// sends the state as it was when the shutdown began).
    pub fn freeze(self: &Arc<Self>) -> Slot {
        let keys = self.read().owners.keys().cloned().collect();
        self.claim(keys)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_bump_generation() {
        let store = Store::new();
        let g0 = store.generation();
        store
            .write()
            .targets
            .insert("a".into(), TargetState::default());
        assert!(store.generation() > g0);
        let g1 = store.generation();
        let _ = store.read().targets.len();
        assert_eq!(store.generation(), g1);
    }

    fn target(name: &str) -> Vec<SlotKey> {
        vec![SlotKey::Target(name.into())]
    }

    fn count_poll(w: &SlotWriter, name: &str) -> bool {
        let Some(mut inner) = w.write() else {
            return false;
        };
        let state = inner.targets.entry(name.into()).or_default();
        *state.polls.entry(PollResult::Success).or_default() += 1;
        true
    }

    #[test]
    fn dropping_a_slot_removes_it_and_stale_writers_cannot_publish() {
        let store = Store::new();
        let a = store.claim(target("a"));
        let b = store.claim(vec![SlotKey::Collector("cpu".into()), SlotKey::OwnProcess]);
        let (wa, wb) = (a.writer(), b.writer());
        assert!(count_poll(&wa, "a"));
        wb.write()
            .unwrap()
            .collectors
            .insert("cpu".into(), CollectorState::default());
        drop(a);
        drop(b);
        assert!(store.read().targets.is_empty());
        assert!(store.read().collectors.is_empty());
        assert!(!count_poll(&wa, "a"), "published through a dropped slot");
        assert!(wb.write().is_none());
        assert!(store.read().targets.is_empty());
    }

    #[test]
    fn a_claimed_again_slot_keeps_its_counters_and_only_the_new_owner_writes() {
        let store = Store::new();
        let old = store.claim(target("a"));
        let w_old = old.writer();
        assert!(count_poll(&w_old, "a"));
        let new = store.claim(target("a"));
        assert!(!count_poll(&w_old, "a"), "the old owner still publishes");
        drop(old);
        assert!(count_poll(&new.writer(), "a"));
        let polls = store.read().targets["a"].polls[&PollResult::Success];
        assert_eq!(polls, 2, "counters survive the change of owner");
        drop(new);
        assert!(store.read().targets.is_empty());
    }

    #[test]
    fn a_frozen_store_keeps_its_state_until_the_freeze_ends() {
        let store = Store::new();
        let a = store.claim(target("a"));
        let w = a.writer();
        assert!(count_poll(&w, "a"));
        let frozen = store.freeze();
        assert!(!count_poll(&w, "a"), "a source still publishes");
        drop(a);
        assert_eq!(store.read().targets["a"].polls[&PollResult::Success], 1);
        drop(frozen);
        assert!(store.read().targets.is_empty());
    }
}
