//! One poll loop per target: fetch with the target's timeout, auth and body
//! limit, parse once, extract, and publish the result to the [`Store`](crate::store::Store).
//!
//! Polls of one target never overlap (the loop awaits each poll before the
//! next tick); a scrape only ever reads what the last poll published.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use reqwest::header::{
    HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
};
use tokio::sync::watch;

use crate::config::{Format, Method, Target};
use crate::model::explain::Record;
use crate::model::labels::GlobalLabels;
use crate::model::Family;
use crate::store::{unix_now, PollResult, SlotWriter};
use crate::targets::client::{send, ClientError};
use crate::targets::{extract, prom, report};

/// Documents larger than this are parsed and extracted on the blocking pool
/// (at the process's priority, like the rest of the poll).
const INLINE_PARSE_LIMIT: usize = 64 * 1024;

/// Why a poll failed. Its [`kind`](PollError::kind) is the `result` the poll
/// is counted under in `remora_target_polls_total`.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// No complete response within the target's timeout.
    #[error("no complete response within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The request could not be made (a secret file unreadable or unusable).
    #[error("{0}")]
    Request(String),
    /// The HTTP client failed; `kind` says how (timeout, connect, redirect,
    /// reading the body). The message has the causes, not the URL.
    #[error("{message}")]
    Http { kind: PollResult, message: String },
    /// A redirect `follow_redirects` does not allow.
    #[error(transparent)]
    Redirect(ClientError),
    /// A status the target does not accept.
    #[error("HTTP status {0} is not accepted")]
    Status(u16),
    /// A declared body size over the limit.
    #[error("body of {len} bytes is larger than limits.max_body_bytes ({max})")]
    DeclaredTooLarge { len: u64, max: u64 },
    /// A body that grew over the limit while it was read.
    #[error("body is larger than limits.max_body_bytes ({max}); reading stopped")]
    TooLarge { max: u64 },
    /// Not JSON, not UTF-8, or not valid Prometheus text.
    #[error("{0}")]
    InvalidBody(String),
    /// No open-file descriptor was free for the connection within the
    /// timeout (`crate::fdlimit`); the poll was not made.
    #[error("no free file descriptor within {}: the open-file limit is reached", humantime::format_duration(*.0))]
    FdLimit(Duration),
    /// The response carries this process's own `X-Remora-Instance` token:
    /// the URL leads back to remora itself (`crate::instance`).
    #[error("the URL answers with remora's own /metrics (the X-Remora-Instance header is this process's): polling itself is refused")]
    SelfScrape,
}

impl PollError {
    /// The poll result this failure is counted as.
    pub fn kind(&self) -> PollResult {
        match self {
            PollError::Timeout(_) => PollResult::Timeout,
            PollError::Request(_) => PollResult::ConnectError,
            PollError::Http { kind, .. } => *kind,
            PollError::Redirect(_) | PollError::Status(_) => PollResult::HttpStatus,
            PollError::DeclaredTooLarge { .. } | PollError::TooLarge { .. } => {
                PollResult::BodyTooLarge
            }
            PollError::InvalidBody(_) => PollResult::InvalidBody,
            PollError::FdLimit(_) => PollResult::FdLimit,
            PollError::SelfScrape => PollResult::SelfScrape,
        }
    }

    fn http(e: reqwest::Error) -> Self {
        PollError::Http {
            kind: classify(&e),
            message: describe(e),
        }
    }
}

/// What one poll found.
#[derive(Debug)]
pub struct Outcome {
    pub status: u16,
    pub size: u64,
    pub duration: f64,
    /// Why the poll failed; `None` when it succeeded.
    pub error: Option<PollError>,
    pub families: Arc<Vec<Family>>,
    /// The labels every series of `families` carries besides its own.
    pub labels: Arc<[KeyValue]>,
    pub passthrough: Option<Arc<Vec<prom::PromFamily>>>,
    pub series: usize,
    /// Counted per (metric, reason): bounded by the rules, not the body.
    pub extraction_errors: Vec<ErrorCount>,
    pub dropped: u64,
    /// The rule-by-rule account of a JSON target's poll.
    pub explain: Option<Record>,
}

/// The extraction errors of one metric and reason in one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCount {
    pub metric: String,
    pub reason: &'static str,
    pub count: u64,
    /// The first offending value, cut to `extract::EXAMPLE_CHARS` characters.
    pub example: Option<String>,
}

impl Outcome {
    fn failed(status: u16, size: u64, error: PollError) -> Self {
        Outcome {
            error: Some(error),
            ..Outcome::succeeded(status, size)
        }
    }

    fn succeeded(status: u16, size: u64) -> Self {
        Outcome {
            status,
            size,
            duration: 0.0,
            error: None,
            families: Arc::new(Vec::new()),
            labels: Arc::default(),
            passthrough: None,
            series: 0,
            extraction_errors: Vec::new(),
            dropped: 0,
            explain: None,
        }
    }

    /// The poll result: success, or the kind of the error.
    pub fn result(&self) -> PollResult {
        self.error
            .as_ref()
            .map_or(PollResult::Success, PollError::kind)
    }
}

/// Everything a poll needs besides the target.
#[derive(Debug, Clone)]
pub struct PollContext {
    pub max_body_bytes: u64,
    pub max_series: usize,
    /// `global.labels`, added to passed-through Prometheus families.
    pub global_labels: GlobalLabels,
    /// Every family name remora's pipeline serves: a passed-through family
    /// of one of these names is merged when its type agrees, else dropped.
    pub served: Arc<prom::ServedNames>,
    /// How many of the config's polls run at once ([`crate::sched::polls`]).
    pub gate: crate::sched::polls::Gate,
}

/// The labels every extracted series of `target` carries. Built once per
/// config and kept beside the target's families, not in each series.
pub fn base_labels(target: &Target) -> Vec<KeyValue> {
    let kv = |k: &str, v: &str| {
        KeyValue::new(
            opentelemetry::Key::from(Arc::<str>::from(k)),
            opentelemetry::Value::from(Arc::<str>::from(v)),
        )
    };
    let mut labels = vec![kv("target", &target.name)];
    labels.extend(target.labels.iter().map(|(k, v)| kv(k, v)));
    labels
}

/// One target with what its polls need, built once per (re)load.
#[derive(Debug)]
pub struct Poller {
    pub target: Arc<Target>,
    pub client: reqwest::Client,
    /// The target's rules, compiled; shared by the pollers of equal rules.
    pub extractor: Arc<extract::Extractor>,
    pub base: Arc<[KeyValue]>,
}

impl Poller {
    pub fn new(target: Arc<Target>, client: reqwest::Client) -> Self {
        let extractor = Arc::new(extract::Extractor::new(&target));
        Poller::with_extractor(target, client, extractor)
    }

    /// A poller using `extractor`, compiled from rules equal to `target`'s.
    pub fn with_extractor(
        target: Arc<Target>,
        client: reqwest::Client,
        extractor: Arc<extract::Extractor>,
    ) -> Self {
        Poller {
            extractor,
            base: base_labels(&target).into(),
            target,
            client,
        }
    }
}

fn classify(e: &reqwest::Error) -> PollResult {
    if e.is_timeout() {
        PollResult::Timeout
    } else if e.is_redirect() {
        PollResult::HttpStatus
    } else if e.is_connect() || e.is_request() {
        PollResult::ConnectError
    } else {
        PollResult::InvalidBody
    }
}

/// The error text of a reqwest error with its causes, without the URL's credentials.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

async fn read_secret(path: &std::path::Path, what: &str) -> Result<String, String> {
    tokio::fs::read_to_string(path)
        .await
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

async fn build_request(
    target: &Target,
    client: &reqwest::Client,
) -> Result<reqwest::RequestBuilder, String> {
    let mut req = match target.method {
        Method::Get => client.get(target.url.clone()),
        Method::Post => client.post(target.url.clone()),
    }
    // The client may be shared with targets of other timeouts.
    .timeout(target.timeout);
    if let Some(body) = &target.body {
        req = req.body(body.clone());
    }
    // An app's own /metrics: OpenMetrics first, as Prometheus 2.x asks
    // (a configured Accept header replaces it).
    let own_accept = target
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"));
    if target.format == Format::Prometheus && !own_accept {
        req = req.header(ACCEPT, prom::ACCEPT);
    }
    for (k, v) in &target.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            req = req.header(k, v);
        }
    }
    if let Some(path) = &target.bearer_token_file {
        let token = read_secret(path, "bearer_token_file").await?;
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            "bearer_token_file holds characters not allowed in a header".to_string()
        })?;
        value.set_sensitive(true);
        req = req.header(AUTHORIZATION, value);
    }
    if let Some(auth) = &target.basic_auth {
        let password = match (&auth.password, &auth.password_file) {
            (_, Some(path)) => Some(read_secret(path, "basic_auth.password_file").await?),
            (Some(p), None) => Some(p.clone()),
            (None, None) => None,
        };
        req = req.basic_auth(&auth.username, password);
    }
    Ok(req)
}

/// The URLs (redacted) already logged as leading back to remora itself;
/// at most [`SELF_SCRAPE_LOGGED_MAX`] are remembered.
static SELF_SCRAPE_LOGGED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
const SELF_SCRAPE_LOGGED_MAX: usize = 1024;

/// Logs, once per URL in the process's life, that `target` reached remora's
/// own server.
fn log_self_scrape_once(target: &Target) {
    let url = redact(&target.url);
    let mut logged = SELF_SCRAPE_LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    if logged.contains(&url) || logged.len() >= SELF_SCRAPE_LOGGED_MAX {
        return;
    }
    tracing::warn!(
        target_name = %target.name,
        url = %url,
        "target answers with remora's own X-Remora-Instance token: it leads back to this remora (a forwarder, another address of the machine, a Service name); its polls are refused (remora_target_polls_total{{result=\"self_scrape\"}}); point it at the application instead"
    );
    logged.push(url);
}

/// Fetches the body, enforcing the size limit while reading.
async fn fetch(
    target: &Target,
    client: &reqwest::Client,
    max: u64,
) -> Result<(u16, Vec<u8>, bool), Outcome> {
    let req = build_request(target, client)
        .await
        .map_err(|e| Outcome::failed(0, 0, PollError::Request(e)))?;
    let req = req
        .build()
        .map_err(|e| Outcome::failed(0, 0, PollError::http(e)))?;
    let mut resp = send(client, req, target.follow_redirects)
        .await
        .map_err(|e| match e {
            ClientError::Http(e) => Outcome::failed(0, 0, PollError::http(e)),
            other => Outcome::failed(other.status(), 0, PollError::Redirect(other)),
        })?;
    let status = resp.status().as_u16();
    // Before the status and the body: whatever this process answered is
    // refused, an error page included.
    if crate::instance::is_own(resp.headers()) {
        log_self_scrape_once(target);
        return Err(Outcome::failed(status, 0, PollError::SelfScrape));
    }
    let accepted = if target.accept_status.is_empty() {
        resp.status().is_success()
    } else {
        target.accept_status.contains(&status)
    };
    if !accepted {
        return Err(Outcome::failed(
            status,
            resp.content_length().unwrap_or(0),
            PollError::Status(status),
        ));
    }
    let om = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(prom::is_openmetrics);
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > max) {
        return Err(Outcome::failed(
            status,
            len,
            PollError::DeclaredTooLarge { len, max },
        ));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(8192).min(max) as usize);
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > max {
                    return Err(Outcome::failed(
                        status,
                        body.len() as u64 + chunk.len() as u64,
                        PollError::TooLarge { max },
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(Outcome::failed(
                    status,
                    body.len() as u64,
                    PollError::http(e),
                ))
            }
        }
    }
    Ok((status, body, om))
}

/// `om`: the body is OpenMetrics (by its Content-Type).
fn process_body(
    p: &Poller,
    ctx: &PollContext,
    body: &[u8],
    om: bool,
) -> Result<Outcome, PollError> {
    let target = &p.target;
    let mut out = Outcome::succeeded(0, body.len() as u64);
    match target.format {
        Format::Json => {
            // The parse keeps what the rules reach, within the body limit.
            let limits = extract::Limits {
                max_series: ctx.max_series,
                max_bytes: usize::try_from(ctx.max_body_bytes).unwrap_or(usize::MAX),
            };
            let mut ex = p
                .extractor
                .extract_body(body, limits, &[])
                .map_err(|e| PollError::InvalidBody(format!("invalid JSON: {e}")))?;
            // The account shares the families; it copies no series.
            let families = Arc::new(std::mem::take(&mut ex.families));
            let trace = std::mem::take(&mut ex.trace);
            out.explain =
                Some(
                    p.extractor
                        .explain(families.clone(), trace, &ex.errors, Some(body), 0),
                );
            out.series = ex.series;
            out.dropped = ex.dropped;
            out.extraction_errors = ex
                .errors
                .into_iter()
                .map(|e| ErrorCount {
                    metric: e.metric,
                    reason: e.reason.as_str(),
                    count: e.count,
                    example: e.example,
                })
                .collect();
            out.families = families;
            out.labels = p.base.clone();
        }
        Format::Prometheus => {
            let text = std::str::from_utf8(body)
                .map_err(|_| PollError::InvalidBody("body is not UTF-8 text".into()))?;
            let labels = ctx.global_labels.of_passthrough(
                std::iter::once(("target".to_string(), target.name.clone()))
                    .chain(target.labels.iter().map(|(k, v)| (k.clone(), v.clone()))),
            );
            let relabeled = if om {
                prom::relabel_openmetrics(text, &labels, &ctx.served, ctx.max_series)
                    .map_err(|e| PollError::InvalidBody(format!("invalid OpenMetrics text: {e}")))?
            } else {
                prom::relabel(text, &labels, &ctx.served, ctx.max_series)
                    .map_err(|e| PollError::InvalidBody(format!("invalid Prometheus text: {e}")))?
            };
            out.series = relabeled.series;
            out.dropped = relabeled.dropped;
            out.extraction_errors = relabeled
                .dropped_families
                .into_iter()
                .map(|name| ErrorCount {
                    metric: name,
                    reason: "name_collision",
                    count: 1,
                    example: None,
                })
                .chain(
                    relabeled
                        .too_deep
                        .into_iter()
                        .map(|(name, count)| ErrorCount {
                            metric: name,
                            reason: "exported_prefix_depth",
                            count,
                            example: None,
                        }),
                )
                .collect();
            out.passthrough = Some(Arc::new(relabeled.families));
        }
    }
    Ok(out)
}

/// One poll of `target`, start to finish.
pub async fn poll_once(p: &Arc<Poller>, ctx: &PollContext) -> Outcome {
    let (target, client) = (&p.target, &p.client);
    let start = Instant::now();
    let fetched =
        tokio::time::timeout(target.timeout, fetch(target, client, ctx.max_body_bytes)).await;
    let mut outcome = match fetched {
        Err(_) => Outcome::failed(0, 0, PollError::Timeout(target.timeout)),
        Ok(Err(failed)) => failed,
        Ok(Ok((status, body, om))) => {
            let size = body.len() as u64;
            let processed = if body.len() > INLINE_PARSE_LIMIT {
                let (p, c) = (p.clone(), ctx.clone());
                // On the shared blocking pool at the process's priority:
                // this is the poll itself, it must not wait behind anything.
                tokio::task::spawn_blocking(move || process_body(&p, &c, &body, om))
                    .await
                    .unwrap_or_else(|e| {
                        Err(PollError::InvalidBody(format!(
                            "extraction task failed: {e}"
                        )))
                    })
            } else {
                process_body(p, ctx, &body, om)
            };
            match processed {
                Ok(mut o) => {
                    o.status = status;
                    o
                }
                Err(e) => Outcome::failed(status, size, e),
            }
        }
    };
    outcome.duration = start.elapsed().as_secs_f64();
    outcome
}

/// Publishes a poll's outcome through the target's slot; logs only when the
/// target goes down or recovers. Returns false (and publishes nothing) when
/// the slot is no longer the target's owner: the target was removed or
/// handed to a newer poller by a reload.
pub fn publish(slot: &SlotWriter, target: &Target, outcome: Outcome) -> bool {
    let mut replaced = Replaced::new();
    let published = publish_into(slot, target, outcome, &mut replaced);
    drop_off_async(replaced);
    published
}

/// What a poll's publication replaced: the previous series, account and
/// pass-through families, dropped once the store's lock is released.
type Replaced = Vec<Box<dyn std::any::Any + Send>>;

/// Drops `replaced` on the drop thread ([`crate::sched::drops`], at the
/// background nice) when called from the runtime, else here. Freeing the
/// previous poll's series takes milliseconds at 100k series; on a worker
/// thread, under the store's lock, it held back the scrapes queued on that
/// worker and the render (the slowest scrapes at 100k series were 6-12 ms).
/// Not on the blocking pool: its threads run polls and keep their priority.
pub(crate) fn drop_off_async<T: Send + 'static>(replaced: T) {
    if tokio::runtime::Handle::try_current().is_ok() {
        crate::sched::drops::drop_later(replaced);
    } else {
        drop(replaced);
    }
}

fn publish_into(
    slot: &SlotWriter,
    target: &Target,
    outcome: Outcome,
    replaced: &mut Replaced,
) -> bool {
    let Some(mut inner) = slot.write() else {
        return false;
    };
    let state = inner.targets.entry(target.name.clone()).or_default();
    let was_up = state.up;
    let first = !state.polled;
    // What is unchanged since the last poll is kept, not replaced: a
    // steady target allocates nothing long-lived but its new series, so
    // its state is not scattered between the poll round's transient
    // allocations (docs/performance.md, "Thousands of targets").
    let url = redact(&target.url);
    if state.url != url {
        state.url = url;
    }
    state.polled = true;
    state.poll_duration = outcome.duration;
    state.http_status = outcome.status;
    state.response_size = outcome.size;
    let result = outcome.result();
    *state.polls.entry(result).or_default() += 1;
    for e in outcome.extraction_errors {
        *state
            .extraction_errors
            .entry((e.metric, e.reason))
            .or_default() += e.count;
    }
    state.dropped += outcome.dropped;
    if let Some(error) = outcome.error {
        let error = error.to_string();
        state.up = false;
        state.series = 0;
        replaced.push(Box::new(std::mem::take(&mut state.families)));
        state.labels = Arc::default();
        replaced.push(Box::new(state.passthrough.take()));
        if was_up || first {
            tracing::warn!(target_name = %target.name, result = result.as_str(), error = %error, "target down");
        }
        state.last_error = Some(error);
    } else {
        state.up = true;
        state.last_success = Some(unix_now());
        state.last_error = None;
        state.series = outcome.series;
        replaced.push(Box::new(std::mem::replace(
            &mut state.families,
            outcome.families,
        )));
        if state.labels != outcome.labels {
            replaced.push(Box::new(std::mem::replace(
                &mut state.labels,
                outcome.labels,
            )));
        }
        replaced.push(Box::new(std::mem::replace(
            &mut state.passthrough,
            outcome.passthrough,
        )));
        // Kept while the target is down: the page shows the last good poll,
        // and a rule still failing after an outage is not logged again.
        match outcome.explain {
            Some(report) => {
                log_rule_changes(&target.name, state.explain.as_deref(), &report);
                let report = reuse_explain(state.explain.take(), report, replaced);
                state.explain = Some(Arc::new(report));
            }
            None => replaced.push(Box::new(state.explain.take())),
        }
        if !was_up && !first {
            tracing::info!(target_name = %target.name, "target recovered");
        }
    }
    true
}

/// `now`, in the vectors of `before` when they are equal and nothing else
/// holds `before` (the steady state of a target): its rules' records are
/// not allocated again at every poll. `before` goes to `replaced` otherwise.
fn reuse_explain(before: Option<Arc<Record>>, mut now: Record, replaced: &mut Replaced) -> Record {
    let Some(before) = before else { return now };
    match Arc::try_unwrap(before) {
        Ok(mut kept)
            if kept.base_len == now.base_len
                && kept.spans == now.spans
                && kept.rules == now.rules =>
        {
            let old = std::mem::replace(&mut kept.families, std::mem::take(&mut now.families));
            replaced.push(Box::new(old));
            replaced.push(Box::new(now));
            kept
        }
        Ok(kept) => {
            replaced.push(Box::new(kept));
            now
        }
        Err(shared) => {
            replaced.push(Box::new(shared));
            now
        }
    }
}

/// Logs each rule of `now` that fails where it did not in `before` (at
/// warn, with its first failure's value and hint), and each that failed in
/// `before` and no longer does (at info). Rules are matched by position
/// and name, so a reload that changes them starts afresh.
fn log_rule_changes(target: &str, before: Option<&Record>, now: &Record) {
    for (i, rule) in now.rules.iter().enumerate() {
        let was = before
            .and_then(|b| b.rules.get(i))
            .filter(|b| b.info.metric == rule.info.metric)
            .is_some_and(|b| b.failing());
        match rule.failures.first() {
            Some(f) if !was => tracing::warn!(
                target_name = %target,
                metric = %rule.info.metric,
                reason = f.reason,
                count = f.count,
                value = f.value.as_deref(),
                hint = %f.hint,
                "rule failing"
            ),
            None if was => {
                tracing::info!(target_name = %target, metric = %rule.info.metric, "rule recovered");
            }
            _ => {}
        }
    }
}

/// The URL as shown on `/`, `/-/status` and the target page: no user
/// info, and the values of its query hidden (`?token=…`).
pub fn redact(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    report::public_url(u.as_str())
}

/// A stable offset in `[0, interval/10)` so targets don't fire in step.
fn jitter(name: &str, interval: Duration) -> Duration {
    let hash = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    let span = (interval.as_millis() / 10).max(1) as u64;
    Duration::from_millis(hash % span)
}

/// Polls `target` through `slot` until `shutdown` changes (or its sender is
/// gone); the first poll starts at once and calls `first_done` when finished
/// (the readiness latch counts these). Every poll, the first one included,
/// is given up as soon as `shutdown` changes.
pub async fn run(
    p: Arc<Poller>,
    ctx: PollContext,
    slot: SlotWriter,
    first_done: impl FnOnce(),
    shutdown: watch::Receiver<bool>,
) {
    let target = p.target.clone();
    let offset = jitter(&target.name, target.interval);
    let (p, ctx, slot, target) = (&p, &ctx, &slot, &*target);
    // Boxed: an idle target's task holds only the loop, not a poll's state
    // (about 2.5 KB per target).
    let poll = move || {
        Box::pin(async move {
            let _place = ctx.gate.enter(target.timeout).await;
            // A descriptor for the connection first (`crate::fdlimit`), held
            // until the poll is done.
            let permits = crate::fdlimit::poll_permits().clone();
            let outcome = match tokio::time::timeout(target.timeout, permits.acquire_owned()).await
            {
                Ok(Ok(permit)) => {
                    let outcome = poll_once(p, ctx).await;
                    drop(permit);
                    outcome
                }
                _ => {
                    crate::fdlimit::log_refused_once(&target.name);
                    Outcome::failed(0, 0, PollError::FdLimit(target.timeout))
                }
            };
            publish(slot, target, outcome)
        })
    };
    drive(target.interval, offset, poll, first_done, shutdown).await;
}

/// The loop of [`run`], apart from what a poll does: `poll` runs at once,
/// then on ticks every `interval` from `interval + offset`, each awaited
/// before the next tick (a slow poll delays the next one). It stops when a
/// poll returns false or `shutdown` changes, dropping a poll in flight.
async fn drive<F, Fut>(
    interval: Duration,
    offset: Duration,
    mut poll: F,
    first_done: impl FnOnce(),
    mut shutdown: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now() + interval + offset;
    let mut ticks = tokio::time::interval_at(start, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first_done = Some(first_done);
    loop {
        tokio::select! {
            more = poll() => {
                if !more {
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
        if let Some(done) = first_done.take() {
            done();
        }
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests;
