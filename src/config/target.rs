//! One `targets:` entry: URL, schedule, request, credentials, TLS, accepted
//! statuses, format, redirects, labels and its metric rules (read by
//! [`super::rule`]).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::checks::RESERVED_LABELS;
use super::decode::{Ctx, MapReader};
use super::rule::decode_rule;
use super::share::RulePool;
use super::types::{BasicAuth, FollowRedirects, Format, GlobalConfig, Method, Target, TlsConfig};
use super::yaml::Node;

const TARGET_KEYS: &[&str] = &[
    "name",
    "url",
    "interval",
    "timeout",
    "method",
    "body",
    "headers",
    "bearer_token_file",
    "basic_auth",
    "tls",
    "accept_status",
    "format",
    "follow_redirects",
    "labels",
    "metrics",
];

pub(super) fn decode_target(
    ctx: &mut Ctx<'_>,
    node: &Node,
    key: &str,
    global: &GlobalConfig,
    pool: &mut RulePool,
) -> Option<Target> {
    let mut m = MapReader::new(ctx, node, key)?;
    let name = match m.get("name") {
        Some(n) => ctx.nonempty_string(n, &m.path("name")),
        None => {
            ctx.err(
                node.mark,
                &m.path("name"),
                "missing (expected a unique target name)",
            );
            None
        }
    };
    let url = match m.get("url") {
        Some(n) => ctx.nonempty_string(n, &m.path("url")).and_then(|s| match reqwest::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(_) => {
                ctx.err(n.mark, &m.path("url"), format!("{s:?} is not an HTTP URL (expected http://host:port/path or https://...)"));
                None
            }
            Err(e) => {
                ctx.err(n.mark, &m.path("url"), format!("{s:?} is not a URL: {e} (expected http://host:port/path)"));
                None
            }
        }),
        None => {
            ctx.err(node.mark, &m.path("url"), "missing (expected the URL to poll)");
            None
        }
    };
    let interval = m
        .get("interval")
        .and_then(|n| ctx.duration(n, &m.path("interval")))
        .unwrap_or(global.interval);
    let timeout = match m.get("timeout") {
        Some(n) => {
            let t = ctx.duration(n, &m.path("timeout"));
            if let Some(t) = t {
                if t > interval {
                    ctx.err(
                        n.mark,
                        &m.path("timeout"),
                        format!(
                            "{} is longer than the interval {} (expected at most the interval)",
                            humantime::format_duration(t),
                            humantime::format_duration(interval)
                        ),
                    );
                }
            }
            t.unwrap_or(global.timeout)
        }
        None => global.timeout.min(interval),
    };
    let method = match m.get("method") {
        Some(n) => match ctx.string(n, &m.path("method")).as_deref() {
            Some("GET") | Some("get") => Method::Get,
            Some("POST") | Some("post") => Method::Post,
            Some(other) => {
                ctx.err(
                    n.mark,
                    &m.path("method"),
                    format!("{other:?} is not supported (expected GET or POST)"),
                );
                Method::Get
            }
            None => Method::Get,
        },
        None => Method::Get,
    };
    let body = m.get("body").and_then(|n| {
        let s = ctx.string(n, &m.path("body"));
        if method != Method::Post {
            ctx.err(
                n.mark,
                &m.path("body"),
                "a body needs method: POST (expected method: POST or no body)",
            );
        }
        s
    });
    let mut headers = Vec::new();
    if let Some(n) = m.get("headers") {
        let hkey = m.path("headers");
        for (k, v, mark) in ctx.string_map(n, &hkey) {
            let path = format!("{hkey}.{k}");
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                ctx.err(mark, &path, "not a valid HTTP header name");
            } else if reqwest::header::HeaderValue::from_str(&v).is_err() {
                ctx.err(mark, &path, "the value is not a valid HTTP header value");
            } else {
                headers.push((k, v));
            }
        }
    }
    let bearer_token_file = m
        .get("bearer_token_file")
        .and_then(|n| ctx.nonempty_string(n, &m.path("bearer_token_file")))
        .map(PathBuf::from);
    let basic_auth = m.get("basic_auth").and_then(|n| {
        let bkey = m.path("basic_auth");
        let mut b = MapReader::new(ctx, n, &bkey)?;
        let username = match b.get("username") {
            Some(v) => ctx.string(v, &b.path("username")),
            None => {
                ctx.err(
                    n.mark,
                    &b.path("username"),
                    "missing (expected a user name)",
                );
                None
            }
        };
        let password = b
            .get("password")
            .and_then(|v| ctx.string(v, &b.path("password")));
        let password_file = b
            .get("password_file")
            .and_then(|v| ctx.nonempty_string(v, &b.path("password_file")))
            .map(PathBuf::from);
        if password.is_some() && password_file.is_some() {
            ctx.err(
                n.mark,
                &bkey,
                "both password and password_file are set (expected one of them)",
            );
        }
        b.finish(ctx, &["username", "password", "password_file"]);
        Some(BasicAuth {
            username: username?,
            password,
            password_file,
        })
    });
    if basic_auth.is_some() && bearer_token_file.is_some() {
        ctx.err(
            node.mark,
            key,
            "both basic_auth and bearer_token_file are set (expected at most one)",
        );
    }
    let tls = m
        .get("tls")
        .map(|n| decode_tls(ctx, n, &m.path("tls")))
        .unwrap_or_default();
    let mut accept_status = Vec::new();
    if let Some(n) = m.get("accept_status") {
        let akey = m.path("accept_status");
        for (i, item) in ctx.seq(n, &akey).iter().enumerate() {
            let ikey = format!("{akey}[{i}]");
            if let Some(v) = ctx.number(item, &ikey) {
                if (100.0..=599.0).contains(&v) && v.fract() == 0.0 {
                    accept_status.push(v as u16);
                } else {
                    ctx.err(
                        item.mark,
                        &ikey,
                        format!("{v} is not an HTTP status (expected 100 to 599)"),
                    );
                }
            }
        }
    }
    let format = match m.get("format") {
        Some(n) => match ctx.string(n, &m.path("format")).as_deref() {
            Some("json") | None => Format::Json,
            Some("prometheus") => Format::Prometheus,
            Some(other) => {
                ctx.err(
                    n.mark,
                    &m.path("format"),
                    format!("{other:?} is not a format (expected json or prometheus)"),
                );
                Format::Json
            }
        },
        None => Format::Json,
    };
    let follow_redirects = match m.get("follow_redirects") {
        Some(n) => {
            let fkey = m.path("follow_redirects");
            match ctx.string(n, &fkey) {
                Some(s) => FollowRedirects::parse(&s).unwrap_or_else(|| {
                    ctx.err(
                        n.mark,
                        &fkey,
                        format!(
                            "{s:?} is not a redirect policy (expected {})",
                            FollowRedirects::NAMES
                        ),
                    );
                    FollowRedirects::default()
                }),
                None => FollowRedirects::default(),
            }
        }
        None => FollowRedirects::default(),
    };
    let labels = match m.get("labels") {
        Some(n) => {
            let lkey = m.path("labels");
            let labels = ctx.labels(n, &lkey);
            for reserved in RESERVED_LABELS {
                if labels.contains_key(reserved) {
                    ctx.err(
                        n.mark,
                        &lkey,
                        format!("label {reserved:?} is reserved by remora (expected another name)"),
                    );
                }
            }
            labels
        }
        None => BTreeMap::new(),
    };
    let mut metrics = Vec::new();
    match (m.get("metrics"), format) {
        (Some(n), Format::Json) => {
            let mkey = m.path("metrics");
            let mut names = HashSet::new();
            let items = ctx.seq(n, &mkey);
            if items.is_empty() {
                ctx.err(
                    n.mark,
                    &mkey,
                    "is empty (expected at least one metric rule)",
                );
            }
            for (i, item) in items.iter().enumerate() {
                let rkey = format!("{mkey}[{i}]");
                if let Some(rule) = decode_rule(ctx, item, &rkey) {
                    for v in &rule.values {
                        if !names.insert(v.name.clone()) {
                            ctx.err(item.mark, &format!("{rkey}.name"), format!("instrument {:?} is defined twice in this target (expected unique names)", v.name));
                        }
                    }
                    metrics.push(rule);
                }
            }
        }
        (Some(n), Format::Prometheus) => {
            ctx.err(
                n.mark,
                &m.path("metrics"),
                "format: prometheus targets are served as they are (expected no metrics: list)",
            );
        }
        (None, Format::Json) => {
            ctx.err(
                node.mark,
                &m.path("metrics"),
                "missing (expected a list of metric rules, or format: prometheus)",
            );
        }
        (None, Format::Prometheus) => {}
    }
    m.finish(ctx, TARGET_KEYS);
    Some(Target {
        name: name?,
        url: url?,
        interval,
        timeout,
        method,
        body,
        headers,
        bearer_token_file,
        basic_auth,
        tls,
        accept_status,
        format,
        follow_redirects,
        labels,
        metrics: pool.share(metrics),
    })
}

/// A `tls:` section (a target's or `otlp.tls`): CA, client certificate and
/// key (both or neither), server name, `insecure_skip_verify`.
pub(super) fn decode_tls(ctx: &mut Ctx<'_>, n: &Node, key: &str) -> TlsConfig {
    let mut tls = TlsConfig::default();
    let Some(mut t) = MapReader::new(ctx, n, key) else {
        return tls;
    };
    let file = |t: &mut MapReader<'_>, ctx: &mut Ctx<'_>, name: &str| {
        t.get(name)
            .and_then(|v| ctx.nonempty_string(v, &t.path(name)))
            .map(PathBuf::from)
    };
    tls.ca_file = file(&mut t, ctx, "ca_file");
    tls.cert_file = file(&mut t, ctx, "cert_file");
    tls.key_file = file(&mut t, ctx, "key_file");
    tls.server_name = t
        .get("server_name")
        .and_then(|v| ctx.nonempty_string(v, &t.path("server_name")));
    if let Some(v) = t.get("insecure_skip_verify") {
        tls.insecure_skip_verify = ctx
            .boolean(v, &t.path("insecure_skip_verify"))
            .unwrap_or(false);
    }
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        ctx.err(
            n.mark,
            key,
            "cert_file and key_file go together (expected both or neither)",
        );
    }
    t.finish(
        ctx,
        &[
            "ca_file",
            "cert_file",
            "key_file",
            "server_name",
            "insecure_skip_verify",
        ],
    );
    tls
}
