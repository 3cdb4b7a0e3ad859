//! Shared helpers for integration tests: a scriptable local HTTP target and
//! remora started in-process on port 0.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
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
    /// `--web.exposition-format` (default negotiate).
    pub exposition_format: remora::exposition::FormatPin,
    /// `--web.utf8-names`.
    pub utf8_names: bool,
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
            exposition_format: opts.exposition_format,
            utf8_names: opts.utf8_names,
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

/// One sample of a text exposition: name, labels (in any order), value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Reads `name` or `name{k="v",...}` from the start of `s`; returns the rest.
/// Label values are unescaped (`\\`, `\"`, `\n`). Panics on a malformed series.
fn parse_series(s: &str) -> (String, BTreeMap<String, String>, &str) {
    let end = s.find(['{', ' ', '\t']).unwrap_or(s.len());
    let name = s[..end].to_string();
    assert!(!name.is_empty(), "no metric name in {s:?}");
    let mut labels = BTreeMap::new();
    let mut rest = &s[end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            while chars.next_if(|(_, c)| *c == ' ' || *c == ',').is_some() {}
            let (start, c) = chars
                .next()
                .unwrap_or_else(|| panic!("unclosed labels in {s:?}"));
            if c == '}' {
                rest = &inner[start + 1..];
                break;
            }
            let mut key = String::from(c);
            loop {
                match chars.next() {
                    Some((_, '=')) => break,
                    Some((_, c)) => key.push(c),
                    None => panic!("label without value in {s:?}"),
                }
            }
            assert_eq!(
                chars.next().map(|(_, c)| c),
                Some('"'),
                "unquoted label value in {s:?}"
            );
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => panic!("bad escape in {s:?}"),
                    },
                    Some((_, c)) => value.push(c),
                    None => panic!("unclosed label value in {s:?}"),
                }
            }
            assert!(
                labels.insert(key.trim().to_string(), value).is_none(),
                "duplicate label name in {s:?}"
            );
        }
    }
    (name, labels, rest)
}

/// Every sample of a text exposition (comments and blank lines skipped).
/// Panics on a line that is not a valid sample: a test never reads past a
/// broken exposition.
pub fn samples(metrics: &str) -> Vec<Sample> {
    metrics
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (name, labels, rest) = parse_series(line);
            let text = rest.split_whitespace().next().unwrap_or("");
            let value = text
                .parse()
                .unwrap_or_else(|_| panic!("bad value {text:?} in {line:?}"));
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

/// The value of the series `selector` (`name` or `name{k="v",...}`, labels
/// in any order) in a text exposition: the sample with exactly that name and
/// exactly that label set, or None.
pub fn sample(metrics: &str, selector: &str) -> Option<f64> {
    let (name, labels, rest) = parse_series(selector.trim());
    assert!(rest.trim().is_empty(), "selector {selector:?} has a value");
    samples(metrics)
        .into_iter()
        .find(|s| s.name == name && s.labels == labels)
        .map(|s| s.value)
}

/// Whether the series `selector` is served (see [`sample`]).
pub fn has(metrics: &str, selector: &str) -> bool {
    sample(metrics, selector).is_some()
}

/// Whether any sample has this name (any labels).
pub fn has_name(metrics: &str, name: &str) -> bool {
    samples(metrics).iter().any(|s| s.name == name)
}

/// Whether any sample has the label `key="value"`.
pub fn has_label(metrics: &str, key: &str, value: &str) -> bool {
    samples(metrics)
        .iter()
        .any(|s| s.labels.get(key).is_some_and(|v| v == value))
}

#[test]
fn sample_matches_labels_in_any_order() {
    let text = "# HELP x X\n# TYPE x counter\nx{b=\"2\",a=\"q\\\"},{\"} 3\ny 1e3 1700000000\nz{le=\"+Inf\"} +Inf\n";
    assert_eq!(sample(text, "x{a=\"q\\\"},{\",b=\"2\"}"), Some(3.0));
    assert_eq!(
        sample(text, "x{b=\"2\"}"),
        None,
        "a label set matches exactly"
    );
    assert_eq!(sample(text, "y "), Some(1000.0));
    assert_eq!(sample(text, "z{le=\"+Inf\"}"), Some(f64::INFINITY));
    assert_eq!(sample(text, "x"), None);
    assert!(has_name(text, "x") && !has_name(text, "w"));
}

/// The text of `tests/fixtures/PATH`. Missing or unreadable, it fails the
/// test with the path: a case that cannot find its input proves nothing.
pub fn fixture(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("fixture {} cannot be read: {e}", p.display()))
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

/// A child process, killed when dropped so a failing test leaves nothing behind.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Prometheus (`bin`, data under `dir`) scraping `target` (host:port)
/// every second as job `remora`; returns it and its API address.
pub fn start_prometheus(
    bin: &std::path::Path,
    dir: &std::path::Path,
    target: &str,
) -> (Proc, String) {
    let port = free_port();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: remora\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let child = std::process::Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (Proc(child), format!("127.0.0.1:{port}"))
}

/// An instant query against Prometheus's HTTP API; empty while it is not up.
pub async fn prom_query(client: &reqwest::Client, prom: &str, q: &str) -> Vec<serde_json::Value> {
    let mut url = reqwest::Url::parse(&format!("http://{prom}/api/v1/query")).unwrap();
    url.query_pairs_mut().append_pair("query", q);
    let Ok(resp) = client.get(url).send().await else {
        return Vec::new();
    };
    let v: serde_json::Value =
        serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or_default();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Queries until `pred` holds on the result, at most `secs`; a timeout shows
/// the last result and Prometheus's `up`.
pub async fn prom_wait_for(
    client: &reqwest::Client,
    prom: &str,
    q: &str,
    secs: u64,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = prom_query(client, prom, q).await;
        if pred(&r) {
            return r;
        }
        if Instant::now() >= deadline {
            let up = prom_query(client, prom, "up").await;
            panic!("timed out waiting for {q}: last result {r:?}; up: {up:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The demo app's binary, built by cargo beside the test binary.
fn demo_app_binary() -> PathBuf {
    use std::process::Command;
    // tests live in target/<profile>/deps; examples in target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("examples").join("demo_app");
    if !p.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "demo_app"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    p
}

/// Starts the demo app (examples/demo_app.rs, built if needed) on a free
/// port; gives the process and its `host:port`.
pub fn start_demo_app() -> (Proc, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(demo_app_binary())
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    (Proc(child), addr)
}

/// Runs `program` with `args`, `input` on its standard input; its output.
pub fn pipe(program: &std::path::Path, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `promtool check metrics`: parse errors fail (lint remarks such as a
/// missing HELP do not: they concern the apps' names, not the format).
/// Reads text 0.0.4 (and text 1.0.0 with legacy names).
pub fn promtool_parses(text: &str) {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let out = pipe(&promtool, &["check", "metrics"], text);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.code() != Some(1) && !report.contains("error while linting"),
        "promtool rejects the exposition: {report}\n{text}"
    );
}
