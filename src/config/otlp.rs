//! `otlp:`: the push of everything remora serves to an OTLP/HTTP endpoint
//! (endpoint, interval, timeout, headers, compression, TLS).

use super::decode::{Ctx, MapReader};
use super::types::{OtlpConfig, TlsConfig};
use super::yaml::Node;

const KEYS: &[&str] = &[
    "endpoint",
    "interval",
    "timeout",
    "headers",
    "compression",
    "tls",
];

/// Reads `otlp:`; `None` when the section has errors (they are reported).
pub(super) fn decode_otlp(ctx: &mut Ctx<'_>, node: &Node) -> Option<OtlpConfig> {
    let before = ctx.errors.len();
    let mut otlp = OtlpConfig {
        endpoint: None,
        interval: None,
        timeout: None,
        headers: Default::default(),
        gzip: None,
        tls: TlsConfig::default(),
    };
    let mut m = MapReader::new(ctx, node, "otlp")?;
    if let Some(n) = m.get("endpoint") {
        if let Some(s) = ctx.nonempty_string(n, "otlp.endpoint") {
            match reqwest::Url::parse(&s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    otlp.endpoint = Some(s);
                }
                _ => ctx.err(
                    n.mark,
                    "otlp.endpoint",
                    format!("{s:?} is not an http(s) URL (expected a base URL such as http://otel-collector:4318)"),
                ),
            }
        }
    }
    let mut timeout_mark = None;
    if let Some(n) = m.get("interval") {
        otlp.interval = ctx.duration(n, "otlp.interval");
    }
    if let Some(n) = m.get("timeout") {
        otlp.timeout = ctx.duration(n, "otlp.timeout");
        timeout_mark = Some(n.mark);
    }
    if let (Some(i), Some(t), Some(mark)) = (otlp.interval, otlp.timeout, timeout_mark) {
        if t > i {
            ctx.err(
                mark,
                "otlp.timeout",
                format!(
                    "{} is longer than otlp.interval {} (expected at most the interval)",
                    humantime::format_duration(t),
                    humantime::format_duration(i)
                ),
            );
        }
    }
    if let Some(n) = m.get("headers") {
        for (k, v, mark) in ctx.string_map(n, "otlp.headers") {
            let path = format!("otlp.headers.{k}");
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                ctx.err(mark, &path, "not a valid HTTP header name");
            } else if reqwest::header::HeaderValue::from_str(&v).is_err() {
                ctx.err(mark, &path, "the value is not a valid HTTP header value");
            } else {
                otlp.headers.insert(k, v);
            }
        }
    }
    if let Some(n) = m.get("compression") {
        if let Some(s) = ctx.string(n, "otlp.compression") {
            match s.as_str() {
                "gzip" => otlp.gzip = Some(true),
                "none" => otlp.gzip = Some(false),
                _ => ctx.err(
                    n.mark,
                    "otlp.compression",
                    format!("{s:?} is not a compression (expected gzip or none)"),
                ),
            }
        }
    }
    if let Some(n) = m.get("tls") {
        otlp.tls = super::target::decode_tls(ctx, n, "otlp.tls");
    }
    m.finish(ctx, KEYS);
    (ctx.errors.len() == before).then_some(otlp)
}
