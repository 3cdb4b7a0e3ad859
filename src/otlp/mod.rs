//! OTLP push: everything remora serves, pushed over OTLP/HTTP (protobuf) by
//! a periodic reader on the same meter provider as the Prometheus exporter.
//!
//! - `opentelemetry-otlp` builds the request from the SDK's data (JSON,
//!   host and remora's own instruments), reads the standard `OTEL_*`
//!   variables where `otlp:` is silent, and retries with backoff within the
//!   timeout;
//! - `client` sends it with remora's own `reqwest` client on remora's
//!   runtime (rustls, the CA and client certificate of `otlp.tls`), after
//!   adding the pass-through families (`passthrough`) to the same request;
//! - `retry` says when a failed push is tried again (backoff, `Retry-After`
//!   up to the interval), every wait a timer on remora's runtime;
//! - `Counted` counts each export in `remora_otlp_exports_total{result}`
//!   and logs once when pushes start failing and once when they recover.
//!
//! At shutdown ([`Handle::finish`]) the push has three phases: running,
//! stopping (from SIGTERM: a scheduled push in flight is abandoned and none
//! starts again; exactly one final push is let through, its every attempt
//! and wait bounded by the shutdown's deadline) and closed (anything left
//! returns at once).
//!
//! Pass-through families are not SDK instruments (the SDK 0.33 has no
//! external metric producer and its data types cannot be built outside
//! it), so they are converted to OTLP messages here and appended, as one
//! more scope, to the resource of the request the exporter encoded.

#[cfg(feature = "otlp")]
mod client;
#[cfg(feature = "otlp")]
pub mod passthrough;
#[cfg(feature = "otlp")]
mod push;
#[cfg(feature = "otlp")]
mod retry;

#[cfg(feature = "otlp")]
pub use push::{build, Handle, Reader};

#[cfg(feature = "otlp")]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "otlp")]
use std::sync::Arc;

#[cfg(feature = "otlp")]
use opentelemetry_sdk::error::OTelSdkResult;

#[cfg(feature = "otlp")]
use crate::store::{unix_now, OtlpState, Store};

#[cfg(feature = "otlp")]
/// The push's phase: pushing on schedule.
pub(crate) const RUNNING: u8 = 0;
#[cfg(feature = "otlp")]
/// The push's phase: shutting down, only the final push goes out.
pub(crate) const STOPPING: u8 = 1;
#[cfg(feature = "otlp")]
/// The push's phase: stopped, every export returns at once.
pub(crate) const CLOSED: u8 = 2;

#[cfg(feature = "otlp")]
/// What the exporter, its client and the app share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    /// `RUNNING`, `STOPPING` or `CLOSED`.
    pub(crate) phase: tokio::sync::watch::Sender<u8>,
    /// Set by [`Handle::finish`]: the next export is the final push.
    pub(crate) final_armed: AtomicBool,
    /// The final push is the export running now.
    pub(crate) in_final: AtomicBool,
    /// The shutdown's deadline, which bounds the final push.
    pub(crate) deadline: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// A `Retry-After` that did not fit in a push: no request before it.
    pub(crate) not_before: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// The push interval (caps a `Retry-After`).
    pub(crate) interval: std::time::Duration,
    pub(crate) failing: AtomicBool,
}

#[cfg(feature = "otlp")]
impl Shared {
    pub(crate) fn new(store: Arc<Store>, interval: std::time::Duration) -> Self {
        Shared {
            store,
            phase: tokio::sync::watch::channel(RUNNING).0,
            final_armed: AtomicBool::new(false),
            in_final: AtomicBool::new(false),
            deadline: std::sync::Mutex::new(None),
            not_before: std::sync::Mutex::new(None),
            interval,
            failing: AtomicBool::new(false),
        }
    }

    pub(crate) fn phase(&self) -> u8 {
        *self.phase.borrow()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase() == CLOSED
    }

    /// The shutdown's deadline, once the shutdown has begun.
    pub(crate) fn deadline(&self) -> Option<tokio::time::Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn not_before(&self) -> Option<tokio::time::Instant> {
        *self.not_before.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_not_before(&self, at: tokio::time::Instant) {
        *self.not_before.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    /// Counts one export; logs once when pushes start failing and once
    /// when they recover.
    pub(crate) fn record(&self, result: &OTelSdkResult) {
        {
            let mut inner = self.store.write();
            let state = inner.otlp.get_or_insert_with(OtlpState::default);
            match result {
                Ok(()) => {
                    state.success += 1;
                    state.last_success = Some(unix_now());
                }
                Err(_) => state.failure += 1,
            }
        }
        let was = self.failing.swap(result.is_err(), Ordering::AcqRel);
        match result {
            Err(e) if !was => tracing::warn!(error = %e, "OTLP push failing"),
            Ok(()) if was => tracing::info!("OTLP push recovered"),
            _ => {}
        }
    }
}

/// Errors setting up the push.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("otlp: {0}")]
    Client(#[from] crate::targets::client::ClientError),
    #[error("otlp: {0}")]
    Http(String),
    #[error("otlp: cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("otlp: no async runtime to send from")]
    NoRuntime,
    #[error("otlp: this remora was built without the `otlp` feature")]
    NotBuilt,
}

/// The reader type when the push is not built in (never constructed).
#[cfg(not(feature = "otlp"))]
pub type Reader = opentelemetry_sdk::metrics::ManualReader;

/// Stand-in handle when the push is not built in.
#[cfg(not(feature = "otlp"))]
#[derive(Debug, Clone)]
pub struct Handle;

#[cfg(not(feature = "otlp"))]
impl Handle {
    pub fn close(&self) {}
    pub fn finish(&self, _deadline: tokio::time::Instant) {}
}

/// Without the `otlp` feature, a config with `otlp:` cannot run.
#[cfg(not(feature = "otlp"))]
pub fn build(
    _config: &crate::config::OtlpConfig,
    _store: &std::sync::Arc<crate::store::Store>,
) -> Result<(Reader, Handle), OtlpError> {
    Err(OtlpError::NotBuilt)
}
