//! The periodic reader and its exporter as remora sets them up, the export
//! counters and the handle that stops pushing at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};

use super::client::PushClient;
use super::{OtlpError, Shared};
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
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        let _ = self.shared.close_tx.send(true);
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
        if self.shared.is_closed() {
            return Ok(());
        }
        let result = self.inner.export(metrics).await;
        if !self.shared.is_closed() {
            self.shared.record(&result);
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
    let shared = Arc::new(Shared {
        store: store.clone(),
        closed: AtomicBool::new(false),
        close_tx: tokio::sync::watch::channel(false).0,
        failing: AtomicBool::new(false),
    });
    let client = PushClient::new(config, timeout, runtime, shared.clone())?;
    let mut builder = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(timeout)
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
    let mut reader = PeriodicReader::builder(exporter);
    if let Some(i) = config.interval {
        reader = reader.with_interval(i);
    }
    Ok((reader.build(), Handle { shared }))
}
