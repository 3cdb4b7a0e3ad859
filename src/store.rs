//! The latest state of every source, shared between pollers (writers), the
//! telemetry callbacks and the HTTP server (readers).
//!
//! Each write bumps a generation number and wakes the render thread, which
//! re-renders only when it changed. Counters here are cumulative over the life of the process and
//! survive reloads, so Prometheus sees no resets when the config changes.

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
}

impl PollResult {
    pub const ALL: [PollResult; 6] = [
        PollResult::Success,
        PollResult::Timeout,
        PollResult::ConnectError,
        PollResult::HttpStatus,
        PollResult::BodyTooLarge,
        PollResult::InvalidBody,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PollResult::Success => "success",
            PollResult::Timeout => "timeout",
            PollResult::ConnectError => "connect_error",
            PollResult::HttpStatus => "http_status",
            PollResult::BodyTooLarge => "body_too_large",
            PollResult::InvalidBody => "invalid_body",
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
    /// Families of a `format: prometheus` target's last good poll.
    pub passthrough: Option<Arc<Vec<crate::targets::prom::PromFamily>>>,
}

/// What is known about one host collector.
#[derive(Debug, Clone, Default)]
pub struct CollectorState {
    pub up: bool,
    pub duration: f64,
    pub last_error: Option<String>,
    pub last_success: Option<f64>,
    pub families: Arc<Vec<Family>>,
}

/// Reload bookkeeping.
#[derive(Debug, Clone, Default)]
pub struct ReloadState {
    pub last_successful: bool,
    pub last_success_timestamp: f64,
    pub last_attempt: Option<f64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Inner {
    pub targets: BTreeMap<String, TargetState>,
    pub collectors: BTreeMap<String, CollectorState>,
    /// remora's own `process_*` families.
    pub own_process: Arc<Vec<Family>>,
    pub reload: ReloadState,
}

/// The shared state.
#[derive(Debug, Default)]
pub struct Store {
    inner: RwLock<Inner>,
    generation: AtomicU64,
    /// Wakes the render thread when the generation changes.
    changed: (Mutex<()>, Condvar),
}

impl Store {
    pub fn new() -> Arc<Self> {
        Arc::new(Store::default())
    }

    /// Read access (poisoning is ignored: a panicking writer cannot leave
    /// the plain data here in a state worse than stale).
    pub fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
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

    /// Keeps only the targets and collectors named, dropping state of removed ones.
    pub fn retain_sources(&self, targets: &[String], collectors: &[String]) {
        let mut inner = self.write();
        inner.targets.retain(|k, _| targets.contains(k));
        inner.collectors.retain(|k, _| collectors.contains(k));
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

    #[test]
    fn retain_drops_removed_sources() {
        let store = Store::new();
        {
            let mut w = store.write();
            w.targets.insert("a".into(), TargetState::default());
            w.targets.insert("b".into(), TargetState::default());
            w.collectors.insert("cpu".into(), CollectorState::default());
        }
        store.retain_sources(&["b".into()], &[]);
        let r = store.read();
        assert_eq!(r.targets.keys().collect::<Vec<_>>(), ["b"]);
        assert!(r.collectors.is_empty());
    }
}
