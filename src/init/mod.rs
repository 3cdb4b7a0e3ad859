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
    } else {
        None
    }
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
        let url = Url::parse(raw).map_err(|_| InitError::Url(raw.clone()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(InitError::Url(raw.clone()));
        }
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
                        "HTTP status {} (expected 2xx, or 5xx with a JSON body)",
                        a.status
                    ),
                });
            }
            answers.push(a);
        }
    }
    Ok(answers)
}

/// A 2xx answer, or a 5xx with a JSON body (a 503 from a readiness page
/// says why). A 404 with a JSON body (FastAPI's `{"detail": "Not Found"}`)
/// is not a status page.
fn usable(a: &Answer) -> bool {
    (200..300).contains(&a.status)
        || ((500..600).contains(&a.status)
            && serde_json::from_slice::<serde_json::Value>(&a.body).is_ok_and(|v| v.is_object()))
}

/// Probes `urls` and writes the config.
pub async fn run(urls: &[String]) -> Result<Init, InitError> {
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
                // A health or readiness page answers 503 when something is
                // down, and its body says what: read it then too.
                let path = a.url.path();
                let healthy_page = ["health", "ready", "live", "status"]
                    .iter()
                    .any(|w| path.contains(w));
                let accept_status = if !(200..300).contains(&a.status) {
                    Some(vec![200, a.status])
                } else if healthy_page {
                    Some(vec![200, 503])
                } else {
                    None
                };
                let name = target_name(&a.url, &mut taken);
                let snake = infer::snake(&name);
                let prefix = if snake == "app" {
                    "app".to_string()
                } else {
                    format!("app.{snake}")
                };
                let found = infer::infer(&doc, &prefix, a.url.path());
                notes.push(format!(
                    "{}: HTTP {}, JSON: {} rule(s), {} value(s) left out",
                    a.url.path(),
                    a.status,
                    found.rules.len(),
                    found.skipped.len()
                ));
                targets.push(TargetOut {
                    name,
                    url: a.url.to_string(),
                    status: a.status,
                    accept_status,
                    prometheus: false,
                    hint: hint(a, &doc),
                    rules: found.rules,
                    skipped: found.skipped,
                });
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
                    status: a.status,
                    accept_status: None,
                    prometheus: true,
                    hint: None,
                    rules: Vec::new(),
                    skipped: Vec::new(),
                });
            }
            Body::Other(why) => notes.push(format!("{}: {why}, skipped", a.url.path())),
        }
    }
    if targets.is_empty() {
        return Err(InitError::Nothing(urls.join(" ")));
    }
    notes.append(&mut skipped);
    let yaml = write::yaml(urls, &targets, &notes);
    Ok(Init { yaml, notes })
}

#[cfg(test)]
mod tests;
