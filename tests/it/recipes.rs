//! The recipes of examples/recipes/: each config passes `remora check` and,
//! polling its fixture body (served as the app serves it), `remora once`
//! gives the series the recipe promises, with no extraction error.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{sample, samples, FakeTarget, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_remora");

fn recipe(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/recipes")
        .join(dir)
}

fn body(dir: &str, file: &str) -> String {
    std::fs::read_to_string(recipe(dir).join(file)).unwrap()
}

/// `remora check` then `remora once` on the recipe, with APP_URL set to
/// `app`; the exposition (host read from a fixture tree).
async fn once(dir: &str, app: &FakeTarget) -> String {
    let config = recipe(dir).join("exporter.yaml");
    let host = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host/v2");
    let app_url = format!("http://{}", app.addr);
    tokio::task::spawn_blocking(move || {
        let run = |args: &[String]| {
            Command::new(BIN)
                .args(args)
                .env("APP_URL", &app_url)
                .output()
                .unwrap()
        };
        let config_arg = format!("--config.file={}", config.display());
        let out = run(&["check".into(), config_arg.clone()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(&[
            "once".into(),
            config_arg,
            format!("--path.procfs={}", host.join("proc").display()),
            format!("--path.sysfs={}", host.join("sys").display()),
            format!("--path.rootfs={}", host.join("root").display()),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let errors: Vec<_> = samples(&text)
            .into_iter()
            .filter(|s| s.name == "remora_extraction_errors_total" && s.value > 0.0)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        text
    })
    .await
    .unwrap()
}

fn assert_series(text: &str, want: &[(&str, f64)]) {
    for (selector, value) in want {
        assert_eq!(
            sample(text, selector),
            Some(*value),
            "{selector} in\n{text}"
        );
    }
}

#[tokio::test]
async fn spring_boot_actuator_health_down_with_details() {
    let app = FakeTarget::start().await;
    let dir = "spring-boot-actuator";
    // DOWN answers 503: the recipe reads it anyway.
    app.set(
        "/actuator/health",
        Reply::Body(
            503,
            "application/vnd.spring-boot.actuator.v3+json",
            body(dir, "health.json"),
        ),
    );
    let text = once(dir, &app).await;
    assert_series(
        &text,
        &[
            (r#"app_health{state="DOWN",target="spring"}"#, 1.0),
            (r#"app_health{state="UP",target="spring"}"#, 0.0),
            (
                r#"app_component_health{component="redis",state="DOWN",target="spring"}"#,
                1.0,
            ),
            (
                r#"app_component_health{component="readinessState",state="OUT_OF_SERVICE",target="spring"}"#,
                1.0,
            ),
            (
                r#"app_component_health{component="db",state="UP",target="spring"}"#,
                1.0,
            ),
            (
                r#"app_component_up{component="redis",target="spring"}"#,
                0.0,
            ),
            (r#"app_component_up{component="ping",target="spring"}"#, 1.0),
            (
                r#"app_disk_free_bytes{path="/workspace/.",target="spring"}"#,
                42949672960.0,
            ),
            (
                r#"app_disk_total_bytes{path="/workspace/.",target="spring"}"#,
                107374182400.0,
            ),
            (
                r#"app_disk_threshold_bytes{path="/workspace/.",target="spring"}"#,
                10485760.0,
            ),
            (
                r#"app_database_info{database="PostgreSQL",target="spring"}"#,
                1.0,
            ),
            (r#"remora_target_up{target="spring"}"#, 1.0),
        ],
    );
}

/// The recipe on the documented composite bodies (tests/fixtures/apps):
/// healthy and failing both pass with no extraction error, and the
/// DataSources under `db` come out labelled by group and component.
#[tokio::test]
async fn spring_boot_actuator_composite_healthy_and_failing() {
    let dir = "spring-boot-actuator";
    for (form, status, reporting_up) in [("healthy", 200, 1.0), ("failing", 503, 0.0)] {
        let app = FakeTarget::start().await;
        let body = crate::common::fixture(&format!("apps/spring-boot-actuator/{form}.json"));
        app.set(
            "/actuator/health",
            Reply::Body(status, "application/vnd.spring-boot.actuator.v3+json", body),
        );
        let text = once(dir, &app).await;
        let series = |c: &str, s: &str| {
            format!(
                r#"app_subcomponent_health{{component="{c}",group="db",state="{s}",target="spring"}}"#
            )
        };
        assert_series(
            &text,
            &[
                (&series("reportingDataSource", "UP"), reporting_up),
                (&series("reportingDataSource", "DOWN"), 1.0 - reporting_up),
                (&series("ordersDataSource", "UP"), 1.0),
            ],
        );
    }
}

#[tokio::test]
async fn ietf_health_check_response_format() {
    let app = FakeTarget::start().await;
    let dir = "ietf-health-check";
    app.set(
        "/health",
        Reply::Body(200, "application/health+json", body(dir, "health.json")),
    );
    let text = once(dir, &app).await;
    assert_series(
        &text,
        &[
            (r#"app_health{state="warn",target="orders"}"#, 1.0),
            (
                r#"app_release_info{release_id="3.4.1",service_id="8d2c4b6e-0f3a-4c1b-9e7d-2a5f6c8b1d3e",target="orders"}"#,
                1.0,
            ),
            (
                r#"app_check_status{check="postgres:responseTime",state="pass",target="orders"}"#,
                1.0,
            ),
            (
                r#"app_check_observed_value{check="postgres:responseTime",observed_unit="ms",target="orders"}"#,
                42.0,
            ),
            (
                r#"app_check_observed_value{check="uptime",observed_unit="s",target="orders"}"#,
                86400.5,
            ),
            (
                r#"app_queue_depth{component_id="queue-b",target="orders"}"#,
                950.0,
            ),
            (
                r#"app_queue_status{component_id="queue-b",state="warn",target="orders"}"#,
                1.0,
            ),
            (
                r#"app_queue_status{component_id="queue-a",state="pass",target="orders"}"#,
                1.0,
            ),
            (
                r#"app_cpu_utilization_ratio{node="1",target="orders"}"#,
                0.71,
            ),
            (
                r#"app_postgres_response_time_seconds{target="orders"}"#,
                0.042,
            ),
            (r#"app_uptime_seconds{target="orders"}"#, 86400.5),
        ],
    );
    // A failing service answers 503 with the same format.
    let failing =
        body(dir, "health.json").replacen("\"status\": \"warn\"", "\"status\": \"fail\"", 1);
    app.set(
        "/health",
        Reply::Body(503, "application/health+json", failing),
    );
    let text = once(dir, &app).await;
    assert_series(
        &text,
        &[(r#"app_health{state="fail",target="orders"}"#, 1.0)],
    );
}

#[tokio::test]
async fn go_expvar_memstats() {
    let app = FakeTarget::start().await;
    let dir = "go-expvar";
    app.set(
        "/debug/vars",
        Reply::Body(
            200,
            "application/json; charset=utf-8",
            body(dir, "vars.json"),
        ),
    );
    let text = once(dir, &app).await;
    assert_series(
        &text,
        &[
            (
                r#"go_memstats_heap_alloc_bytes{target="orders"}"#,
                4718592.0,
            ),
            (r#"go_memstats_heap_objects{target="orders"}"#, 22344.0),
            (r#"go_memstats_next_gc_bytes{target="orders"}"#, 8388608.0),
            (r#"go_memstats_sys_bytes{target="orders"}"#, 17254408.0),
            (
                r#"go_memstats_total_alloc_bytes_total{target="orders"}"#,
                96468992.0,
            ),
            (r#"go_memstats_mallocs_total{target="orders"}"#, 812345.0),
            (r#"go_gc_cycles_total{target="orders"}"#, 37.0),
            (
                r#"go_memstats_gc_cpu_fraction_ratio{target="orders"}"#,
                0.000812,
            ),
            (
                r#"go_cmdline_info{program="/usr/local/bin/orders",target="orders"}"#,
                1.0,
            ),
            (r#"app_orders_processed_total{target="orders"}"#, 1532.0),
        ],
    );
    let gc = sample(&text, r#"go_gc_pause_seconds_total{target="orders"}"#).unwrap();
    assert!((gc - 0.00456789).abs() < 1e-12, "{gc}");
    let last = sample(
        &text,
        r#"go_memstats_last_gc_time_seconds{target="orders"}"#,
    )
    .unwrap();
    assert!((last - 1771269300.123).abs() < 1e-3, "{last}");
}

#[tokio::test]
async fn fastapi_health_and_readiness_pages() {
    let app = FakeTarget::start().await;
    let dir = "fastapi-health";
    let json = "application/json";
    app.set(
        "/health/live",
        Reply::Body(200, json, body(dir, "live.json")),
    );
    app.set(
        "/health/ready",
        Reply::Body(503, json, body(dir, "ready-503.json")),
    );
    app.set("/health", Reply::Body(200, json, body(dir, "health.json")));
    let text = once(dir, &app).await;
    assert_series(
        &text,
        &[
            (r#"app_alive{target="live"}"#, 1.0),
            (r#"app_live_timestamp_seconds{target="live"}"#, 1771269300.0),
            (r#"app_ready{target="ready"}"#, 0.0),
            (
                r#"app_dependency_up{dependency="database",target="ready"}"#,
                0.0,
            ),
            (
                r#"app_dependency_up{dependency="disk",target="ready"}"#,
                1.0,
            ),
            (
                r#"app_dependency_latency_seconds{dependency="database",target="ready"}"#,
                5.0,
            ),
            (r#"app_disk_free_bytes{target="ready"}"#, 10.5e9),
            (r#"app_health{state="healthy",target="health"}"#, 1.0),
            (
                r#"app_dependency_health{dependency="clickhouse",state="healthy",target="health"}"#,
                1.0,
            ),
            (
                r#"app_dependency_check_latency_seconds{dependency="postgres",target="health"}"#,
                0.002,
            ),
            (r#"app_uptime_seconds{target="health"}"#, 8130.0),
            (r#"app_build_info{target="health",version="1.0.0"}"#, 1.0),
        ],
    );
}

/// Every recipe directory has a config and is tested above.
#[test]
fn every_recipe_is_tested() {
    let tested = [
        "fastapi-health",
        "go-expvar",
        "ietf-health-check",
        "spring-boot-actuator",
    ];
    let mut found: Vec<String> = std::fs::read_dir(recipe(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("exporter.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, tested);
}
