//! The supervisor: reloads the config on request (SIGHUP, `POST /-/reload`,
//! a watched file change) as a transaction, and records each attempt.

use std::path::Path;
use std::sync::Arc;

use super::build::{build, BuildError, Compiled, Prepared};
use super::sources::Sources;
use super::{Options, RELOAD_STOP_DEADLINE};
use crate::config;
use crate::exposition::Pipeline;
use crate::server::AppState;
use crate::store::unix_now;

/// How long after a reload the heap is trimmed.
const TRIM_AFTER_RELOAD: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a reload was refused; the previous config keeps running.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read, is empty, or is not a valid config.
    #[error("{0}")]
    Load(#[from] config::LoadError),
    /// The config is valid but something it needs could not be built.
    #[error("{0}")]
    Build(#[from] BuildError),
}

/// The config file's text, or why it cannot be read.
/// The config file's text (at most `config::limits::MAX_CONFIG_BYTES`), or
/// why it cannot be read.
pub(crate) async fn read_config(path: &Path) -> Result<String, config::LoadError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || config::load::read_file(&owned))
        .await
        .unwrap_or_else(|e| {
            Err(config::LoadError::Read {
                path: path.display().to_string(),
                source: std::io::Error::other(e),
            })
        })
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// SIGHUP or `POST /-/reload`: always attempted.
    Request,
    /// A change seen by the watcher: attempted only when the file reads
    /// differently from the last attempt.
    Watch,
}

/// The supervisor's own handles.
pub(crate) struct Supervisor {
    pub(crate) options: Options,
    pub(crate) state: Arc<AppState>,
    pub(crate) sources: Option<Sources>,
    /// The text of the running config (None when it could not be read again
    /// at start-up).
    /// Shared with `last_read` when they are the same text (at 2,000
    /// targets the file is 0.8 MB).
    pub(crate) running: Option<Arc<str>>,
    /// What the last attempt read: the text, or why it could not be read.
    pub(crate) last_read: Option<Result<Arc<str>, String>>,
    /// The running pipeline's OTLP push, if any.
    pub(crate) otlp: Option<crate::otlp::Handle>,
    /// The address the listener is bound to (None when unknown).
    pub(crate) listen: Option<String>,
    /// The running generation's compiled rule lists: a reload reuses those
    /// of unchanged rules.
    pub(crate) compiled: Compiled,
}

/// A target polling remora's own listen address and telemetry path as it
/// runs (`--web.listen-address`, `--web.telemetry-path` included) is refused.
pub(crate) fn self_scrape(
    config: &config::Config,
    listen: Option<&str>,
    metrics_path: &str,
) -> Result<(), config::LoadError> {
    let Some(listen) = listen else { return Ok(()) };
    let errors = config::limits::self_scrape_errors(config, listen, metrics_path);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(config::LoadError::Invalid(errors))
    }
}

impl Supervisor {
    /// Loads the file again and swaps everything, or keeps the old config.
    pub(crate) async fn reload(&mut self, trigger: Trigger) -> Result<(), ReloadError> {
        let path = self.options.config_file.clone();
        let read = read_config(&path).await.map(Arc::<str>::from);
        let seen = read.as_ref().map(Arc::clone).map_err(ToString::to_string);
        if trigger == Trigger::Watch && self.last_read.as_ref() == Some(&seen) {
            return Ok(());
        }
        self.last_read = Some(seen);
        let text = match read {
            Ok(text) if trigger == Trigger::Watch && Some(&text) == self.running.as_ref() => {
                // The running config's content is back: nothing to rebuild.
                self.record(Ok(()));
                tracing::info!(file = %path.display(), "config file is back to the running config");
                return Ok(());
            }
            Ok(text) => Ok(text),
            Err(e) => Err(ReloadError::from(e)),
        };
        let result = text.and_then(|text| self.try_reload(&text).map(|built| (text, built)));
        self.record(result.as_ref().map(|_| ()));
        let (text, (mut prepared, pipeline)) = match result {
            Ok(built) => built,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "config reload failed; the previous config keeps running");
                return Err(e);
            }
        };
        self.running = Some(text);
        // The old pipeline's push stops before it is dropped (its final
        // export returns at once); the new one's counters carry on.
        if let Some(old) = self.otlp.take() {
            old.close();
        }
        self.otlp = prepared.otlp.take();
        self.compiled = std::mem::take(&mut prepared.compiled);
        match self.otlp {
            Some(_) => {
                self.state
                    .store
                    .write()
                    .otlp
                    .get_or_insert_with(Default::default);
            }
            None => self.state.store.write().otlp = None,
        }
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
        // The old generation is gone once the render thread has moved to the
        // new pipeline and the replaced states are dropped (on the blocking
        // pool): then its memory goes back to the system.
        tokio::spawn(async {
            tokio::time::sleep(TRIM_AFTER_RELOAD).await;
            let _ = tokio::task::spawn_blocking(crate::memory::trim).await;
        });
        tracing::info!(file = %path.display(), "config reloaded");
        Ok(())
    }

    /// Records a reload attempt for `remora_config_last_reload_*` and `/-/status`.
    fn record(&self, result: Result<(), &ReloadError>) {
        let mut inner = self.state.store.write();
        let now = unix_now();
        inner.reload.last_attempt = Some(now);
        inner.reload.last_successful = result.is_ok();
        match result {
            Ok(()) => {
                inner.reload.last_success_timestamp = now;
                inner.reload.last_error = None;
            }
            Err(e) => inner.reload.last_error = Some(e.to_string()),
        }
    }

    fn try_reload(&self, text: &str) -> Result<(Prepared, Pipeline), ReloadError> {
        let path = &self.options.config_file;
        let config = config::load_text(text, path, &config::process_env)?;
        self_scrape(&config, self.listen.as_deref(), &self.state.metrics_path)?;
        let old = self.state.config.load();
        if config.server.listen != old.server.listen {
            tracing::warn!(
                "server.listen changed; the new address takes effect at the next restart"
            );
        }
        Ok(build(
            config,
            &self.options.roots,
            &self.state.store,
            true,
            &self.compiled,
        )?)
    }
}
