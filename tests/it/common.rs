//! Shared helpers for integration tests: a scriptable local HTTP target and
//! remora started in-process on port 0.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What a route of the fake target answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Status, content type, body.
    Body(u16, &'static str, String),
    /// Never answers.
    Hang,
    /// Redirects to itself forever.
    RedirectLoop,
    /// A body of N bytes streamed without Content-Length.
    Huge(usize),
    /// Status (3xx) and Location.
    Redirect(u16, String),
}

impl Reply {
    pub fn json(body: &str) -> Self {
        Reply::Body(200, "application/json", body.to_string())
    }
}

/// One request as the fake target saw it.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub method: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

type Routes = Arc<Mutex<HashMap<String, Reply>>>;
type Log = Arc<Mutex<HashMap<String, Vec<Seen>>>>;

/// A local HTTP (or HTTPS) server whose routes can be changed while it runs;
/// it records every request by path.
pub struct FakeTarget {
    pub addr: SocketAddr,
    routes: Routes,
    seen: Log,
    task: tokio::task::JoinHandle<()>,
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    routes: Routes,
    seen: Log,
) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    seen.lock()
        .unwrap()
        .entry(path.clone())
        .or_default()
        .push(Seen {
            method,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    let reply = routes.lock().unwrap().get(&path).cloned();
    match reply {
        None => Response::builder()
            .status(404)
            .body(Full::new(Bytes::from("nope")))
            .unwrap(),
        Some(Reply::Body(status, ctype, body)) => Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
        Some(Reply::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            unreachable!()
        }
        Some(Reply::RedirectLoop) => Response::builder()
            .status(302)
            .header("location", path.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap(),
        Some(Reply::Huge(n)) => Response::builder()
            .status(200)
            .body(Full::new(Bytes::from(vec![b' '; n])))
            .unwrap(),
        Some(Reply::Redirect(status, location)) => Response::builder()
            .status(status)
            .header("location", location)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    }
}

async fn serve_one<S>(stream: S, routes: Routes, seen: Log)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let (r, s) = (routes.clone(), seen.clone());
        async move { Ok::<_, Infallible>(answer(req, r, s).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

impl FakeTarget {
    pub async fn start() -> Self {
        Self::start_with_tls(None).await
    }

    /// With `Some(config)`, serves HTTPS.
    pub async fn start_with_tls(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        remora::targets::client::install_crypto_provider();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes: Routes = Arc::default();
        let seen: Log = Arc::default();
        let (r, s) = (routes.clone(), seen.clone());
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, s, acceptor) = (r.clone(), s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        None => serve_one(stream, r, s).await,
                        Some(a) => {
                            if let Ok(tls) = a.accept(stream).await {
                                serve_one(tls, r, s).await;
                            }
                        }
                    }
                });
            }
        });
        FakeTarget {
            addr,
            routes,
            seen,
            task,
        }
    }

    /// Requests seen on `path`, oldest first.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// How many requests `path` got.
    pub fn hits(&self, path: &str) -> usize {
        self.seen(path).len()
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_string(), reply);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

/// remora running in-process on 127.0.0.1:0.
pub struct Remora {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
pub struct Start {
    pub lifecycle: bool,
    pub watch: bool,
    pub web_config: Option<String>,
    /// Put the config behind a Kubernetes-style `..data` symlink.
    pub configmap: bool,
    /// Return at once instead of waiting for `/-/ready`.
    pub no_wait: bool,
    /// `--web.max-connections` (default 512).
    pub max_connections: Option<usize>,
    /// The environment `${VAR}` expands from at the first load, instead of
    /// the process's (tests never mutate the process environment). Empty:
    /// the process environment.
    pub env: Vec<(&'static str, &'static str)>,
}

impl Remora {
    pub async fn start(config: &str) -> Self {
        Self::start_with(config, Start::default()).await
    }

    pub async fn start_with(config: &str, opts: Start) -> Self {
        remora::targets::client::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let config_path = if opts.configmap {
            let v1 = dir.path().join("..2026_11_21_v1");
            std::fs::create_dir(&v1).unwrap();
            std::fs::write(v1.join("exporter.yaml"), config).unwrap();
            std::os::unix::fs::symlink("..2026_11_21_v1", dir.path().join("..data")).unwrap();
            std::os::unix::fs::symlink("..data/exporter.yaml", dir.path().join("exporter.yaml"))
                .unwrap();
            dir.path().join("exporter.yaml")
        } else {
            let p = dir.path().join("exporter.yaml");
            std::fs::write(&p, config).unwrap();
            p
        };
        let web_config = opts.web_config.map(|text| {
            let p = dir.path().join("web.yml");
            std::fs::write(&p, text).unwrap();
            p
        });
        let env = opts.env;
        let lookup = |name: &str| {
            if env.is_empty() {
                return remora::config::process_env(name);
            }
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let cfg = remora::config::load_file(&config_path, &lookup).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let options = remora::app::Options {
            config_file: config_path.clone(),
            metrics_path: None,
            web_config,
            lifecycle: opts.lifecycle,
            roots: remora::host::Roots::default(),
            watch: opts.watch,
            max_connections: opts.max_connections.unwrap_or(512),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            remora::app::run(cfg, options, listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let r = Remora {
            addr,
            dir,
            config_path,
            stop: Some(tx),
            task: Some(task),
        };
        if !opts.no_wait {
            r.wait_ready().await;
        }
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(self.url("/-/ready")).await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("remora did not become ready");
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Scrapes until `pred` holds (at most `secs` seconds); returns the last scrape.
    pub async fn metrics_until(&self, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let m = self.metrics().await;
            if pred(&m) || Instant::now() > deadline {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("remora did not stop")
                .unwrap();
        }
    }
}

/// The value of the first sample line starting with `prefix` (name and labels).
pub fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Path to a shared peer folder, or None (with a message) outside this workplace.
pub fn shared(path: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join(path);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} not found (../shared/ is not beside this checkout)",
            p.display()
        );
        None
    }
}

/// A tool from PATH (installed by the README's test command). Missing: a
/// failure under CI, a loud skip on a developer's machine.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() || std::env::var_os("REMORA_TEST_STRICT").is_some() {
            panic!("{name} is not installed; the README's test command installs it");
        }
        eprintln!("SKIP: {name} not found; run the README's test command to install it");
    }
    found
}
