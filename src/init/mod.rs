//! `remora init URL...`: probes an app and writes a commented
//! `exporter.yaml` for it.
//!
//! Rooms: `probe` fetches each URL, or for a base URL (no path) the usual
//! status paths; [`infer`] turns a JSON document into metric rules (numbers
//! with units read from key suffixes, booleans, states, versions, durations,
//! timestamps, percentages, collections); `write` prints the YAML with a
//! comment above each rule saying what it reads. A `/metrics` in Prometheus
//! text becomes a `format: prometheus` target; an answer such as a 503 with a
//! JSON body is read with `accept_status`.

pub mod infer;
mod probe;
mod recipe;
mod status;
pub mod vocab;
mod write;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Url;

use probe::Answer;
pub use probe::{is_base, STATUS_PATHS};
use write::TargetOut;

/// Why `remora init` could not write a config.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0:?} is not an http(s) URL (expected e.g. http://127.0.0.1:8080 or http://127.0.0.1:8080/health)")]
    Url(String),
    #[error("{url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{0}: none of the usual status paths answered with JSON or Prometheus text ({paths})", paths = STATUS_PATHS.join(", "))]
    Nothing(String),
    #[error("http client: {0}")]
    Client(String),
}

/// The series cap a written target gets (remora's default
/// `limits.max_series_per_target`; `init` writes no `limits:`).
pub const MAX_SERIES: usize = 2000;

/// What `init` produced: the YAML and one line per URL asked (for stderr).
#[derive(Debug)]
pub struct Init {
    pub yaml: String,
    pub notes: Vec<String>,
}

/// What a body is.
enum Body {
    Json(serde_json::Value),
    Prometheus(usize),
    Other(String),
}

fn classify(a: &Answer) -> Body {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&a.body) {
        if v.is_object() || v.is_array() {
            return Body::Json(v);
        }
        return Body::Other("a JSON scalar, nothing to read".into());
    }
    let Ok(text) = std::str::from_utf8(&a.body) else {
        return Body::Other("neither JSON nor text".into());
    };
    let ct = a.content_type.to_ascii_lowercase();
    let looks = ct.contains("version=0.0.4")
        || ct.contains("openmetrics")
        || text
            .lines()
            .any(|l| l.starts_with("# TYPE ") || l.starts_with("# HELP "));
    if !looks {
        return Body::Other(format!(
            "not JSON or Prometheus text ({})",
            if ct.is_empty() {
                "no content type"
            } else {
                &ct
            }
        ));
    }
    match crate::targets::prom::relabel(text, &[], &BTreeMap::new(), usize::MAX) {
        Ok(r) => Body::Prometheus(r.families.len()),
        Err(e) => Body::Other(format!("Prometheus text remora cannot read: {e}")),
    }
}

/// A recipe in examples/recipes/ that reads a page of this kind better.
fn hint(a: &Answer, doc: &serde_json::Value) -> Option<&'static str> {
    if doc.get("memstats").is_some() {
        Some("A Go expvar page: examples/recipes/go-expvar/ names memstats as the Go client does (units, counters).")
    } else if a.url.path().starts_with("/actuator") {
        Some("Spring Boot Actuator: see examples/recipes/spring-boot-actuator/.")
    } else if a.content_type.starts_with("application/health+json")
        || doc.get("releaseId").is_some()
    {
        Some("The IETF health check format: see examples/recipes/ietf-health-check/ (checks keyed component:measurement).")
    } else if fastapi(doc) {
        Some("A FastAPI-style health page: examples/recipes/fastapi-health/ reads /health, /health/live and /health/ready with names of its own (app.dependency.*).")
    } else {
        None
    }
}

/// The seed apps' FastAPI health pages: a status of theirs and `checks`.
fn fastapi(doc: &serde_json::Value) -> bool {
    let status = doc.get("status").and_then(serde_json::Value::as_str);
    matches!(
        status,
        Some("alive" | "ready" | "not_ready" | "healthy" | "degraded" | "unhealthy")
    ) && (doc.get("checks").is_some_and(serde_json::Value::is_object)
        || doc.get("timestamp").is_some())
}

/// A target name from a URL's path: `/health/ready` -> `health-ready`.
fn target_name(url: &Url, taken: &mut BTreeSet<String>) -> String {
    let base: String = url
        .path()
        .split('/')
        .map(infer::snake)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
        .replace('_', "-");
    let base = if base.is_empty() {
        "app".to_string()
    } else {
        base
    };
    let mut name = base.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// The answers worth a target: those of each URL given, or of the status
/// paths under a base URL.
async fn gather(urls: &[String], notes: &mut Vec<String>) -> Result<Vec<Answer>, InitError> {
    let mut answers = Vec::new();
    for raw in urls {
        let url = parse_url(raw)?;
        let client = probe::client(&url)?;
        if is_base(&url) {
            let mut found = 0;
            for (path, r) in probe::probe(&client, &url).await {
                match r {
                    Ok(a) if usable(&a) => {
                        found += 1;
                        answers.push(a);
                    }
                    Ok(a) => notes.push(format!("{path}: HTTP {}, skipped", a.status)),
                    Err(e) => notes.push(format!("{path}: {e}, skipped")),
                }
            }
            if found == 0 {
                return Err(InitError::Nothing(raw.clone()));
            }
        } else {
            let a = probe::fetch(&client, url)
                .await
                .map_err(|reason| InitError::Fetch {
                    url: raw.clone(),
                    reason,
                })?;
            if !usable(&a) {
                return Err(InitError::Fetch {
                    url: raw.clone(),
                    reason: format!(
                        "HTTP status {} (expected 2xx, or 5xx, 408, 429 or 47x with a JSON body)",
                        a.status
                    ),
                });
            }
            answers.push(a);
        }
    }
    Ok(answers)
}

/// A URL argument: http or https, with a host, nothing a YAML file or a
/// log line could be broken by (whitespace, control characters: the URL
/// parser would drop a newline or a tab silently).
pub fn parse_url(raw: &str) -> Result<Url, InitError> {
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(InitError::Url(raw.to_string()));
    }
    let url = Url::parse(raw).map_err(|_| InitError::Url(raw.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(InitError::Url(raw.to_string()));
    }
    Ok(url)
}

/// A 2xx answer, or a 5xx, 408, 429 or 47x with a JSON body (a 503 from a
/// readiness page says why; Vault answers 429 and 472-474 on standbys,
/// Consul 429 for "warning", Elasticsearch 408 on a timed-out wait). A 404
/// with a JSON body (FastAPI's `{"detail": "Not Found"}`) is not a status
/// page.
fn usable(a: &Answer) -> bool {
    let health_code = (500..600).contains(&a.status)
        || matches!(a.status, 408 | 429)
        || (470..480).contains(&a.status);
    (200..300).contains(&a.status)
        || (health_code
            && serde_json::from_slice::<serde_json::Value>(&a.body)
                .is_ok_and(|v| v.is_object() || v.is_array()))
}

/// The target of one JSON answer: its rules (a recipe's when the body has
/// a recipe's shape), the statuses whose body is read, a pointer to a recipe.
fn json_target(a: &Answer, doc: &serde_json::Value, taken: &mut BTreeSet<String>) -> TargetOut {
    let name = target_name(&a.url, taken);
    let snake = infer::snake(&name);
    let prefix = if snake == "app" {
        "app".to_string()
    } else {
        format!("app.{snake}")
    };
    let documented = recipe::documented(doc);
    let (doc, note) = match &documented {
        Some((filled, note)) => (filled, Some(*note)),
        None => (doc, None),
    };
    let fit = recipe::fit(a, doc);
    // What a recipe reads is left to it; the rest of the body is inferred.
    let rest = match (&fit, doc) {
        (Some(f), serde_json::Value::Object(m)) => serde_json::Value::Object(
            m.iter()
                .filter(|(k, _)| !f.covers.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => doc.clone(),
    };
    let found = infer::infer(&rest, &prefix, a.url.path(), MAX_SERIES);
    TargetOut {
        name,
        url: a.url.to_string(),
        accept_status: status::accept(a, doc),
        prometheus: false,
        hint: note.or(if fit.is_some() { None } else { hint(a, doc) }),
        recipe: fit,
        rules: found.rules,
        skipped: found.skipped,
    }
}

/// Probes `urls` and writes the config.
pub async fn run(urls: &[String]) -> Result<Init, InitError> {
    let parsed = urls
        .iter()
        .map(|u| parse_url(u).map(|u| u.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut skipped = Vec::new();
    let answers = gather(urls, &mut skipped).await?;
    let mut notes = Vec::new();
    let mut taken = BTreeSet::new();
    let mut seen_bodies: Vec<(String, &[u8], String)> = Vec::new();
    let mut targets = Vec::new();
    for a in &answers {
        let origin = a.url.origin().ascii_serialization();
        if let Some((_, _, first)) = seen_bodies
            .iter()
            .find(|(o, b, _)| *o == origin && *b == a.body.as_slice())
        {
            notes.push(format!("{}: same body as {first}, skipped", a.url.path()));
            continue;
        }
        seen_bodies.push((origin, &a.body, a.url.path().to_string()));
        match classify(a) {
            Body::Json(doc) => {
                let t = json_target(a, &doc, &mut taken);
                if t.rules.is_empty() && t.recipe.is_none() {
                    // `metrics: []` would not pass `remora check`.
                    notes.push(format!(
                        "{}: HTTP {}, JSON with nothing to read ({} value(s) left out), skipped",
                        a.url.path(),
                        a.status,
                        t.skipped.len()
                    ));
                    continue;
                }
                notes.push(format!(
                    "{}: HTTP {}, JSON: {} rule(s), {} value(s) left out",
                    a.url.path(),
                    a.status,
                    t.rules.len(),
                    t.skipped.len()
                ));
                targets.push(t);
            }
            Body::Prometheus(families) => {
                let name = target_name(&a.url, &mut taken);
                notes.push(format!(
                    "{}: HTTP {}, Prometheus text: {families} famil{} served as they are",
                    a.url.path(),
                    a.status,
                    if families == 1 { "y" } else { "ies" }
                ));
                targets.push(TargetOut {
                    name,
                    url: a.url.to_string(),
                    accept_status: None,
                    prometheus: true,
                    hint: None,
                    recipe: None,
                    rules: Vec::new(),
                    skipped: Vec::new(),
                });
            }
            Body::Other(why) => notes.push(format!("{}: {why}, skipped", a.url.path())),
        }
    }
    if targets.is_empty() {
        return Err(InitError::Nothing(parsed.join(" ")));
    }
    notes.append(&mut skipped);
    let yaml = write::yaml(&parsed, &targets, &notes);
    Ok(Init { yaml, notes })
}

/// The config `init` writes for one answer (tests: no HTTP).
#[cfg(test)]
pub(crate) fn yaml_for(url: &str, status: u16, content_type: &str, body: &[u8]) -> String {
    let Ok(url) = parse_url(url) else {
        panic!("{url:?}: not a URL")
    };
    let a = Answer {
        url: url.clone(),
        status,
        content_type: content_type.to_string(),
        body: body.to_vec(),
    };
    let Body::Json(doc) = classify(&a) else {
        panic!("{url}: not JSON")
    };
    let t = json_target(&a, &doc, &mut BTreeSet::new());
    write::yaml(&[url.to_string()], &[t], &[])
}

#[cfg(test)]
mod tests;
