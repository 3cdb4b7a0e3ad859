//! The top-level sections that set defaults for the rest: `server:`,
//! `global:` (interval, timeout, constant labels), `resource:` and `limits:`.

use std::collections::BTreeMap;

use super::checks::RESERVED_LABELS;
use super::decode::{parse_size, Ctx, MapReader};
use super::types::{GlobalConfig, Limits, ServerConfig};
use super::yaml::{Mark, Node};

/// `server:`: the listen address and the metrics path.
pub(super) fn decode_server(ctx: &mut Ctx<'_>, node: &Node, server: &mut ServerConfig) {
    if let Some(mut m) = MapReader::new(ctx, node, "server") {
        if let Some(n) = m.get("listen") {
            if let Some(s) = ctx.nonempty_string(n, "server.listen") {
                if s.parse::<std::net::SocketAddr>().is_err() && !s.contains(':') {
                    ctx.err(
                        n.mark,
                        "server.listen",
                        format!(
                            "{s:?} is not an address (expected host:port such as 0.0.0.0:9479)"
                        ),
                    );
                }
                server.listen = s;
            }
        }
        if let Some(n) = m.get("metrics_path") {
            if let Some(s) = ctx.nonempty_string(n, "server.metrics_path") {
                if !s.starts_with('/') || s.starts_with("/-/") || s == "/" {
                    ctx.err(n.mark, "server.metrics_path", format!("{s:?} cannot be used (expected a path such as /metrics, not / or /-/...)"));
                }
                server.metrics_path = s;
            }
        }
        m.finish(ctx, &["listen", "metrics_path"]);
    }
}

/// `global:` (absent when `node` is None): the default interval and timeout
/// of every target, and labels on every series. A timeout longer than the
/// interval is an error where it is written; when only the interval was
/// shortened, the default timeout follows it.
pub(super) fn decode_global(
    ctx: &mut Ctx<'_>,
    node: Option<&Node>,
    root_mark: Mark,
    global: &mut GlobalConfig,
) {
    let mut timeout_mark = None;
    if let Some(node) = node {
        if let Some(mut m) = MapReader::new(ctx, node, "global") {
            if let Some(n) = m.get("interval") {
                if let Some(d) = ctx.duration(n, "global.interval") {
                    global.interval = d;
                }
            }
            if let Some(n) = m.get("timeout") {
                if let Some(d) = ctx.duration(n, "global.timeout") {
                    global.timeout = d;
                    timeout_mark = Some(n.mark);
                }
            }
            if let Some(n) = m.get("labels") {
                global.labels = ctx.labels(n, "global.labels");
            }
            m.finish(ctx, &["interval", "timeout", "labels"]);
        }
    }
    if global.timeout > global.interval {
        match timeout_mark {
            Some(mark) => ctx.err(
                mark,
                "global.timeout",
                format!(
                    "{} is longer than global.interval {} (expected at most the interval)",
                    humantime::format_duration(global.timeout),
                    humantime::format_duration(global.interval)
                ),
            ),
            // Only the interval was shortened: the default timeout follows it.
            None => global.timeout = global.interval,
        }
    }
    for reserved in RESERVED_LABELS {
        if global.labels.contains_key(reserved) {
            ctx.err(
                root_mark,
                "global.labels",
                format!("label {reserved:?} is reserved by remora (expected another name)"),
            );
        }
    }
}

/// `resource:`: OpenTelemetry resource attributes.
pub(super) fn decode_resource(
    ctx: &mut Ctx<'_>,
    node: &Node,
    resource: &mut BTreeMap<String, String>,
) {
    for (k, v, mark) in ctx.string_map(node, "resource") {
        if k.is_empty() {
            ctx.err(mark, "resource", "empty attribute name");
        } else {
            resource.insert(k, v);
        }
    }
}

/// `limits:`: series per target and body size.
pub(super) fn decode_limits(ctx: &mut Ctx<'_>, node: &Node, limits: &mut Limits) {
    if let Some(mut m) = MapReader::new(ctx, node, "limits") {
        if let Some(n) = m.get("max_series_per_target") {
            if let Some(v) = ctx.number(n, "limits.max_series_per_target") {
                if v < 1.0 || v.fract() != 0.0 || v > 1e7 {
                    ctx.err(
                        n.mark,
                        "limits.max_series_per_target",
                        format!("{v} is out of range (expected a whole number from 1 to 10000000)"),
                    );
                } else {
                    limits.max_series_per_target = v as usize;
                }
            }
        }
        if let Some(n) = m.get("max_body_bytes") {
            if let Some(s) = ctx.string(n, "limits.max_body_bytes") {
                match parse_size(&s) {
                    Some(v) if v >= 1.0 => limits.max_body_bytes = v as u64,
                    _ => ctx.err(
                        n.mark,
                        "limits.max_body_bytes",
                        format!("{s:?} is not a size (expected a size such as 4MiB or 1048576)"),
                    ),
                }
            }
        }
        m.finish(ctx, &["max_series_per_target", "max_body_bytes"]);
    }
}
