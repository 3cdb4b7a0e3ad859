//! Bodies of a known shape get the rules of their recipe in
//! examples/recipes/ (copied from the recipe's file as written, comments
//! included) instead of generic guesses: Spring Boot Actuator's health,
//! the IETF health+json draft, Go's expvar `/debug/vars`, and the FastAPI
//! health pages of examples/recipes/fastapi-health/ (`/health/live`,
//! `/health/ready`, `/health`, each only when the body has exactly that
//! page's keys and vocabulary). Rules of a recipe
//! that name one app's own keys (a queue, a counter of the example app)
//! are not copied. A list a healthy body leaves empty by design (Consul's
//! agent service health lists only the checks that are not passing) is
//! read from its documented member shape.

use serde_json::Value;

use super::probe::Answer;

/// A recipe that fits a body: which, its rules as YAML (indented for a
/// target's `metrics:`), and the top-level keys of the body it reads (the
/// rest is left to the generic inference).
#[derive(Debug, Clone)]
pub struct Fit {
    pub name: &'static str,
    pub rules: String,
    pub covers: &'static [&'static str],
}

const SPRING: &str = include_str!("../../examples/recipes/spring-boot-actuator/exporter.yaml");
const IETF: &str = include_str!("../../examples/recipes/ietf-health-check/exporter.yaml");
const EXPVAR: &str = include_str!("../../examples/recipes/go-expvar/exporter.yaml");
const FASTAPI: &str = include_str!("../../examples/recipes/fastapi-health/exporter.yaml");

/// Spring Boot's health states.
const SPRING_STATES: [&str; 4] = ["UP", "DOWN", "OUT_OF_SERVICE", "UNKNOWN"];

/// The IETF draft's states and the aliases it allows.
const IETF_STATES: [&str; 7] = ["pass", "warn", "fail", "ok", "up", "error", "down"];

/// Spring Boot Actuator's `/actuator/health` (2.2+): a `status` of its
/// vocabulary and `components` (or only the status, at an `/actuator` path).
fn spring(a: &Answer, doc: &Value) -> bool {
    let Some(status) = doc.get("status").and_then(Value::as_str) else {
        return false;
    };
    if !SPRING_STATES.contains(&status) {
        return false;
    }
    let components = doc.get("components").is_some_and(Value::is_object);
    let minimal = doc.as_object().is_some_and(|m| m.len() == 1);
    components || (minimal && a.url.path().contains("/actuator"))
}

/// The IETF health+json draft: its content type, or a status of its
/// vocabulary with `checks` holding lists of objects.
fn ietf(a: &Answer, doc: &Value) -> bool {
    let Some(status) = doc.get("status").and_then(Value::as_str) else {
        return false;
    };
    if a.content_type
        .to_ascii_lowercase()
        .starts_with("application/health+json")
    {
        return true;
    }
    let checks = doc
        .get("checks")
        .and_then(Value::as_object)
        .is_some_and(|c| {
            !c.is_empty()
                && c.values().all(|v| {
                    v.as_array()
                        .is_some_and(|l| l.iter().all(|e| e.get("status").is_some()))
                })
        });
    IETF_STATES.contains(&status) && checks
}

/// Go's expvar: `memstats` with the runtime's fields, `cmdline` a list.
fn expvar(doc: &Value) -> bool {
    doc.get("memstats").is_some_and(|m| {
        ["HeapAlloc", "NumGC", "Sys"]
            .iter()
            .all(|k| m.get(k).is_some())
    }) && doc.get("cmdline").is_some_and(Value::is_array)
}

/// A page of the FastAPI health recipe.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FastApi {
    Live,
    Ready,
    Health,
}

/// Whether every member of `doc.checks` is an object whose `field` is of
/// the kind `is` says, with no field but `fields` (the recipe reads them
/// all: a member with another field is not the recipe's shape), and there
/// is at least one.
fn checks_with(doc: &Value, field: &str, is: fn(&Value) -> bool, fields: &[&str]) -> bool {
    doc.get("checks")
        .and_then(Value::as_object)
        .is_some_and(|c| {
            !c.is_empty()
                && c.values().all(|v| {
                    v.get(field).is_some_and(is)
                        && v.as_object()
                            .is_some_and(|m| m.keys().all(|k| fields.contains(&k.as_str())))
                })
        })
}

/// The FastAPI health recipe's pages, by their exact shape: the keys the
/// page has (no other), its status vocabulary, its checks' fields (no
/// other): nothing of the body goes unread.
fn fastapi(doc: &Value) -> Option<FastApi> {
    let m = doc.as_object()?;
    let status = m.get("status").and_then(Value::as_str)?;
    let only = |keys: &[&str]| m.keys().all(|k| keys.contains(&k.as_str()));
    let timestamp = m.get("timestamp").is_some_and(Value::is_string);
    if status == "alive" && timestamp && only(&["status", "timestamp"]) {
        return Some(FastApi::Live);
    }
    if matches!(status, "ready" | "not_ready")
        && only(&["status", "timestamp", "checks"])
        && checks_with(
            doc,
            "healthy",
            Value::is_boolean,
            &["healthy", "message", "latency_ms", "free_gb"],
        )
    {
        return Some(FastApi::Ready);
    }
    if matches!(status, "healthy" | "degraded" | "unhealthy")
        && only(&["status", "timestamp", "checks", "version", "uptime"])
        && checks_with(doc, "status", Value::is_string, &["status", "latency_ms"])
    {
        return Some(FastApi::Health);
    }
    None
}

/// The recipe that fits the answer, if one does.
pub fn fit(a: &Answer, doc: &Value) -> Option<Fit> {
    if let Some(page) = fastapi(doc) {
        let (target, wanted): (&str, &[&str]) = match page {
            FastApi::Live => ("live", &["app.alive", "app.live.timestamp"]),
            FastApi::Ready => (
                "ready",
                &[
                    "app.ready",
                    "app.dependency.up",
                    "app.dependency.latency",
                    "app.disk.free",
                ],
            ),
            FastApi::Health => (
                "health",
                &[
                    "app.health",
                    "app.dependency.health",
                    "app.dependency.check_latency",
                    "app.uptime",
                    "app.build_info",
                ],
            ),
        };
        return Some(Fit {
            name: "fastapi-health",
            rules: rules_of(FASTAPI, target, wanted),
            covers: &["status", "timestamp", "checks", "version", "uptime"],
        });
    }
    if spring(a, doc) {
        Some(Fit {
            name: "spring-boot-actuator",
            rules: rules(
                SPRING,
                &[
                    "app.health",
                    "app.component.health",
                    "app.subcomponent.health",
                    "app.component.up",
                    "app.disk",
                    "app.database_info",
                ],
            ),
            covers: &["status", "components", "groups"],
        })
    } else if ietf(a, doc) {
        Some(Fit {
            name: "ietf-health-check",
            rules: rules(
                IETF,
                &[
                    "app.health",
                    "app.release_info",
                    "app.check.status",
                    "app.check.observed_value",
                ],
            ),
            covers: &[
                "status",
                "checks",
                "releaseId",
                "serviceId",
                "version",
                "notes",
                "output",
                "description",
                "links",
            ],
        })
    } else if expvar(doc) {
        Some(Fit {
            name: "go-expvar",
            rules: rules(
                EXPVAR,
                &[
                    "go.memstats",
                    "go.memstats.heap_objects",
                    "go.memstats.total_alloc",
                    "go.memstats.mallocs",
                    "go.memstats.frees",
                    "go.gc.cycles",
                    "go.gc.pause",
                    "go.memstats.last_gc_time",
                    "go.memstats.gc_cpu_fraction",
                    "go.cmdline_info",
                ],
            ),
            covers: &["memstats", "cmdline"],
        })
    } else {
        None
    }
}

/// The rules named `wanted` of a recipe file's first target, each with the
/// comment lines above it, as written.
fn rules(recipe: &str, wanted: &[&str]) -> String {
    metrics_rules(recipe.lines(), wanted)
}

/// The rules named `wanted` of the recipe file's target `target`.
fn rules_of(recipe: &str, target: &str, wanted: &[&str]) -> String {
    let mark = format!("  - name: {target}");
    metrics_rules(recipe.lines().skip_while(|l| l.trim_end() != mark), wanted)
}

/// The rules named `wanted` under the first `metrics:` of `lines`.
fn metrics_rules<'a>(lines: impl Iterator<Item = &'a str>, wanted: &[&str]) -> String {
    let mut out = String::new();
    let mut lines = lines.skip_while(|l| l.trim_end() != "    metrics:");
    lines.next();
    let mut pending: Vec<&str> = Vec::new();
    let mut keep = false;
    for line in lines {
        if line.starts_with("  - ") || (!line.is_empty() && !line.starts_with("      ")) {
            break;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent == 6 && trimmed.starts_with('#') {
            pending.push(line);
            continue;
        }
        if let Some(name) = trimmed.strip_prefix("- name: ").filter(|_| indent == 6) {
            let name = name.split('#').next().unwrap_or("").trim();
            keep = wanted.contains(&name);
            if keep {
                for p in pending.drain(..) {
                    out.push_str(p);
                    out.push('\n');
                }
            }
            pending.clear();
        }
        if keep && !line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A member of Consul's `Checks` as documented (agent service health).
fn consul_check() -> Value {
    serde_json::json!({
        "Node": "",
        "CheckID": "",
        "Name": "",
        "Status": "passing",
        "ServiceName": "",
    })
}

/// NestJS Terminus (`@nestjs/terminus`): `status` ok/error/shutting_down
/// and the indicators in `info` (up), `error` (down) and `details` (all),
/// one of `info`/`error` empty when every indicator is up (or down): the
/// empty one filled with a member of the other, so that its rules are
/// written whatever the form probed.
fn terminus(doc: &Value) -> Option<(Value, &'static str)> {
    let status = doc.get("status").and_then(Value::as_str)?;
    if !matches!(status, "ok" | "error" | "shutting_down") {
        return None;
    }
    let obj = |k: &str| doc.get(k).and_then(Value::as_object);
    let (info, error) = (obj("info")?, obj("error")?);
    obj("details")?;
    let (empty, member) = match (info.is_empty(), error.is_empty()) {
        (false, true) => ("error", info.iter().next()?),
        (true, false) => ("info", error.iter().next()?),
        _ => return None,
    };
    let mut filled = doc.clone();
    if let Some(m) = filled.as_object_mut() {
        let mut one = serde_json::Map::new();
        one.insert(member.0.clone(), member.1.clone());
        m.insert(empty.into(), Value::Object(one));
    }
    Some((
        filled,
        "NestJS Terminus lists up indicators in info and down ones in error (one of them empty here): both are read, with the indicator shape of the other.",
    ))
}

/// `doc` with the lists a healthy body leaves empty by design filled with
/// their documented member, and the comment that says so.
pub fn documented(doc: &Value) -> Option<(Value, &'static str)> {
    if let Some(t) = terminus(doc) {
        return Some(t);
    }
    let checks = doc.get("Checks").and_then(Value::as_array)?;
    if doc.get("AggregatedStatus").is_none() || !checks.is_empty() {
        return None;
    }
    let mut filled = doc.clone();
    if let Some(m) = filled.as_object_mut() {
        m.insert("Checks".into(), Value::Array(vec![consul_check()]));
    }
    Some((
        filled,
        "Consul lists only the checks that are not passing in Checks (empty here): its rules are written from the documented check (CheckID, Name, Status passing|warning|critical).",
    ))
}
