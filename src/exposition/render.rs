//! The render thread: the exposition is rendered once per change of state, on
//! a thread of its own, and published for every scrape to share.
//!
//! A dedicated `std::thread` sleeps until the store's generation changes (any
//! write, or a pipeline swap after a reload; a burst of writes wakes it once),
//! renders the text, compresses it with gzip once, and publishes the gzip
//! (only: the plain text, 6-7 MB at 100k series, is not kept; a client that
//! does not accept gzip gets it inflated as it reads) with a
//! lock-free swap. A scrape only loads the latest complete render: it never
//! renders, never waits for a render, and never touches the async workers'
//! blocking pool, so nothing queued there (bcrypt checks, host collectors,
//! large JSON bodies) can hold a scrape. When a render leaves nothing more
//! to render, the thread trims the heap (`crate::memory::trim`) before it
//! sleeps, so what the render freed is not kept resident between rounds.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;

use super::negotiate::Variant;
use super::pipeline::Pipeline;
use super::snapshot::Snapshot;
use super::ExpositionError;
use crate::store::Store;

/// Why the latest render has no text.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot render metrics: {0}")]
    Render(#[from] ExpositionError),
    #[error("cannot compress metrics: {0}")]
    Gzip(#[from] std::io::Error),
}

/// One rendered exposition, kept gzip-compressed only.
#[derive(Debug)]
pub struct Rendered {
    /// The store generation this render includes (every write up to it).
    pub generation: u64,
    /// The text, gzip-compressed.
    pub gzip: Bytes,
    /// The length of the plain text.
    pub plain_len: usize,
}

/// The latest render: the exposition, or why it could not be rendered.
pub type Latest = Result<Rendered, RenderError>;

struct Shared {
    store: Arc<Store>,
    pipeline: ArcSwap<Pipeline>,
    latest: ArcSwap<Latest>,
    /// The latest render of each variant a scrape asked for (by
    /// [`Variant::index`]), besides text 0.0.4's in `latest`.
    variants: Vec<ArcSwapOption<Rendered>>,
    /// Bit [`Variant::index`] set: a scrape asked for that variant once.
    wanted: AtomicU32,
    /// The generation of the latest published render, for the few callers
    /// that wait for one (readiness, `POST /-/reload`), never for a scrape.
    published: tokio::sync::watch::Sender<u64>,
    renders: AtomicU64,
    /// How many times the thread trimmed the heap before sleeping.
    trims: AtomicU64,
    stop: AtomicBool,
    /// `--web.utf8-names`: the semantic-convention names (`system.cpu.time`)
    /// under the escapings other than `underscores`; without it every
    /// format serves the legacy names of text 0.0.4.
    utf8_names: AtomicBool,
}

impl Shared {
    /// Renders the current state and publishes it; returns its generation.
    fn render_and_publish(&self, gzip: &mut Gzip) -> u64 {
        let wanted = wanted_variants(self.wanted.load(Ordering::Acquire));
        let (generation, latest, variants) =
            render_latest(&self.pipeline.load(), &self.store, gzip, &wanted);
        for (v, r) in variants {
            if let Some(slot) = self.variants.get(v.index()) {
                slot.store(r.map(Arc::new));
            }
        }
        self.latest.store(Arc::new(latest));
        self.renders.fetch_add(1, Ordering::Relaxed);
        self.published.send_replace(generation);
        generation
    }

    fn run(&self, mut gzip: Gzip) {
        let mut seen = self.published.borrow().to_owned();
        loop {
            self.store
                .wait_change(seen, || self.stop.load(Ordering::Acquire));
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            seen = self.render_and_publish(&mut gzip);
            // Nothing more to render: what the render freed (the text,
            // the snapshot's own series) goes back to the system before the
            // thread sleeps, so it is not kept resident between rounds
            // (docs/performance.md, "Thousands of targets").
            if self.store.generation() == seen {
                crate::memory::trim();
                self.trims.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The variants of the bits of `wanted` whose body is not text 0.0.4's.
fn wanted_variants(wanted: u32) -> Vec<Variant> {
    Variant::all()
        .filter(|v| wanted & (1 << v.index()) != 0 && !v.body_is_004())
        .collect()
}

/// One variant's render, `None` when it failed (text 0.0.4 is served then).
type VariantRender = (Variant, Option<Rendered>);

/// Renders and compresses the current state, text 0.0.4 and each of
/// `variants` from it; returns the generation rendered.
fn render_latest(
    pipeline: &Pipeline,
    store: &Store,
    gzip: &mut Gzip,
    variants: &[Variant],
) -> (u64, Latest, Vec<VariantRender>) {
    // Read before rendering: every write up to it is complete once the
    // render has the store's lock, so the render includes them all.
    let generation = store.generation();
    let snap = pipeline.snapshot(store);
    let text = render_snapshot(pipeline, &snap);
    let mut others = Vec::new();
    if let Ok(text) = &text {
        for (v, body) in pipeline.convert(&snap, text, variants) {
            let r = gzip.compress(&body).map(|gz| Rendered {
                generation,
                gzip: gz,
                plain_len: body.len(),
            });
            if let Err(e) = &r {
                tracing::error!(error = %e, format = v.content_type(), "cannot compress metrics");
            }
            others.push((v, r.ok()));
        }
    }
    let latest = text.map_err(RenderError::from).and_then(|text| {
        Ok(Rendered {
            generation,
            gzip: gzip.compress(&text)?,
            plain_len: text.len(),
        })
    });
    if let Err(e) = &latest {
        tracing::error!(error = %e, "cannot render metrics");
    }
    (generation, latest, others)
}

/// The render's gzip compressor: one deflate state (about 300 KB of window
/// and hash tables), reset and used again by every render. A compressor made
/// per render left its freed tables between longer-lived allocations: the
/// heap of a host-only remora grew by 312 KB a render for its first few
/// renders, in half the runs.
pub(crate) struct Gzip(flate2::Compress);

impl Gzip {
    pub(crate) fn new() -> Self {
        Gzip(flate2::Compress::new_gzip(flate2::Compression::fast(), 15))
    }

    /// `text` as one gzip member (header, deflate, CRC-32 and length).
    pub(crate) fn compress(&mut self, text: &[u8]) -> std::io::Result<Bytes> {
        let c = &mut self.0;
        c.reset();
        let mut out = Vec::with_capacity(text.len() / 4 + 64);
        loop {
            let read = usize::try_from(c.total_in()).unwrap_or(text.len());
            let status = c
                .compress_vec(
                    &text[read.min(text.len())..],
                    &mut out,
                    flate2::FlushCompress::Finish,
                )
                .map_err(std::io::Error::other)?;
            match status {
                flate2::Status::StreamEnd => break,
                // Output full: room for as much again.
                flate2::Status::Ok | flate2::Status::BufError => {
                    out.reserve(out.capacity().max(4096))
                }
            }
        }
        // Kept until the next render: without the capacity guessed above.
        out.shrink_to_fit();
        Ok(Bytes::from(out))
    }
}

/// Owns the render thread and the latest render of the current pipeline.
pub struct Renderer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Set once readiness saw a render that includes the first poll round.
    ready_rendered: AtomicBool,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Renderer {
    /// Renders the current state once (so the very first scrape has a
    /// complete render), then starts the render thread.
    pub fn start(store: Arc<Store>, pipeline: Pipeline) -> Self {
        let mut gzip = Gzip::new();
        let (generation, first, _) = render_latest(&pipeline, &store, &mut gzip, &[]);
        let (published, _) = tokio::sync::watch::channel(generation);
        let shared = Arc::new(Shared {
            store,
            pipeline: ArcSwap::from_pointee(pipeline),
            latest: ArcSwap::from_pointee(first),
            variants: (0..Variant::COUNT)
                .map(|_| ArcSwapOption::empty())
                .collect(),
            wanted: AtomicU32::new(0),
            published,
            renders: AtomicU64::new(1),
            trims: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            utf8_names: AtomicBool::new(false),
        });
        let worker = shared.clone();
        // Its own thread at the background nice (crate::sched), so that a
        // render never holds back a poll or a scrape.
        let thread = crate::sched::spawn("remora-render", move || worker.run(gzip))
            .map_err(|e| tracing::error!(error = %e, "cannot start the render thread; metrics stay at the first render"))
            .ok();
        Renderer {
            shared,
            thread: Mutex::new(thread),
            ready_rendered: AtomicBool::new(false),
        }
    }

    /// The latest complete render; lock-free, never waits.
    pub fn latest(&self) -> Arc<Latest> {
        self.shared.latest.load_full()
    }

    /// Serves the semantic-convention names (`--web.utf8-names`) from now on.
    pub fn with_utf8_names(self, on: bool) -> Self {
        self.shared.utf8_names.store(on, Ordering::Release);
        self
    }

    /// Whether `--web.utf8-names` is on.
    pub fn utf8_names(&self) -> bool {
        self.shared.utf8_names.load(Ordering::Acquire)
    }

    /// The latest render of the body `variant` is served (see
    /// [`Variant::body`]): text 0.0.4's, or that variant's. The first ask
    /// for a body other than 0.0.4's makes the render thread render it from
    /// then on (it renders at once); until its first render exists this
    /// gives `None`, and the scrape is served text 0.0.4, a valid answer
    /// to every `Accept` remora negotiates. Never waits.
    pub fn variant(&self, variant: Variant) -> Option<Arc<Rendered>> {
        let body = variant.body(self.utf8_names());
        if body.body_is_004() {
            // The 0.0.4 render under the variant's Content-Type (text
            // 1.0.0 with legacy names): the same bytes, shared.
            return match &*self.latest() {
                Ok(r) => Some(Arc::new(Rendered {
                    generation: r.generation,
                    gzip: r.gzip.clone(),
                    plain_len: r.plain_len,
                })),
                Err(_) => None,
            };
        }
        let bit = 1 << body.index();
        if self.shared.wanted.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
            // Wakes the render thread: a new render, with this variant.
            self.shared.store.touch();
        }
        self.shared.variants.get(body.index())?.load_full()
    }

    /// The current pipeline.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.shared.pipeline.load_full()
    }

    /// Replaces the pipeline (after a reload); the render thread renders it.
    pub fn swap_pipeline(&self, pipeline: Pipeline) {
        self.shared.pipeline.store(Arc::new(pipeline));
        self.shared.store.touch();
    }

    /// How many times the render thread trimmed the heap (after a render,
    /// the store unchanged since; tests count them).
    pub fn trims(&self) -> u64 {
        self.shared.trims.load(Ordering::Relaxed)
    }

    /// How many renders were made (tests count them).
    pub fn renders(&self) -> u64 {
        self.shared.renders.load(Ordering::Relaxed)
    }

    /// Waits at most `limit` until a render of `generation` or later is
    /// published. For readiness and `POST /-/reload`, never for a scrape.
    pub async fn wait_rendered(&self, generation: u64, limit: Duration) -> bool {
        let mut rx = self.shared.published.subscribe();
        let done = tokio::time::timeout(limit, rx.wait_for(|g| *g >= generation)).await;
        matches!(done, Ok(Ok(_)))
    }

    /// Readiness: whether a render of the current state was seen once (latched,
    /// so readiness never flaps when a later render is slow).
    pub async fn ready(&self, limit: Duration) -> bool {
        if self.ready_rendered.load(Ordering::Acquire) {
            return true;
        }
        let ok = self
            .wait_rendered(self.shared.store.generation(), limit)
            .await;
        if ok {
            self.ready_rendered.store(true, Ordering::Release);
        }
        ok
    }

    /// Stops the render thread and waits for it (at most one render in progress).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.store.notify_change();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Renders synchronously, without a thread (for `remora once`).
pub fn render_once(pipeline: &Pipeline, store: &Store) -> Result<Vec<u8>, ExpositionError> {
    render_snapshot(pipeline, &pipeline.snapshot(store))
}

/// Renders synchronously the body of `variant` (`utf8_names`:
/// `--web.utf8-names`; `remora once --format`, benchmarks and tests).
pub fn render_variant(
    pipeline: &Pipeline,
    store: &Store,
    variant: Variant,
    utf8_names: bool,
) -> Result<Vec<u8>, ExpositionError> {
    let variant = variant.body(utf8_names);
    let snap = pipeline.snapshot(store);
    let text = render_snapshot(pipeline, &snap)?;
    if variant.body_is_004() {
        return Ok(text);
    }
    Ok(pipeline
        .convert(&snap, &text, &[variant])
        .pop()
        .map(|(_, body)| body)
        .unwrap_or(text))
}

/// The pipeline's families merged with those of `format: prometheus`
/// targets, all written from `snap`, in text 0.0.4.
fn render_snapshot(pipeline: &Pipeline, snap: &Snapshot) -> Result<Vec<u8>, ExpositionError> {
    let own = pipeline.gather(snap)?;
    Ok(pipeline.encode(own, snap.passthrough()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use std::time::Instant;

    fn renderer() -> (Arc<Store>, Renderer) {
        let store = Store::new();
        let config = parse_str("", std::path::Path::new("t.yaml"), &|_| None).unwrap();
        let pipeline = Pipeline::build(&config, &[], &Default::default(), store.clone()).unwrap();
        (store.clone(), Renderer::start(store, pipeline))
    }

    fn plain(r: &Rendered) -> String {
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.gzip[..]), &mut plain)
            .unwrap();
        assert_eq!(plain.len(), r.plain_len);
        plain
    }

    fn text(r: &Renderer) -> String {
        match &*r.latest() {
            Ok(r) => plain(r),
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits for the render thread to publish `generation`.
    fn wait_generation(r: &Renderer, generation: u64) -> Arc<Latest> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let latest = r.latest();
            if latest.as_ref().as_ref().unwrap().generation >= generation {
                return latest;
            }
            assert!(
                Instant::now() < deadline,
                "generation {generation} never rendered"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn one_compressor_gzips_render_after_render() {
        // Texts larger than the first guess of the output's size, tiny and
        // empty, one after the other through the same deflate state: each
        // is a whole gzip member of its own text, nothing carried over.
        let mut rnd = 7u64;
        let noisy: Vec<u8> = (0..300_000)
            .map(|_| {
                rnd = rnd
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rnd >> 56) as u8
            })
            .collect();
        let series = "remora_x{a=\"1\"} 1\n".repeat(20_000).into_bytes();
        let mut gz = Gzip::new();
        for text in [&noisy[..], b"a", b"", &series[..], &noisy[..1000]] {
            let out = gz.compress(text).unwrap();
            assert_eq!(&out[..2], &[0x1f, 0x8b], "a gzip header");
            let mut back = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&out[..]), &mut back)
                .unwrap();
            assert_eq!(back, text);
        }
        assert!(gz.compress(&series).unwrap().len() < series.len() / 20);
    }

    #[test]
    fn first_render_is_ready_before_start_returns() {
        let (_, r) = renderer();
        assert_eq!(r.renders(), 1);
        assert!(text(&r).contains("remora_build_info"));
    }

    #[test]
    fn renders_once_per_change_and_gzips_once() {
        let (store, r) = renderer();
        let a = r.latest();
        let b = r.latest();
        assert!(Arc::ptr_eq(&a, &b), "no change, no new render");
        store.write().reload.last_successful = true;
        let c = wait_generation(&r, store.generation());
        assert!(!Arc::ptr_eq(&a, &c), "a change renders again");
        let c = c.as_ref().as_ref().unwrap();
        assert!(plain(c).contains("remora_config_last_reload_successful 1"));
    }

    #[test]
    fn the_heap_is_trimmed_when_a_render_leaves_nothing_to_render() {
        let (store, r) = renderer();
        assert_eq!(r.trims(), 0, "the first render, before the thread");
        store.write().reload.last_successful = true;
        wait_generation(&r, store.generation());
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.trims() == 0 {
            assert!(Instant::now() < deadline, "no trim after the render");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_burst_of_writes_is_coalesced() {
        let (store, r) = renderer();
        // Hold the store: the render thread wakes and waits for the writer.
        let mut w = store.write();
        for _ in 0..100 {
            store.touch();
        }
        w.reload.last_successful = true;
        drop(w);
        wait_generation(&r, store.generation());
        assert!(r.renders() <= 3, "{} renders for one burst", r.renders());
    }

    #[test]
    fn stop_ends_the_thread() {
        let (store, r) = renderer();
        r.stop();
        assert!(r.thread.lock().unwrap().is_none(), "joined");
        let n = r.renders();
        store.touch();
        assert_eq!(r.renders(), n);
    }
}
