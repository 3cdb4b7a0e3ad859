//! What a poll sends and how it reads: method, body, headers, secrets files
//! re-read at each poll, TLS (CA, server name, skip-verify, client
//! certificate), `accept_status`, the series cap and extraction errors, end to
//! end against local servers.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{sample, FakeTarget, Remora, Reply, Start};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn one_target(body: &str) -> String {
    format!("global: {{interval: 1s, timeout: 800ms}}\nhost: {{enabled: false}}\ntargets:\n{body}")
}

/// Waits until `path` got at least `n` requests.
async fn wait_hits(app: &FakeTarget, path: &str, n: usize) {
    for _ in 0..200 {
        if app.hits(path) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} got {} requests, wanted {n}", app.hits(path));
}

#[tokio::test]
async fn post_body_and_headers() {
    let app = FakeTarget::start().await;
    app.set("/probe", Reply::json(r#"{"ok": true}"#));
    let text = one_target(&format!(
        "  - name: a\n    url: {}\n    method: POST\n    body: '{{\"deep\": true}}'\n    headers: {{X-Api-Key: \"${{REMORA_TEST_KEY}}\"}}\n    metrics: [{{name: ok, path: $.ok}}]\n",
        app.url("/probe")
    ));
    let r = Remora::start_with(
        &text,
        Start {
            env: vec![("REMORA_TEST_KEY", "k-123")],
            ..Start::default()
        },
    )
    .await;
    let seen = &app.seen("/probe")[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body, r#"{"deep": true}"#);
    assert_eq!(seen.headers["x-api-key"], "k-123");
    assert!(seen.headers["user-agent"].starts_with("remora/"));
    assert_eq!(sample(&r.metrics().await, "ok{target=\"a\"}"), Some(1.0));
    r.stop().await;
}

#[tokio::test]
async fn secrets_files_are_reread_at_each_poll() {
    let app = FakeTarget::start().await;
    app.set("/bearer", Reply::json(r#"{"v": 1}"#));
    app.set("/basic", Reply::json(r#"{"v": 1}"#));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    let password = dir.path().join("password");
    std::fs::write(&token, "first\n").unwrap();
    std::fs::write(&password, "pw1").unwrap();
    let text = one_target(&format!(
        "  - name: bearer\n    url: {}\n    bearer_token_file: {}\n    metrics: [{{name: b, path: $.v}}]\n  - name: basic\n    url: {}\n    basic_auth: {{username: probe, password_file: {}}}\n    metrics: [{{name: c, path: $.v}}]\n",
        app.url("/bearer"),
        token.display(),
        app.url("/basic"),
        password.display()
    ));
    let r = Remora::start(&text).await;
    assert_eq!(
        app.seen("/bearer")[0].headers["authorization"],
        "Bearer first"
    );
    // "probe:pw1"
    assert_eq!(
        app.seen("/basic")[0].headers["authorization"],
        "Basic cHJvYmU6cHcx"
    );

    std::fs::write(&token, "tok-s3cr3t-2").unwrap();
    std::fs::write(&password, "pw2").unwrap();
    let (nb, na) = (app.hits("/bearer"), app.hits("/basic"));
    wait_hits(&app, "/bearer", nb + 2).await;
    wait_hits(&app, "/basic", na + 2).await;
    assert_eq!(
        app.seen("/bearer").last().unwrap().headers["authorization"],
        "Bearer tok-s3cr3t-2"
    );
    // "probe:pw2"
    assert_eq!(
        app.seen("/basic").last().unwrap().headers["authorization"],
        "Basic cHJvYmU6cHcy"
    );

    // A vanished secrets file is a failed poll, not a crash, and the path is named.
    std::fs::remove_file(&token).unwrap();
    let m = r
        .metrics_until(10, |m| {
            sample(m, "remora_target_up{target=\"bearer\"}") == Some(0.0)
        })
        .await;
    assert!(
        sample(&m, "remora_target_up{target=\"bearer\"}") == Some(0.0),
        "{m}"
    );
    let status = reqwest::get(r.url("/-/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(status.contains("cannot read bearer_token_file"), "{status}");
    assert!(
        !status.contains("tok-s3cr3t") && !status.contains("pw2"),
        "no secret in the status page"
    );
    r.stop().await;
}

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

/// A CA, a server certificate for `test.internal` signed by it, and a client
/// certificate signed by it; the server optionally requires the client cert.
fn pki(require_client_cert: bool) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["test.internal".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["remora".to_string()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("client.crt"), client.pem()).unwrap();
    std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
            .unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(server.pem().as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    Pki {
        dir,
        ca_pem: ca.pem(),
        server: Arc::new(config),
    }
}

fn https_target(name: &str, app: &FakeTarget, tls: &str) -> String {
    format!(
        "  - name: {name}\n    url: https://127.0.0.1:{}/health\n    tls: {{{tls}}}\n    metrics: [{{name: ok, path: $.ok}}]\n",
        app.addr.port()
    )
}

#[tokio::test]
async fn tls_targets() {
    let pki = pki(false);
    assert!(!pki.ca_pem.is_empty());
    let app = FakeTarget::start_with_tls(Some(pki.server.clone())).await;
    app.set("/health", Reply::json(r#"{"ok": 1}"#));
    let ca = pki.dir.path().join("ca.crt");
    let mut targets = String::new();
    targets += &https_target(
        "trusted",
        &app,
        &format!("ca_file: {}, server_name: test.internal", ca.display()),
    );
    targets += &https_target(
        "wrong_name",
        &app,
        &format!("ca_file: {}, server_name: other.internal", ca.display()),
    );
    targets += &https_target("unknown_ca", &app, "server_name: test.internal");
    targets += &https_target("skip_verify", &app, "insecure_skip_verify: true");
    let r = Remora::start(&one_target(&targets)).await;
    let m = r.metrics().await;
    assert_eq!(
        sample(&m, "remora_target_up{target=\"trusted\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "remora_target_up{target=\"skip_verify\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "remora_target_up{target=\"wrong_name\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "remora_target_up{target=\"unknown_ca\"}"),
        Some(0.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            "remora_target_polls_total{result=\"connect_error\",target=\"unknown_ca\"}"
        ) == Some(1.0),
        "{m}"
    );
    r.stop().await;
}

#[tokio::test]
async fn tls_client_certificate() {
    let pki = pki(true);
    let app = FakeTarget::start_with_tls(Some(pki.server.clone())).await;
    app.set("/health", Reply::json(r#"{"ok": 1}"#));
    let d = pki.dir.path();
    let base = format!(
        "ca_file: {}, server_name: test.internal",
        d.join("ca.crt").display()
    );
    let mut targets = String::new();
    targets += &https_target(
        "with_cert",
        &app,
        &format!(
            "{base}, cert_file: {}, key_file: {}",
            d.join("client.crt").display(),
            d.join("client.key").display()
        ),
    );
    targets += &https_target("without_cert", &app, &base);
    let r = Remora::start(&one_target(&targets)).await;
    let m = r.metrics().await;
    assert_eq!(
        sample(&m, "remora_target_up{target=\"with_cert\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "remora_target_up{target=\"without_cert\"}"),
        Some(0.0),
        "{m}"
    );
    r.stop().await;
}

#[tokio::test]
async fn a_missing_tls_file_is_a_startup_error() {
    let t = one_target("  - {name: a, url: 'https://127.0.0.1:1/', tls: {ca_file: /nonexistent/ca.crt}, metrics: [{name: ok, path: $.ok}]}\n");
    let cfg = remora::config::parse_str(&t, std::path::Path::new("x.yaml"), &|_| None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = remora::app::Options {
        config_file: "x.yaml".into(),
        metrics_path: None,
        web_config: None,
        lifecycle: false,
        roots: remora::host::Roots::default(),
        watch: false,
        max_connections: 512,
        exposition_format: Default::default(),
        utf8_names: false,
    };
    let err = remora::app::run(cfg, options, listener, async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("target \"a\": tls.ca_file: cannot read /nonexistent/ca.crt"),
        "{err}"
    );
}

#[tokio::test]
async fn accept_status_reads_503_bodies() {
    let app = FakeTarget::start().await;
    let body = r#"{"status":"not_ready","checks":{"database":{"healthy":false}}}"#;
    app.set("/ready", Reply::Body(503, "application/json", body.into()));
    let rules = "metrics: [{name: dep.up, each: $.checks.*, path: $.healthy, labels: {dependency: \"{@key}\"}}]";
    let text = one_target(&format!(
        "  - name: accepted\n    url: {u}\n    accept_status: [200, 503]\n    {rules}\n  - name: default\n    url: {u}\n    {rules}\n",
        u = app.url("/ready")
    ));
    let r = Remora::start(&text).await;
    let m = r.metrics().await;
    assert!(
        sample(&m, "dep_up{dependency=\"database\",target=\"accepted\"}") == Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "remora_target_up{target=\"accepted\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "remora_target_http_status_code{target=\"accepted\"}"),
        Some(503.0)
    );
    assert_eq!(
        sample(&m, "remora_target_up{target=\"default\"}"),
        Some(0.0)
    );
    assert!(
        sample(
            &m,
            "remora_target_polls_total{result=\"http_status\",target=\"default\"}"
        ) == Some(1.0),
        "{m}"
    );
    r.stop().await;
}

#[tokio::test]
async fn series_cap_and_extraction_errors_are_counted() {
    let app = FakeTarget::start().await;
    let items: Vec<String> = (0..10)
        .map(|i| format!("{{\"id\": {i}, \"v\": {i}}}"))
        .collect();
    app.set(
        "/data",
        Reply::json(&format!(
            "{{\"items\": [{}], \"status\": \"weird\", \"size\": \"12 parsecs\"}}",
            items.join(",")
        )),
    );
    let text = format!(
        "limits: {{max_series_per_target: 4}}\n{}",
        one_target(&format!(
            "  - name: a\n    url: {}\n    metrics:\n      - {{name: item, each: '$.items[*]', path: $.v, labels: {{id: \"{{$.id}}\"}}}}\n      - {{name: state, path: $.status, map: {{ok: 1}}}}\n      - {{name: size, path: $.size}}\n      - {{name: gone, path: $.nope}}\n",
            app.url("/data")
        ))
    );
    let r = Remora::start(&text).await;
    let m = r.metrics().await;
    assert_eq!(
        m.lines().filter(|l| l.starts_with("item{")).count(),
        4,
        "{m}"
    );
    assert_eq!(sample(&m, "remora_target_series{target=\"a\"}"), Some(4.0));
    assert_eq!(
        sample(&m, "remora_series_dropped_total{target=\"a\"}"),
        Some(6.0),
        "{m}"
    );
    assert!(sample(&m, "remora_extraction_errors_total{metric=\"state\",reason=\"unmapped_value\",target=\"a\"}") == Some(1.0), "{m}");
    assert!(
        sample(
            &m,
            "remora_extraction_errors_total{metric=\"size\",reason=\"not_a_number\",target=\"a\"}"
        ) == Some(1.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            "remora_extraction_errors_total{metric=\"gone\",reason=\"missing\",target=\"a\"}"
        ) == Some(1.0),
        "{m}"
    );
    assert_eq!(sample(&m, "remora_target_up{target=\"a\"}"), Some(1.0));
    r.stop().await;
}
