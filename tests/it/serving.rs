//! Serving under load: a scrape never renders and never waits (the render
//! thread, SPEC section 6), and connections are bounded
//! (`--web.max-connections`, the header-read timeout, shedding of idle
//! connections).
//!
//! Most tests run the real server on a state they build themselves, so they
//! can hold the store, count renders, hold a `POST /-/reload` in flight and
//! give the header-read timeout an hour (then only eviction closes a
//! connection).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{has_name, sample, FakeTarget, Remora, Reply, Start};
use arc_swap::ArcSwap;
use remora::render::Renderer;
use remora::server::{AppState, ReloadRequest, ServeLimits};
use remora::store::Store;
use remora::telemetry::Pipeline;
use remora::web::WebConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Generous bound on anything that should happen at once.
const DEADLINE: Duration = Duration::from_secs(10);
/// Longer than any test: only eviction closes a connection.
const HOUR: Duration = Duration::from_secs(3600);
/// Generous bound on a shed connection's close (it is closed at once), shorter
/// than the old 10 s header timeout so that this cannot pass for shedding.
const SHED: Duration = Duration::from_secs(5);

/// The server on a state built here.
struct Direct {
    addr: SocketAddr,
    store: Arc<Store>,
    state: Arc<AppState>,
    reloads: mpsc::Receiver<ReloadRequest>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Direct {
    async fn start(limits: ServeLimits, web: WebConfig) -> Self {
        remora::targets::client::install_crypto_provider();
        let store = Store::new();
        let config = remora::config::parse_str(
            "host: {enabled: false}\n",
            Path::new("exporter.yaml"),
            &|_| None,
        )
        .unwrap();
        let pipeline = Pipeline::build(&config, &[], &Default::default(), store.clone()).unwrap();
        let (reload, reloads) = mpsc::channel(4);
        let state = Arc::new(AppState {
            renderer: Renderer::start(store.clone(), pipeline),
            store: store.clone(),
            ready: Arc::default(),
            config: ArcSwap::from_pointee(config),
            metrics_path: "/metrics".into(),
            started: Instant::now(),
            lifecycle: true,
            reload,
            web,
            limits,
            exposition_format: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(remora::server::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Direct {
            addr,
            store,
            state,
            reloads,
            stop: Some(tx),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("the server did not stop")
            .unwrap();
        self.state.renderer.stop();
    }
}

fn limits(max_connections: usize, header_read_timeout: Duration) -> ServeLimits {
    ServeLimits {
        max_connections,
        header_read_timeout,
    }
}

/// A scrape that must answer before the deadline.
async fn scrape(client: &reqwest::Client, url: &str) -> String {
    let resp = tokio::time::timeout(DEADLINE, async {
        client.get(url).send().await.unwrap().text().await.unwrap()
    })
    .await;
    resp.unwrap_or_else(|_| panic!("no answer from {url} within {DEADLINE:?}"))
}

/// A connection that sends nothing.
async fn idle(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// Whether the server closes `s` before the deadline (the client sent nothing
/// more, so a close reads as end of stream or a reset).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    read.is_ok()
}

/// Sends a request on a raw connection and reads the response head and body
/// (the server answers with Content-Length).
async fn request(s: &mut TcpStream, method: &str, path: &str) -> String {
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    read_response(s).await
}

async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let done = tokio::time::timeout(DEADLINE, async {
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before a full response: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    return text.into_owned();
                }
            }
        }
    })
    .await;
    done.expect("no full response within the deadline")
}

// ---- the render thread ----------------------------------------------------

/// Concurrent scrapes share the latest render: scrapes never render, a
/// change renders once whether or not anyone scrapes. Counting renders makes
/// this fail if scrapes rendered (or the render were not cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scrapes_share_one_render() {
    let d = Direct::start(ServeLimits::default(), WebConfig::default()).await;
    let client = reqwest::Client::new();
    let before = d.state.renderer.renders();
    let scrapes: Vec<_> = (0..20)
        .map(|_| {
            let (c, u) = (client.clone(), d.url("/metrics"));
            tokio::spawn(async move { scrape(&c, &u).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for s in scrapes {
        bodies.push(s.await.unwrap());
    }
    assert!(has_name(&bodies[0], "remora_build_info"));
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(d.state.renderer.renders(), before, "a scrape rendered");

    // A change is rendered once by the render thread, without any scrape.
    d.store.write().reload.last_successful = false;
    let deadline = Instant::now() + DEADLINE;
    while d.state.renderer.renders() == before {
        assert!(Instant::now() < deadline, "a change was never rendered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = d.state.renderer.renders();
    for _ in 0..10 {
        assert_eq!(
            sample(
                &scrape(&client, &d.url("/metrics")).await,
                "remora_config_last_reload_successful"
            ),
            Some(0.0)
        );
    }
    assert_eq!(d.state.renderer.renders(), after, "a scrape rendered");
    d.stop().await;
}

/// While the render thread is stuck (here: waiting for a writer that holds
/// the store), scrapes are served the latest complete render at once; the
/// change shows up as soon as the render can finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // holding the store across scrapes is the point
async fn a_scrape_is_served_while_the_render_is_blocked() {
    let d = Direct::start(ServeLimits::default(), WebConfig::default()).await;
    let client = reqwest::Client::new();
    assert_eq!(
        sample(
            &scrape(&client, &d.url("/metrics")).await,
            "remora_config_last_reload_successful"
        ),
        Some(0.0)
    );
    let mut w = d.store.write();
    w.reload.last_successful = true;
    for _ in 0..5 {
        let body = scrape(&client, &d.url("/metrics")).await;
        assert!(
            sample(&body, "remora_config_last_reload_successful") == Some(0.0),
            "{body}"
        );
    }
    drop(w);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let body = scrape(&client, &d.url("/metrics")).await;
        if sample(&body, "remora_config_last_reload_successful") == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the change was never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.stop().await;
}

/// Every thread of the blocking pool is taken (as by a burst of bcrypt checks
/// or slow host collectors) while targets keep changing the state: scrapes
/// are still answered at once.
#[test]
fn a_scrape_is_served_while_the_blocking_pool_is_full() {
    const POOL: usize = 4;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(POOL)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = FakeTarget::start().await;
        app.set("/health", Reply::json(r#"{"ok": 1}"#));
        let config = format!(
            "global: {{interval: 200ms, timeout: 100ms}}\nhost: {{enabled: false}}\ntargets:\n  - {{name: app, url: '{}', metrics: [{{name: app_ok, path: $.ok}}]}}\n",
            app.url("/health")
        );
        let r = Remora::start(&config).await;
        // Take every blocking thread until the end of the test.
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
        let (started_tx, mut started_rx) = mpsc::unbounded_channel();
        for _ in 0..POOL {
            let (rx, started) = (release_rx.clone(), started_tx.clone());
            tokio::task::spawn_blocking(move || {
                let _ = started.send(());
                let _ = rx.lock().unwrap().recv();
            });
        }
        for _ in 0..POOL {
            started_rx.recv().await.unwrap();
        }
        // The target changes the state after the pool is full.
        let polls = app.hits("/health");
        let deadline = Instant::now() + DEADLINE;
        while app.hits("/health") < polls + 2 {
            assert!(Instant::now() < deadline, "the target is not polled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let client = reqwest::Client::new();
        for _ in 0..3 {
            let body = scrape(&client, &r.url("/metrics")).await;
            assert!(sample(&body, "remora_target_up{target=\"app\"}") == Some(1.0), "{body}");
        }
        drop(release_tx);
        r.stop().await;
    });
}

// ---- connections ----------------------------------------------------------

/// More idle connections than the cap: the oldest ones that never sent a
/// request are closed to admit new clients, which are served at once; the
/// newer idle ones stay open and usable.
#[tokio::test]
async fn idle_connections_are_shed_oldest_first() {
    let d = Direct::start(limits(8, HOUR), WebConfig::default()).await;
    let mut conns = Vec::new();
    for _ in 0..12 {
        conns.push(idle(d.addr).await);
    }
    // The 13th connection: 12 idle + 1 = 13 > 8, so the 5 oldest go.
    let client = reqwest::Client::new();
    assert!(has_name(
        &scrape(&client, &d.url("/metrics")).await,
        "remora_build_info"
    ));
    for (i, c) in conns.iter_mut().enumerate().take(5) {
        assert!(
            closed_within(c, SHED).await,
            "idle connection {i} was not shed"
        );
    }
    for (i, c) in conns.iter_mut().enumerate().skip(5) {
        let resp = request(c, "GET", "/-/healthy").await;
        assert!(resp.starts_with("HTTP/1.1 200"), "connection {i}: {resp}");
    }
    d.stop().await;
}

/// A connection with a request in flight is never shed, even when it is the
/// oldest: the idle one goes instead, and the slow request is answered.
#[tokio::test]
async fn a_request_in_flight_is_never_shed() {
    let mut d = Direct::start(limits(2, HOUR), WebConfig::default()).await;
    let mut busy = idle(d.addr).await;
    busy.write_all(b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let reply = tokio::time::timeout(DEADLINE, d.reloads.recv())
        .await
        .expect("the reload never arrived")
        .unwrap();
    let mut quiet = idle(d.addr).await;
    let mut late = idle(d.addr).await;
    let resp = request(&mut late, "GET", "/metrics").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        closed_within(&mut quiet, SHED).await,
        "the idle connection was kept"
    );
    reply.send(Ok(())).unwrap();
    let resp = read_response(&mut busy).await;
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("config reloaded\n"),
        "{resp}"
    );
    d.stop().await;
}

/// When every connection has a request in flight, a new client waits for one
/// to finish, then is served.
#[tokio::test]
async fn when_every_connection_is_busy_a_new_client_waits() {
    let mut d = Direct::start(limits(1, HOUR), WebConfig::default()).await;
    let mut busy = idle(d.addr).await;
    busy.write_all(b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let reply = tokio::time::timeout(DEADLINE, d.reloads.recv())
        .await
        .expect("the reload never arrived")
        .unwrap();
    let client = reqwest::Client::new();
    let mut waiting = tokio::spawn({
        let (c, u) = (client.clone(), d.url("/metrics"));
        async move { scrape(&c, &u).await }
    });
    // It cannot be answered while the only slot is busy: no answer in 300 ms.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
    assert!(early.is_err(), "served past the cap");
    reply.send(Ok(())).unwrap();
    let resp = read_response(&mut busy).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(has_name(&waiting.await.unwrap(), "remora_build_info"));
    d.stop().await;
}

/// With TLS, a connection still in its handshake counts as idle: shed first.
#[tokio::test]
async fn tls_handshakes_count_as_idle() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("s.crt"), dir.path().join("s.key"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let web_file = dir.path().join("web.yml");
    std::fs::write(
        &web_file,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            crt.display(),
            key.display()
        ),
    )
    .unwrap();
    remora::targets::client::install_crypto_provider();
    let web = remora::web::load(&web_file).unwrap();
    let d = Direct::start(limits(2, HOUR), web).await;
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(idle(d.addr).await);
    }
    let ca = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .resolve("localhost", d.addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/metrics", d.addr.port());
    assert!(has_name(&scrape(&client, &url).await, "remora_build_info"));
    for (i, c) in conns.iter_mut().enumerate().take(2) {
        assert!(closed_within(c, SHED).await, "handshake {i} was not shed");
    }
    d.stop().await;
}

/// The default header-read timeout (2 s, as kubert's admin server) closes a
/// connection that sends nothing, one that never finishes its headers, and a
/// kept-alive one that idles: well before the old 10 s.
#[tokio::test]
async fn idle_clients_are_cut_off_after_the_header_timeout() {
    let d = Direct::start(ServeLimits::default(), WebConfig::default()).await;
    let limit = Duration::from_secs(8);
    let mut silent = idle(d.addr).await;
    let mut partial = idle(d.addr).await;
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut kept = idle(d.addr).await;
    assert!(request(&mut kept, "GET", "/-/healthy")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut silent, limit).await,
        "a silent client was kept"
    );
    assert!(
        closed_within(&mut partial, limit).await,
        "a partial request was kept"
    );
    assert!(
        closed_within(&mut kept, limit).await,
        "an idle kept-alive connection was kept"
    );
    d.stop().await;
}

/// `--web.max-connections` end to end on the binary.
#[test]
fn max_connections_flag() {
    let bin = env!("CARGO_BIN_EXE_remora");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "host: {enabled: false}\n").unwrap();
    let out = std::process::Command::new(bin)
        .args([
            format!("--config.file={}", cfg.display()),
            "--web.max-connections=0".into(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web.max-connections"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(bin)
        .args([
            format!("--config.file={}", cfg.display()),
            "--web.max-connections=2".into(),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("http://{addr}/-/ready")).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "remora did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(client);
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(idle(addr).await);
        }
        let body = scrape(&reqwest::Client::new(), &format!("http://{addr}/metrics")).await;
        assert!(has_name(&body, "remora_build_info"));
        // 4 idle + 1 scrape against 2 slots: the 3 oldest are shed (the
        // shedding order itself is tested above, without the timeout).
        let mut shed = 0;
        for c in conns.iter_mut().take(3) {
            if closed_within(c, DEADLINE).await {
                shed += 1;
            }
        }
        shed
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(result, 3);
}

/// Readiness waits for a render that includes the first poll round, so the
/// first scrape after `/-/ready` answers 200 shows every target.
#[tokio::test]
async fn first_scrape_after_ready_shows_the_first_round() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"ok": 1}"#));
    let config = format!(
        "host: {{enabled: false}}\ntargets:\n  - {{name: app, url: '{}', metrics: [{{name: app_ok, path: $.ok}}]}}\n",
        app.url("/health")
    );
    for _ in 0..5 {
        let r = Remora::start_with(&config, Start::default()).await;
        let body = r.metrics().await;
        assert!(
            sample(&body, "remora_target_up{target=\"app\"}") == Some(1.0),
            "{body}"
        );
        r.stop().await;
    }
}
