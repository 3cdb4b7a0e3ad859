//! The HTTP server (hyper 1.x): `/metrics`, `/`, `/-/healthy`, `/-/ready`,
//! `/-/status`, `/-/reload`.
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests run it on
//! port 0. On shutdown it stops accepting, lets in-flight requests finish for
//! at most 5 seconds, and returns.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::render::Renderer;
use crate::store::{unix_now, Store};
use crate::telemetry::VERSION;
use crate::web::WebConfig;

/// How long in-flight requests may take after shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send its request headers (and TLS handshake).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A reload request: answered with Ok or the error text.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the handlers share.
pub struct AppState {
    pub renderer: Renderer,
    pub store: Arc<Store>,
    /// Latched once the config is loaded and the first poll round was attempted.
    pub ready: Arc<crate::app::Readiness>,
    pub config: ArcSwap<Config>,
    pub metrics_path: String,
    pub started: Instant,
    pub lifecycle: bool,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub web: WebConfig,
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

async fn metrics(state: &AppState, req: &Request<Incoming>) -> Resp {
    let rendered = match state.renderer.get().await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot render metrics: {e}\n"),
            );
        }
    };
    let gzip = accepts_gzip(req);
    let body = if gzip {
        rendered.gzip()
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
    match rx.await {
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
            metrics(&state, &req).await
        } else {
            method_not_allowed("GET, HEAD")
        }
    } else {
        match (path, read_only) {
            ("/", true) => index(&state),
            ("/-/healthy", true) => text(StatusCode::OK, "Healthy\n"),
            ("/-/ready", true) => {
                if state.ready.is_ready() {
                    text(StatusCode::OK, "Ready\n")
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Not ready: first poll round not finished\n",
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

/// Serves until `shutdown` completes, then drains for at most [`DRAIN_TIMEOUT`].
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let tls = state.web.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    tokio::pin!(shutdown);
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
        let _ = stream.set_nodelay(true);
        let st = state.clone();
        let service = hyper::service::service_fn(move |req| handle(st.clone(), req));
        match &tls {
            None => {
                let conn = http.serve_connection(TokioIo::new(stream), service);
                let fut = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = fut.await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let http = http.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within 5s; closing them");
    }
}
