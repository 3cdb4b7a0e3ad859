//! The HTTP server (hyper 1.x): `/metrics`, `/`, `/-/healthy`, `/-/ready`,
//! `/-/status`, `/-/reload`.
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests run it on
//! port 0. On shutdown it stops accepting, lets in-flight requests finish for
//! at most 5 seconds, and returns.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::AbortHandle;

use crate::config::Config;
use crate::exposition::Renderer;
use crate::exposition::VERSION;
use crate::store::{unix_now, Store};
use crate::web::WebConfig;

/// How long in-flight requests may take after shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of [`ServeLimits::header_read_timeout`] (kubert's admin server uses 2 s too).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Default of `--web.max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// How long readiness and `POST /-/reload` wait for the render of the state
/// they report (a scrape never waits).
const RENDER_WAIT: Duration = Duration::from_secs(2);

/// A reload request: answered with Ok or the error text.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the handlers share.
pub struct AppState {
    pub renderer: Renderer,
    pub store: Arc<Store>,
    /// Latched once the config is loaded and the first poll round was attempted.
    pub ready: Arc<crate::readiness::Readiness>,
    pub config: ArcSwap<Config>,
    pub metrics_path: String,
    pub started: Instant,
    pub lifecycle: bool,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub web: WebConfig,
    /// Connection limits (see [`serve`]).
    pub limits: ServeLimits,
}

/// How many connections, and how long a client may idle.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// `--web.max-connections`: open connections at most.
    pub max_connections: usize,
    /// How long a client may take to send its request headers (and, before
    /// that, its TLS handshake), and how long a kept-alive connection may idle.
    pub header_read_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn accepts_gzip(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !q_zero
        })
}

fn metrics(state: &AppState, req: &Request<Incoming>) -> Resp {
    let latest = state.renderer.latest();
    let rendered = match &*latest {
        Ok(r) => r,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    };
    let gzip = accepts_gzip(req);
    let body = if gzip {
        rendered.gzip.clone()
    } else {
        rendered.text.clone()
    };
    let len = body.len();
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn age(last: Option<f64>) -> String {
    match last {
        Some(t) => format!("{:.1}s ago", (unix_now() - t).max(0.0)),
        None => "never".into(),
    }
}

fn index(state: &AppState) -> Resp {
    let inner = state.store.read();
    let config = state.config.load();
    let mut html = String::with_capacity(4096);
    let _ = write!(
        html,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>remora</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}\
         .down{{color:#b00}}.up{{color:#070}}</style></head><body>\
         <h1>remora {VERSION}</h1><p>Sidecar metrics exporter. Config: <code>{}</code></p>\
         <ul><li><a href=\"{mp}\">{mp}</a></li><li><a href=\"/-/status\">/-/status</a></li>\
         <li><a href=\"/-/healthy\">/-/healthy</a></li><li><a href=\"/-/ready\">/-/ready</a></li></ul>\
         <h2>Targets</h2><table><tr><th>target</th><th>url</th><th>up</th><th>last success</th><th>series</th><th>last error</th></tr>",
        html_escape(&config.path.display().to_string()),
        mp = html_escape(&state.metrics_path),
    );
    for (name, t) in &inner.targets {
        let (class, up) = match (t.polled, t.up) {
            (false, _) => ("", "pending"),
            (true, true) => ("up", "up"),
            (true, false) => ("down", "down"),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{up}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(name),
            html_escape(&t.url),
            age(t.last_success),
            t.series,
            html_escape(t.last_error.as_deref().unwrap_or("")),
        );
    }
    html.push_str("</table><h2>Collectors</h2><table><tr><th>collector</th><th>up</th><th>last success</th><th>series</th><th>last error</th></tr>");
    for (name, c) in &inner.collectors {
        let series: usize = c.families.iter().map(|f| f.series.len()).sum();
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{series}</td><td>{}</td></tr>",
            html_escape(name),
            if c.up { "up" } else { "down" },
            if c.up { "up" } else { "down" },
            age(c.last_success),
            html_escape(c.last_error.as_deref().unwrap_or("")),
        );
    }
    html.push_str("</table></body></html>\n");
    let mut r = Response::new(Full::new(Bytes::from(html)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn status(state: &AppState) -> Resp {
    let inner = state.store.read();
    let config = state.config.load();
    let now = unix_now();
    let targets: serde_json::Map<String, serde_json::Value> = inner
        .targets
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                serde_json::json!({
                    "url": t.url,
                    "up": t.up,
                    "polled": t.polled,
                    "last_error": t.last_error,
                    "last_success_age_seconds": t.last_success.map(|s| (now - s).max(0.0)),
                    "last_poll_duration_seconds": t.poll_duration,
                    "http_status": t.http_status,
                    "response_size_bytes": t.response_size,
                    "series": t.series,
                    "series_dropped_total": t.dropped,
                }),
            )
        })
        .collect();
    let collectors: serde_json::Map<String, serde_json::Value> = inner
        .collectors
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                serde_json::json!({
                    "up": c.up,
                    "last_error": c.last_error,
                    "last_success_age_seconds": c.last_success.map(|s| (now - s).max(0.0)),
                    "duration_seconds": c.duration,
                    "series": c.families.iter().map(|f| f.series.len()).sum::<usize>(),
                }),
            )
        })
        .collect();
    let body = serde_json::json!({
        "version": VERSION,
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "ready": state.ready.is_ready(),
        "config_file": config.path.display().to_string(),
        "last_reload": {
            "successful": inner.reload.last_successful,
            "success_timestamp_seconds": inner.reload.last_success_timestamp,
            "last_attempt_timestamp_seconds": inner.reload.last_attempt,
            "error": inner.reload.last_error,
        },
        "targets": targets,
        "collectors": collectors,
    });
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec_pretty(&body).unwrap_or_default(),
    )));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn reload(state: &AppState) -> Resp {
    if !state.lifecycle {
        return text(
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled (start remora with --web.enable-lifecycle)\n",
        );
    }
    let (tx, rx) = oneshot::channel();
    if state.reload.send(tx).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    let result = rx.await;
    // Answer once the render shows the outcome (the reload flag, new targets).
    let _ = state
        .renderer
        .wait_rendered(state.store.generation(), RENDER_WAIT)
        .await;
    match result {
        Ok(Ok(())) => text(StatusCode::OK, "config reloaded\n"),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}

/// Routes one request.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path();
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    let open = matches!(path, "/-/healthy" | "/-/ready");
    if !open {
        if let Some(auth) = &state.web.auth {
            let header = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let verdict = auth.check(header).await;
            if verdict == crate::web::AuthResult::Busy {
                let mut r = text(StatusCode::TOO_MANY_REQUESTS, "Too many logins at once\n");
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return Ok(r);
            }
            if verdict != crate::web::AuthResult::Allowed {
                let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"remora\""),
                );
                return Ok(r);
            }
        }
    }
    let resp = if path == state.metrics_path {
        if read_only {
            metrics(&state, &req)
        } else {
            method_not_allowed("GET, HEAD")
        }
    } else {
        match (path, read_only) {
            ("/", true) => index(&state),
            ("/-/healthy", true) => text(StatusCode::OK, "Healthy\n"),
            ("/-/ready", true) => {
                if !state.ready.is_ready() {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Not ready: first poll round not finished\n",
                    )
                } else if state.renderer.ready(RENDER_WAIT).await {
                    text(StatusCode::OK, "Ready\n")
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Not ready: first poll round not rendered yet\n",
                    )
                }
            }
            ("/-/status", true) => status(&state),
            ("/-/reload", _) if matches!(*req.method(), Method::POST | Method::PUT) => {
                reload(&state).await
            }
            ("/-/reload", _) => method_not_allowed("POST, PUT"),
            ("/" | "/-/healthy" | "/-/ready" | "/-/status", false) => {
                method_not_allowed("GET, HEAD")
            }
            _ => text(StatusCode::NOT_FOUND, "Not Found\n"),
        }
    };
    let mut resp = resp;
    if req.method() == Method::HEAD {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    Ok(resp)
}

/// What a connection is doing, for choosing which one to shed.
const FRESH: u8 = 0; // no request yet (TLS handshake, or waiting for headers)
const BUSY: u8 = 1; // a request in flight
const KEPT: u8 = 2; // answered, kept alive for the next request

/// One open connection.
struct Slot {
    state: AtomicU8,
    /// Set when the connection was asked to close to make room.
    evicting: AtomicBool,
    evict: Notify,
}

/// Open connections by id (oldest first), with their tasks' abort handles.
type Open = BTreeMap<u64, (Arc<Slot>, Option<AbortHandle>)>;

/// The open connections and the cap on them.
struct Conns {
    max: usize,
    open: Mutex<Open>,
    /// Signalled whenever a connection closes or finishes a request.
    changed: Notify,
}

/// Removes its connection from [`Conns`] when the connection's task ends.
struct SlotGuard {
    conns: Arc<Conns>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.conns.lock().remove(&self.id);
        self.conns.changed.notify_one();
    }
}

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once a new connection fits under the cap. When full, asks the
    /// oldest connection that never sent a request to close (else the oldest
    /// kept-alive one between requests); when every connection has a request
    /// in flight, waits for one to close.
    async fn make_room(&self) {
        loop {
            {
                let open = self.lock();
                if open.len() < self.max {
                    return;
                }
                let closing = open
                    .values()
                    .filter(|(s, _)| s.evicting.load(Ordering::Acquire))
                    .count();
                if open.len() - closing >= self.max {
                    let idle = |want: u8| {
                        open.values().map(|(s, _)| s).find(|s| {
                            !s.evicting.load(Ordering::Acquire)
                                && s.state.load(Ordering::Acquire) == want
                        })
                    };
                    if let Some(victim) = idle(FRESH).or_else(|| idle(KEPT)) {
                        tracing::debug!(
                            max = self.max,
                            "connection limit reached; closing the oldest idle connection"
                        );
                        victim.evicting.store(true, Ordering::Release);
                        victim.evict.notify_one();
                    } else {
                        tracing::debug!(
                            max = self.max,
                            "connection limit reached, every connection busy; the new one waits"
                        );
                    }
                }
            }
            self.changed.notified().await;
        }
    }

    fn admit(self: &Arc<Self>, id: u64) -> (Arc<Slot>, SlotGuard) {
        let slot = Arc::new(Slot {
            state: AtomicU8::new(FRESH),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
        });
        self.lock().insert(id, (slot.clone(), None));
        let guard = SlotGuard {
            conns: self.clone(),
            id,
        };
        (slot, guard)
    }

    fn set_abort(&self, id: u64, handle: AbortHandle) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.1 = Some(handle);
        }
    }

    /// Waits until every connection closed.
    async fn drained(&self) {
        while !self.lock().is_empty() {
            self.changed.notified().await;
        }
    }

    fn abort_all(&self) {
        for (_, abort) in self.lock().values() {
            if let Some(a) = abort {
                a.abort();
            }
        }
    }
}

/// Why a connection stops before its client closes it.
enum Stop {
    Evicted,
    Shutdown,
}

/// Serves one connection until it ends, it is evicted, or the server stops.
/// An evicted connection that never sent a request is dropped at once; any
/// other is closed gracefully (a request in flight is answered first).
async fn drive<I, S, B>(
    conn: hyper::server::conn::http1::Connection<I, S>,
    slot: &Slot,
    shutdown: &mut watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    let stop = tokio::select! {
        _ = conn.as_mut() => return,
        _ = slot.evict.notified() => Stop::Evicted,
        _ = shutdown.wait_for(|s| *s) => Stop::Shutdown,
    };
    if matches!(stop, Stop::Evicted) && slot.state.load(Ordering::Acquire) == FRESH {
        return;
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// One accepted connection: TLS handshake if configured, then HTTP/1.
async fn connection(
    stream: TcpStream,
    state: Arc<AppState>,
    http: hyper::server::conn::http1::Builder,
    tls: Option<tokio_rustls::TlsAcceptor>,
    slot: Arc<Slot>,
    guard: SlotGuard,
    mut shutdown: watch::Receiver<bool>,
) {
    let handshake_timeout = state.limits.header_read_timeout;
    let service = {
        let (slot, conns) = (slot.clone(), guard.conns.clone());
        hyper::service::service_fn(move |req| {
            let (state, slot, conns) = (state.clone(), slot.clone(), conns.clone());
            async move {
                slot.state.store(BUSY, Ordering::Release);
                let resp = handle(state, req).await;
                slot.state.store(KEPT, Ordering::Release);
                // A client waiting for room may now take this connection's.
                conns.changed.notify_one();
                resp
            }
        })
    };
    // Dropped when this future ends or its task is aborted: frees the slot.
    let _guard = guard;
    match tls {
        None => {
            let conn = http.serve_connection(TokioIo::new(stream), service);
            drive(conn, &slot, &mut shutdown).await;
        }
        Some(acceptor) => {
            // The handshake counts as idle: evictable, and bounded by the
            // header-read timeout.
            let stream = tokio::select! {
                done = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)) => match done {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                _ = slot.evict.notified() => return,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let conn = http.serve_connection(TokioIo::new(stream), service);
            drive(conn, &slot, &mut shutdown).await;
        }
    }
}

/// Serves until `shutdown` completes, then drains for at most [`DRAIN_TIMEOUT`].
///
/// At most `state.limits.max_connections` connections are open at once. A
/// client must send its request headers (after its TLS handshake) within the
/// header-read timeout (2 s), and a kept-alive connection is closed after
/// idling as long. When the cap is reached, a new connection is admitted by closing
/// the oldest one that never sent a request (else the oldest kept-alive one
/// between requests); a connection with a request in flight is never closed
/// for room. When every connection has a request in flight, the new one waits
/// (accepted, not served, and nothing more is accepted) until one ends.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let conns = Arc::new(Conns {
        max: state.limits.max_connections.max(1),
        open: Mutex::new(BTreeMap::new()),
        changed: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let tls = state.web.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    let mut next_id: u64 = 0;
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        tokio::select! {
            _ = conns.make_room() => {}
            _ = &mut shutdown => break,
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let (slot, guard) = conns.admit(next_id);
        let task = tokio::spawn(connection(
            stream,
            state.clone(),
            http.clone(),
            tls.clone(),
            slot,
            guard,
            stop_rx.clone(),
        ));
        conns.set_abort(next_id, task.abort_handle());
    }
    drop(listener);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, conns.drained())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within 5s; closing them");
        conns.abort_all();
    }
}
