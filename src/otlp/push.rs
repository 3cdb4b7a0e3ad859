//! The periodic reader and its exporter as remora sets them up, the export
//! counters and the handle that stops pushing: at once (a reload) or after
//! one final push under the shutdown's deadline.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{Protocol, RetryPolicy, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};

use super::client::PushClient;
use super::{OtlpError, Shared, CLOSED, RUNNING, STOPPING};
use crate::config::OtlpConfig;
use crate::store::Store;

/// The reader attached to the pipeline's meter provider.
pub type Reader = PeriodicReader<Counted>;

/// Stops a pipeline's push: any request in flight is abandoned and later
/// exports (the reader's final one at a reload) return at once.
#[derive(Debug, Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Stops pushing at once: a request in flight is abandoned, later
    /// exports return at once, nothing more is counted.
    pub fn close(&self) {
        self.shared.phase.send_replace(CLOSED);
    }

    /// The shutdown has begun: a scheduled push in flight is abandoned, no
    /// scheduled push starts again, and the next export (the caller's flush)
    /// is the final push, all of it (attempts, waits, `Retry-After`) within
    /// `deadline`. Call [`Handle::close`] once the flush returned or the
    /// deadline passed.
    pub fn finish(&self, deadline: tokio::time::Instant) {
        *self
            .shared
            .deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        self.shared.final_armed.store(true, Ordering::Release);
        self.shared.phase.send_if_modified(|p| {
            let was = *p;
            if was == RUNNING {
                *p = STOPPING;
            }
            was == RUNNING
        });
    }
}

/// The OTLP exporter, counted.
#[derive(Debug)]
pub struct Counted {
    inner: opentelemetry_otlp::MetricExporter,
    shared: Arc<Shared>,
}

impl PushMetricExporter for Counted {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let is_final = match self.shared.phase() {
            CLOSED => return Ok(()),
            // Shutting down: only the final push goes out, once.
            STOPPING if !self.shared.final_armed.swap(false, Ordering::AcqRel) => return Ok(()),
            STOPPING => {
                self.shared.in_final.store(true, Ordering::Release);
                true
            }
            _ => false,
        };
        let result = self.inner.export(metrics).await;
        // An abandoned push (closed, or a scheduled one cut by the shutdown)
        // is not counted.
        match self.shared.phase() {
            RUNNING => self.shared.record(&result),
            STOPPING if is_final => self.shared.record(&result),
            _ => {}
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// The first of the variables that is set and holds milliseconds.
fn env_millis(names: &[&str]) -> Option<Duration> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok()?.trim().parse().ok())
        .map(Duration::from_millis)
}

/// Builds the periodic reader for `config` (call within remora's runtime:
/// requests are sent from it). The store gets `remora_otlp_*` at once.
pub fn build(config: &OtlpConfig, store: &Arc<Store>) -> Result<(Reader, Handle), OtlpError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| OtlpError::NoRuntime)?;
    let timeout = config
        .timeout
        .or_else(|| {
            env_millis(&[
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ])
        })
        .unwrap_or(Duration::from_secs(10));
    // As the SDK's reader reads it: `otlp.interval`, else the variable, else 60 s.
    let interval = config
        .interval
        .or_else(|| env_millis(&["OTEL_METRIC_EXPORT_INTERVAL"]))
        .filter(|i| !i.is_zero())
        .unwrap_or(Duration::from_secs(60));
    let shared = Arc::new(Shared::new(store.clone(), interval));
    let client = PushClient::new(config, timeout, runtime, shared.clone())?;
    let mut builder = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(timeout)
        // Retries are the client's (`super::retry`), on remora's runtime.
        .with_retry_policy(RetryPolicy::disabled())
        .with_http_client(client)
        .with_headers(
            config
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
    if let Some(e) = &config.endpoint {
        // As OTEL_EXPORTER_OTLP_ENDPOINT: a base URL, the signal's path appended.
        builder = builder.with_endpoint(format!("{}/v1/metrics", e.trim_end_matches('/')));
    }
    if config.gzip == Some(true) {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    let inner = builder
        .with_temporality(Temporality::Cumulative)
        .build()
        .map_err(|e| OtlpError::Exporter(e.to_string()))?;
    let exporter = Counted {
        inner,
        shared: shared.clone(),
    };
    let reader = PeriodicReader::builder(exporter).with_interval(interval);
    Ok((reader.build(), Handle { shared }))
}
