//! Watching the config file (`--config.watch`).

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

/// Watches the config file's directory and asks for a reload when the file
/// itself or `..data` changes (a ConfigMap update swaps the `..data` symlink,
/// which gives no event on the file's own name); other files there (logs,
/// editors' temporary files) are ignored.
pub(crate) fn watch_config(
    path: &Path,
    tx: mpsc::Sender<()>,
) -> Option<notify::RecommendedWatcher> {
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
