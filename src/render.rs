//! The render cache: the exposition is rendered at most once per change of
//! state and shared by every concurrent scrape; its gzip form is compressed
//! once, on first demand.
//!
//! Rendering (collecting the instruments, encoding, gzip) is CPU work and
//! runs off the async threads. A scrape only ever waits for a render of the
//! latest snapshot, never for a target.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::store::Store;
use crate::telemetry::{Pipeline, TelemetryError};

/// One rendered exposition.
#[derive(Debug)]
pub struct Rendered {
    pub generation: u64,
    pub text: Bytes,
    gzip: OnceLock<Bytes>,
}

impl Rendered {
    /// The gzip-compressed text, compressed once and shared.
    pub fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.text.len() / 4),
                    flate2::Compression::fast(),
                );
                // Writing to a Vec cannot fail.
                let _ = enc.write_all(&self.text);
                Bytes::from(enc.finish().unwrap_or_default())
            })
            .clone()
    }
}

/// Renders and caches the exposition of the current pipeline.
pub struct Renderer {
    store: Arc<Store>,
    pipeline: ArcSwap<Pipeline>,
    cache: Mutex<Option<Arc<Rendered>>>,
    /// Serialises renders so concurrent scrapes share one.
    render_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Renderer {
    pub fn new(store: Arc<Store>, pipeline: Pipeline) -> Self {
        Renderer {
            store,
            pipeline: ArcSwap::from_pointee(pipeline),
            cache: Mutex::new(None),
            render_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Replaces the pipeline (after a reload) and invalidates the cache.
    pub fn swap_pipeline(&self, pipeline: Pipeline) {
        self.pipeline.store(Arc::new(pipeline));
        self.store.touch();
    }

    fn cached(&self, generation: u64) -> Option<Arc<Rendered>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .as_ref()
            .filter(|r| r.generation == generation)
            .cloned()
    }

    /// The exposition of the latest state, rendered if it changed.
    pub async fn get(&self) -> Result<Arc<Rendered>, TelemetryError> {
        let generation = self.store.generation();
        if let Some(r) = self.cached(generation) {
            return Ok(r);
        }
        let _guard = self.render_lock.lock().await;
        // Another scrape may have rendered while this one waited.
        let generation = self.store.generation();
        if let Some(r) = self.cached(generation) {
            return Ok(r);
        }
        let pipeline = self.pipeline.load_full();
        let store = self.store.clone();
        let text = tokio::task::spawn_blocking(move || render_all(&pipeline, &store))
            .await
            .map_err(|e| TelemetryError::Exporter(format!("render task failed: {e}")))??;
        let rendered = Arc::new(Rendered {
            generation,
            text: Bytes::from(text),
            gzip: OnceLock::new(),
        });
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(rendered.clone());
        Ok(rendered)
    }

    /// Renders without the cache (for `remora once`).
    pub fn render_now(&self) -> Result<Vec<u8>, TelemetryError> {
        render_all(&self.pipeline.load(), &self.store)
    }
}

/// The pipeline's families merged with those of `format: prometheus` targets.
fn render_all(pipeline: &Pipeline, store: &Store) -> Result<Vec<u8>, TelemetryError> {
    // Gathering runs the callbacks, which read the store: not under the lock.
    let own = pipeline.gather();
    let inner = store.read();
    pipeline.encode(
        own,
        inner
            .targets
            .values()
            .filter_map(|t| t.passthrough.as_deref().map(Vec::as_slice)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn renderer() -> (Arc<Store>, Renderer) {
        let store = Store::new();
        let config = parse_str("", std::path::Path::new("t.yaml"), &|_| None).unwrap();
        let pipeline = Pipeline::build(&config, &[], &Default::default(), store.clone()).unwrap();
        (store.clone(), Renderer::new(store, pipeline))
    }

    #[tokio::test]
    async fn renders_once_per_change_and_gzips_once() {
        let (store, r) = renderer();
        let a = r.get().await.unwrap();
        let b = r.get().await.unwrap();
        assert!(Arc::ptr_eq(&a, &b), "no change, no new render");
        assert_eq!(
            a.gzip().as_ptr(),
            b.gzip().as_ptr(),
            "gzip is compressed once"
        );
        store.write().reload.last_successful = true;
        let c = r.get().await.unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "a change renders again");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&c.gzip()[..]), &mut plain)
            .unwrap();
        assert_eq!(plain, c.text);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_gets_share_one_render() {
        let (store, r) = renderer();
        store.touch();
        let r = Arc::new(r);
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let r = r.clone();
                tokio::spawn(async move { r.get().await.unwrap() })
            })
            .collect();
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap());
        }
        assert!(results.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
    }
}
