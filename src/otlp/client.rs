//! The HTTP client the OTLP exporter sends through: remora's `reqwest` and
//! rustls on remora's runtime. It adds the pass-through families to the
//! encoded request, applies `otlp.compression`, and gives up at once when
//! the push is closed.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_LENGTH};

use super::passthrough;
use super::OtlpError;
use super::Shared;
use crate::config::OtlpConfig;
use crate::targets::client::tls_config;

/// The most of a collector's response that is read.
const MAX_RESPONSE: usize = 64 * 1024;
/// The most a gzip request body may inflate to before pass-through is added.
const MAX_REQUEST: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
pub(super) struct PushClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    shared: Arc<Shared>,
    gzip: Option<bool>,
}

impl PushClient {
    pub(super) fn new(
        config: &OtlpConfig,
        timeout: Duration,
        runtime: tokio::runtime::Handle,
        shared: Arc<Shared>,
    ) -> Result<Self, OtlpError> {
        crate::targets::client::install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("remora/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(1)
            .no_proxy()
            .tls_backend_preconfigured(tls_config(&config.tls)?)
            .build()
            .map_err(|e| OtlpError::Http(e.to_string()))?;
        Ok(PushClient {
            http,
            runtime,
            shared,
            gzip: config.gzip,
        })
    }

    /// The exporter's request with the pass-through families added, encoded
    /// as `gzip` says.
    fn body(&self, body: &[u8], was_gzip: bool) -> Result<(Vec<u8>, bool), HttpError> {
        let raw = if was_gzip {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(MAX_REQUEST)
                .read_to_end(&mut out)?;
            out
        } else {
            body.to_vec()
        };
        let mut request = ExportMetricsServiceRequest::decode(raw.as_slice())?;
        passthrough::append(&mut request, &self.shared.store.read());
        let encoded = request.encode_to_vec();
        let gzip = self.gzip.unwrap_or(was_gzip);
        if !gzip {
            return Ok((encoded, false));
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&encoded)?;
        Ok((enc.finish()?, true))
    }
}

#[async_trait::async_trait]
impl HttpClient for PushClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        if self.shared.is_closed() {
            return Ok(Response::new(Bytes::new()));
        }
        let (parts, body) = request.into_parts();
        let was_gzip = parts
            .headers
            .get(CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let (body, gzip) = self.body(&body, was_gzip)?;
        let mut rb = self.http.post(parts.uri.to_string());
        for (k, v) in &parts.headers {
            if k != CONTENT_ENCODING && k != CONTENT_LENGTH {
                rb = rb.header(k, v);
            }
        }
        if gzip {
            rb = rb.header(CONTENT_ENCODING, "gzip");
        }
        let rb = rb.body(body);
        let task = self.runtime.spawn(async move {
            let mut resp = rb.send().await?;
            let status = resp.status();
            let mut read = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                let room = MAX_RESPONSE.saturating_sub(read.len());
                read.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if room <= chunk.len() {
                    break;
                }
            }
            Ok::<_, reqwest::Error>((status, read))
        });
        let abort = task.abort_handle();
        let mut closed = self.shared.close_tx.subscribe();
        tokio::select! {
            joined = task => {
                let (status, read) = joined??;
                let mut response = Response::new(Bytes::from(read));
                *response.status_mut() = status;
                Ok(response)
            }
            _ = closed.wait_for(|c| *c) => {
                // Stopped: no retry, nothing counted.
                abort.abort();
                Ok(Response::new(Bytes::new()))
            }
        }
    }
}
