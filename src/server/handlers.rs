//! The handlers and pages: `/metrics` (the latest render in the format the
//! `Accept` header negotiates, gzip when accepted), `/`, `/targets/NAME` (see `pages`), `/-/healthy`, `/-/ready`,
//! `/-/status`, `/-/reload`, with basic auth in front of all but the probes.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::oneshot;

use super::inflate::Inflate;
use super::pages::{
    app_health, decode_segment, failing_rules, html_escape, target_href, target_page,
};
use super::{AppState, RENDER_WAIT};
use crate::exposition::{choose, Variant, VERSION};
use crate::store::unix_now;

/// A whole body, or the plain exposition inflated as it is sent.
type Body = Either<Full<Bytes>, Inflate>;
type Resp = Response<Body>;

fn full(body: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(body.into()))
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(full(body));
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

/// The `Accept` headers of a request, joined (a header may come several times).
fn accept(req: &Request<Incoming>) -> Option<String> {
    let mut values = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    values.peek()?;
    Some(values.collect::<Vec<_>>().join(","))
}

fn metrics(state: &AppState, req: &Request<Incoming>) -> Resp {
    let latest = state.renderer.latest();
    let rendered = match &*latest {
        Ok(r) => r,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    };
    let asked = choose(accept(req).as_deref(), state.exposition_format);
    // The variant's render, or (until its first render exists) text 0.0.4.
    let other = state.renderer.variant(asked);
    let (rendered, variant) = match &other {
        Some(r) => (&**r, asked),
        None if asked.body_is_004() => (rendered, asked),
        None => (rendered, Variant::TEXT_004),
    };
    let gzip = accepts_gzip(req);
    let (len, body) = if gzip {
        (rendered.gzip.len(), full(rendered.gzip.clone()))
    } else {
        let plain = Inflate::new(rendered.gzip.clone(), rendered.plain_len);
        (rendered.plain_len, Either::Right(plain))
    };
    // HEAD: `handle` empties the body; the length stays.
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(variant.content_type()),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
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
         .down{{color:#b00}}.up{{color:#070}}table#targets td{{overflow-wrap:anywhere}}</style></head><body>\
         <h1>remora {VERSION}</h1><p>Sidecar metrics exporter. Config: <code>{}</code></p>\
         <ul><li><a href=\"{mp}\">{mp}</a></li><li><a href=\"/-/status\">/-/status</a></li>\
         <li><a href=\"/-/healthy\">/-/healthy</a></li><li><a href=\"/-/ready\">/-/ready</a></li></ul>\
         <h2>Targets</h2><table id=\"targets\"><tr><th>target</th><th>url</th><th>up</th><th>app health</th><th>failing rules</th><th>last success</th><th>series</th><th>last error</th></tr>",
        html_escape(&config.path.display().to_string()),
        mp = html_escape(&state.metrics_path),
    );
    for (name, t) in &inner.targets {
        let failing = failing_rules(t);
        let (class, up) = match (t.polled, t.up) {
            (false, _) => ("", "pending"),
            (true, true) => ("up", "up"),
            (true, false) => ("down", "down"),
        };
        let _ = write!(
            html,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td class=\"{class}\">{up}</td><td class=\"health\">{}</td><td class=\"{}\">{failing}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&target_href(name)),
            html_escape(name),
            html_escape(&t.url),
            html_escape(&app_health(t)),
            if failing > 0 { "down" } else { "" },
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
    let mut r = Response::new(full(html));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn html(body: String) -> Resp {
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// `GET /targets/NAME`: 404 for a name that is not a running target.
fn target(state: &AppState, segment: &str) -> Resp {
    let Some(name) = decode_segment(segment) else {
        return text(StatusCode::NOT_FOUND, "Not Found\n");
    };
    let inner = state.store.read();
    match inner.targets.get(&name) {
        Some(t) => html(target_page(&name, t)),
        // Configured but not polled yet.
        None if state.config.load().targets.iter().any(|t| t.name == name) => {
            html(target_page(&name, &Default::default()))
        }
        None => text(StatusCode::NOT_FOUND, "No such target\n"),
    }
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
    let json = match serde_json::to_vec_pretty(&body) {
        Ok(json) => json,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the status: {e}\n"),
            )
        }
    };
    let mut r = Response::new(full(json));
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
            (p, true) if p.starts_with("/targets/") => target(&state, &p["/targets/".len()..]),
            (p, false) if p.starts_with("/targets/") => method_not_allowed("GET, HEAD"),
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
        *resp.body_mut() = full(Bytes::new());
    }
    Ok(resp)
}
