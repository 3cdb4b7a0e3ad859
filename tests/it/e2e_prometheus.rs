//! End to end: the demo app, remora polling it, and a real Prometheus server
//! scraping remora. Checked through Prometheus's HTTP API.

use crate::common;

use std::process::{Command, Stdio};

fn value(sample: &serde_json::Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

/// Queries until `pred` holds on the result, at most `secs`.
async fn wait_for(
    client: &reqwest::Client,
    prom: &str,
    q: &str,
    secs: u64,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    common::prom_wait_for(client, prom, q, secs, pred).await
}

#[tokio::test]
async fn prometheus_scrapes_remora_polling_the_demo_app() {
    let Some(prometheus) = common::tool("prometheus") else {
        return;
    };
    remora::targets::client::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (mut app, app_addr) = common::start_demo_app();

    let config = format!(
        r#"
global: {{interval: 1s, timeout: 900ms}}
host: {{collectors: [memory, cpu]}}
targets:
  - name: demo-health
    url: http://{app_addr}/health
    metrics:
      - name: app.dependency.latency
        unit: s
        each: $.checks.*
        path: $.latency_ms
        scale: 0.001
        labels: {{dependency: "{{@key}}"}}
      - name: app.dependency.health
        kind: stateset
        states: [healthy, degraded, unhealthy]
        each: $.checks.*
        path: $.status
        labels: {{dependency: "{{@key}}"}}
      - name: app.build_info
        kind: info
        description: Version of the demo app
        labels: {{version: "{{$.version}}"}}
"#
    );
    let cfg = dir.path().join("exporter.yaml");
    std::fs::write(&cfg, config).unwrap();
    let remora_port = common::free_port();
    let _remora = common::Proc(
        Command::new(env!("CARGO_BIN_EXE_remora"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{remora_port}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let (_prom, prom) =
        common::start_prometheus(&prometheus, dir.path(), &format!("127.0.0.1:{remora_port}"));
    let client = reqwest::Client::new();

    // Prometheus ingested remora's own series...
    let r = wait_for(&client, &prom, "remora_build_info", 60, |r| !r.is_empty()).await;
    assert_eq!(value(&r[0]), 1.0);
    assert_eq!(r[0]["metric"]["job"], "remora");
    let r = wait_for(&client, &prom, "up{job=\"remora\"}", 10, |r| !r.is_empty()).await;
    assert_eq!(
        value(&r[0]),
        1.0,
        "Prometheus could parse remora's response"
    );
    // ...the dependency latency and the state set...
    let r = wait_for(
        &client,
        &prom,
        "app_dependency_latency_seconds{dependency=\"database\"}",
        20,
        |r| !r.is_empty(),
    )
    .await;
    let latency = value(&r[0]);
    assert!(
        latency > 0.004 && latency < 0.01,
        "database latency {latency}"
    );
    assert_eq!(r[0]["metric"]["target"], "demo-health");
    let r = wait_for(
        &client,
        &prom,
        "app_dependency_health{dependency=\"redis\"} == 1",
        20,
        |r| !r.is_empty(),
    )
    .await;
    assert_eq!(r[0]["metric"]["state"], "healthy");
    // ...and host series.
    wait_for(&client, &prom, "system_memory_usage_bytes", 20, |r| {
        !r.is_empty()
    })
    .await;

    // Prometheus 2.42 offers OpenMetrics first and gets it: the info rule
    // arrives as `app_build_info`, and the stateset carries the label named
    // as its family, which only the OpenMetrics answer has.
    let r = wait_for(&client, &prom, "app_build_info", 20, |r| !r.is_empty()).await;
    assert_eq!(value(&r[0]), 1.0);
    assert_eq!(r[0]["metric"]["version"], "1.4.2");
    wait_for(
        &client,
        &prom,
        "app_dependency_health{app_dependency_health=\"healthy\",state=\"healthy\"}",
        20,
        |r| !r.is_empty(),
    )
    .await;
    // Every sample of an OpenMetrics answer was scraped: the count
    // Prometheus reports is the count of sample lines remora serves it.
    let om = client
        .get(format!("http://127.0.0.1:{remora_port}/metrics"))
        .header("accept", crate::formats::PROM2)
        .send()
        .await
        .unwrap();
    assert!(om.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let body = om.text().await.unwrap();
    let lines = body.lines().filter(|l| !l.starts_with('#')).count() as f64;
    let r = wait_for(
        &client,
        &prom,
        "scrape_samples_scraped{job=\"remora\"}",
        10,
        |r| !r.is_empty(),
    )
    .await;
    assert_eq!(value(&r[0]), lines, "samples scraped vs served:\n{body}");
    let r = wait_for(&client, &prom, "up{job=\"remora\"}", 10, |r| !r.is_empty()).await;
    assert_eq!(value(&r[0]), 1.0);

    // A dependency fails: the state set follows.
    let resp = client
        .post(format!("http://{app_addr}/fail/redis"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_for(
        &client,
        &prom,
        "app_dependency_health{dependency=\"redis\",state=\"unhealthy\"} == 1",
        20,
        |r| !r.is_empty(),
    )
    .await;

    // The app stops: target down, extracted series go stale.
    let _ = app.0.kill();
    let _ = app.0.wait();
    wait_for(
        &client,
        &prom,
        "remora_target_up{target=\"demo-health\"} == 0",
        20,
        |r| !r.is_empty(),
    )
    .await;
    wait_for(&client, &prom, "app_dependency_latency_seconds", 20, |r| {
        r.is_empty()
    })
    .await;
    wait_for(&client, &prom, "app_dependency_health", 20, |r| {
        r.is_empty()
    })
    .await;
    // remora's own series are still there.
    let r = common::prom_query(
        &client,
        &prom,
        "remora_target_polls_total{target=\"demo-health\",result=\"connect_error\"} > 0",
    )
    .await;
    assert!(!r.is_empty());
}
