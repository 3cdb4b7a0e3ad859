//! Integration tests of the core: endpoints, render cache, targets going down
//! and up, bad targets, reload (HTTP, ConfigMap symlink swap), web config.

use std::time::{Duration, Instant};

use crate::common::{has, has_name, sample, FakeTarget, Remora, Reply, Start};

const HEALTH: &str = r#"{"status":"healthy","checks":{"database":{"status":"healthy","latency_ms":5.23},"redis":{"status":"degraded","latency_ms":12}}}"#;

fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
global: {{interval: 1s, timeout: 500ms}}
host: {{enabled: false}}
targets:
  - name: app
    url: {url}
    metrics:
      - name: app.dependency.latency
        unit: s
        each: $.checks.*
        path: $.latency_ms
        scale: 0.001
        labels: {{dependency: "{{@key}}"}}
{extra}"#
    )
}

/// The render keeps only the gzip: a client that does not accept gzip gets
/// the same text, inflated chunk by chunk, with the plain length up front.
#[tokio::test]
async fn plain_metrics_are_the_gzip_inflated_with_their_length() {
    let items: Vec<String> = (0..8000)
        .map(|i| format!(r#"{{"id":"item-{i:05}","queue":{i}}}"#))
        .collect();
    let app = FakeTarget::start().await;
    app.set(
        "/items",
        Reply::json(&format!(r#"{{"items":[{}]}}"#, items.join(","))),
    );
    let r = Remora::start(&format!(
        r#"
global: {{interval: 1h, timeout: 5s}}
limits: {{max_series_per_target: 10000}}
host: {{enabled: false}}
targets:
  - name: app
    url: {}
    metrics:
      - name: app.queue
        each: $.items[*]
        path: $.queue
        labels: {{id: "{{$.id}}"}}
"#,
        app.url("/items")
    ))
    .await;
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let gunzip = |b: &[u8]| {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(b), &mut plain).unwrap();
        plain
    };
    let get_gzip = || async {
        let gz = client
            .get(r.url("/metrics"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        gunzip(&gz.bytes().await.unwrap())
    };
    // A render between two scrapes (remora's own metrics) is possible: the
    // plain body is compared with the gzip taken on both sides of it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = get_gzip().await;
        let plain = client.get(r.url("/metrics")).send().await.unwrap();
        assert!(plain.headers().get("content-encoding").is_none());
        let length: usize = plain.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let plain = plain.bytes().await.unwrap();
        let head = client.head(r.url("/metrics")).send().await.unwrap();
        let head = head.headers()["content-length"]
            .to_str()
            .unwrap()
            .to_owned();
        let after = get_gzip().await;
        assert_eq!(plain.len(), length);
        assert!(
            plain.len() > 4 * 64 * 1024,
            "{} bytes: more than a few chunks",
            plain.len()
        );
        if before == after {
            assert_eq!(plain, before, "the plain body is the gzip's text");
            let text = String::from_utf8(plain.to_vec()).unwrap();
            assert_eq!(
                sample(&text, "app_queue{id=\"item-07999\",target=\"app\"}"),
                Some(7999.0)
            );
            assert_eq!(head, length.to_string(), "HEAD gives the plain length");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the render never held still for three scrapes"
        );
    }
}

#[tokio::test]
async fn endpoints_behave() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(HEALTH));
    let r = Remora::start(&config(&app.url("/health"), "")).await;
    let client = reqwest::Client::builder().no_gzip().build().unwrap();

    let m = client.get(r.url("/metrics")).send().await.unwrap();
    assert_eq!(m.status(), 200);
    assert_eq!(
        m.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = m.text().await.unwrap();
    assert_eq!(
        sample(
            &text,
            "app_dependency_latency_seconds{dependency=\"database\",target=\"app\"}"
        ),
        Some(0.00523)
    );
    assert_eq!(sample(&text, "remora_target_up{target=\"app\"}"), Some(1.0));
    assert!(has_name(&text, "remora_build_info"));
    assert!(has(&text, "process_resident_memory_bytes"));

    // gzip when accepted, identical content.
    let gz = client
        .get(r.url("/metrics"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let bytes = gz.bytes().await.unwrap();
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain)
        .unwrap();
    assert!(has_name(&plain, "remora_build_info"));
    let no = client
        .get(r.url("/metrics"))
        .header("accept-encoding", "gzip;q=0")
        .send()
        .await
        .unwrap();
    assert!(no.headers().get("content-encoding").is_none());

    // HEAD: headers, no body.
    let head = client.head(r.url("/metrics")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty());

    assert_eq!(
        client
            .get(r.url("/-/healthy"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client.get(r.url("/-/ready")).send().await.unwrap().status(),
        200
    );
    let index = client
        .get(r.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        index.contains("<a href=\"/targets/app\">app</a>") && index.contains("/metrics"),
        "{index}"
    );
    let status: serde_json::Value = serde_json::from_str(
        &client
            .get(r.url("/-/status"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status["targets"]["app"]["up"], true);
    assert_eq!(status["ready"], true);
    assert_eq!(
        client.get(r.url("/nope")).send().await.unwrap().status(),
        404
    );
    let wrong = client.post(r.url("/metrics")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["allow"], "GET, HEAD");
    assert_eq!(
        client
            .post(r.url("/-/reload"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        client
            .get(r.url("/-/reload"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    r.stop().await;
}

/// Twenty concurrent scrapes are all served the target's samples. (That they
/// share one render is counted in `serving::concurrent_scrapes_share_one_render`.)
#[tokio::test]
async fn concurrent_scrapes_are_all_served() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(HEALTH));
    let r = Remora::start(&config(&app.url("/health"), "")).await;
    let client = reqwest::Client::new();
    let scrapes = (0..20).map(|_| {
        let c = client.clone();
        let u = r.url("/metrics");
        async move { c.get(u).send().await.unwrap().text().await.unwrap() }
    });
    let bodies = futures_join(scrapes).await;
    assert!(bodies
        .iter()
        .all(|b| sample(b, "remora_target_up{target=\"app\"}") == Some(1.0)));
    r.stop().await;
}

async fn futures_join<F: std::future::Future<Output = String> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<String> {
    let mut set = tokio::task::JoinSet::new();
    for f in futs {
        set.spawn(f);
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

#[tokio::test]
async fn target_down_then_up() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(HEALTH));
    let r = Remora::start(&config(&app.url("/health"), "")).await;
    assert!(has(
        &r.metrics().await,
        "app_dependency_latency_seconds{dependency=\"redis\",target=\"app\"}"
    ));

    app.set("/health", Reply::Body(500, "text/plain", "boom".into()));
    let m = r
        .metrics_until(10, |m| {
            sample(m, "remora_target_up{target=\"app\"}") == Some(0.0)
        })
        .await;
    assert!(
        sample(&m, "remora_target_up{target=\"app\"}") == Some(0.0),
        "{m}"
    );
    assert!(
        !has_name(&m, "app_dependency_latency_seconds"),
        "extracted series must vanish: {m}"
    );
    assert_eq!(
        sample(&m, "remora_target_http_status_code{target=\"app\"}"),
        Some(500.0)
    );
    assert!(
        sample(
            &m,
            "remora_target_polls_total{result=\"http_status\",target=\"app\"}"
        )
        .unwrap()
            >= 1.0
    );

    app.set("/health", Reply::json(HEALTH));
    let m = r
        .metrics_until(10, |m| {
            sample(m, "remora_target_up{target=\"app\"}") == Some(1.0)
        })
        .await;
    assert!(
        sample(
            &m,
            "app_dependency_latency_seconds{dependency=\"redis\",target=\"app\"}"
        ) == Some(0.012),
        "{m}"
    );
    r.stop().await;
}

/// A scrape is served from the store while a poll hangs: the poll may hang
/// for an hour (its timeout), the scrape still answers. The 20 s deadline is
/// far from both, so no machine speed makes this pass or fail.
#[tokio::test]
async fn a_scrape_never_waits_for_a_hanging_poll() {
    let app = FakeTarget::start().await;
    app.set("/hang", Reply::Hang);
    let text = format!(
        "global: {{interval: 1h, timeout: 1h}}\nhost: {{enabled: false}}\ntargets:\n  - name: hang\n    url: {}\n    metrics: [{{name: x.value, path: $.v}}]\n",
        app.url("/hang")
    );
    let r = Remora::start_with(
        &text,
        Start {
            no_wait: true,
            ..Start::default()
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.hits("/hang") == 0 {
        assert!(Instant::now() < deadline, "the target was never polled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let m = tokio::time::timeout(Duration::from_secs(20), r.metrics())
        .await
        .expect("a scrape waited for a hanging poll");
    assert!(has_name(&m, "remora_build_info"), "{m}");
    assert_eq!(app.hits("/hang"), 1, "the poll is still in flight");
    r.stop().await;
}

/// Every kind of bad target is down with its reason counted, while a good
/// target next to it keeps being served. (That a scrape never waits for a
/// poll is `a_scrape_never_waits_for_a_hanging_poll`.)
#[tokio::test]
async fn bad_targets_are_contained() {
    let app = FakeTarget::start().await;
    app.set("/good", Reply::json(HEALTH));
    app.set(
        "/garbage",
        Reply::Body(200, "application/json", "{not json".into()),
    );
    app.set("/huge", Reply::Huge(2 * 1024 * 1024));
    app.set("/hang", Reply::Hang);
    app.set("/loop", Reply::RedirectLoop);
    let rule = "    metrics: [{name: x.value, path: $.v}]";
    let mut text = config(&app.url("/good"), "");
    text = text.replace(
        "global: {interval: 1s, timeout: 500ms}",
        "global: {interval: 1s, timeout: 500ms}\nlimits: {max_body_bytes: 1MiB}",
    );
    for (name, url) in [
        ("garbage", app.url("/garbage")),
        ("huge", app.url("/huge")),
        ("hang", app.url("/hang")),
        ("loop", app.url("/loop")),
        ("refused", "http://127.0.0.1:1/".to_string()),
    ] {
        text.push_str(&format!("  - name: {name}\n    url: {url}\n{rule}\n"));
    }
    let r = Remora::start(&text).await;
    let m = r.metrics().await;
    for (name, result) in [
        ("garbage", "invalid_body"),
        ("huge", "body_too_large"),
        ("hang", "timeout"),
        ("loop", "http_status"),
        ("refused", "connect_error"),
    ] {
        assert_eq!(
            sample(&m, &format!("remora_target_up{{target=\"{name}\"}}")),
            Some(0.0),
            "{name}: {m}"
        );
        let count = sample(
            &m,
            &format!("remora_target_polls_total{{result=\"{result}\",target=\"{name}\"}}"),
        );
        assert!(
            count.unwrap_or(0.0) >= 1.0,
            "{name} should count {result}: {m}"
        );
    }
    assert_eq!(sample(&m, "remora_target_up{target=\"app\"}"), Some(1.0));
    assert!(
        sample(
            &m,
            "app_dependency_latency_seconds{dependency=\"database\",target=\"app\"}"
        ) == Some(0.00523)
    );
    // The redirect loop stopped after at most 5 redirects per poll.
    let loops = app.hits("/loop");
    let polls = sample(
        &m,
        "remora_target_polls_total{result=\"http_status\",target=\"loop\"}",
    )
    .unwrap();
    assert!(
        loops as f64 <= 6.0 * (polls + 1.0),
        "{loops} requests for {polls} polls"
    );
    r.stop().await;
}

#[tokio::test]
async fn reload_is_a_transaction() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(HEALTH));
    app.set("/other", Reply::json(r#"{"v": 7}"#));
    let text = config(&app.url("/health"), "");
    let r = Remora::start_with(
        &text,
        Start {
            lifecycle: true,
            ..Default::default()
        },
    )
    .await;
    let client = reqwest::Client::new();

    // A good change: a second target appears.
    let extra = format!(
        "  - name: other\n    url: {}\n    metrics: [{{name: other.value, path: $.v}}]\n",
        app.url("/other")
    );
    std::fs::write(&r.config_path, format!("{text}{extra}")).unwrap();
    let resp = client.post(r.url("/-/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let m = r
        .metrics_until(10, |m| {
            sample(m, "other_value{target=\"other\"}") == Some(7.0)
        })
        .await;
    assert!(
        sample(&m, "other_value{target=\"other\"}") == Some(7.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "remora_config_last_reload_successful"),
        Some(1.0)
    );

    // A bad change: 500 with the errors, the old config keeps running.
    std::fs::write(
        &r.config_path,
        format!("{text}  - name: broken\n    intreval: 5s\n"),
    )
    .unwrap();
    let resp = client.post(r.url("/-/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("exporter.yaml:") && body.contains("intreval: unknown key"),
        "{body}"
    );
    let m = r.metrics().await;
    assert_eq!(
        sample(&m, "remora_config_last_reload_successful"),
        Some(0.0)
    );
    let m = r
        .metrics_until(5, |m| {
            sample(m, "other_value{target=\"other\"}") == Some(7.0)
        })
        .await;
    assert!(
        sample(&m, "other_value{target=\"other\"}") == Some(7.0),
        "old config must keep running: {m}"
    );
    r.stop().await;
}

/// A Kubernetes ConfigMap update: a new timestamped directory, then the
/// `..data` symlink is swapped atomically. The file's own name never changes.
#[tokio::test]
async fn configmap_symlink_swap_reloads() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(HEALTH));
    app.set("/other", Reply::json(r#"{"v": 9}"#));
    let text = config(&app.url("/health"), "");
    let r = Remora::start_with(
        &text,
        Start {
            watch: true,
            configmap: true,
            ..Default::default()
        },
    )
    .await;
    assert!(!has_name(&r.metrics().await, "other_value"));

    let dir = r.dir.path();
    let v2 = dir.join("..2026_11_21_v2");
    std::fs::create_dir(&v2).unwrap();
    let extra = format!(
        "  - name: other\n    url: {}\n    metrics: [{{name: other.value, path: $.v}}]\n",
        app.url("/other")
    );
    std::fs::write(v2.join("exporter.yaml"), format!("{text}{extra}")).unwrap();
    std::os::unix::fs::symlink("..2026_11_21_v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_11_21_v1")).unwrap();

    let m = r
        .metrics_until(15, |m| {
            sample(m, "other_value{target=\"other\"}") == Some(9.0)
        })
        .await;
    assert!(
        sample(&m, "other_value{target=\"other\"}") == Some(9.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "remora_config_last_reload_successful"),
        Some(1.0)
    );
    r.stop().await;
}

#[tokio::test]
async fn basic_auth_protects_all_but_health() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = format!("basic_auth_users:\n  prom: {hash}\n");
    let r = Remora::start_with(
        "host: {enabled: false}\n",
        Start {
            web_config: Some(web),
            ..Default::default()
        },
    )
    .await;
    let c = reqwest::Client::new();
    assert_eq!(c.get(r.url("/metrics")).send().await.unwrap().status(), 401);
    assert_eq!(
        c.get(r.url("/-/status")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        c.get(r.url("/metrics"))
            .basic_auth("prom", Some("wrong"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(r.url("/metrics"))
            .basic_auth("prom", Some("s3cret"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(r.url("/-/healthy")).send().await.unwrap().status(),
        200
    );
    assert_eq!(c.get(r.url("/-/ready")).send().await.unwrap().status(), 200);
    r.stop().await;
}

#[tokio::test]
async fn tls_server() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("s.crt"), dir.path().join("s.key"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        crt.display(),
        key.display()
    );
    // wait_ready speaks plain HTTP, so start without it and probe over TLS.
    let r = Remora::start_with(
        "host: {enabled: false}\n",
        Start {
            web_config: Some(web),
            no_wait: true,
            ..Default::default()
        },
    )
    .await;
    let ca = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    remora::targets::client::install_crypto_provider();
    let c = reqwest::Client::builder()
        .add_root_certificate(ca)
        .resolve("localhost", r.addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/metrics", r.addr.port());
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(resp) = c.get(&url).send().await {
            assert_eq!(resp.status(), 200);
            assert!(has_name(&resp.text().await.unwrap(), "remora_build_info"));
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "no TLS answer");
    let plain = reqwest::get(format!("http://127.0.0.1:{}/metrics", r.addr.port())).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    r.stop().await;
}

#[tokio::test]
async fn ready_never_reflects_the_app() {
    // The only target refuses connections: remora is still ready (it gates the pod).
    let r = Remora::start(&config("http://127.0.0.1:1/health", "")).await;
    let resp = reqwest::get(r.url("/-/ready")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        sample(&r.metrics().await, "remora_target_up{target=\"app\"}"),
        Some(0.0)
    );
    r.stop().await;
}

#[tokio::test]
async fn global_labels_and_target_info() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(HEALTH));
    let text = config(&app.url("/health"), "")
        .replace(
            "host: {enabled: false}",
            "host: {enabled: false}\nresource: {service.name: checkout}\n",
        )
        .replace(
            "global: {interval: 1s, timeout: 500ms}",
            "global: {interval: 1s, timeout: 500ms, labels: {cluster: eu1}}",
        );
    let r = Remora::start(&text).await;
    let m = r.metrics().await;
    assert!(
        sample(&m, "target_info{service_name=\"checkout\"}") == Some(1.0),
        "{m}"
    );
    assert!(has(&m, "app_dependency_latency_seconds{cluster=\"eu1\",dependency=\"database\",target=\"app\"}"), "{m}");
    assert!(
        sample(&m, "remora_target_up{cluster=\"eu1\",target=\"app\"}") == Some(1.0),
        "{m}"
    );
    r.stop().await;
}

#[tokio::test]
async fn prometheus_format_target_passes_through() {
    let app = FakeTarget::start().await;
    app.set(
        "/metrics",
        Reply::Body(200, "text/plain", "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 42\n# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3\nlat_count 2\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\n".into()),
    );
    app.set(
        "/bad",
        Reply::Body(200, "text/plain", "not { metrics\n".into()),
    );
    let text = format!(
        "global: {{interval: 1s, timeout: 500ms}}\nhost: {{enabled: false}}\ntargets:\n  - {{name: app, url: {}, format: prometheus, labels: {{team: pay}}}}\n  - {{name: bad, url: {}, format: prometheus}}\n",
        app.url("/metrics"),
        app.url("/bad")
    );
    let r = Remora::start(&text).await;
    let m = r.metrics().await;
    assert!(m.contains("# TYPE http_requests_total counter"), "{m}");
    assert!(
        sample(
            &m,
            "http_requests_total{code=\"200\",target=\"app\",team=\"pay\"}"
        ) == Some(42.0),
        "{m}"
    );
    assert!(
        sample(&m, "lat_bucket{le=\"+Inf\",target=\"app\",team=\"pay\"}") == Some(2.0),
        "{m}"
    );
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("process_cpu_seconds_total"))
            .count(),
        2,
        "the app copy joins remora's own family: {m}"
    );
    assert_eq!(
        sample(&m, "process_cpu_seconds_total{target=\"app\",team=\"pay\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(m.matches("# TYPE process_cpu_seconds_total").count(), 1);
    assert_eq!(sample(&m, "remora_target_up{target=\"bad\"}"), Some(0.0));
    assert!(
        sample(
            &m,
            "remora_target_polls_total{result=\"invalid_body\",target=\"bad\"}"
        ) == Some(1.0),
        "{m}"
    );
    r.stop().await;
}

/// Ready is latched after the first poll round was attempted: a target that
/// hangs keeps remora unready until its timeout, then never again.
#[tokio::test]
async fn ready_waits_for_the_first_round() {
    let app = FakeTarget::start().await;
    app.set("/hang", Reply::Hang);
    let text = config(&app.url("/hang"), "").replace(
        "global: {interval: 1s, timeout: 500ms}",
        "global: {interval: 3s, timeout: 2s}",
    );
    let r = Remora::start_with(
        &text,
        Start {
            no_wait: true,
            ..Default::default()
        },
    )
    .await;
    let mut first = None;
    for _ in 0..100 {
        if let Ok(resp) = reqwest::get(r.url("/-/ready")).await {
            first = Some(resp.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = reqwest::get(r.url("/-/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        first,
        Some(503),
        "not ready while the first poll is in flight: {status}"
    );
    assert_eq!(
        reqwest::get(r.url("/-/healthy")).await.unwrap().status(),
        200
    );
    r.wait_ready().await;
    let m = r.metrics().await;
    assert_eq!(sample(&m, "remora_target_up{target=\"app\"}"), Some(0.0));
    // A later poll that hangs again does not unready it: checked while the
    // second poll is in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.hits("/hang") < 2 {
        assert!(Instant::now() < deadline, "no second poll");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(reqwest::get(r.url("/-/ready")).await.unwrap().status(), 200);
    r.stop().await;
}

/// A client that never finishes its request headers is disconnected
/// (the 2 s header-read timeout), so idle or slow clients cannot pile up.
#[tokio::test]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = Remora::start("host: {enabled: false}\n").await;
    let mut s = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was still open after 20 s");
    // Other clients were served all along.
    assert!(has_name(&r.metrics().await, "remora_build_info"));
    r.stop().await;
}

/// The row of target `app` in the index page `/`.
async fn app_row(r: &Remora) -> String {
    let index = reqwest::get(r.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    index
        .split("<tr>")
        .find(|row| row.contains("/targets/app"))
        .unwrap_or_default()
        .to_string()
}

/// Issue 26.9: `/` shows each target's own health (its top-level state
/// sets) and how many rules failed, in the failing form and in the healthy
/// one, so a failing app is visible without opening its page.
#[tokio::test]
async fn the_index_shows_the_apps_health_and_failing_rules() {
    let app = FakeTarget::start().await;
    let body = |status: &str, latency: &str| {
        format!(
            "{{\"status\": \"{status}\", \"checks\": {{\"db\": {{\"latency_ms\": {latency}}}}}}}"
        )
    };
    app.set("/health", Reply::json(&body("DOWN", "\"slow\"")));
    let config = format!(
        "global: {{interval: 1h, timeout: 2s}}\nhost: {{enabled: false}}\ntargets:\n  - name: app\n    url: {}\n    metrics:\n      - {{name: app.status, kind: stateset, states: [UP, DOWN], path: $.status}}\n      - {{name: app.check.latency, each: '$.checks.*', path: $.latency_ms, labels: {{check: '{{@key}}'}}}}\n",
        app.url("/health")
    );
    let r = Remora::start(&config).await;
    let row = app_row(&r).await;
    assert!(
        row.contains("<td class=\"health\">app.status: DOWN</td>"),
        "{row}"
    );
    assert!(row.contains("<td class=\"down\">1</td>"), "{row}");
    r.stop().await;

    app.set("/health", Reply::json(&body("UP", "3")));
    let r = Remora::start(&config).await;
    let row = app_row(&r).await;
    assert!(
        row.contains("<td class=\"health\">app.status: UP</td>"),
        "{row}"
    );
    assert!(row.contains("<td class=\"\">0</td>"), "{row}");
    r.stop().await;
}
