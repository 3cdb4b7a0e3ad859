//! `otlp:`: remora pushes everything it serves to a real OTLP/HTTP receiver
//! (tests/otlp_receiver.py) that decodes every request with the official
//! protobuf definitions (PyPI `opentelemetry-proto`); names, units, values,
//! attributes, the resource, temporality and the pass-through conversion
//! are checked on what it decoded. A receiver answering 500, hanging or
//! refusing connections shows in `remora_otlp_*` while scrapes stay served.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{free_port, sample, tool, FakeTarget, Proc, Remora, Reply, Start};

/// The receiver script, run with python3.
struct Receiver {
    _proc: Proc,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// `tls`: server certificate, key and the client CA (HTTPS, client certificates required).
    fn start_with(tls: &[&std::path::Path]) -> Option<Self> {
        let python = tool("python3")?;
        let ok = std::process::Command::new(&python)
            .args([
                "-c",
                "import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
            ])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var_os("CI").is_some() || std::env::var_os("REMORA_TEST_STRICT").is_some()
            {
                panic!("python3 opentelemetry-proto is not installed; the README's test command installs it");
            }
            eprintln!("SKIP: python3 opentelemetry-proto not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("requests.jsonl");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_receiver.py");
        let mut child = std::process::Command::new(python)
            .arg(script)
            .arg(&out)
            .args(tls)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the receiver prints its port");
        Some(Receiver {
            _proc: Proc(child),
            port,
            out,
            _dir: dir,
        })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn mode(&self, mode: &str) {
        remora::targets::client::install_crypto_provider();
        let r = reqwest::Client::new()
            .post(format!("{}/mode", self.endpoint()))
            .body(mode.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// Every request logged so far.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            // The last line may still be being written.
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (at most `secs`) for a decoded request that satisfies `pred`.
    async fn wait_for(&self, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let all = self.requests();
            for r in &all {
                assert!(r.get("error").is_none(), "undecodable request: {r}");
            }
            if let Some(r) = all
                .iter()
                .rev()
                .find(|r| r.get("request").is_some() && pred(r))
            {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no matching OTLP request in {secs}s; got {} requests: {:?}",
                all.len(),
                all.last()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// (resource attributes, scope name, metric) of every metric in a request.
fn metrics(req: &Value) -> Vec<(Value, String, Value)> {
    let mut out = Vec::new();
    for rm in req["request"]["resource_metrics"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let res = rm["resource"]["attributes"].clone();
        for sm in rm["scope_metrics"].as_array().into_iter().flatten() {
            let scope = sm["scope"]["name"].as_str().unwrap_or("").to_string();
            for m in sm["metrics"].as_array().into_iter().flatten() {
                out.push((res.clone(), scope.clone(), m.clone()));
            }
        }
    }
    out
}

fn metric(req: &Value, name: &str) -> Option<Value> {
    metrics(req)
        .into_iter()
        .find(|(_, _, m)| m["name"] == name)
        .map(|(_, _, m)| m)
}

fn has(req: &Value, name: &str) -> bool {
    metric(req, name).is_some()
}

/// The string value of attribute `key` in a list of OTLP KeyValues.
fn attr(attrs: &Value, key: &str) -> Option<String> {
    attrs
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .and_then(|kv| kv["value"]["string_value"].as_str())
        .map(str::to_string)
}

/// The data points of a metric, whatever its type, with the type's name.
fn points(m: &Value) -> (&'static str, Vec<Value>) {
    for kind in ["sum", "gauge", "histogram", "summary"] {
        if let Some(d) = m.get(kind) {
            let pts = d["data_points"].as_array().cloned().unwrap_or_default();
            return (kind, pts);
        }
    }
    ("none", Vec::new())
}

/// The point whose attribute `key` is `value`.
fn point(m: &Value, key: &str, value: &str) -> Value {
    points(m)
        .1
        .into_iter()
        .find(|p| attr(&p["attributes"], key).as_deref() == Some(value))
        .unwrap_or_else(|| panic!("no point with {key}={value} in {m}"))
}

fn num(p: &Value) -> f64 {
    p["as_double"]
        .as_f64()
        .or_else(|| p["as_int"].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("no number in {p}"))
}

const CUMULATIVE: &str = "AGGREGATION_TEMPORALITY_CUMULATIVE";

#[tokio::test]
async fn pushes_instruments_resource_units_and_cumulative_temporality() {
    let Some(rx) = Receiver::start() else { return };
    let app = FakeTarget::start().await;
    app.set(
        "/health",
        Reply::json(r#"{"jobs": 41, "queue_bytes": 2048}"#),
    );
    let config = format!(
        r#"
global: {{interval: 1s, timeout: 900ms, labels: {{cluster: eu1}}}}
resource: {{service.name: checkout, k8s.pod.name: pod-7}}
host: {{collectors: [memory]}}
targets:
  - name: app
    url: {url}
    metrics:
      - name: app.jobs
        kind: counter
        description: Jobs done.
        path: $.jobs
      - name: app.queue.size
        unit: By
        description: Queue size.
        path: $.queue_bytes
otlp:
  endpoint: {endpoint}
  interval: 1s
  timeout: 1s
  headers: {{Authorization: "Bearer ${{OTLP_TOKEN}}"}}
  compression: gzip
"#,
        url = app.url("/health"),
        endpoint = rx.endpoint(),
    );
    let r = Remora::start_with(
        &config,
        Start {
            env: vec![("OTLP_TOKEN", "t0k3n")],
            ..Start::default()
        },
    )
    .await;
    let req = rx
        .wait_for(20, |q| has(q, "app.jobs") && has(q, "system.memory.usage"))
        .await;
    assert_eq!(req["path"], "/v1/metrics");
    assert_eq!(req["encoding"], "gzip");
    assert_eq!(req["headers"]["authorization"], "Bearer t0k3n");
    assert_eq!(req["headers"]["content-type"], "application/x-protobuf");

    let (res, _, _) = metrics(&req).into_iter().next().unwrap();
    assert_eq!(attr(&res, "service.name").as_deref(), Some("checkout"));
    assert_eq!(attr(&res, "k8s.pod.name").as_deref(), Some("pod-7"));

    // A JSON counter: a monotonic cumulative sum with the rule's attributes.
    let jobs = metric(&req, "app.jobs").unwrap();
    assert_eq!(jobs["description"], "Jobs done.");
    assert_eq!(jobs["sum"]["is_monotonic"], true);
    assert_eq!(jobs["sum"]["aggregation_temporality"], CUMULATIVE);
    let p = point(&jobs, "target", "app");
    assert_eq!(num(&p), 41.0);
    assert_eq!(attr(&p["attributes"], "cluster").as_deref(), Some("eu1"));
    // A JSON gauge keeps its unit.
    let q = metric(&req, "app.queue.size").unwrap();
    assert_eq!(q["unit"], "By");
    assert_eq!(num(&point(&q, "target", "app")), 2048.0);
    // Host and remora's own instruments come too.
    let (kind, mem) = points(&metric(&req, "system.memory.usage").unwrap());
    assert!(kind == "sum" || kind == "gauge");
    assert!(!mem.is_empty());
    let polls = metric(&req, "remora.target.polls").unwrap();
    assert_eq!(polls["sum"]["aggregation_temporality"], CUMULATIVE);
    assert_eq!(polls["sum"]["is_monotonic"], true);
    let dur = metric(&req, "remora.target.poll.duration").unwrap();
    assert_eq!(dur["unit"], "s");

    // Cumulative: the counter's value goes on from one push to the next.
    app.set(
        "/health",
        Reply::json(r#"{"jobs": 45, "queue_bytes": 2048}"#),
    );
    rx.wait_for(20, |q| {
        metric(q, "app.jobs").is_some_and(|m| num(&point(&m, "target", "app")) == 45.0)
    })
    .await;
    // The pushes are counted where Prometheus sees them (with the global labels).
    let ok = "remora_otlp_exports_total{result=\"success\",cluster=\"eu1\"}";
    let m = r
        .metrics_until(10, |m| sample(m, ok).unwrap_or(0.0) >= 2.0)
        .await;
    assert!(sample(&m, ok).unwrap() >= 2.0, "{m}");
    assert_eq!(
        sample(
            &m,
            "remora_otlp_exports_total{result=\"failure\",cluster=\"eu1\"}"
        ),
        Some(0.0)
    );
    assert!(
        sample(
            &m,
            "remora_otlp_last_success_timestamp_seconds{cluster=\"eu1\"}"
        )
        .unwrap()
            > 1.7e9
    );
    r.stop().await;
}

const APP_METRICS: &str = "# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{code=\"200\",path=\"/a \\\"q\\\"\"} 42
http_requests_total{code=\"500\",path=\"/b\"} 3
# HELP temperature_celsius Room temperature.
# TYPE temperature_celsius gauge
temperature_celsius 21.5
# TYPE legacy_thing untyped
legacy_thing{kind=\"x\"} 7
# HELP rpc_latency_seconds Latency.
# TYPE rpc_latency_seconds histogram
rpc_latency_seconds_bucket{le=\"0.1\"} 2
rpc_latency_seconds_bucket{le=\"0.5\"} 5
rpc_latency_seconds_bucket{le=\"+Inf\"} 6
rpc_latency_seconds_sum 1.9
rpc_latency_seconds_count 6
# HELP gc_pause_seconds GC pauses.
# TYPE gc_pause_seconds summary
gc_pause_seconds{quantile=\"0.5\"} 0.01
gc_pause_seconds{quantile=\"0.99\"} 0.2
gc_pause_seconds_sum 3.5
gc_pause_seconds_count 120
";

#[tokio::test]
async fn pass_through_families_are_converted_faithfully() {
    let Some(rx) = Receiver::start() else { return };
    let app = FakeTarget::start().await;
    app.set(
        "/metrics",
        Reply::Body(200, "text/plain", APP_METRICS.into()),
    );
    let config = format!(
        r#"
global: {{interval: 1s, timeout: 900ms, labels: {{cluster: eu1}}}}
host: {{enabled: false}}
resource: {{service.name: shop}}
targets:
  - name: shop
    url: {url}
    format: prometheus
otlp: {{endpoint: {endpoint}, interval: 1s, timeout: 1s}}
"#,
        url = app.url("/metrics"),
        endpoint = rx.endpoint(),
    );
    let r = Remora::start(&config).await;
    let req = rx
        .wait_for(20, |q| {
            has(q, "http_requests_total") && has(q, "gc_pause_seconds")
        })
        .await;
    assert_eq!(req["encoding"], "", "uncompressed unless asked");
    let all = metrics(&req);
    let (res, scope, _) = all
        .iter()
        .find(|(_, _, m)| m["name"] == "http_requests_total")
        .unwrap();
    assert_eq!(scope, "remora.passthrough");
    assert_eq!(attr(res, "service.name").as_deref(), Some("shop"));
    assert_eq!(
        req["request"]["resource_metrics"].as_array().unwrap().len(),
        1,
        "one resource for the instruments and the pass-through"
    );

    // counter -> monotonic cumulative sum; labels -> attributes (unescaped),
    // the target and global labels included; HELP -> description.
    let c = metric(&req, "http_requests_total").unwrap();
    assert_eq!(c["description"], "Requests served.");
    assert_eq!(c["sum"]["is_monotonic"], true);
    assert_eq!(c["sum"]["aggregation_temporality"], CUMULATIVE);
    let p = point(&c, "code", "200");
    assert_eq!(num(&p), 42.0);
    assert_eq!(attr(&p["attributes"], "path").as_deref(), Some("/a \"q\""));
    assert_eq!(attr(&p["attributes"], "target").as_deref(), Some("shop"));
    assert_eq!(attr(&p["attributes"], "cluster").as_deref(), Some("eu1"));
    assert_eq!(num(&point(&c, "code", "500")), 3.0);

    // gauge and untyped -> gauge.
    let g = metric(&req, "temperature_celsius").unwrap();
    assert_eq!(g["description"], "Room temperature.");
    assert_eq!(num(&points(&g).1[0]), 21.5);
    let u = metric(&req, "legacy_thing").unwrap();
    assert_eq!(points(&u).0, "gauge");
    assert_eq!(num(&point(&u, "kind", "x")), 7.0);

    // histogram -> cumulative histogram: finite bounds, per-bucket counts.
    let h = metric(&req, "rpc_latency_seconds").unwrap();
    assert_eq!(h["histogram"]["aggregation_temporality"], CUMULATIVE);
    let hp = &points(&h).1[0];
    assert_eq!(hp["explicit_bounds"], serde_json::json!([0.1, 0.5]));
    assert_eq!(hp["bucket_counts"], serde_json::json!(["2", "3", "1"]));
    assert_eq!(hp["count"], "6");
    assert_eq!(hp["sum"], 1.9);
    assert!(attr(&hp["attributes"], "le").is_none());

    // summary -> summary with its quantiles.
    let s = metric(&req, "gc_pause_seconds").unwrap();
    let sp = &points(&s).1[0];
    assert_eq!(sp["count"], "120");
    assert_eq!(sp["sum"], 3.5);
    let q: Vec<(f64, f64)> = sp["quantile_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["quantile"].as_f64().unwrap(),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(q, vec![(0.5, 0.01), (0.99, 0.2)]);
    assert!(attr(&sp["attributes"], "quantile").is_none());
    r.stop().await;
}

fn exports(m: &str, result: &str) -> f64 {
    sample(
        m,
        &format!("remora_otlp_exports_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

/// A scrape answered within `limit` while the push fails.
async fn scrape_within(r: &Remora, limit: Duration) -> String {
    let client = reqwest::Client::builder().timeout(limit).build().unwrap();
    client
        .get(r.url("/metrics"))
        .send()
        .await
        .expect("a scrape waited for the push")
        .text()
        .await
        .unwrap()
}

fn failing_config(app: &FakeTarget, endpoint: &str) -> String {
    format!(
        r#"
global: {{interval: 1s, timeout: 900ms}}
host: {{enabled: false}}
targets:
  - name: app
    url: {url}
    metrics: [{{name: app.jobs, kind: counter, path: $.jobs}}]
otlp: {{endpoint: {endpoint}, interval: 1s, timeout: 1s}}
"#,
        url = app.url("/health"),
    )
}

#[tokio::test]
async fn a_failing_then_hanging_receiver_is_counted_and_never_blocks_a_scrape() {
    let Some(rx) = Receiver::start() else { return };
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"jobs": 1}"#));
    rx.mode("500").await;
    let r = Remora::start(&failing_config(&app, &rx.endpoint())).await;
    let m = r.metrics_until(20, |m| exports(m, "failure") >= 2.0).await;
    assert!(exports(&m, "failure") >= 2.0, "500s not counted:\n{m}");
    assert_eq!(exports(&m, "success"), 0.0);
    assert!(sample(&m, "remora_otlp_last_success_timestamp_seconds").is_none());
    assert!(rx.requests().iter().any(|q| q["refused"] == 500));

    // Hanging: each push gives up at its timeout; polls and scrapes go on.
    rx.mode("hang").await;
    let before = exports(&scrape_within(&r, Duration::from_secs(2)).await, "failure");
    let polls = |m: &str| {
        sample(
            m,
            "remora_target_polls_total{target=\"app\",result=\"success\"}",
        )
        .unwrap_or(0.0)
    };
    let p0 = polls(&scrape_within(&r, Duration::from_secs(2)).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = scrape_within(&r, Duration::from_secs(2)).await;
        if exports(&m, "failure") >= before + 2.0 && polls(&m) >= p0 + 3.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hung pushes not counted or polls stalled:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Recovery: the next push succeeds and is counted.
    rx.mode("ok").await;
    let m = r.metrics_until(20, |m| exports(m, "success") >= 1.0).await;
    assert!(exports(&m, "success") >= 1.0, "no recovery:\n{m}");
    assert!(sample(&m, "remora_otlp_last_success_timestamp_seconds").is_some());
    rx.wait_for(10, |q| has(q, "app.jobs")).await;
    r.stop().await;
}

#[tokio::test]
async fn a_refusing_endpoint_is_counted_and_scrapes_stay_served() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"jobs": 1}"#));
    let closed = format!("http://127.0.0.1:{}", free_port());
    let r = Remora::start(&failing_config(&app, &closed)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape_within(&r, Duration::from_secs(2)).await;
        if exports(&m, "failure") >= 2.0 {
            assert_eq!(exports(&m, "success"), 0.0);
            assert_eq!(
                sample(&m, "remora_target_up{target=\"app\"}"),
                Some(1.0),
                "polls go on"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refused pushes not counted:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.stop().await;
}

#[tokio::test]
async fn a_reload_adds_changes_and_removes_the_push() {
    let Some(rx) = Receiver::start() else { return };
    let Some(rx2) = Receiver::start() else { return };
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"jobs": 1}"#));
    let base = format!(
        "global: {{interval: 1s, timeout: 900ms}}\nhost: {{enabled: false}}\ntargets:\n  - name: app\n    url: {}\n    metrics: [{{name: app.jobs, kind: counter, path: $.jobs}}]\n",
        app.url("/health")
    );
    let r = Remora::start_with(
        &base,
        Start {
            lifecycle: true,
            ..Start::default()
        },
    )
    .await;
    let reload = |text: String| {
        let (path, url) = (r.config_path.clone(), r.url("/-/reload"));
        async move {
            std::fs::write(path, text).unwrap();
            let resp = reqwest::Client::new().post(url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        }
    };
    assert!(
        !r.metrics().await.contains("remora_otlp_"),
        "no push, no counters"
    );

    // Added.
    reload(format!(
        "{base}otlp: {{endpoint: {}, interval: 1s, timeout: 1s}}\n",
        rx.endpoint()
    ))
    .await;
    rx.wait_for(20, |q| has(q, "app.jobs")).await;
    let m = r.metrics_until(10, |m| exports(m, "success") >= 1.0).await;
    assert!(exports(&m, "success") >= 1.0);

    // Changed: pushes go to the new endpoint, with the new header.
    reload(format!(
        "{base}otlp: {{endpoint: {}, interval: 1s, timeout: 1s, headers: {{X-Tenant: blue}}}}\n",
        rx2.endpoint()
    ))
    .await;
    let q = rx2.wait_for(20, |q| has(q, "app.jobs")).await;
    assert_eq!(q["headers"]["x-tenant"], "blue");

    // Removed: the counters go and no more requests arrive.
    reload(base.clone()).await;
    let m = r.metrics_until(10, |m| !m.contains("remora_otlp_")).await;
    assert!(!m.contains("remora_otlp_"), "{m}");
    let seen = rx2.requests().len();
    // Two poll intervals later (a push interval is 1s) nothing more came.
    let polls = |m: &str| {
        sample(
            m,
            "remora_target_polls_total{target=\"app\",result=\"success\"}",
        )
        .unwrap_or(0.0)
    };
    let p0 = polls(&m);
    r.metrics_until(20, |m| polls(m) >= p0 + 3.0).await;
    assert_eq!(rx2.requests().len(), seen, "pushed after otlp: was removed");
    r.stop().await;
}

#[tokio::test]
async fn shutdown_pushes_the_final_state() {
    let Some(rx) = Receiver::start() else { return };
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"jobs": 5}"#));
    // An interval far longer than the test: only the shutdown flush pushes.
    let config = format!(
        "global: {{interval: 1s, timeout: 900ms}}\nhost: {{enabled: false}}\ntargets:\n  - name: app\n    url: {}\n    metrics: [{{name: app.jobs, kind: counter, path: $.jobs}}]\notlp: {{endpoint: {}, interval: 1h, timeout: 2s}}\n",
        app.url("/health"),
        rx.endpoint()
    );
    let r = Remora::start(&config).await;
    r.metrics_until(10, |m| m.contains("app_jobs_total{")).await;
    assert!(rx.requests().is_empty());
    r.stop().await;
    let q = rx.wait_for(5, |q| has(q, "app.jobs")).await;
    assert_eq!(
        num(&point(&metric(&q, "app.jobs").unwrap(), "target", "app")),
        5.0
    );
}

#[tokio::test]
async fn pushes_over_tls_with_a_client_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let pki = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct subjects: OpenSSL (the receiver) takes a leaf whose subject is
    // its issuer's for a self-signed certificate.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "remora test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let sign = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let (c, k) = (
            pki.path().join(format!("{name}.crt")),
            pki.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    };
    let (server_crt, server_key) = sign("localhost");
    let (client_crt, client_key) = sign("remora");
    let ca_file = pki.path().join("ca.crt");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let Some(rx) = Receiver::start_with(&[&server_crt, &server_key, &ca_file]) else {
        return;
    };
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"jobs": 3}"#));
    let base = format!(
        "global: {{interval: 1s, timeout: 900ms}}\nhost: {{enabled: false}}\ntargets:\n  - name: app\n    url: {}\n    metrics: [{{name: app.jobs, kind: counter, path: $.jobs}}]\n",
        app.url("/health"),
    );
    let endpoint = format!("https://localhost:{}", rx.port);
    // Without the client certificate the receiver refuses the handshake: counted.
    let r = Remora::start(&format!(
        "{base}otlp: {{endpoint: {endpoint}, interval: 1s, timeout: 1s, tls: {{ca_file: {}}}}}\n",
        ca_file.display()
    ))
    .await;
    let m = r.metrics_until(20, |m| exports(m, "failure") >= 1.0).await;
    assert!(exports(&m, "failure") >= 1.0, "{m}");
    assert_eq!(exports(&m, "success"), 0.0);
    r.stop().await;
    // With it, pushes go through and decode.
    let r = Remora::start(&format!(
        "{base}otlp: {{endpoint: {endpoint}, interval: 1s, timeout: 1s, tls: {{ca_file: {}, cert_file: {}, key_file: {}}}}}\n",
        ca_file.display(),
        client_crt.display(),
        client_key.display()
    ))
    .await;
    let q = rx.wait_for(20, |q| has(q, "app.jobs")).await;
    assert_eq!(
        num(&point(&metric(&q, "app.jobs").unwrap(), "target", "app")),
        3.0
    );
    let m = r.metrics_until(10, |m| exports(m, "success") >= 1.0).await;
    assert!(exports(&m, "success") >= 1.0, "{m}");
    r.stop().await;
}

/// A collector that hangs cannot hold the shutdown past its 5 s deadline,
/// even with a push timeout of 60 s (`Remora::stop` fails after 10 s).
#[tokio::test]
async fn a_hanging_collector_does_not_hold_the_shutdown() {
    let Some(rx) = Receiver::start() else { return };
    rx.mode("hang").await;
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(r#"{"jobs": 5}"#));
    let config = format!(
        "global: {{interval: 1s, timeout: 900ms}}\nhost: {{enabled: false}}\ntargets:\n  - name: app\n    url: {}\n    metrics: [{{name: app.jobs, kind: counter, path: $.jobs}}]\notlp: {{endpoint: {}, interval: 1h, timeout: 60s}}\n",
        app.url("/health"),
        rx.endpoint()
    );
    let r = Remora::start(&config).await;
    r.metrics_until(10, |m| m.contains("app_jobs_total{")).await;
    r.stop().await;
    rx.mode("ok").await;
}
