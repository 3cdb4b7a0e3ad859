//! The running exporter: sources (target pollers and the host loop), the
//! exposition pipeline, the server, and the lifecycle around them (readiness
//! latch, reload on SIGHUP / `POST /-/reload` / config file change, drain on
//! shutdown).
//!
//! A reload is a transaction: the new file is loaded and everything it needs
//! (clients, TLS files, instruments) is built before anything is swapped; on
//! any error (a missing, unreadable or empty file included) the old config
//! keeps running.
//!
//! Each running source (a target's poller, the host loop) is a task plus a
//! [`Slot`](crate::store::Slot) that owns its part of the [`Store`]. Stopping sources frees their
//! slots at once, so a removed source is gone from the next scrape and a poll
//! that was in flight can never publish; the tasks are then told to stop and
//! joined under one deadline, and whatever is still running is aborted.
//!
//! Rooms: `build` (a config built, nothing started; [`BuildError`]), `sources` (the
//! running tasks and their slots), `supervisor` (reload; [`ReloadError`]), `watch` (the file
//! watcher); this module starts and stops them.

mod build;
mod sources;
mod supervisor;
#[cfg(test)]
mod tests;
mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::{self, Config};
use crate::exposition;
use crate::exposition::Renderer;
use crate::host::{self, Roots};
use crate::readiness::Readiness;
use crate::server::{self, AppState, ReloadRequest};
use crate::store::{unix_now, SlotKey, Store};
use crate::targets::{client, poller};
use crate::web::WebConfig;
pub use build::check_served_names;
pub use build::BuildError;
use build::{build, poll_context, Compiled};
use sources::Sources;
pub use supervisor::ReloadError;
use supervisor::{read_config, Supervisor, Trigger};
use watch::watch_config;

/// Errors that stop remora.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(#[from] config::LoadError),
    #[error("{0}")]
    Web(#[from] crate::web::WebError),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error(transparent)]
    Exposition(#[from] exposition::ExpositionError),
}

/// How long stopping the old sources may take at a reload.
pub(crate) const RELOAD_STOP_DEADLINE: Duration = Duration::from_secs(1);

/// How long a shutdown (server drain and sources) may take, all together.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Runtime options from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: PathBuf,
    pub metrics_path: Option<String>,
    pub web_config: Option<PathBuf>,
    pub lifecycle: bool,
    /// Roots of /proc, /sys and the cgroup tree (tests use fake trees).
    pub roots: Roots,
    /// Watch the config file's directory for changes.
    pub watch: bool,
    /// `--web.max-connections`.
    pub max_connections: usize,
    /// `--web.exposition-format`.
    pub exposition_format: crate::exposition::FormatPin,
    /// `--web.utf8-names`.
    pub utf8_names: bool,
}

/// Runs remora with a loaded config on a bound listener until `shutdown` completes.
pub async fn run(
    config: Config,
    options: Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    client::install_crypto_provider();
    let web = match &options.web_config {
        Some(p) => crate::web::load(p)?,
        None => WebConfig::default(),
    };
    let running = read_config(&options.config_file)
        .await
        .ok()
        .map(Arc::<str>::from);
    let store = Store::new();
    mark_loaded(&store);
    let metrics_path = options
        .metrics_path
        .clone()
        .unwrap_or_else(|| config.server.metrics_path.clone());
    let listen = listener.local_addr().ok().map(|a| a.to_string());
    supervisor::self_scrape(&config, listen.as_deref(), &metrics_path)?;
    let ready = Arc::new(Readiness::default());
    let (mut prepared, pipeline) = build(config, &options.roots, &store, true, &Compiled::new())?;
    let otlp = prepared.otlp.take();
    let compiled = std::mem::take(&mut prepared.compiled);
    if otlp.is_some() {
        store.write().otlp.get_or_insert_with(Default::default);
    }
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let state = Arc::new(AppState {
        renderer: Renderer::start(store.clone(), pipeline).with_utf8_names(options.utf8_names),
        store: store.clone(),
        ready: ready.clone(),
        config: ArcSwap::new(prepared.config.clone()),
        metrics_path,
        started: Instant::now(),
        lifecycle: options.lifecycle,
        reload: reload_tx,
        web,
        limits: server::ServeLimits {
            max_connections: options.max_connections,
            ..Default::default()
        },
        exposition_format: options.exposition_format,
    });
    let sources = Sources::launch(prepared, &options.roots, &store, &ready);

    let (server_stop_tx, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, state.clone(), async move {
        let _ = server_stop_rx.await;
    }));

    let (watch_tx, mut watch_rx) = mpsc::channel::<()>(16);
    let _watcher = if options.watch {
        watch_config(&options.config_file, watch_tx)
    } else {
        None
    };
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();

    let mut sup = Supervisor {
        options,
        state,
        sources: Some(sources),
        last_read: running.clone().map(Ok),
        running,
        otlp,
        listen,
        compiled,
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(reply) = reload_rx.recv() => {
                let r = sup.reload(Trigger::Request).await;
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                tracing::info!("SIGHUP: reloading");
                let _ = sup.reload(Trigger::Request).await;
            }
            Some(()) = watch_rx.recv() => {
                // Let a burst of events (a ConfigMap swap is several) settle.
                tokio::time::sleep(Duration::from_millis(300)).await;
                while watch_rx.try_recv().is_ok() {}
                let _ = sup.reload(Trigger::Watch).await;
            }
        }
    }
    tracing::info!("shutting down");
    let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
    // The last push sends the state as it is now, not what is left once the
    // sources have stopped; it runs beside the drain, under the same deadline,
    // and no scheduled push starts after it.
    let frozen = sup.otlp.is_some().then(|| sup.state.store.freeze());
    let final_push = sup.otlp.take().map(|push| {
        (
            final_push(&push, sup.state.renderer.pipeline(), deadline),
            push,
        )
    });
    let _ = server_stop_tx.send(());
    let mut server = server;
    let drain = async {
        if tokio::time::timeout_at(deadline, &mut server)
            .await
            .is_err()
        {
            tracing::warn!("the server did not drain in time; closed");
            server.abort();
        }
    };
    let sources = async {
        if let Some(s) = sup.sources.take() {
            s.stop(deadline).await;
        }
    };
    let push = async {
        if let Some((done, push)) = final_push {
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                tracing::warn!("the last OTLP push did not finish in time; abandoned");
            }
            // Whatever is left of it returns at once.
            push.close();
        }
    };
    tokio::join!(drain, sources, push);
    drop(frozen);
    sup.state.renderer.stop();
    Ok(())
}

/// Starts the final OTLP push on a thread of its own (the SDK's flush blocks
/// until its reader thread has pushed): the push is told the deadline first,
/// so that every attempt and wait of it ends by then. The returned future
/// completes when the flush has returned.
fn final_push(
    push: &crate::otlp::Handle,
    pipeline: Arc<exposition::Pipeline>,
    deadline: tokio::time::Instant,
) -> impl Future<Output = ()> {
    push.finish(deadline);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let started = std::thread::Builder::new()
        .name("remora-otlp-final".into())
        .spawn(move || {
            pipeline.force_flush();
            let _ = tx.send(());
        });
    if let Err(e) = &started {
        tracing::warn!(error = %e, "cannot start the last OTLP push");
    }
    async move {
        let _ = rx.await;
    }
}

/// The config in use was loaded: `remora_config_last_reload_successful` 1.
fn mark_loaded(store: &Store) {
    let mut inner = store.write();
    inner.reload.last_successful = true;
    inner.reload.last_success_timestamp = unix_now();
}

/// `remora once`: polls every source once and returns the exposition,
/// whether every source succeeded, and with `explain` the rule-by-rule
/// account of every target (`remora once --explain`; else empty). The
/// exposition is in `format` (`remora once --format --escaping`; names as
/// `--web.utf8-names` says).
pub async fn once(
    config: Config,
    roots: Roots,
    explain: bool,
    format: crate::exposition::Variant,
    utf8_names: bool,
) -> Result<(Vec<u8>, bool, String), AppError> {
    client::install_crypto_provider();
    let store = Store::new();
    mark_loaded(&store);
    let (prepared, pipeline) = build(config, &roots, &store, false, &Compiled::new())?;
    let ctx = poll_context(&prepared);
    let mut keys = host::runner::keys(prepared.host.as_ref());
    keys.extend(
        prepared
            .pollers
            .iter()
            .map(|p| SlotKey::Target(p.target.name.clone())),
    );
    let slot = store.claim(keys);
    let writer = slot.writer();
    let mut set = tokio::task::JoinSet::new();
    for poller in prepared.pollers {
        let ctx = ctx.clone();
        set.spawn(async move {
            let outcome = poller::poll_once(&poller, &ctx).await;
            (poller.target.clone(), outcome)
        });
    }
    let own = host::SelfProcess::new(&roots.proc);
    let (_, _, reports, own) = host::runner::round(prepared.host, own).await;
    let mut ok = reports.iter().all(|r| r.result.is_ok());
    host::runner::publish(&writer, reports, own);
    while let Some(joined) = set.join_next().await {
        if let Ok((target, outcome)) = joined {
            ok &= outcome.error.is_none();
            poller::publish(&writer, &target, outcome);
        }
    }
    let text = crate::exposition::render_variant(&pipeline, &store, format, utf8_names)?;
    let mut account = String::new();
    if explain {
        for (name, t) in &store.read().targets {
            crate::targets::report::write_target(&mut account, name, t);
        }
    }
    drop(slot);
    Ok((text, ok, account))
}
