//! A small app with the status endpoints remora is made for, to try remora
//! against and to test it end to end.
//!
//! ```text
//! cargo run --example demo_app -- [ADDRESS]     # default 127.0.0.1:8080
//! ```
//!
//! - `GET /health`: overall status and per-dependency checks (status, latency_ms, free_gb)
//! - `GET /health/ready`: 200, or 503 with the same useful body when a dependency is down
//! - `GET /version`: version, commit, build time, uptime string, feature flags
//! - `GET /metrics`: the app's own Prometheus metrics (a counter and a histogram)
//! - `POST /fail/DEPENDENCY` and `POST /recover/DEPENDENCY`: break or mend a dependency
//!
//! It prints `listening on ADDRESS` once bound (tests start it on port 0).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

struct App {
    started: Instant,
    requests: AtomicU64,
    /// Dependency -> (healthy, base latency in ms).
    deps: Mutex<BTreeMap<String, (bool, f64)>>,
}

fn uptime(secs: u64) -> String {
    format!("{}h{}m{}s", secs / 3600, secs / 60 % 60, secs % 60)
}

impl App {
    fn checks(&self) -> (bool, serde_json::Value) {
        let deps = self.deps.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.requests.load(Ordering::Relaxed) as f64;
        let mut checks = serde_json::Map::new();
        let mut all = true;
        for (name, (healthy, base)) in deps.iter() {
            all &= *healthy;
            let status = if *healthy { "healthy" } else { "unhealthy" };
            let latency = if *healthy {
                base + (n % 7.0) * 0.25
            } else {
                5000.0
            };
            let mut check = serde_json::json!({
                "status": status,
                "healthy": healthy,
                "latency_ms": latency,
            });
            if name == "disk" {
                check["free_gb"] = serde_json::json!(10.5);
                check["message"] = serde_json::json!("10.50GB free");
            }
            checks.insert(name.clone(), check);
        }
        (all, serde_json::Value::Object(checks))
    }

    fn respond(&self, method: &Method, path: &str) -> (StatusCode, &'static str, String) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let up = self.started.elapsed().as_secs();
        match (method, path) {
            (&Method::GET, "/health") => {
                let (all, checks) = self.checks();
                let body = serde_json::json!({
                    "status": if all { "healthy" } else { "degraded" },
                    "checks": checks,
                    "version": "1.4.2",
                    "uptime": uptime(up),
                    "uptime_seconds": up,
                });
                (StatusCode::OK, "application/json", body.to_string())
            }
            (&Method::GET, "/health/ready") => {
                let (all, checks) = self.checks();
                let body = serde_json::json!({
                    "status": if all { "ready" } else { "not_ready" },
                    "checks": checks,
                });
                let code = if all {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (code, "application/json", body.to_string())
            }
            (&Method::GET, "/version") => {
                let body = serde_json::json!({
                    "version": "1.4.2",
                    "commit": "9f1c2ab",
                    "build_time": "2026-11-01T10:00:00Z",
                    "started_at": 1795000000,
                    "uptime": uptime(up),
                    "features": {"new_checkout": true, "beta_search": false},
                });
                (StatusCode::OK, "application/json", body.to_string())
            }
            (&Method::GET, "/metrics") => {
                let n = self.requests.load(Ordering::Relaxed);
                let text = format!(
                    "# HELP demo_http_requests_total Requests served.\n# TYPE demo_http_requests_total counter\n\
                     demo_http_requests_total{{code=\"200\"}} {n}\n\
                     # HELP demo_request_duration_seconds Request latency.\n# TYPE demo_request_duration_seconds histogram\n\
                     demo_request_duration_seconds_bucket{{le=\"0.1\"}} {n}\n\
                     demo_request_duration_seconds_bucket{{le=\"+Inf\"}} {n}\n\
                     demo_request_duration_seconds_sum {}\n\
                     demo_request_duration_seconds_count {n}\n",
                    n as f64 * 0.003
                );
                (StatusCode::OK, "text/plain; version=0.0.4", text)
            }
            (&Method::POST, p) if p.starts_with("/fail/") || p.starts_with("/recover/") => {
                let (healthy, dep) = match p.strip_prefix("/fail/") {
                    Some(d) => (false, d),
                    None => (true, p.trim_start_matches("/recover/")),
                };
                let mut deps = self.deps.lock().unwrap_or_else(|e| e.into_inner());
                match deps.get_mut(dep) {
                    Some(entry) => {
                        entry.0 = healthy;
                        (
                            StatusCode::OK,
                            "text/plain",
                            format!("{dep} healthy={healthy}\n"),
                        )
                    }
                    None => (
                        StatusCode::NOT_FOUND,
                        "text/plain",
                        "no such dependency\n".into(),
                    ),
                }
            }
            _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = Arc::new(App {
        started: Instant::now(),
        requests: AtomicU64::new(0),
        deps: Mutex::new(BTreeMap::from([
            ("database".to_string(), (true, 5.0)),
            ("redis".to_string(), (true, 1.0)),
            ("disk".to_string(), (true, 0.5)),
        ])),
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    let (status, ctype, body) = app.respond(req.method(), req.uri().path());
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = status;
                    if let Ok(v) = ctype.parse() {
                        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
