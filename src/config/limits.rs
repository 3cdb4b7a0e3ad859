//! Limits of the machine a config must fit in (issue 28): a config file at
//! most [`MAX_CONFIG_BYTES`] long with at most [`MAX_RULES`] metric rules,
//! and no target that polls remora's own listen address and telemetry path
//! (each poll would nest `exported_` prefixes one level deeper).

use std::net::IpAddr;

use super::decode::{ConfigError, Ctx};
use super::types::{Config, Located};
use super::yaml::{Mark, Node};

/// The largest config file remora reads (8 MiB: 2,000 targets of 10 rules
/// written out in full take about 2 MiB).
pub const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// The most metric rules (all targets together) a config may hold: each
/// costs memory whether or not its target answers.
pub const MAX_RULES: usize = 25_000;

/// The error for a file over [`MAX_CONFIG_BYTES`].
pub(super) fn too_large(len: u64) -> String {
    format!(
        "the config file is {len} bytes (expected at most {MAX_CONFIG_BYTES} bytes, 8 MiB; split the targets among several remora)"
    )
}

/// More than [`MAX_RULES`] rules: one error at the `targets:` list.
pub(super) fn check_rule_count(ctx: &mut Ctx<'_>, targets: &Node, config: &Config) {
    let rules: usize = config.targets.iter().map(|t| t.metrics.len()).sum();
    if rules > MAX_RULES {
        ctx.err(
            targets.mark,
            "targets",
            format!("{rules} metric rules in all (expected at most {MAX_RULES}; split the targets among several remora)"),
        );
    }
}

/// The host and port of a listen address (`0.0.0.0:9479`, `[::]:9479`,
/// `localhost:9479`, `:9479`).
fn split_listen(listen: &str) -> Option<(&str, u16)> {
    let (host, port) = listen.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// Whether `url` is remora's own telemetry endpoint when it listens on
/// `listen` and serves `metrics_path`: the same port, a host that reaches
/// the listener (any loopback name or address, or the unspecified address,
/// when remora listens on 0.0.0.0 / `[::]` or on loopback; else the same
/// host), and the same path (a trailing `/` aside). Another address of the
/// machine's own interfaces is not recognised.
pub fn is_self(url: &reqwest::Url, listen: &str, metrics_path: &str) -> bool {
    let Some((host, port)) = split_listen(listen) else {
        return false;
    };
    if url.port_or_known_default() != Some(port) {
        return false;
    }
    let trim = |p: &str| p.trim_end_matches('/').to_string();
    if trim(url.path()) != trim(metrics_path) {
        return false;
    }
    let Some(url_host) = url.host_str() else {
        return false;
    };
    let url_host = url_host.trim_start_matches('[').trim_end_matches(']');
    let wildcard = host.is_empty() || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
    if wildcard || is_loopback(host) {
        return is_loopback(url_host);
    }
    url_host.eq_ignore_ascii_case(host)
}

fn without_credentials(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// One error per target polling remora itself, at its `url:` (positions
/// from `urls_at`, by target index; the file's start when unknown).
pub fn self_scrape_errors(config: &Config, listen: &str, metrics_path: &str) -> Vec<ConfigError> {
    config
        .targets
        .iter()
        .enumerate()
        .filter(|(_, t)| is_self(&t.url, listen, metrics_path))
        .map(|(i, t)| {
            let at = config.target_urls_at.get(i).cloned().unwrap_or(Located {
                mark: Mark { line: 1, column: 1 },
                key: format!("targets[{i}].url"),
            });
            ConfigError {
                file: config.path.display().to_string(),
                mark: at.mark,
                key: at.key,
                problem: format!(
                    "{} is remora's own listen address {listen} and telemetry path {metrics_path} (expected the app's endpoint: remora would poll itself and nest exported_ prefixes at each poll)",
                    without_credentials(&t.url)
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn own_endpoint_is_recognised_through_wildcard_and_loopback() {
        for url in [
            "http://127.0.0.1:9479/metrics",
            "http://localhost:9479/metrics/",
            "http://[::1]:9479/metrics",
            "https://127.0.0.2:9479/metrics?x=1",
            "http://0.0.0.0:9479/metrics",
        ] {
            assert!(is_self(&u(url), "0.0.0.0:9479", "/metrics"), "{url}");
            assert!(is_self(&u(url), "[::]:9479", "/metrics"), "{url}");
            assert!(is_self(&u(url), ":9479", "/metrics"), "{url}");
        }
        assert!(is_self(
            &u("http://localhost:9479/metrics"),
            "127.0.0.1:9479",
            "/metrics"
        ));
        assert!(is_self(
            &u("http://10.0.0.5:9479/metrics"),
            "10.0.0.5:9479",
            "/metrics"
        ));
    }

    #[test]
    fn other_ports_paths_and_hosts_are_not_remora() {
        let l = "0.0.0.0:9479";
        assert!(!is_self(&u("http://127.0.0.1:9480/metrics"), l, "/metrics"));
        assert!(!is_self(&u("http://127.0.0.1:9479/stats"), l, "/metrics"));
        assert!(!is_self(&u("http://app:9479/metrics"), l, "/metrics"));
        assert!(!is_self(&u("http://127.0.0.1/metrics"), l, "/metrics"));
        assert!(!is_self(
            &u("http://127.0.0.1:9479/metrics"),
            "10.0.0.5:9479",
            "/metrics"
        ));
    }
}
