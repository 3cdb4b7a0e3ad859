//! The command line: Prometheus-style long flags, `check`, `once`, `init`, `--version`.
//! `main.rs` only calls [`main`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{self, Options};
use crate::config::{self, Config};
use crate::host::Roots;
use crate::logging::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(name = "remora", version = crate::exposition::VERSION, about = "Sidecar metrics exporter: polls an app's status endpoints and its host, serves Prometheus metrics")]
struct Cli {
    /// Path to exporter.yaml.
    #[arg(long = "config.file", default_value = "exporter.yaml", global = true)]
    config_file: PathBuf,
    /// Address to listen on (overrides server.listen).
    #[arg(long = "web.listen-address")]
    listen: Option<String>,
    /// Path of the metrics endpoint (overrides server.metrics_path).
    #[arg(long = "web.telemetry-path")]
    metrics_path: Option<String>,
    /// exporter-toolkit web config (TLS, basic auth).
    #[arg(long = "web.config.file")]
    web_config: Option<PathBuf>,
    /// Enable POST /-/reload.
    #[arg(long = "web.enable-lifecycle")]
    lifecycle: bool,
    /// Where procfs is mounted (host collectors, `once`).
    #[arg(long = "path.procfs", default_value = "/proc", global = true)]
    procfs: PathBuf,
    /// Where sysfs is mounted; the cgroup tree is `<sysfs>/fs/cgroup`.
    #[arg(long = "path.sysfs", default_value = "/sys", global = true)]
    sysfs: PathBuf,
    /// Root file system the mount points are resolved under (filesystem collector).
    #[arg(long = "path.rootfs", default_value = "/", global = true)]
    rootfs: PathBuf,
    /// Open connections at most; when full, the oldest one that never sent a
    /// request is closed to admit a new one.
    #[arg(long = "web.max-connections", default_value_t = crate::server::DEFAULT_MAX_CONNECTIONS, value_parser = max_connections)]
    max_connections: usize,
    /// The exposition format of /metrics: negotiate (by the Accept header:
    /// OpenMetrics 1.0.0, then text 1.0.0, then text 0.0.4), or one format
    /// pinned for a scraper that misbehaves (openmetrics, text-1.0.0,
    /// text-0.0.4); the escaping still comes from the Accept header.
    #[arg(long = "web.exposition-format", default_value_t = crate::exposition::FormatPin::Negotiate)]
    exposition_format: crate::exposition::FormatPin,
    /// Serve the host, container and rule families under their
    /// semantic-convention names (`system.cpu.time_seconds_total`, quoted)
    /// to a scraper that asks for escaping=allow-utf-8 (Prometheus 3), and
    /// escaped under escaping=dots and values. Off: every format and
    /// escaping serves the underscored names of text 0.0.4, the names the
    /// kit's dashboard and alerts query.
    #[arg(long = "web.utf8-names", global = true)]
    utf8_names: bool,
    /// Log level.
    #[arg(long = "log.level", default_value = "info", value_parser = ["debug", "info", "warn", "error"], global = true)]
    log_level: String,
    /// Log format.
    #[arg(long = "log.format", default_value = "logfmt", value_parser = ["logfmt", "json"], global = true)]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the config, print a one-line summary (exit 0) or every error (exit 1).
    Check,
    /// Poll every source once, print the exposition, exit 1 if any source failed.
    Once {
        /// Also print on stderr, per target and rule, what matched, what came
        /// out, and what failed with the offending value and a hint.
        #[arg(long)]
        explain: bool,
        /// The exposition's format: 0.0.4 (text 0.0.4, the default), 1.0.0
        /// (text 1.0.0) or openmetrics (OpenMetrics 1.0.0).
        #[arg(long, default_value = "0.0.4", value_parser = ["0.0.4", "1.0.0", "openmetrics"])]
        format: String,
        /// Its escaping (text 1.0.0 and OpenMetrics): underscores (the
        /// default), allow-utf-8, dots or values; UTF-8 names only with
        /// --web.utf8-names.
        #[arg(long, default_value = "underscores", value_parser = ["underscores", "allow-utf-8", "dots", "values"])]
        escaping: String,
    },
    /// Probe an app (a base URL: its usual status paths) and write a commented exporter.yaml.
    Init {
        /// The app's base URL (http://127.0.0.1:8080) or status URLs.
        #[arg(required = true)]
        urls: Vec<String>,
        /// Write the config here instead of stdout (an existing file is not overwritten).
        #[arg(long = "output")]
        output: Option<PathBuf>,
    },
}

fn max_connections(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a number of connections, at least 1".into()),
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    let config = config::load_file(path, &config::process_env).map_err(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })?;
    app::check_served_names(&config).map_err(|errors| {
        for e in errors {
            eprintln!("{e}");
        }
        ExitCode::FAILURE
    })?;
    Ok(config)
}

fn summary(c: &Config) -> String {
    let rules: usize = c.targets.iter().map(|t| t.metrics.len()).sum();
    let host = if c.host.enabled {
        c.host
            .collectors
            .iter()
            .map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(",")
    } else {
        "off".into()
    };
    format!(
        "{}: OK: {} target(s), {} metric rule(s), host collectors: {}, {} process matcher(s), listen {}{}",
        c.path.display(),
        c.targets.len(),
        rules,
        host,
        c.host.processes.len(),
        c.server.listen,
        c.server.metrics_path
    )
}

/// The variant `remora once --format --escaping` names (values checked by clap).
fn once_variant(format: &str, escaping: &str) -> crate::exposition::Variant {
    use crate::exposition::{Escaping, Syntax, Variant};
    let syntax = match format {
        "openmetrics" => Syntax::OpenMetrics,
        "1.0.0" => Syntax::Text100,
        _ => return Variant::TEXT_004,
    };
    Variant {
        syntax,
        escaping: Escaping::from_param(escaping),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Installs the SIGTERM, SIGINT and SIGHUP handlers at once (a signal that
/// arrives before the returned future is first polled is still seen; an
/// early SIGHUP does not end the process) and returns the future that
/// completes on SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // SIGHUP's default action ends the process. Registering it here (tokio
    // keeps a signal's handler for the life of the process) makes a SIGHUP
    // sent before the reload loop listens a no-op instead of an exit.
    drop(signal(SignalKind::hangup())?);
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// `remora init`: the config to stdout or a new file, what was probed to stderr.
fn init(urls: &[String], output: Option<&std::path::Path>) -> ExitCode {
    use std::io::Write;
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let done = match rt.block_on(crate::init::run(urls)) {
        Ok(done) => done,
        Err(e) => {
            eprintln!("remora init: {e}");
            return ExitCode::FAILURE;
        }
    };
    for n in &done.notes {
        eprintln!("{n}");
    }
    let written = match output {
        None => std::io::stdout().write_all(done.yaml.as_bytes()),
        Some(path) => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| f.write_all(done.yaml.as_bytes())),
    };
    match (written, output) {
        (Ok(()), Some(path)) => {
            eprintln!(
                "wrote {}; next: remora check --config.file={0}",
                path.display()
            );
            ExitCode::SUCCESS
        }
        (Ok(()), None) => ExitCode::SUCCESS,
        (Err(e), _) => {
            let path = output.map_or("stdout".into(), |p| p.display().to_string());
            eprintln!("remora init: cannot write {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    crate::memory::tune();
    // Before any thread starts; logged once logging is up.
    let raised = crate::fdlimit::raise();
    let cli = Cli::parse();
    let format = if cli.log_format == "json" {
        LogFormat::Json
    } else {
        LogFormat::Logfmt
    };
    match cli.command {
        Some(Command::Check) => match load(&cli.config_file) {
            Ok(c) => {
                println!("{}", summary(&c));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Some(Command::Once {
            explain,
            format: as_format,
            escaping,
        }) => {
            logging::init(&cli.log_level, format);
            let config = match load(&cli.config_file) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let roots = Roots::new(&cli.procfs, &cli.sysfs, &cli.rootfs);
            let variant = once_variant(&as_format, &escaping);
            match rt.block_on(app::once(config, roots, explain, variant, cli.utf8_names)) {
                Ok((text, ok, account)) => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&text);
                    let _ = std::io::stderr().write_all(account.as_bytes());
                    if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("remora: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Init { urls, output }) => init(&urls, output.as_deref()),
        None => {
            logging::init(&cli.log_level, format);
            match &raised {
                Ok(r) if r.after > r.before => tracing::info!(
                    from = r.before,
                    to = r.after,
                    "raised the open-file limit to the hard limit"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "open-file limit"),
            }
            let config = match load(&cli.config_file) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let listen = cli
                .listen
                .clone()
                .unwrap_or_else(|| config.server.listen.clone());
            let options = Options {
                config_file: cli.config_file.clone(),
                metrics_path: cli.metrics_path.clone(),
                web_config: cli.web_config.clone(),
                lifecycle: cli.lifecycle,
                roots: Roots::new(&cli.procfs, &cli.sysfs, &cli.rootfs),
                watch: true,
                max_connections: cli.max_connections,
                exposition_format: cli.exposition_format,
                utf8_names: cli.utf8_names,
            };
            let result: anyhow::Result<()> = rt.block_on(async move {
                let shutdown = shutdown_signal()
                    .map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
                tracing::info!(address = %listener.local_addr()?, config = %options.config_file.display(), version = crate::exposition::VERSION, "remora listening");
                app::run(config, options, listener, shutdown).await?;
                Ok(())
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "remora stopped");
                    eprintln!("remora: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
