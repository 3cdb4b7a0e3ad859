//! The `host:` section: which collectors run, their filters, the processes
//! to watch and the app container's limits.

use std::collections::HashSet;
use std::time::Duration;

use regex::Regex;

use super::decode::{parse_size, Ctx, MapReader};
use super::types::{AppContainer, CollectorName, HostConfig, ProcessMatcher};
use super::yaml::Node;
use crate::units::parse_cpu;

/// Pseudo file systems, as node_exporter excludes them by default.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";
/// Kernel and runtime mount points.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|sys|run|var/lib/docker/.+|var/lib/kubelet/.+)($|/)";

pub(super) fn default_host(interval: Duration) -> HostConfig {
    HostConfig {
        enabled: true,
        interval,
        collectors: CollectorName::ALL.to_vec(),
        mount_points_exclude: Regex::new(DEFAULT_MOUNT_POINTS_EXCLUDE)
            .unwrap_or_else(|_| unreachable!()),
        fs_types_exclude: Regex::new(DEFAULT_FS_TYPES_EXCLUDE).unwrap_or_else(|_| unreachable!()),
        devices_exclude: Regex::new("^lo$").unwrap_or_else(|_| unreachable!()),
        processes: Vec::new(),
        app_container: None,
    }
}

pub(super) fn decode_host(ctx: &mut Ctx<'_>, node: &Node, host: &mut HostConfig) {
    let Some(mut m) = MapReader::new(ctx, node, "host") else {
        return;
    };
    if let Some(n) = m.get("enabled") {
        if let Some(b) = ctx.boolean(n, "host.enabled") {
            host.enabled = b;
        }
    }
    if let Some(n) = m.get("collectors") {
        let mut list = Vec::new();
        for (i, item) in ctx.seq(n, "host.collectors").iter().enumerate() {
            let key = format!("host.collectors[{i}]");
            if let Some(s) = ctx.string(item, &key) {
                match CollectorName::parse(&s) {
                    Some(c) if !list.contains(&c) => list.push(c),
                    Some(_) => ctx.err(item.mark, &key, format!("{s:?} is listed twice")),
                    None => ctx.err(
                        item.mark,
                        &key,
                        format!(
                            "unknown collector {s:?} (expected one of: {})",
                            CollectorName::ALL.map(|c| c.as_str()).join(", ")
                        ),
                    ),
                }
            }
        }
        host.collectors = list;
    }
    if let Some(n) = m.get("filesystem") {
        if let Some(mut fs) = MapReader::new(ctx, n, "host.filesystem") {
            if let Some(v) = fs.get("mount_points_exclude") {
                if let Some(r) = ctx.regex(v, "host.filesystem.mount_points_exclude") {
                    host.mount_points_exclude = r;
                }
            }
            if let Some(v) = fs.get("fs_types_exclude") {
                if let Some(r) = ctx.regex(v, "host.filesystem.fs_types_exclude") {
                    host.fs_types_exclude = r;
                }
            }
            fs.finish(ctx, &["mount_points_exclude", "fs_types_exclude"]);
        }
    }
    if let Some(n) = m.get("network") {
        if let Some(mut net) = MapReader::new(ctx, n, "host.network") {
            if let Some(v) = net.get("devices_exclude") {
                if let Some(r) = ctx.regex(v, "host.network.devices_exclude") {
                    host.devices_exclude = r;
                }
            }
            net.finish(ctx, &["devices_exclude"]);
        }
    }
    if let Some(n) = m.get("processes") {
        let mut names = HashSet::new();
        for (i, item) in ctx.seq(n, "host.processes").iter().enumerate() {
            let key = format!("host.processes[{i}]");
            let Some(mut p) = MapReader::new(ctx, item, &key) else {
                continue;
            };
            let name = match p.get("name") {
                Some(v) => ctx.nonempty_string(v, &p.path("name")),
                None => {
                    ctx.err(
                        item.mark,
                        &p.path("name"),
                        "missing (expected the process_name label value)",
                    );
                    None
                }
            };
            let cmdline = match p.get("cmdline") {
                Some(v) => ctx.regex(v, &p.path("cmdline")),
                None => {
                    ctx.err(
                        item.mark,
                        &p.path("cmdline"),
                        "missing (expected a regular expression on the command line)",
                    );
                    None
                }
            };
            p.finish(ctx, &["name", "cmdline"]);
            if let (Some(name), Some(cmdline)) = (name, cmdline) {
                if !names.insert(name.clone()) {
                    ctx.err(
                        item.mark,
                        &format!("{key}.name"),
                        format!("process name {name:?} is used twice"),
                    );
                }
                host.processes.push(ProcessMatcher { name, cmdline });
            }
        }
    }
    if let Some(n) = m.get("app_container") {
        if let Some(mut a) = MapReader::new(ctx, n, "host.app_container") {
            let name = match a.get("name") {
                Some(v) => ctx.nonempty_string(v, "host.app_container.name"),
                None => {
                    ctx.err(
                        n.mark,
                        "host.app_container.name",
                        "missing (expected the app container's name)",
                    );
                    None
                }
            };
            let memory_limit = a.get("memory_limit").and_then(|v| {
                let s = ctx.string(v, "host.app_container.memory_limit")?;
                if s.trim().is_empty() {
                    return None;
                }
                let parsed = parse_size(&s);
                if parsed.is_none() {
                    ctx.err(
                        v.mark,
                        "host.app_container.memory_limit",
                        format!("{s:?} is not a size (expected bytes such as 536870912 or 512Mi)"),
                    );
                }
                parsed
            });
            let divisor = match a.get("cpu_divisor") {
                Some(v) => ctx
                    .string(v, "host.app_container.cpu_divisor")
                    .and_then(|s| {
                        let d = parse_cpu(&s);
                        if d.is_none() {
                            ctx.err(
                                v.mark,
                                "host.app_container.cpu_divisor",
                                format!("{s:?} is not a CPU quantity (expected 1, 1m or 100m)"),
                            );
                        }
                        d
                    }),
                None => Some(1.0),
            };
            let cpu_limit = a.get("cpu_limit").and_then(|v| {
                let s = ctx.string(v, "host.app_container.cpu_limit")?;
                if s.trim().is_empty() {
                    return None;
                }
                let parsed = parse_cpu(&s);
                if parsed.is_none() {
                    ctx.err(v.mark, "host.app_container.cpu_limit", format!("{s:?} is not a CPU quantity (expected cores such as 2 or 0.5, or millicores such as 500m)"));
                }
                Some(parsed? * divisor?)
            });
            a.finish(ctx, &["name", "memory_limit", "cpu_limit", "cpu_divisor"]);
            if let Some(name) = name {
                host.app_container = Some(AppContainer {
                    name,
                    memory_limit,
                    cpu_limit,
                });
            }
        }
    }
    m.finish(
        ctx,
        &[
            "enabled",
            "collectors",
            "filesystem",
            "network",
            "processes",
            "app_container",
        ],
    );
}
