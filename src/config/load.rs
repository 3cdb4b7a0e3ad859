//! From YAML text to a checked [`Config`]: the entry points, and the top of
//! the document, whose sections are read by the sibling modules `global`,
//! `host` and `target` through the decoder of `decode`; every problem is
//! reported as `FILE:LINE:COLUMN: key.path: what is wrong (what was expected)`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::checks::{check_instrument_conflicts, rule_name_positions, target_url_positions};
use super::decode::{node_of, Ctx, MapReader};
use super::global::{decode_global, decode_limits, decode_resource, decode_server};
use super::host::{decode_host, default_host};
use super::limits;
use super::otlp::decode_otlp;
use super::share::RulePool;
use super::target::decode_target;
use super::types::*;
use super::yaml::{self, Node};

pub use super::decode::{parse_size, ConfigError};
pub use super::env::{expand_env, process_env, Env};
pub use super::host::{DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE};
pub use super::template::parse_template;
pub use crate::units::parse_cpu;

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
    #[error("{path}: {problem}")]
    TooLarge { path: String, problem: String },
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

/// Reads and validates a config file.
pub fn load_file(path: &Path, env: Env<'_>) -> Result<Config, LoadError> {
    let text = read_file(path)?;
    load_text(&text, path, env)
}

/// The config file's text; a file over [`limits::MAX_CONFIG_BYTES`] is
/// refused without being read whole. Blocking: call it off async threads.
pub fn read_file(path: &Path) -> Result<String, LoadError> {
    use std::io::Read;
    let read_err = |source| LoadError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(limits::MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    check_size(&text, path)?;
    Ok(text)
}

fn check_size(text: &str, path: &Path) -> Result<(), LoadError> {
    let len = text.len() as u64;
    if len > limits::MAX_CONFIG_BYTES {
        let len = std::fs::metadata(path).map_or(len, |m| m.len().max(len));
        return Err(LoadError::TooLarge {
            path: path.display().to_string(),
            problem: limits::too_large(len),
        });
    }
    Ok(())
}

/// Validates the text of the config file `path`; a file with nothing but
/// blank lines, comments and document markers is an error (a truncated or
/// half-written file must not become an empty config).
pub fn load_text(text: &str, path: &Path, env: Env<'_>) -> Result<Config, LoadError> {
    check_size(text, path)?;
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
        otlp: None,
        rule_names_at: BTreeMap::new(),
        target_urls_at: Vec::new(),
    };
    let Some(mut top) = MapReader::new(ctx, root, "") else {
        return config;
    };

    if let Some(node) = top.get("server") {
        decode_server(ctx, node, &mut config.server);
    }
    decode_global(ctx, top.get("global"), root.mark, &mut config.global);
    if let Some(node) = top.get("resource") {
        decode_resource(ctx, node, &mut config.resource);
    }
    if let Some(node) = top.get("limits") {
        decode_limits(ctx, node, &mut config.limits);
    }

    config.host = default_host(config.global.interval);
    if let Some(node) = top.get("host") {
        decode_host(ctx, node, &mut config.host);
    }

    if let Some(node) = top.get("targets") {
        let mut names = HashSet::new();
        // Targets of equal rules share one list.
        let mut pool = RulePool::default();
        for (i, t) in ctx.seq(node, "targets").iter().enumerate() {
            let key = format!("targets[{i}]");
            if let Some(target) = decode_target(ctx, t, &key, &config.global, &mut pool) {
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
                config.targets.push(std::sync::Arc::new(target));
            }
        }
    }
    if let Some(node) = top.get("otlp") {
        config.otlp = decode_otlp(ctx, node);
    }
    // Targets are only decoded from a `targets:` node, so without one there
    // is nothing to check.
    if let Some(targets) = node_of(root, "targets") {
        check_instrument_conflicts(ctx, targets.mark, &config.targets);
    }
    config.rule_names_at = rule_name_positions(node_of(root, "targets"));
    config.target_urls_at = target_url_positions(node_of(root, "targets"));
    if let Some(targets) = node_of(root, "targets") {
        limits::check_rule_count(ctx, targets, &config);
    }
    let own =
        limits::self_scrape_errors(&config, &config.server.listen, &config.server.metrics_path);
    ctx.errors.extend(own);

    top.finish(
        ctx,
        &[
            "server", "global", "resource", "limits", "host", "targets", "otlp",
        ],
    );
    config
}
