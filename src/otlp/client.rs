//! The HTTP client the OTLP exporter sends through: remora's `reqwest` and
//! rustls on remora's runtime. It adds the pass-through families to the
//! encoded request, applies `otlp.compression`, retries as `super::retry`
//! says within the push's timeout (and the shutdown's deadline), and gives
//! up at once when the push is closed.

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_LENGTH, RETRY_AFTER};

use super::passthrough;
use super::retry;
use super::OtlpError;
use super::{Shared, CLOSED, STOPPING};
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
    /// One push's timeout, for all its attempts.
    timeout: Duration,
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
            timeout,
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

/// What one attempt gave: a status, its `Retry-After` and the body read,
/// or why there was no answer.
type Attempt = Result<(reqwest::StatusCode, Option<String>, Vec<u8>), reqwest::Error>;

/// Sends one attempt and reads at most [`MAX_RESPONSE`] of the answer.
async fn attempt(rb: reqwest::RequestBuilder) -> Attempt {
    let mut resp = rb.send().await?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut read = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_RESPONSE.saturating_sub(read.len());
        read.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok((status, retry_after, read))
}

/// Why a push gave up without an answer to hand back.
#[derive(Debug, thiserror::Error)]
enum PushFailed {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("no answer within the push's timeout")]
    Timeout,
    #[error("the collector asked to wait (Retry-After) past this push")]
    Throttled,
    #[error("the request cannot be sent again")]
    Unrepeatable,
}

impl PushClient {
    /// Every attempt of one push, with its retries (`super::retry`), all
    /// before `end`. Runs on remora's runtime.
    async fn push(
        http: reqwest::Client,
        shared: Arc<Shared>,
        request: reqwest::Request,
        end: tokio::time::Instant,
    ) -> Result<Response<Bytes>, PushFailed> {
        let interval = shared.interval;
        // A `Retry-After` an earlier push could not wait for.
        if let Some(at) = shared.not_before() {
            if at >= end {
                return Err(PushFailed::Throttled);
            }
            tokio::time::sleep_until(at).await;
        }
        let mut retries = 0;
        loop {
            let this = request.try_clone().ok_or(PushFailed::Unrepeatable)?;
            let rb = reqwest::RequestBuilder::from_parts(http.clone(), this);
            let outcome = match tokio::time::timeout_at(end, attempt(rb)).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(e)) => Err(PushFailed::Http(e)),
                Err(_) => Err(PushFailed::Timeout),
            };
            let status = match &outcome {
                Ok((status, _, _)) if !retry::retryable(status.as_u16()) => {
                    return to_response(outcome)
                }
                Ok((status, _, _)) => Some(status.as_u16()),
                Err(PushFailed::Timeout) => return to_response(outcome),
                Err(_) => None,
            };
            let retry_after = match &outcome {
                Ok((_, Some(v), _)) => retry::retry_after(v, std::time::SystemTime::now()),
                _ => None,
            };
            retries += 1;
            let now = tokio::time::Instant::now();
            let wait = retry::wait(retries, status, retry_after, interval, retry::jitter());
            if retries > retry::MAX_RETRIES || now + wait >= end {
                if let Some(delay) = retry::server_delay(status, retry_after, interval) {
                    shared.set_not_before(now + delay);
                }
                return to_response(outcome);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// The answer handed to the exporter (which turns a failing status into
/// its error), or why there was none.
fn to_response(
    outcome: Result<(reqwest::StatusCode, Option<String>, Vec<u8>), PushFailed>,
) -> Result<Response<Bytes>, PushFailed> {
    let (status, _, read) = outcome?;
    let mut response = Response::new(Bytes::from(read));
    *response.status_mut() = status;
    Ok(response)
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
        let request = rb.body(Bytes::from(body)).build()?;
        // Abandoned when the push is closed, and a scheduled push when the
        // shutdown begins (only the final push goes on).
        let is_final = self.shared.in_final.load(Ordering::Acquire);
        let mut end = tokio::time::Instant::now() + self.timeout;
        if let Some(deadline) = self.shared.deadline() {
            end = end.min(deadline);
        }
        let task = self.runtime.spawn(Self::push(
            self.http.clone(),
            self.shared.clone(),
            request,
            end,
        ));
        let abort = task.abort_handle();
        let mut phase = self.shared.phase.subscribe();
        tokio::select! {
            joined = task => Ok(joined.map_err(|e| Box::new(e) as HttpError)??),
            _ = phase.wait_for(|p| *p == CLOSED || (*p == STOPPING && !is_final)) => {
                // Stopped: no retry, nothing counted.
                abort.abort();
                Ok(Response::new(Bytes::new()))
            }
        }
    }
}
