//! From YAML text to a checked [`Config`]: every key is read through a small
//! decoder that knows its path and position, so one pass reports every problem
//! as `FILE:LINE:COLUMN: key.path: what is wrong (what was expected)`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde_json_path::JsonPath;

use super::types::*;
use super::yaml::{self, Mark, Node, NodeKind};

/// One problem in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub mark: Mark,
    /// Dotted key path, e.g. `targets[0].metrics[2].path`.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.mark.line, self.mark.column, self.key, self.problem
        )
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the config file is empty (expected a mapping, e.g. `targets:`)")]
    Empty { path: String },
    #[error("{}", join_errors(.0))]
    Invalid(Vec<ConfigError>),
}

fn join_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Environment lookup, injectable for tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads and validates a config file.
pub fn load_file(path: &Path, env: Env<'_>) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_text(&text, path, env)
}

/// Validates the text of the config file `path`; a file with nothing but
/// blank lines, comments and document markers is an error (a truncated or
/// half-written file must not become an empty config).
pub fn load_text(text: &str, path: &Path, env: Env<'_>) -> Result<Config, LoadError> {
    let blank = |l: &str| l.is_empty() || l.starts_with('#') || l == "---" || l == "...";
    if text.lines().map(str::trim).all(blank) {
        return Err(LoadError::Empty {
            path: path.display().to_string(),
        });
    }
    parse_str(text, path, env).map_err(LoadError::Invalid)
}

/// Validates config text; `path` is used in messages and kept in the result.
pub fn parse_str(text: &str, path: &Path, env: Env<'_>) -> Result<Config, Vec<ConfigError>> {
    let file = path.display().to_string();
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            return Err(vec![ConfigError {
                file,
                mark: e.mark,
                key: "(yaml)".into(),
                problem: format!("invalid YAML: {}", e.message),
            }])
        }
    };
    let mut ctx = Ctx {
        file,
        errors: Vec::new(),
        env,
    };
    let config = decode_config(&mut ctx, &root, path);
    if ctx.errors.is_empty() {
        Ok(config)
    } else {
        ctx.errors.sort_by_key(|e| (e.mark.line, e.mark.column));
        Err(ctx.errors)
    }
}

/// Expands `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
pub fn expand_env(s: &str, env: Env<'_>) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed '${{' in {s:?}"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name {name:?} in ${{{expr}}}"));
            }
            match (env(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses sizes such as `4MiB`, `10.5GB`, `512Mi`, `1024` (the same rules as
/// `parse: bytes`); negative sizes are refused.
pub fn parse_size(s: &str) -> Option<f64> {
    crate::units::parse_bytes(s).filter(|v| *v >= 0.0)
}

fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok()
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_instrument_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

struct Ctx<'e> {
    file: String,
    errors: Vec<ConfigError>,
    env: Env<'e>,
}

impl Ctx<'_> {
    fn err(&mut self, mark: Mark, key: &str, problem: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            mark,
            key: key.to_string(),
            problem: problem.into(),
        });
    }

    /// The text of a scalar, env-expanded. Errors on collections.
    fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar { text, .. } => match expand_env(text, self.env) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.err(node.mark, key, e);
                    None
                }
            },
            _ => {
                self.err(
                    node.mark,
                    key,
                    format!("got {} (expected a string)", node.type_name()),
                );
                None
            }
        }
    }

    fn nonempty_string(&mut self, node: &Node, key: &str) -> Option<String> {
        let s = self.string(node, key)?;
        if s.is_empty() {
            self.err(node.mark, key, "is empty (expected a non-empty string)");
            return None;
        }
        Some(s)
    }

    fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        match self.string(node, key)?.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            other => {
                self.err(
                    node.mark,
                    key,
                    format!("{other:?} is not a boolean (expected true or false)"),
                );
                None
            }
        }
    }

    fn number(&mut self, node: &Node, key: &str) -> Option<f64> {
        let s = self.string(node, key)?;
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                self.err(
                    node.mark,
                    key,
                    format!("{s:?} is not a number (expected a number)"),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
        let s = self.string(node, key)?;
        match parse_duration(&s) {
            Some(d) if !d.is_zero() => Some(d),
            Some(_) => {
                self.err(
                    node.mark,
                    key,
                    "must be greater than zero (expected a duration such as 15s)",
                );
                None
            }
            None => {
                self.err(
                    node.mark,
                    key,
                    format!(
                        "{s:?} is not a duration (expected a duration such as 15s, 500ms or 1m30s)"
                    ),
                );
                None
            }
        }
    }

    fn regex(&mut self, node: &Node, key: &str) -> Option<Regex> {
        let s = self.string(node, key)?;
        match Regex::new(&s) {
            Ok(r) => Some(r),
            Err(e) => {
                let msg = e.to_string().replace('\n', " ");
                self.err(node.mark, key, format!("invalid regular expression: {msg}"));
                None
            }
        }
    }

    fn jsonpath(&mut self, node: &Node, key: &str, text: &str) -> Option<JsonPath> {
        match JsonPath::parse(text) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(
                    node.mark,
                    key,
                    format!("invalid JSONPath {text:?}: {e} (expected an RFC 9535 JSONPath such as $.checks.*)"),
                );
                None
            }
        }
    }

    fn seq<'n>(&mut self, node: &'n Node, key: &str) -> &'n [Node] {
        match &node.kind {
            NodeKind::Seq(items) => items,
            _ if node.is_null() => &[],
            _ => {
                self.err(
                    node.mark,
                    key,
                    format!("got {} (expected a list)", node.type_name()),
                );
                &[]
            }
        }
    }

    /// A mapping of strings to strings (labels, headers, resource).
    fn string_map(&mut self, node: &Node, key: &str) -> Vec<(String, String, Mark)> {
        let mut out = Vec::new();
        let Some(mut m) = MapReader::new(self, node, key) else {
            return out;
        };
        for (k, v) in m.take_all() {
            let path = format!("{key}.{}", k.0);
            if let Some(s) = self.string(v, &path) {
                out.push((k.0.clone(), s, k.1));
            }
        }
        out
    }

    fn labels(&mut self, node: &Node, key: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v, mark) in self.string_map(node, key) {
            let path = format!("{key}.{k}");
            if !valid_label_name(&k) || k.starts_with("__") {
                self.err(mark, &path, format!("{k:?} is not a valid label name (expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"));
            } else {
                out.insert(k, v);
            }
        }
        out
    }
}

/// Reads a mapping's keys, remembering which were used so the rest can be reported.
struct MapReader<'n> {
    key: String,
    entries: Vec<((String, Mark), &'n Node)>,
    used: Vec<bool>,
}

impl<'n> MapReader<'n> {
    fn new(ctx: &mut Ctx<'_>, node: &'n Node, key: &str) -> Option<Self> {
        let mut entries = Vec::new();
        match &node.kind {
            NodeKind::Map(pairs) => {
                let mut seen = HashSet::new();
                for (k, v) in pairs {
                    let name = match &k.kind {
                        NodeKind::Scalar { text, .. } => text.clone(),
                        _ => {
                            ctx.err(k.mark, key, "a key must be a string");
                            continue;
                        }
                    };
                    if !seen.insert(name.clone()) {
                        ctx.err(k.mark, &join(key, &name), "key given twice");
                        continue;
                    }
                    entries.push(((name, k.mark), v));
                }
            }
            _ if node.is_null() => {}
            _ => {
                ctx.err(
                    node.mark,
                    key,
                    format!("got {} (expected a mapping)", node.type_name()),
                );
                return None;
            }
        }
        let used = vec![false; entries.len()];
        Some(MapReader {
            key: key.to_string(),
            entries,
            used,
        })
    }

    /// The value of `name`, or None when absent or null.
    fn get(&mut self, name: &str) -> Option<&'n Node> {
        let i = self.entries.iter().position(|((k, _), _)| k == name)?;
        self.used[i] = true;
        let node = self.entries[i].1;
        (!node.is_null()).then_some(node)
    }

    /// Every entry (for free-form maps such as labels).
    fn take_all(&mut self) -> Vec<(&(String, Mark), &'n Node)> {
        self.used.iter_mut().for_each(|u| *u = true);
        self.entries.iter().map(|(k, v)| (k, *v)).collect()
    }

    fn path(&self, name: &str) -> String {
        join(&self.key, name)
    }

    /// Reports every key that was not read.
    fn finish(self, ctx: &mut Ctx<'_>, allowed: &[&str]) {
        for (((name, mark), _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let best = allowed
                .iter()
                .map(|a| (distance(name, a), *a))
                .min()
                .filter(|(d, _)| *d <= 3);
            let hint = match best {
                Some((_, a)) => format!("did you mean {a:?}? "),
                None => String::new(),
            };
            ctx.err(
                *mark,
                &join(&self.key, name),
                format!(
                    "unknown key ({hint}expected one of: {})",
                    allowed.join(", ")
                ),
            );
        }
    }
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

fn decode_config(ctx: &mut Ctx<'_>, root: &Node, path: &Path) -> Config {
    let mut config = Config {
        path: path.to_path_buf(),
        server: ServerConfig {
            listen: "0.0.0.0:9479".into(),
            metrics_path: "/metrics".into(),
        },
        global: GlobalConfig {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            labels: BTreeMap::new(),
        },
        resource: BTreeMap::new(),
        limits: Limits {
            max_series_per_target: 2000,
            max_body_bytes: 4 * 1024 * 1024,
        },
        host: default_host(Duration::from_secs(15)),
        targets: Vec::new(),
        rule_names_at: BTreeMap::new(),
    };
    let Some(mut top) = MapReader::new(ctx, root, "") else {
        return config;
    };

    if let Some(node) = top.get("server") {
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
                    config.server.listen = s;
                }
            }
            if let Some(n) = m.get("metrics_path") {
                if let Some(s) = ctx.nonempty_string(n, "server.metrics_path") {
                    if !s.starts_with('/') || s.starts_with("/-/") || s == "/" {
                        ctx.err(n.mark, "server.metrics_path", format!("{s:?} cannot be used (expected a path such as /metrics, not / or /-/...)"));
                    }
                    config.server.metrics_path = s;
                }
            }
            m.finish(ctx, &["listen", "metrics_path"]);
        }
    }

    let mut timeout_mark = None;
    if let Some(node) = top.get("global") {
        if let Some(mut m) = MapReader::new(ctx, node, "global") {
            if let Some(n) = m.get("interval") {
                if let Some(d) = ctx.duration(n, "global.interval") {
                    config.global.interval = d;
                }
            }
            if let Some(n) = m.get("timeout") {
                if let Some(d) = ctx.duration(n, "global.timeout") {
                    config.global.timeout = d;
                    timeout_mark = Some(n.mark);
                }
            }
            if let Some(n) = m.get("labels") {
                config.global.labels = ctx.labels(n, "global.labels");
            }
            m.finish(ctx, &["interval", "timeout", "labels"]);
        }
    }
    if config.global.timeout > config.global.interval {
        match timeout_mark {
            Some(mark) => ctx.err(
                mark,
                "global.timeout",
                format!(
                    "{} is longer than global.interval {} (expected at most the interval)",
                    humantime::format_duration(config.global.timeout),
                    humantime::format_duration(config.global.interval)
                ),
            ),
            // Only the interval was shortened: the default timeout follows it.
            None => config.global.timeout = config.global.interval,
        }
    }
    for reserved in RESERVED_LABELS {
        if config.global.labels.contains_key(reserved) {
            ctx.err(
                root.mark,
                "global.labels",
                format!("label {reserved:?} is reserved by remora (expected another name)"),
            );
        }
    }

    if let Some(node) = top.get("resource") {
        for (k, v, mark) in ctx.string_map(node, "resource") {
            if k.is_empty() {
                ctx.err(mark, "resource", "empty attribute name");
            } else {
                config.resource.insert(k, v);
            }
        }
    }

    if let Some(node) = top.get("limits") {
        if let Some(mut m) = MapReader::new(ctx, node, "limits") {
            if let Some(n) = m.get("max_series_per_target") {
                if let Some(v) = ctx.number(n, "limits.max_series_per_target") {
                    if v < 1.0 || v.fract() != 0.0 || v > 1e7 {
                        ctx.err(
                            n.mark,
                            "limits.max_series_per_target",
                            format!(
                                "{v} is out of range (expected a whole number from 1 to 10000000)"
                            ),
                        );
                    } else {
                        config.limits.max_series_per_target = v as usize;
                    }
                }
            }
            if let Some(n) = m.get("max_body_bytes") {
                if let Some(s) = ctx.string(n, "limits.max_body_bytes") {
                    match parse_size(&s) {
                        Some(v) if v >= 1.0 => config.limits.max_body_bytes = v as u64,
                        _ => ctx.err(
                            n.mark,
                            "limits.max_body_bytes",
                            format!(
                                "{s:?} is not a size (expected a size such as 4MiB or 1048576)"
                            ),
                        ),
                    }
                }
            }
            m.finish(ctx, &["max_series_per_target", "max_body_bytes"]);
        }
    }

    config.host = default_host(config.global.interval);
    if let Some(node) = top.get("host") {
        decode_host(ctx, node, &mut config.host);
    }

    if let Some(node) = top.get("targets") {
        let mut names = HashSet::new();
        for (i, t) in ctx.seq(node, "targets").iter().enumerate() {
            let key = format!("targets[{i}]");
            if let Some(target) = decode_target(ctx, t, &key, &config.global) {
                if !names.insert(target.name.clone()) {
                    ctx.err(
                        t.mark,
                        &format!("{key}.name"),
                        format!(
                            "target name {:?} is used twice (expected unique names)",
                            target.name
                        ),
                    );
                }
                config.targets.push(target);
            }
        }
    }
    check_instrument_conflicts(ctx, node_of(root, "targets"), &config.targets);
    config.rule_names_at = rule_name_positions(node_of(root, "targets"));

    top.finish(
        ctx,
        &["server", "global", "resource", "limits", "host", "targets"],
    );
    config
}

fn node_of<'n>(root: &'n Node, key: &str) -> Option<&'n Node> {
    match &root.kind {
        NodeKind::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| matches!(&k.kind, NodeKind::Scalar { text, .. } if text == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Labels remora sets itself, and `le` and `quantile`, which a
/// pass-through histogram or summary needs as the app wrote them.
const RESERVED_LABELS: [&str; 5] = ["target", "state", "process_name", "le", "quantile"];

/// Where `targets[i].metrics[j].name` is written, for errors found after
/// loading (a served name taken by remora, checked where the names are known).
fn rule_name_positions(targets: Option<&Node>) -> BTreeMap<(usize, usize), Located> {
    fn items(node: Option<&Node>) -> &[Node] {
        match node.map(|n| &n.kind) {
            Some(NodeKind::Seq(items)) => items,
            _ => &[],
        }
    }
    let mut out = BTreeMap::new();
    for (ti, t) in items(targets).iter().enumerate() {
        for (ri, r) in items(node_of(t, "metrics")).iter().enumerate() {
            if let Some(name) = node_of(r, "name") {
                out.insert(
                    (ti, ri),
                    Located {
                        mark: name.mark,
                        key: format!("targets[{ti}].metrics[{ri}].name"),
                    },
                );
            }
        }
    }
    out
}

/// The same instrument name in two targets must mean the same instrument.
fn check_instrument_conflicts(ctx: &mut Ctx<'_>, targets_node: Option<&Node>, targets: &[Target]) {
    let mut seen: BTreeMap<&str, (&RuleKind, &str, &str)> = BTreeMap::new();
    for t in targets {
        for rule in &t.metrics {
            for v in &rule.values {
                if let Some((kind, unit, target)) = seen.get(v.name.as_str()) {
                    if std::mem::discriminant(*kind) != std::mem::discriminant(&rule.kind)
                        || *unit != rule.unit
                    {
                        let mark = targets_node.map(|n| n.mark).unwrap_or_default();
                        ctx.err(mark, &format!("targets.{}.metrics.{}", t.name, rule.name), format!(
                            "instrument {:?} is also defined by target {target:?} with another kind or unit (expected the same kind and unit, or another name)",
                            v.name
                        ));
                    }
                } else {
                    seen.insert(&v.name, (&rule.kind, &rule.unit, &t.name));
                }
            }
        }
    }
}

/// Pseudo file systems, as node_exporter excludes them by default.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";
/// Kernel and runtime mount points.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|sys|run|var/lib/docker/.+|var/lib/kubelet/.+)($|/)";

fn default_host(interval: Duration) -> HostConfig {
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

fn decode_host(ctx: &mut Ctx<'_>, node: &Node, host: &mut HostConfig) {
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

/// CPU quantities as Kubernetes writes them: `2`, `0.5`, `500m`.
pub fn parse_cpu(s: &str) -> Option<f64> {
    let s = s.trim();
    let v = match s.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok()? / 1000.0,
        None => s.parse::<f64>().ok()?,
    };
    (v.is_finite() && v >= 0.0).then_some(v)
}

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

fn decode_target(
    ctx: &mut Ctx<'_>,
    node: &Node,
    key: &str,
    global: &GlobalConfig,
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
    let mut tls = TlsConfig::default();
    if let Some(n) = m.get("tls") {
        let tkey = m.path("tls");
        if let Some(mut t) = MapReader::new(ctx, n, &tkey) {
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
                    &tkey,
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
        }
    }
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
        metrics,
    })
}

const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "kind",
    "unit",
    "each",
    "path",
    "values",
    "labels",
    "scale",
    "parse",
    "map",
    "optional",
    "states",
];

/// A value source: a number literal or a JSONPath.
fn value_source(ctx: &mut Ctx<'_>, node: &Node, key: &str) -> Option<ValueSource> {
    let s = ctx.nonempty_string(node, key)?;
    if let Ok(v) = s.trim().parse::<f64>() {
        return v.is_finite().then_some(ValueSource::Const(v));
    }
    let text = relative_path(&s);
    ctx.jsonpath(node, key, &text).map(ValueSource::Path)
}

/// `@.x` (relative to the current node) is written `$.x` for the JSONPath parser.
fn relative_path(s: &str) -> String {
    match s.strip_prefix('@') {
        Some(rest) => format!("${rest}"),
        None => s.to_string(),
    }
}

fn decode_rule(ctx: &mut Ctx<'_>, node: &Node, key: &str) -> Option<MetricRule> {
    let mut m = MapReader::new(ctx, node, key)?;
    let name = match m.get("name") {
        Some(n) => ctx.nonempty_string(n, &m.path("name")).filter(|s| {
            let ok = valid_instrument_name(s) && !s.starts_with("remora.");
            if !ok {
                ctx.err(n.mark, &m.path("name"), format!("{s:?} is not a valid instrument name (expected [a-zA-Z][a-zA-Z0-9_.]*, not starting with remora.)"));
            }
            ok
        }),
        None => {
            ctx.err(node.mark, &m.path("name"), "missing (expected an instrument name such as app.dependency.latency)");
            None
        }
    };
    let description = m
        .get("description")
        .and_then(|n| ctx.string(n, &m.path("description")))
        .unwrap_or_default();
    let unit = m
        .get("unit")
        .and_then(|n| ctx.string(n, &m.path("unit")))
        .unwrap_or_default();
    let states_node = m.get("states");
    let kind = match m.get("kind") {
        Some(n) => match ctx.string(n, &m.path("kind")).as_deref() {
            Some("gauge") | None => RuleKind::Gauge,
            Some("counter") => RuleKind::Counter,
            Some("updowncounter") => RuleKind::UpDownCounter,
            Some("info") => RuleKind::Info,
            Some("stateset") => {
                let mut states = Vec::new();
                match states_node {
                    Some(sn) => {
                        let skey = m.path("states");
                        for (i, s) in ctx.seq(sn, &skey).iter().enumerate() {
                            if let Some(s) = ctx.nonempty_string(s, &format!("{skey}[{i}]")) {
                                if states.contains(&s) {
                                    ctx.err(sn.mark, &skey, format!("state {s:?} is listed twice"));
                                }
                                states.push(s);
                            }
                        }
                        if states.is_empty() {
                            ctx.err(sn.mark, &skey, "is empty (expected the list of states)");
                        }
                    }
                    None => ctx.err(
                        n.mark,
                        &m.path("states"),
                        "missing (a stateset expects states: [ok, degraded, ...])",
                    ),
                }
                RuleKind::StateSet(states)
            }
            Some(other) => {
                ctx.err(n.mark, &m.path("kind"), format!("{other:?} is not a kind (expected gauge, counter, updowncounter, info or stateset)"));
                RuleKind::Gauge
            }
        },
        None => RuleKind::Gauge,
    };
    if let (Some(sn), false) = (states_node, matches!(kind, RuleKind::StateSet(_))) {
        ctx.err(
            sn.mark,
            &m.path("states"),
            "states only apply to kind: stateset",
        );
    }
    let each = m.get("each").and_then(|n| {
        let s = ctx.nonempty_string(n, &m.path("each"))?;
        ctx.jsonpath(n, &m.path("each"), &relative_path(&s))
    });
    let mut values = Vec::new();
    let path_node = m.get("path");
    let values_node = m.get("values");
    match (path_node, values_node) {
        (Some(_), Some(vn)) => ctx.err(
            vn.mark,
            &m.path("values"),
            "path and values both set (expected one of them)",
        ),
        (Some(pn), None) => {
            if let (Some(src), Some(name)) = (value_source(ctx, pn, &m.path("path")), &name) {
                values.push(RuleValue {
                    name: name.clone(),
                    source: src,
                });
            }
        }
        (None, Some(vn)) => {
            let vkey = m.path("values");
            if let Some(mut vm) = MapReader::new(ctx, vn, &vkey) {
                let entries = vm.take_all();
                if entries.is_empty() {
                    ctx.err(
                        vn.mark,
                        &vkey,
                        "is empty (expected at least one NAME: PATH)",
                    );
                }
                for ((k, kmark), v) in entries {
                    let path = format!("{vkey}.{k}");
                    if k.is_empty()
                        || !k
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                    {
                        ctx.err(
                            *kmark,
                            &path,
                            "not a valid name suffix (expected [a-zA-Z0-9_.]+)",
                        );
                        continue;
                    }
                    if let (Some(src), Some(name)) = (value_source(ctx, v, &path), &name) {
                        values.push(RuleValue {
                            name: format!("{name}.{k}"),
                            source: src,
                        });
                    }
                }
            }
        }
        (None, None) => {
            if kind == RuleKind::Info {
                if let Some(name) = &name {
                    values.push(RuleValue {
                        name: name.clone(),
                        source: ValueSource::Const(1.0),
                    });
                }
            } else {
                ctx.err(
                    node.mark,
                    &m.path("path"),
                    "missing (expected path: a JSONPath or a number, or values:)",
                );
            }
        }
    }
    if let RuleKind::StateSet(_) = kind {
        if values
            .iter()
            .any(|v| matches!(v.source, ValueSource::Const(_)))
            || values.len() > 1
        {
            ctx.err(
                node.mark,
                &m.path("path"),
                "a stateset reads one JSONPath (expected path: to the state string)",
            );
        }
    }
    let mut labels = Vec::new();
    if let Some(n) = m.get("labels") {
        let lkey = m.path("labels");
        for (k, v, mark) in ctx.string_map(n, &lkey) {
            let path = format!("{lkey}.{k}");
            if !valid_label_name(&k) || k.starts_with("__") {
                ctx.err(mark, &path, format!("{k:?} is not a valid label name (expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"));
                continue;
            }
            if k == "target" || (k == "state" && matches!(kind, RuleKind::StateSet(_))) {
                ctx.err(
                    mark,
                    &path,
                    format!("label {k:?} is set by remora (expected another name)"),
                );
                continue;
            }
            match parse_template(&v) {
                Ok(t) => {
                    if each.is_none() && t.parts.iter().any(|p| matches!(p, TemplatePart::Key)) {
                        ctx.err(
                            mark,
                            &path,
                            "{@key} needs each: (expected an each: JSONPath on this rule)",
                        );
                    }
                    labels.push((k, t));
                }
                Err(e) => ctx.err(mark, &path, e),
            }
        }
    }
    let scale = m.get("scale").and_then(|n| ctx.number(n, &m.path("scale")));
    let parse = match m.get("parse") {
        Some(n) => {
            match ctx.string(n, &m.path("parse")).as_deref() {
                Some("auto") | None => Parse::Auto,
                Some("duration") => Parse::Duration,
                Some("timestamp") => Parse::Timestamp,
                Some("bytes") => Parse::Bytes,
                Some(other) => {
                    ctx.err(n.mark, &m.path("parse"), format!("{other:?} is not a parser (expected auto, duration, timestamp or bytes)"));
                    Parse::Auto
                }
            }
        }
        None => Parse::Auto,
    };
    let mut map = BTreeMap::new();
    if let Some(n) = m.get("map") {
        let mkey = m.path("map");
        if let Some(mut mm) = MapReader::new(ctx, n, &mkey) {
            for ((k, _), v) in mm.take_all() {
                if let Some(num) = ctx.number(v, &format!("{mkey}.{k}")) {
                    map.insert(k.clone(), num);
                }
            }
        }
    }
    let optional = m
        .get("optional")
        .and_then(|n| ctx.boolean(n, &m.path("optional")))
        .unwrap_or(false);
    m.finish(ctx, RULE_KEYS);
    let name = name?;
    Some(MetricRule {
        description: if description.is_empty() {
            format!("{name} (extracted by remora)")
        } else {
            description
        },
        name,
        kind,
        unit,
        each,
        values,
        labels,
        scale,
        parse,
        map,
        optional,
    })
}

/// Parses a label template: literal text, `{JSONPath}`, `{@key}`; `{{` and `}}` are literal braces.
pub fn parse_template(s: &str) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if matches!(chars.peek(), Some((_, '{'))) => {
                chars.next();
                lit.push('{');
            }
            '}' if matches!(chars.peek(), Some((_, '}'))) => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                // Find the matching close brace, allowing nested brackets in filters.
                let mut depth = 1;
                let mut end = None;
                for (j, d) in chars.by_ref() {
                    match d {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| format!("unclosed '{{' in template {s:?} (expected {{JSONPath}} or {{@key}}; write {{{{ for a literal brace)"))?;
                let expr = s[i + 1..end].trim();
                if !lit.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut lit)));
                }
                if expr == "@key" {
                    parts.push(TemplatePart::Key);
                } else {
                    let text = relative_path(expr);
                    let path = JsonPath::parse(&text).map_err(|e| {
                        format!("invalid JSONPath {expr:?} in template: {e} (expected {{$.field}}, {{@.field}} or {{@key}})")
                    })?;
                    parts.push(TemplatePart::Path(path));
                }
            }
            '}' => {
                return Err(format!(
                    "unmatched '}}' in template {s:?} (write }}}} for a literal brace)"
                ))
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(TemplatePart::Literal(lit));
    }
    Ok(Template {
        source: s.to_string(),
        parts,
    })
}
