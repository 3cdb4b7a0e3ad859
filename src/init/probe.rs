//! Fetching what `remora init` looks at: each URL given, or for a base URL
//! (no path) the usual status paths, with the client every target uses.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Url;

use super::InitError;
use crate::config::{FollowRedirects, Format, Method, Target, TlsConfig};
use crate::targets::client;

/// The paths probed under a base URL, in this order.
pub const STATUS_PATHS: [&str; 14] = [
    "/health",
    "/healthz",
    "/health/live",
    "/health/ready",
    "/livez",
    "/readyz",
    "/ready",
    "/status",
    "/version",
    "/info",
    "/metrics",
    "/actuator/health",
    "/actuator/info",
    "/debug/vars",
];

/// A body larger than this is not read (remora's default `max_body_bytes`).
const MAX_BODY: usize = 4 << 20;

/// Time allowed per request.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One answer: the URL asked, its status, content type and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub url: Url,
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Whether `url` names only an app (no path), so its status paths are probed.
pub fn is_base(url: &Url) -> bool {
    matches!(url.path(), "" | "/") && url.query().is_none()
}

/// The client used for probing: a target's, with the default settings.
pub fn client(url: &Url) -> Result<reqwest::Client, InitError> {
    let target = Target {
        name: "init".into(),
        url: url.clone(),
        interval: TIMEOUT,
        timeout: TIMEOUT,
        method: Method::Get,
        body: None,
        headers: Vec::new(),
        bearer_token_file: None,
        basic_auth: None,
        tls: TlsConfig::default(),
        accept_status: Vec::new(),
        format: Format::Json,
        follow_redirects: FollowRedirects::SameOrigin,
        labels: BTreeMap::new(),
        metrics: Vec::new().into(),
    };
    client::build(&target).map_err(|e| InitError::Client(e.to_string()))
}

/// GETs `url` (following same-origin redirects), reading at most
/// [`MAX_BODY`] bytes.
pub async fn fetch(client: &reqwest::Client, url: Url) -> Result<Answer, String> {
    let mut request = reqwest::Request::new(reqwest::Method::GET, url.clone());
    request.headers_mut().insert(
        ACCEPT,
        reqwest::header::HeaderValue::from_static(
            "application/json, application/health+json, text/plain;q=0.9, */*;q=0.5",
        ),
    );
    *request.timeout_mut() = Some(TIMEOUT);
    let mut resp = client::send(client, request, FollowRedirects::SameOrigin)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("body larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        url,
        status,
        content_type,
        body,
    })
}

/// Fetches every status path under `base` at once; answers in
/// [`STATUS_PATHS`] order, with the error of each path that gave none.
pub async fn probe(client: &reqwest::Client, base: &Url) -> Vec<(String, Result<Answer, String>)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, path) in STATUS_PATHS.iter().enumerate() {
        let Ok(url) = base.join(path) else { continue };
        let client = client.clone();
        set.spawn(async move { (i, fetch(&client, url).await) });
    }
    let mut out: Vec<Option<Result<Answer, String>>> = vec![None; STATUS_PATHS.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(r);
            }
        }
    }
    STATUS_PATHS
        .iter()
        .zip(out)
        .map(|(p, r)| {
            (
                (*p).to_string(),
                r.unwrap_or_else(|| Err("probe did not finish".into())),
            )
        })
        .collect()
}
