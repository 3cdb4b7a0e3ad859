//! The running exporter: sources (target pollers and the host loop), the
//! telemetry pipeline, the server, and the lifecycle around them (readiness
//! latch, reload on SIGHUP / `POST /-/reload` / config file change, drain on
//! shutdown).
//!
//! A reload is a transaction: the new file is loaded and everything it needs
//! (clients, TLS files, instruments) is built before anything is swapped; on
//! any error (a missing, unreadable or empty file included) the old config
//! keeps running.
//!
//! Each running source (a target's poller, the host loop) is a task plus a
//! [`Slot`] that owns its part of the [`Store`]. Stopping sources frees their
//! slots at once, so a removed source is gone from the next scrape and a poll
//! that was in flight can never publish; the tasks are then told to stop and
//! joined under one deadline, and whatever is still running is aborted.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::{self, Config, Format};
use crate::host::{self, HostCollectors, Roots};
use crate::model::InstrumentSpec;
use crate::render::Renderer;
use crate::server::{self, AppState, ReloadRequest};
use crate::store::{unix_now, CollectorState, Slot, SlotKey, SlotWriter, Store};
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

/// How long stopping the old sources may take at a reload.
const RELOAD_STOP_DEADLINE: Duration = Duration::from_secs(1);

/// How long a shutdown (server drain and sources) may take, all together.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// The readiness latch: set once the first poll round was attempted, never unset.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    /// The current round and how many of its sources have not finished their
    /// first poll. A reload starts a new round: sources it stopped never count.
    round: Mutex<(u64, usize)>,
}

impl Readiness {
    /// Starts a round of `sources` first polls; returns its id.
    fn arm(&self, sources: usize) -> u64 {
        let mut round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        *round = (round.0 + 1, sources);
        if sources == 0 {
            self.ready.store(true, Ordering::Release);
        }
        round.0
    }

    fn one_done(&self, id: u64) {
        let mut round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        if round.0 != id || round.1 == 0 {
            return;
        }
        round.1 -= 1;
        if round.1 == 0 && !self.ready.swap(true, Ordering::AcqRel) {
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
    /// Every family name the config's pipeline serves.
    served: Arc<crate::targets::prom::ServedNames>,
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
    let mut reserved = host.as_ref().map(HostCollectors::specs).unwrap_or_default();
    reserved.extend(host::self_process_specs());
    telemetry::check_rule_names(&config, &reserved).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    specs.extend(reserved);
    let served = telemetry::served_names(&config, &specs).map_err(|e| e.to_string())?;
    Ok(Prepared {
        config: Arc::new(config),
        pollers,
        host,
        specs,
        limits,
        served: Arc::new(served),
    })
}

/// The config's JSON rules against the names remora serves itself (host
/// collectors, its own process and instruments, `target_info`): `remora
/// check` and start-up report these with the loader's errors.
pub fn check_served_names(config: &Config) -> Result<(), Vec<config::ConfigError>> {
    let mut reserved = if config.host.enabled {
        HostCollectors::new(&config.host, Roots::default()).specs()
    } else {
        Vec::new()
    };
    reserved.extend(host::self_process_specs());
    telemetry::check_rule_names(config, &reserved)
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

fn poll_context(p: &Prepared) -> poller::PollContext {
    let config = &p.config;
    poller::PollContext {
        max_body_bytes: config.limits.max_body_bytes,
        max_series: config.limits.max_series_per_target,
        global_labels: config
            .global
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        served: p.served.clone(),
    }
}

/// Publishes host collector reports through the host loop's slot; logs a
/// collector only when it fails or recovers. False (nothing published) when
/// the slot no longer owns its keys.
fn publish_host(
    slot: &SlotWriter,
    reports: Vec<host::CollectorReport>,
    own: Option<Vec<crate::model::Family>>,
) -> bool {
    let now = unix_now();
    let Some(mut inner) = slot.write() else {
        return false;
    };
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
        for (reason, n) in r.errors.nonzero() {
            *state.errors.entry(reason.as_str()).or_default() += n;
        }
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
    true
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

/// The host loop: collectors and remora's own process, one round per
/// interval. A round runs on the blocking pool and cannot be interrupted, but
/// the loop stops waiting for it at `shutdown`, and its result goes through
/// `slot`, so a round that ends after its source was stopped is dropped.
async fn run_host(
    mut host: Option<HostCollectors>,
    proc_root: PathBuf,
    interval: Duration,
    slot: SlotWriter,
    first_done: impl FnOnce(),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut first_done = Some(first_done);
    loop {
        let (h, reports, own) = tokio::select! {
            round = host_round(host.take(), proc_root.clone()) => round,
            _ = shutdown.changed() => return,
        };
        host = h;
        if !publish_host(&slot, reports, own) {
            return;
        }
        if let Some(done) = first_done.take() {
            done();
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The store keys the host loop of `host` writes.
fn host_keys(host: Option<&HostCollectors>) -> Vec<SlotKey> {
    let mut keys: Vec<SlotKey> = host
        .map(|h| h.collector_names())
        .unwrap_or_default()
        .into_iter()
        .map(|n| SlotKey::Collector(n.to_string()))
        .collect();
    keys.push(SlotKey::OwnProcess);
    keys
}

/// The running sources of one config: each is a task and the [`Slot`] that
/// owns its part of the store. Dropping `Sources` aborts every task and frees
/// every slot; [`Sources::stop`] does it in order, under one deadline.
struct Sources {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    slots: Vec<Slot>,
}

impl Sources {
    fn new() -> Self {
        Sources {
            stop: watch::channel(false).0,
            tasks: JoinSet::new(),
            slots: Vec::new(),
        }
    }

    /// Claims every source's slot (a source kept across a reload takes its
    /// state over from the old one) and starts its task.
    fn launch(p: Prepared, roots: &Roots, store: &Arc<Store>, ready: &Arc<Readiness>) -> Self {
        let mut sources = Sources::new();
        let ctx = poll_context(&p);
        let round = ready.arm(p.pollers.len() + 1);
        for poller in p.pollers {
            let slot = store.claim(vec![SlotKey::Target(poller.target.name.clone())]);
            let (writer, ready, rx, ctx) = (
                slot.writer(),
                ready.clone(),
                sources.stop.subscribe(),
                ctx.clone(),
            );
            sources.spawn(
                slot,
                poller::run(poller, ctx, writer, move || ready.one_done(round), rx),
            );
        }
        let slot = store.claim(host_keys(p.host.as_ref()));
        let (writer, ready, rx) = (slot.writer(), ready.clone(), sources.stop.subscribe());
        sources.spawn(
            slot,
            run_host(
                p.host,
                roots.proc.clone(),
                p.config.host.interval,
                writer,
                move || ready.one_done(round),
                rx,
            ),
        );
        sources
    }

    fn spawn(&mut self, slot: Slot, task: impl Future<Output = ()> + Send + 'static) {
        self.slots.push(slot);
        self.tasks.spawn(task);
    }

    /// Stops every source: their slots are freed first (what a removed source
    /// held is gone from the next scrape, and nothing a stopped source still
    /// does can be published), then all are told to stop at once and joined
    /// until `deadline`; those still running then are aborted. Returns how
    /// many were aborted.
    async fn stop(self, deadline: tokio::time::Instant) -> usize {
        let Sources {
            stop,
            mut tasks,
            slots,
        } = self;
        drop(slots);
        let _ = stop.send(true);
        let all = async { while tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout_at(deadline, all).await;
        let left = tasks.len();
        if left > 0 {
            tracing::warn!(sources = left, "sources did not stop in time; aborted");
            tasks.abort_all();
        }
        left
    }
}

/// The config file's text, or why it cannot be read.
async fn read_config(path: &Path) -> Result<String, String> {
    tokio::fs::read_to_string(path).await.map_err(|source| {
        config::LoadError::Read {
            path: path.display().to_string(),
            source,
        }
        .to_string()
    })
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// SIGHUP or `POST /-/reload`: always attempted.
    Request,
    /// A change seen by the watcher: attempted only when the file reads
    /// differently from the last attempt.
    Watch,
}

/// The supervisor's own handles.
struct Supervisor {
    options: Options,
    state: Arc<AppState>,
    sources: Option<Sources>,
    /// The text of the running config (None when it could not be read again
    /// at start-up).
    running: Option<String>,
    /// What the last attempt read: the text, or why it could not be read.
    last_read: Option<Result<String, String>>,
}

impl Supervisor {
    /// Loads the file again and swaps everything, or keeps the old config.
    async fn reload(&mut self, trigger: Trigger) -> Result<(), String> {
        let path = self.options.config_file.clone();
        let read = read_config(&path).await;
        if trigger == Trigger::Watch && self.last_read.as_ref() == Some(&read) {
            return Ok(());
        }
        self.last_read = Some(read.clone());
        let text = match read {
            Ok(text) if trigger == Trigger::Watch && Some(&text) == self.running.as_ref() => {
                // The running config's content is back: nothing to rebuild.
                self.record(&Ok(()));
                tracing::info!(file = %path.display(), "config file is back to the running config");
                return Ok(());
            }
            Ok(text) => Ok(text),
            Err(e) => Err(e),
        };
        let result = text.and_then(|text| self.try_reload(&text).map(|built| (text, built)));
        self.record(&result.as_ref().map(|_| ()).map_err(Clone::clone));
        let (text, (prepared, pipeline)) = match result {
            Ok(built) => built,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "config reload failed; the previous config keeps running");
                return Err(e);
            }
        };
        self.running = Some(text);
        self.state.renderer.swap_pipeline(pipeline);
        self.state.config.store(prepared.config.clone());
        let new = Sources::launch(
            prepared,
            &self.options.roots,
            &self.state.store,
            &self.state.ready,
        );
        if let Some(old) = self.sources.replace(new) {
            old.stop(tokio::time::Instant::now() + RELOAD_STOP_DEADLINE)
                .await;
        }
        tracing::info!(file = %path.display(), "config reloaded");
        Ok(())
    }

    /// Records a reload attempt for `remora_config_last_reload_*` and `/-/status`.
    fn record(&self, result: &Result<(), String>) {
        let mut inner = self.state.store.write();
        let now = unix_now();
        inner.reload.last_attempt = Some(now);
        inner.reload.last_successful = result.is_ok();
        match result {
            Ok(()) => {
                inner.reload.last_success_timestamp = now;
                inner.reload.last_error = None;
            }
            Err(e) => inner.reload.last_error = Some(e.clone()),
        }
    }

    fn try_reload(&self, text: &str) -> Result<(Prepared, Pipeline), String> {
        let path = &self.options.config_file;
        let config =
            config::load_text(text, path, &config::process_env).map_err(|e| e.to_string())?;
        let old = self.state.config.load();
        if config.server.listen != old.server.listen {
            tracing::warn!(
                "server.listen changed; the new address takes effect at the next restart"
            );
        }
        build(config, &self.options.roots, &self.state.store)
    }
}

/// Watches the config file's directory and asks for a reload when the file
/// itself or `..data` changes (a ConfigMap update swaps the `..data` symlink,
/// which gives no event on the file's own name); other files there (logs,
/// editors' temporary files) are ignored.
fn watch_config(path: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let Some(name) = path.file_name().map(ToOwned::to_owned) else {
        tracing::warn!(file = %path.display(), "cannot watch the config file: no file name");
        return None;
    };
    let ours = move |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| n == name.as_os_str() || n == "..data")
    };
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() && ev.paths.iter().any(&ours) {
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
    let running = read_config(&options.config_file).await.ok();
    let store = Store::new();
    mark_loaded(&store);
    let metrics_path = options
        .metrics_path
        .clone()
        .unwrap_or_else(|| config.server.metrics_path.clone());
    let ready = Arc::new(Readiness::default());
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
        last_read: running.clone().map(Ok),
        running,
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(reply) = reload_rx.recv() => {
                let r = sup.reload(Trigger::Request).await;
                let _ = reply.send(r);
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
    tokio::join!(drain, sources);
    sup.state.renderer.stop();
    Ok(())
}

/// The config in use was loaded: `remora_config_last_reload_successful` 1.
fn mark_loaded(store: &Store) {
    let mut inner = store.write();
    inner.reload.last_successful = true;
    inner.reload.last_success_timestamp = unix_now();
}

/// `remora once`: polls every source once and returns the exposition and
/// whether every source succeeded.
pub async fn once(config: Config, roots: Roots) -> Result<(Vec<u8>, bool), AppError> {
    client::install_crypto_provider();
    let store = Store::new();
    mark_loaded(&store);
    let (prepared, pipeline) = build(config, &roots, &store).map_err(AppError::Prepare)?;
    let ctx = poll_context(&prepared);
    let mut keys = host_keys(prepared.host.as_ref());
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
    let (_, reports, own) = host_round(prepared.host, roots.proc.clone()).await;
    let mut ok = reports.iter().all(|r| r.result.is_ok());
    publish_host(&writer, reports, own);
    while let Some(joined) = set.join_next().await {
        if let Ok((target, outcome)) = joined {
            ok &= outcome.result == crate::store::PollResult::Success;
            poller::publish(&writer, &target, outcome);
        }
    }
    let text = crate::render::render_once(&pipeline, &store)?;
    drop(slot);
    Ok((text, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        config::load_text(text, Path::new("t.yaml"), &|_| None).unwrap()
    }

    /// N sources that ignore the stop signal cost one deadline, not N: they
    /// are joined together and the rest is aborted; their slots are freed
    /// before anything waits.
    #[tokio::test(start_paused = true)]
    async fn stopping_stuck_sources_costs_one_deadline() {
        let store = Store::new();
        let mut sources = Sources::new();
        for i in 0..10 {
            let slot = store.claim(vec![SlotKey::Target(format!("t{i}"))]);
            slot.writer()
                .write()
                .unwrap()
                .targets
                .insert(format!("t{i}"), Default::default());
            sources.spawn(slot, std::future::pending());
        }
        assert_eq!(store.read().targets.len(), 10);
        let deadline = Duration::from_secs(5);
        let start = tokio::time::Instant::now();
        let store2 = store.clone();
        let check = tokio::spawn(async move { store2.read().targets.len() });
        let aborted = sources.stop(start + deadline).await;
        assert_eq!(aborted, 10);
        assert_eq!(tokio::time::Instant::now() - start, deadline);
        assert_eq!(check.await.unwrap(), 0, "slots freed before the wait");
        assert!(store.read().targets.is_empty());
    }

    /// Hanging polls (the first ones) and a host round stuck in a blocking
    /// read all stop on the signal: none is left for the deadline to abort,
    /// and nothing they held stays in the store.
    /// Opens a FIFO for writing without blocking, so a reader stuck on it
    /// goes on (a blocking thread left stuck would hang the runtime's drop).
    struct Unblock(PathBuf);

    impl Drop for Unblock {
        fn drop(&mut self) {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.0)
            {
                let _ = f.write_all(b"0.50 0.25 0.10 1/100 42\n");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hanging_polls_and_a_stuck_host_round_stop_at_once() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted_tx, accepted) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming() {
                held.push(s);
                let _ = accepted_tx.send(());
            }
        });
        let proc_dir = tempfile::tempdir().unwrap();
        let fifo = proc_dir.path().join("loadavg");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and mode.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let unblock = Unblock(fifo);
        let roots = Roots {
            proc: proc_dir.path().to_path_buf(),
            sys: proc_dir.path().join("sys"),
            cgroup: proc_dir.path().join("cgroup"),
            rootfs: proc_dir.path().to_path_buf(),
        };
        let targets: String = (0..5)
            .map(|i| format!("  - {{name: t{i}, url: 'http://{addr}/{i}', interval: 1h, timeout: 1h, metrics: [{{name: m, path: $.a}}]}}\n"))
            .collect();
        let cfg = config(&format!(
            "host: {{collectors: [load]}}\ntargets:\n{targets}"
        ));
        let store = Store::new();
        let ready = Arc::new(Readiness::default());
        let prepared = prepare(cfg, &roots).unwrap();
        let sources = Sources::launch(prepared, &roots, &store, &ready);
        tokio::task::spawn_blocking(move || {
            for _ in 0..5 {
                accepted.recv_timeout(Duration::from_secs(10)).unwrap();
            }
        })
        .await
        .unwrap();
        let aborted = sources
            .stop(tokio::time::Instant::now() + Duration::from_secs(30))
            .await;
        assert_eq!(aborted, 0);
        assert!(!ready.is_ready());
        {
            let inner = store.read();
            assert!(inner.targets.is_empty() && inner.collectors.is_empty());
        }
        // Let the stuck host round finish: its result has nowhere to go.
        drop(unblock);
        assert!(store.read().collectors.is_empty());
    }

    /// A reload before the first round ended starts a new round: the
    /// sources it stopped never count, the new ones do.
    #[test]
    fn readiness_counts_the_current_round_only() {
        let r = Readiness::default();
        let first = r.arm(2);
        r.one_done(first);
        let second = r.arm(1);
        r.one_done(first);
        assert!(!r.is_ready());
        r.one_done(second);
        assert!(r.is_ready());
        r.arm(3);
        assert!(r.is_ready(), "the latch is never unset");
    }
}
