//! The running exporter: sources (target pollers and the host loop), the
//! telemetry pipeline, the server, and the lifecycle around them (readiness
//! latch, reload on SIGHUP / `POST /-/reload` / config file change, drain on
//! shutdown).
//!
//! A reload is a transaction: the new file is loaded and everything it needs
//! (clients, TLS files, instruments) is built before anything is swapped; on
//! any error the old config keeps running.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{self, Config, Format};
use crate::host::{self, HostCollectors, Roots};
use crate::model::InstrumentSpec;
use crate::render::Renderer;
use crate::server::{self, AppState, ReloadRequest};
use crate::store::{unix_now, CollectorState, Store};
use crate::targets::{client, extract, poller};
use crate::telemetry::{self, Pipeline};
use crate::web::WebConfig;

/// Errors that stop remora.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(#[from] config::LoadError),
    #[error("{0}")]
    Prepare(String),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
}

/// The readiness latch: set once the first poll round was attempted, never unset.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    pending: AtomicUsize,
}

impl Readiness {
    fn arm(self: &Arc<Self>, sources: usize) {
        self.pending.store(sources, Ordering::Release);
        if sources == 0 {
            self.ready.store(true, Ordering::Release);
        }
    }

    fn one_done(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.ready.store(true, Ordering::Release);
            tracing::info!("first poll round done; ready");
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

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
}

/// Everything a config needs, built but not started.
struct Prepared {
    config: Arc<Config>,
    pollers: Vec<Arc<poller::Poller>>,
    host: Option<HostCollectors>,
    specs: Vec<InstrumentSpec>,
    limits: BTreeMap<String, usize>,
}

fn prepare(config: Config, roots: &Roots) -> Result<Prepared, String> {
    let mut pollers = Vec::new();
    let mut specs = Vec::new();
    let mut limits: BTreeMap<String, usize> = BTreeMap::new();
    let max = config.limits.max_series_per_target;
    let mut rules = 0;
    for t in &config.targets {
        let c = client::build(t).map_err(|e| format!("target {:?}: {e}", t.name))?;
        pollers.push(Arc::new(poller::Poller::new(Arc::new(t.clone()), c)));
        if t.format == Format::Json {
            rules += t.metrics.len();
            for spec in extract::specs(t) {
                *limits.entry(spec.name.clone()).or_default() += max;
                specs.push(spec);
            }
        }
    }
    let own = 4096usize.max(config.targets.len() * 8 + rules * 6);
    limits.insert("remora.extraction.errors".into(), own);
    limits.insert("remora.target.polls".into(), own);
    let host = config
        .host
        .enabled
        .then(|| HostCollectors::new(&config.host, roots.clone()));
    if let Some(h) = &host {
        specs.extend(h.specs());
    }
    specs.extend(host::self_process_specs());
    Ok(Prepared {
        config: Arc::new(config),
        pollers,
        host,
        specs,
        limits,
    })
}

/// Prepares a config and builds its pipeline: everything a config needs, nothing started.
fn build(
    config: Config,
    roots: &Roots,
    store: &Arc<Store>,
) -> Result<(Prepared, Pipeline), String> {
    let prepared = prepare(config, roots)?;
    let pipeline = Pipeline::build(
        &prepared.config,
        &prepared.specs,
        &prepared.limits,
        store.clone(),
    )
    .map_err(|e| e.to_string())?;
    Ok((prepared, pipeline))
}

fn poll_context(config: &Config) -> poller::PollContext {
    let mut reserved = telemetry::own_prometheus_names();
    reserved.push("target_info".into());
    poller::PollContext {
        max_body_bytes: config.limits.max_body_bytes,
        max_series: config.limits.max_series_per_target,
        global_labels: config
            .global
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        reserved_names: Arc::new(reserved),
    }
}

/// Publishes host collector reports; logs a collector only when it fails or recovers.
fn publish_host(
    store: &Store,
    reports: Vec<host::CollectorReport>,
    own: Option<Vec<crate::model::Family>>,
) {
    let now = unix_now();
    let mut inner = store.write();
    for r in reports {
        let state = inner
            .collectors
            .entry(r.collector.to_string())
            .or_insert_with(|| CollectorState {
                up: true,
                ..Default::default()
            });
        let was_up = state.up;
        state.duration = r.duration.as_secs_f64();
        match r.result {
            Ok(()) => {
                if !was_up {
                    tracing::info!(collector = r.collector, "collector recovered");
                }
                state.up = true;
                state.last_error = None;
                state.last_success = Some(now);
                state.families = Arc::new(r.families);
            }
            Err(e) => {
                if was_up {
                    tracing::warn!(collector = r.collector, error = %e, "collector failed");
                }
                state.up = false;
                state.last_error = Some(e);
                state.families = Arc::new(Vec::new());
            }
        }
    }
    if let Some(own) = own {
        inner.own_process = Arc::new(own);
    }
}

/// One round of the host loop (collectors and remora's own process), off the async threads.
async fn host_round(
    host: Option<HostCollectors>,
    proc_root: PathBuf,
) -> (
    Option<HostCollectors>,
    Vec<host::CollectorReport>,
    Option<Vec<crate::model::Family>>,
) {
    let joined = tokio::task::spawn_blocking(move || {
        let mut host = host;
        let reports = host.as_mut().map(HostCollectors::poll).unwrap_or_default();
        let own = host::self_process_families(&proc_root).ok();
        (host, reports, own)
    })
    .await;
    joined.unwrap_or_else(|e| {
        tracing::error!(error = %e, "host poll task failed");
        (None, Vec::new(), None)
    })
}

async fn run_host(
    mut host: Option<HostCollectors>,
    proc_root: PathBuf,
    interval: Duration,
    store: Arc<Store>,
    ready: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut first = true;
    loop {
        let (h, reports, own) = host_round(host.take(), proc_root.clone()).await;
        host = h;
        publish_host(&store, reports, own);
        if first {
            ready.one_done();
            first = false;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Running pollers of one config.
struct Sources {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sources {
    fn launch(p: Prepared, roots: &Roots, store: &Arc<Store>, ready: &Arc<Readiness>) -> Self {
        let (stop, rx) = watch::channel(false);
        let ctx = poll_context(&p.config);
        let mut tasks = Vec::new();
        for poller in p.pollers {
            let (store, ready, rx, ctx) = (store.clone(), ready.clone(), rx.clone(), ctx.clone());
            tasks.push(tokio::spawn(async move {
                poller::run(poller, ctx, store, move || ready.one_done(), rx).await;
            }));
        }
        tasks.push(tokio::spawn(run_host(
            p.host,
            roots.proc.clone(),
            p.config.host.interval,
            store.clone(),
            ready.clone(),
            rx,
        )));
        Sources { stop, tasks }
    }

    fn count(config: &Config) -> usize {
        config.targets.len() + 1
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
    }
}

fn source_names(config: &Config, host: Option<&HostCollectors>) -> (Vec<String>, Vec<String>) {
    let targets = config.targets.iter().map(|t| t.name.clone()).collect();
    let collectors = host
        .map(|h| h.collector_names().into_iter().map(String::from).collect())
        .unwrap_or_default();
    (targets, collectors)
}

/// The supervisor's own handles.
struct Supervisor {
    options: Options,
    state: Arc<AppState>,
    sources: Option<Sources>,
    last_text: String,
}

impl Supervisor {
    /// Loads the file again and swaps everything, or keeps the old config.
    async fn reload(&mut self, only_if_changed: bool) -> Result<(), String> {
        let path = &self.options.config_file;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if only_if_changed && text == self.last_text {
            return Ok(());
        }
        let result = self.try_reload(&text);
        {
            let mut inner = self.state.store.write();
            let now = unix_now();
            inner.reload.last_attempt = Some(now);
            inner.reload.last_successful = result.is_ok();
            match &result {
                Ok(_) => {
                    inner.reload.last_success_timestamp = now;
                    inner.reload.last_error = None;
                }
                Err(e) => inner.reload.last_error = Some(e.clone()),
            }
        }
        let (prepared, pipeline) = match result {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "config reload failed; the previous config keeps running");
                return Err(e);
            }
        };
        self.last_text = text;
        let (targets, collectors) = source_names(&prepared.config, prepared.host.as_ref());
        self.state.store.retain_sources(&targets, &collectors);
        if let Some(old) = self.sources.take() {
            old.stop().await;
        }
        let config = prepared.config.clone();
        self.state.renderer.swap_pipeline(pipeline);
        self.state.config.store(config);
        self.sources = Some(Sources::launch(
            prepared,
            &self.options.roots,
            &self.state.store,
            &self.state.ready,
        ));
        tracing::info!(file = %path.display(), "config reloaded");
        Ok(())
    }

    fn try_reload(&self, text: &str) -> Result<(Prepared, Pipeline), String> {
        let path = &self.options.config_file;
        let config = config::parse_str(text, path, &config::process_env).map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        let old = self.state.config.load();
        if config.server.listen != old.server.listen {
            tracing::warn!(
                "server.listen changed; the new address takes effect at the next restart"
            );
        }
        build(config, &self.options.roots, &self.state.store)
    }
}

/// Watches the config file's directory (a ConfigMap update swaps the `..data`
/// symlink, which changes no event on the file's own name) and asks for a
/// reload when anything there changes; quiet for 300 ms before asking.
fn watch_config(path: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() {
                let _ = tx.try_send(());
            }
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "cannot watch the config directory"))
    .ok()?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config directory"))
        .ok()?;
    Some(watcher)
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
        Some(p) => crate::web::load(p).map_err(|e| AppError::Prepare(e.to_string()))?,
        None => WebConfig::default(),
    };
    let last_text = std::fs::read_to_string(&options.config_file).unwrap_or_default();
    let store = Store::new();
    {
        let mut inner = store.write();
        inner.reload.last_successful = true;
        inner.reload.last_success_timestamp = unix_now();
    }
    let metrics_path = options
        .metrics_path
        .clone()
        .unwrap_or_else(|| config.server.metrics_path.clone());
    let ready = Arc::new(Readiness::default());
    ready.arm(Sources::count(&config));
    let (prepared, pipeline) = build(config, &options.roots, &store).map_err(AppError::Prepare)?;
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let state = Arc::new(AppState {
        renderer: Renderer::start(store.clone(), pipeline),
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
        last_text,
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(reply) = reload_rx.recv() => {
                let r = sup.reload(false).await;
                let _ = reply.send(r);
            }
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                tracing::info!("SIGHUP: reloading");
                let _ = sup.reload(false).await;
            }
            Some(()) = watch_rx.recv() => {
                // Let a burst of events (a ConfigMap swap is several) settle.
                tokio::time::sleep(Duration::from_millis(300)).await;
                while watch_rx.try_recv().is_ok() {}
                let _ = sup.reload(true).await;
            }
        }
    }
    tracing::info!("shutting down");
    let _ = server_stop_tx.send(());
    let _ = server.await;
    if let Some(s) = sup.sources.take() {
        s.stop().await;
    }
    sup.state.renderer.stop();
    Ok(())
}

/// `remora once`: polls every source once and returns the exposition and
/// whether every source succeeded.
pub async fn once(config: Config, roots: Roots) -> Result<(Vec<u8>, bool), AppError> {
    client::install_crypto_provider();
    let store = Store::new();
    let ctx = poll_context(&config);
    let (prepared, pipeline) = build(config, &roots, &store).map_err(AppError::Prepare)?;
    let mut set = tokio::task::JoinSet::new();
    for poller in prepared.pollers {
        let ctx = ctx.clone();
        set.spawn(async move {
            let outcome = poller::poll_once(&poller, &ctx).await;
            (poller.target.clone(), outcome)
        });
    }
    let (_, reports, own) = host_round(prepared.host, roots.proc.clone()).await;
    let mut ok = reports.iter().all(|r| r.result.is_ok());
    publish_host(&store, reports, own);
    while let Some(joined) = set.join_next().await {
        if let Ok((target, outcome)) = joined {
            ok &= outcome.result == crate::store::PollResult::Success;
            poller::publish(&store, &target, outcome);
        }
    }
    Ok((crate::render::render_once(&pipeline, &store)?, ok))
}
