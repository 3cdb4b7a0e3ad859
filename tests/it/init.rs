//! `remora init`: on the demo app and on the endpoint shapes of the seed
//! apps' monitoring guides (bodies in tests/fixtures/init/, written from
//! the guides), the written config passes `remora check`, reads back through
//! remora's own loader, and `remora once` on it gives a series for every
//! numeric, boolean and status leaf of each body, with no extraction error.
//! The leaves are found by walking the fixture JSON here, independently of
//! init's own inference.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{self, samples, FakeTarget, Reply, Sample};

const BIN: &str = env!("CARGO_BIN_EXE_remora");

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/init")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What init, check and once gave for an app.
struct Done {
    yaml: String,
    config: remora::config::Config,
    metrics: Vec<Sample>,
    _dir: tempfile::TempDir,
}

impl Done {
    /// The name of the target polling `url`.
    fn target(&self, url: &str) -> String {
        self.config
            .targets
            .iter()
            .find(|t| t.url.as_str() == url)
            .unwrap_or_else(|| panic!("no target for {url} in\n{}", self.yaml))
            .name
            .clone()
    }
}

/// `remora init URLS` to a file, `remora check` on it, the file read back
/// by remora's loader, and `remora once` on it (host from a fixture tree).
async fn init_check_once(urls: &[String]) -> Done {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exporter.yaml");
    let mut args = vec!["init".to_string()];
    args.extend(urls.iter().cloned());
    args.push(format!("--output={}", file.display()));
    let out = run(args).await;
    assert!(out.status.success(), "init failed: {}", text(&out.stderr));
    let yaml = std::fs::read_to_string(&file).unwrap();
    let config_arg = format!("--config.file={}", file.display());
    let out = run(vec!["check".into(), config_arg.clone()]).await;
    assert!(
        out.status.success(),
        "check failed: {}\n{yaml}",
        text(&out.stderr)
    );
    let config = remora::config::load_file(&file, &|_| None).unwrap();
    let host = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host/v2");
    let out = run(vec![
        "once".into(),
        config_arg,
        format!("--path.procfs={}", host.join("proc").display()),
        format!("--path.sysfs={}", host.join("sys").display()),
        format!("--path.rootfs={}", host.join("root").display()),
    ])
    .await;
    let exposition = text(&out.stdout);
    assert!(
        out.status.success(),
        "once failed: {}\n{exposition}\n{yaml}",
        text(&out.stderr)
    );
    let metrics = samples(&exposition);
    let errors: Vec<&Sample> = metrics
        .iter()
        .filter(|s| s.name == "remora_extraction_errors_total" && s.value > 0.0)
        .collect();
    assert!(errors.is_empty(), "extraction errors: {errors:#?}\n{yaml}");
    for t in &config.targets {
        let up = metrics
            .iter()
            .find(|s| s.name == "remora_target_up" && s.labels.get("target") == Some(&t.name));
        assert_eq!(up.map(|s| s.value), Some(1.0), "{} not up\n{yaml}", t.name);
    }
    Done {
        yaml,
        config,
        metrics,
        _dir: dir,
    }
}

/// A leaf of a body the test expects a series for.
#[derive(Debug)]
enum Want {
    Number(f64),
    Bool(bool),
    State(String),
}

#[derive(Debug)]
struct Leaf {
    /// Object keys from the root (array indices left out).
    keys: Vec<String>,
    /// The `name`/`id` of the array elements on the way.
    ids: Vec<String>,
    want: Want,
}

/// Every number, boolean and status string (under `status`/`state`) of `v`.
fn leaves(v: &Value, keys: &mut Vec<String>, ids: &mut Vec<String>, out: &mut Vec<Leaf>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                keys.push(k.clone());
                leaves(child, keys, ids, out);
                keys.pop();
            }
        }
        Value::Array(items) => {
            for item in items {
                let id = ["name", "id"].iter().find_map(|f| {
                    item.get(f)
                        .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
                });
                if let Some(id) = &id {
                    ids.push(id.clone());
                }
                leaves(item, keys, ids, out);
                if id.is_some() {
                    ids.pop();
                }
            }
        }
        Value::Number(n) => out.push(Leaf {
            keys: keys.clone(),
            ids: ids.clone(),
            want: Want::Number(n.as_f64().unwrap()),
        }),
        Value::Bool(b) => out.push(Leaf {
            keys: keys.clone(),
            ids: ids.clone(),
            want: Want::Bool(*b),
        }),
        Value::String(s) => {
            let key = keys.last().map(String::as_str).unwrap_or("");
            if matches!(key, "status" | "state") {
                out.push(Leaf {
                    keys: keys.clone(),
                    ids: ids.clone(),
                    want: Want::State(s.clone()),
                });
            }
        }
        Value::Null => {}
    }
}

/// `latency_ms` -> `latency`: the test's own idea of a key's stem.
fn stem(key: &str) -> String {
    let k = key.to_ascii_lowercase().replace('-', "_");
    for unit in [
        "_ms", "_seconds", "_bytes", "_gb", "_mb", "_kb", "_percent", "_ns", "_us",
    ] {
        if let Some(s) = k.strip_suffix(unit) {
            return s.to_string();
        }
    }
    k
}

/// Scales a unit suffix may imply.
const SCALES: [f64; 12] = [
    1.0,
    1e-3,
    1e-6,
    1e-9,
    1e3,
    1e6,
    1e9,
    1e12,
    0.01,
    1024.0,
    1048576.0,
    1073741824.0,
];

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Whether init wrote `url`'s target with the rules of recipe `recipe`.
fn from_recipe(done: &Done, url: &str, recipe: &str) -> bool {
    done.yaml
        .split("\n  - name: ")
        .find(|block| block.contains(&format!("url: \"{url}\"")))
        .is_some_and(|block| block.contains(&format!("examples/recipes/{recipe}/: its rules")))
}

/// Asserts a series for every leaf of `doc` among `target`'s samples: its
/// name holds the leaf's key stem, every container key on the way is in the
/// name or a label value, every array element's id is a label value, and
/// the value is the leaf's (under a unit scale) when `exact`. A page init
/// wrote with the FastAPI health recipe's rules has the recipe's names
/// (`app_dependency_latency_seconds{dependency="db"}`): there the member's
/// key must be a label value, and a status read through the recipe's `map:`
/// (`ready` 1, `not_ready` 0) counts as its state.
fn assert_every_leaf(done: &Done, url: &str, doc: &Value, exact: bool) {
    let recipe = from_recipe(done, url, "fastapi-health");
    let target = done.target(url);
    let mine: Vec<&Sample> = done
        .metrics
        .iter()
        .filter(|s| s.labels.get("target") == Some(&target) && !s.name.starts_with("remora_"))
        .collect();
    let mut all = Vec::new();
    leaves(doc, &mut Vec::new(), &mut Vec::new(), &mut all);
    assert!(!all.is_empty());
    for leaf in &all {
        let key = leaf.keys.last().map(String::as_str).unwrap_or("");
        let found = mine.iter().any(|s| {
            // A state set's `state` label names a state, not a key.
            let labels: Vec<&String> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "state")
                .map(|(_, v)| v)
                .collect();
            let named = recipe || s.name.contains(&stem(key)) || labels.iter().any(|l| *l == key);
            let placed = if recipe {
                // `checks.<member>.field`: the member is a label value (or
                // in the name: the recipe's `app.disk.free`).
                leaf.keys.len() < 3
                    || labels.contains(&&leaf.keys[1])
                    || s.name.contains(&stem(&leaf.keys[1]))
            } else {
                leaf.keys[..leaf.keys.len().saturating_sub(1)]
                    .iter()
                    .all(|k| s.name.contains(&stem(k)) || labels.contains(&k))
            };
            let ids = leaf.ids.iter().all(|id| labels.contains(&id));
            let value = match &leaf.want {
                Want::Number(v) => !exact || SCALES.iter().any(|f| close(s.value, v * f)),
                Want::Bool(b) => s.value == f64::from(u8::from(*b)),
                Want::State(state) => {
                    (s.labels.get("state") == Some(state) && s.value == 1.0)
                        || (recipe
                            && !s.labels.contains_key("state")
                            && match state.strip_prefix("not_") {
                                Some(word) => s.name.ends_with(word) && s.value == 0.0,
                                None => s.name.ends_with(state.as_str()) && s.value == 1.0,
                            })
                }
            };
            named && placed && ids && value
        });
        assert!(
            found,
            "{url}: no series for {leaf:?} among {mine:#?}\n{}",
            done.yaml
        );
    }
}

fn has_info(done: &Done, url: &str, version: &str) -> bool {
    let target = done.target(url);
    done.metrics.iter().any(|s| {
        s.labels.get("target") == Some(&target)
            && s.name.ends_with("_info")
            && s.labels.values().any(|v| v == version)
    })
}

/// Serves `routes` (path, status, content type, fixture) on a fake app.
async fn app(routes: &[(&str, u16, &'static str, &str)]) -> FakeTarget {
    let t = FakeTarget::start().await;
    for (path, status, ctype, file) in routes {
        t.set(path, Reply::Body(*status, ctype, fixture(file)));
    }
    t
}

const JSON: &str = "application/json";
const PROM: &str = "text/plain; version=0.0.4; charset=utf-8";

fn base(t: &FakeTarget) -> String {
    format!("http://{}", t.addr)
}

fn doc(file: &str) -> Value {
    serde_json::from_str(&fixture(file)).unwrap()
}

#[tokio::test]
async fn atoll_health_and_metrics() {
    let t = app(&[
        ("/health", 200, JSON, "atoll_health.json"),
        ("/metrics", 200, PROM, "atoll_metrics.txt"),
    ])
    .await;
    let done = init_check_once(&[base(&t)]).await;
    assert_every_leaf(&done, &t.url("/health"), &doc("atoll_health.json"), true);
    assert!(has_info(&done, &t.url("/health"), "2.0.0"), "{}", done.yaml);
    let metrics = done.target(&t.url("/metrics"));
    let pass = |name: &str| {
        done.metrics
            .iter()
            .any(|s| s.name == name && s.labels.get("target") == Some(&metrics))
    };
    assert!(pass("atoll_agents_total") && pass("atoll_api_request_duration_seconds_bucket"));
    assert!(done.yaml.contains("format: prometheus"), "{}", done.yaml);
}

#[tokio::test]
async fn atom_live_and_ready_including_a_503_with_a_json_body() {
    let t = app(&[
        ("/health/live", 200, JSON, "atom_live.json"),
        ("/health/ready", 503, JSON, "atom_not_ready.json"),
    ])
    .await;
    let done = init_check_once(&[base(&t)]).await;
    let ready = done
        .config
        .targets
        .iter()
        .find(|x| x.url.as_str() == t.url("/health/ready"))
        .unwrap();
    assert!(ready.accept_status.contains(&503), "{}", done.yaml);
    assert_every_leaf(
        &done,
        &t.url("/health/ready"),
        &doc("atom_not_ready.json"),
        true,
    );
    assert_every_leaf(&done, &t.url("/health/live"), &doc("atom_live.json"), true);
    // The timestamp, as Unix seconds.
    assert!(
        done.metrics.iter().any(|s| s.value == 1771269300.0),
        "{}",
        done.yaml
    );

    // Generated from the 200 answer, the config still reads the 503 one.
    t.set(
        "/health/ready",
        Reply::Body(200, JSON, fixture("atom_ready.json")),
    );
    let done = init_check_once(&[base(&t)]).await;
    assert_every_leaf(
        &done,
        &t.url("/health/ready"),
        &doc("atom_ready.json"),
        true,
    );
    t.set(
        "/health/ready",
        Reply::Body(503, JSON, fixture("atom_not_ready.json")),
    );
    let file = done._dir.path().join("exporter.yaml");
    let out = run(vec![
        "once".into(),
        format!("--config.file={}", file.display()),
    ])
    .await;
    let m = samples(&text(&out.stdout));
    let ready = done.target(&t.url("/health/ready"));
    // The FastAPI health recipe's reading: app_ready 0 (map: not_ready 0).
    assert!(
        from_recipe(&done, &t.url("/health/ready"), "fastapi-health"),
        "{}",
        done.yaml
    );
    assert!(
        m.iter().any(|s| s.labels.get("target") == Some(&ready)
            && s.name == "app_ready"
            && s.value == 0.0),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn agenttrace_health_with_checks_version_and_uptime() {
    let t = app(&[
        ("/health", 200, JSON, "agenttrace_health.json"),
        ("/metrics", 200, PROM, "promptpilot_metrics.txt"),
    ])
    .await;
    let done = init_check_once(&[base(&t)]).await;
    let body = doc("agenttrace_health.json");
    assert_every_leaf(&done, &t.url("/health"), &body, true);
    assert!(has_info(&done, &t.url("/health"), "1.0.0"), "{}", done.yaml);
    // "2h15m30s" is a duration in seconds.
    assert!(done
        .metrics
        .iter()
        .any(|s| s.name.contains("uptime") && s.value == 8130.0));
    // Every check of the body has its state set, with the usual vocabulary.
    for state in ["healthy", "degraded", "unhealthy"] {
        assert!(done
            .metrics
            .iter()
            .any(|s| s.labels.get("state").map(String::as_str) == Some(state)
                && s.labels.values().any(|v| v == "clickhouse")));
    }
}

#[tokio::test]
async fn prometheus_only_apps_and_explicit_urls() {
    // aoss and promptpilot: only /metrics; given as explicit URLs.
    let a = app(&[("/metrics", 200, PROM, "aoss_metrics.txt")]).await;
    let p = app(&[("/metrics", 200, PROM, "promptpilot_metrics.txt")]).await;
    let done = init_check_once(&[a.url("/metrics"), p.url("/metrics")]).await;
    assert_eq!(done.config.targets.len(), 2, "{}", done.yaml);
    assert!(done
        .metrics
        .iter()
        .any(|s| s.name == "aoss_executions_completed"));
    assert!(done
        .metrics
        .iter()
        .any(|s| s.name == "prompt_executions_total"));
    // Only the URLs given were asked.
    assert_eq!(a.hits("/health"), 0);
}

#[tokio::test]
async fn nothing_to_read_is_an_error_and_an_existing_file_is_kept() {
    let t = FakeTarget::start().await;
    // FastAPI answers unknown paths 404 with a JSON body: not a status page.
    for path in ["/healthz", "/status", "/info"] {
        t.set(
            path,
            Reply::Body(404, JSON, r#"{"detail": "Not Found"}"#.into()),
        );
    }
    let out = run(vec!["init".into(), base(&t)]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("none of the usual status paths"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        t.hits("/health") + t.hits("/debug/vars") + t.hits("/actuator/health"),
        3
    );

    t.set("/health", Reply::json(r#"{"status": "ok"}"#));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exporter.yaml");
    std::fs::write(&file, "mine").unwrap();
    let out = run(vec![
        "init".into(),
        base(&t),
        format!("--output={}", file.display()),
    ])
    .await;
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    let out = run(vec!["init".into(), "ftp://x/".into()]).await;
    assert!(
        text(&out.stderr).contains("not an http(s) URL"),
        "{}",
        text(&out.stderr)
    );
}

fn demo_app() -> (common::Proc, String) {
    let (app, addr) = common::start_demo_app();
    (app, format!("http://{addr}"))
}

#[tokio::test]
async fn demo_app_every_leaf() {
    let (_app, base) = demo_app();
    let done = init_check_once(std::slice::from_ref(&base)).await;
    let client = reqwest::Client::new();
    for path in ["/health", "/health/ready", "/version"] {
        let url = format!("{base}{path}");
        let body: Value = serde_json::from_slice(
            &client
                .get(&url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        )
        .unwrap();
        // Latencies and uptimes move between requests: structure only.
        assert_every_leaf(&done, &url, &body, false);
    }
    assert!(has_info(&done, &format!("{base}/version"), "9f1c2ab"));
    assert!(done
        .metrics
        .iter()
        .any(|s| s.name == "demo_http_requests_total"));
    assert_eq!(done.config.targets.len(), 4, "{}", done.yaml);
}

#[tokio::test]
async fn spring_boot_actuator_down_answer_and_go_expvar() {
    let spring = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/recipes/spring-boot-actuator/health.json"),
    )
    .unwrap();
    let vars = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/recipes/go-expvar/vars.json"),
    )
    .unwrap();
    let t = FakeTarget::start().await;
    t.set("/actuator/health", Reply::Body(503, JSON, spring.clone()));
    t.set("/debug/vars", Reply::Body(200, JSON, vars));
    let done = init_check_once(&[base(&t)]).await;
    // Both bodies have a recipe's shape: init writes the recipes' rules.
    let spring_target = done.target(&t.url("/actuator/health"));
    for (component, state) in [("redis", "DOWN"), ("diskSpace", "UP")] {
        assert!(
            done.metrics.iter().any(|s| s.name == "app_component_health"
                && s.labels.get("target") == Some(&spring_target)
                && s.labels.get("component").map(String::as_str) == Some(component)
                && s.labels.get("state").map(String::as_str) == Some(state)
                && s.value == 1.0),
            "{component} {state}\n{}",
            done.yaml
        );
    }
    let ready = done
        .config
        .targets
        .iter()
        .find(|x| x.name == spring_target)
        .unwrap();
    assert!(ready.accept_status.contains(&503), "{}", done.yaml);
    // memstats numbers are read with the recipe's names and units.
    assert!(done
        .metrics
        .iter()
        .any(|s| s.name == "go_memstats_heap_alloc_bytes" && s.value == 4718592.0));
    assert!(done
        .metrics
        .iter()
        .any(|s| s.name.ends_with("memstats_gc_cpu_fraction_ratio")));
    assert!(
        done.yaml.contains("examples/recipes/go-expvar/"),
        "{}",
        done.yaml
    );
    assert!(
        done.yaml.contains("examples/recipes/spring-boot-actuator/"),
        "{}",
        done.yaml
    );
}

#[tokio::test]
async fn a_url_with_a_newline_is_refused_and_writes_nothing() {
    let t = FakeTarget::start().await;
    t.set("/health", Reply::json(r#"{"status": "ok"}"#));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exporter.yaml");
    for bad in [
        format!("{}\ntargets: []", t.url("/health")),
        format!("{}\r\nserver: {{listen: 0.0.0.0:1}}", t.url("/health")),
        t.url("/he\talth"),
    ] {
        let out = run(vec![
            "init".into(),
            bad.clone(),
            format!("--output={}", file.display()),
        ])
        .await;
        assert!(!out.status.success(), "{bad:?} accepted");
        assert!(
            text(&out.stderr).contains("not an http(s) URL"),
            "{}",
            text(&out.stderr)
        );
        assert!(!file.exists());
    }
    assert_eq!(t.hits("/health"), 0);
}

/// A Vault standby answers 429 with its health body: init reads it, and
/// the config reads every documented answer of sys/health.
#[tokio::test]
async fn vault_standby_answering_429_and_then_sealed_503() {
    let apps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apps/vault");
    let body = |f: &str| std::fs::read_to_string(apps.join(f)).unwrap();
    let t = FakeTarget::start().await;
    t.set(
        "/v1/sys/health",
        Reply::Body(429, JSON, body("standby.json")),
    );
    let done = init_check_once(&[t.url("/v1/sys/health")]).await;
    let target = &done.config.targets[0];
    assert_eq!(
        target.accept_status,
        [200, 429, 472, 473, 474, 501, 503, 530],
        "{}",
        done.yaml
    );
    assert!(done
        .metrics
        .iter()
        .any(|s| s.name == "app_v1_sys_health_standby" && s.value == 1.0));
    t.set(
        "/v1/sys/health",
        Reply::Body(503, JSON, body("sealed.json")),
    );
    let file = done._dir.path().join("exporter.yaml");
    let out = run(vec![
        "once".into(),
        format!("--config.file={}", file.display()),
    ])
    .await;
    let m = samples(&text(&out.stdout));
    assert!(
        m.iter()
            .any(|s| s.name == "app_v1_sys_health_sealed" && s.value == 1.0),
        "{}",
        text(&out.stdout)
    );
    assert!(!m
        .iter()
        .any(|s| s.name == "remora_extraction_errors_total" && s.value > 0.0));
}
