//! The HTTP server (hyper 1.x): `/metrics`, `/`, `/-/healthy`, `/-/ready`,
//! `/-/status`, `/-/reload`.
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests run it on
//! port 0. On shutdown it stops accepting, lets in-flight requests finish for
//! at most 5 seconds, and returns.
//!
//! Rooms: `handlers` (routes and pages), `conns` (the connection table and
//! its cap), `inflate` (the plain exposition made from the kept gzip as it is
//! sent); this module accepts and drives connections.

mod conns;
mod handlers;
mod inflate;
mod pages;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::exposition::Renderer;
use crate::store::Store;
use crate::web::WebConfig;
use conns::{Conns, Slot, SlotGuard, BUSY, FRESH, KEPT};
pub use handlers::handle;

/// How long in-flight requests may take after shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of [`ServeLimits::header_read_timeout`] (kubert's admin server uses 2 s too).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Default of `--web.max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// How long readiness and `POST /-/reload` wait for the render of the state
/// they report (a scrape never waits).
const RENDER_WAIT: Duration = Duration::from_secs(2);

/// A reload request: answered with Ok or the text of the
/// [`ReloadError`](crate::app::ReloadError) (the server only shows it).
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the handlers share.
pub struct AppState {
    pub renderer: Renderer,
    pub store: Arc<Store>,
    /// Latched once the config is loaded and the first poll round was attempted.
    pub ready: Arc<crate::readiness::Readiness>,
    pub config: ArcSwap<Config>,
    pub metrics_path: String,
    pub started: Instant,
    pub lifecycle: bool,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub web: WebConfig,
    /// Connection limits (see [`serve`]).
    pub limits: ServeLimits,
    /// `--web.exposition-format`: negotiate, or the format pinned.
    pub exposition_format: crate::exposition::FormatPin,
}

/// How many connections, and how long a client may idle.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// `--web.max-connections`: open connections at most.
    pub max_connections: usize,
    /// How long a client may take to send its request headers (and, before
    /// that, its TLS handshake), and how long a kept-alive connection may idle.
    pub header_read_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// Why a connection stops before its client closes it.
enum Stop {
    Evicted,
    Shutdown,
}

/// Serves one connection until it ends, it is evicted, or the server stops.
/// An evicted connection that never sent a request is dropped at once; any
/// other is closed gracefully (a request in flight is answered first).
async fn drive<I, S, B>(
    conn: hyper::server::conn::http1::Connection<I, S>,
    slot: &Slot,
    shutdown: &mut watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    let stop = tokio::select! {
        _ = conn.as_mut() => return,
        _ = slot.evict.notified() => Stop::Evicted,
        _ = shutdown.wait_for(|s| *s) => Stop::Shutdown,
    };
    if matches!(stop, Stop::Evicted) && slot.state.load(Ordering::Acquire) == FRESH {
        return;
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// One accepted connection: TLS handshake if configured, then HTTP/1.
async fn connection(
    stream: TcpStream,
    state: Arc<AppState>,
    http: hyper::server::conn::http1::Builder,
    tls: Option<tokio_rustls::TlsAcceptor>,
    slot: Arc<Slot>,
    guard: SlotGuard,
    mut shutdown: watch::Receiver<bool>,
) {
    let handshake_timeout = state.limits.header_read_timeout;
    let service = {
        let (slot, conns) = (slot.clone(), guard.conns.clone());
        hyper::service::service_fn(move |req| {
            let (state, slot, conns) = (state.clone(), slot.clone(), conns.clone());
            async move {
                slot.state.store(BUSY, Ordering::Release);
                // Every response says which process answered (`crate::instance`).
                let resp = handle(state, req).await.map(|mut r| {
                    r.headers_mut()
                        .insert(crate::instance::HEADER, crate::instance::header_value());
                    r
                });
                slot.state.store(KEPT, Ordering::Release);
                // A client waiting for room may now take this connection's.
                conns.changed.notify_one();
                resp
            }
        })
    };
    // Dropped when this future ends or its task is aborted: frees the slot.
    let _guard = guard;
    match tls {
        None => {
            let conn = http.serve_connection(TokioIo::new(stream), service);
            drive(conn, &slot, &mut shutdown).await;
        }
        Some(acceptor) => {
            // The handshake counts as idle: evictable, and bounded by the
            // header-read timeout.
            let stream = tokio::select! {
                done = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)) => match done {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                _ = slot.evict.notified() => return,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let conn = http.serve_connection(TokioIo::new(stream), service);
            drive(conn, &slot, &mut shutdown).await;
        }
    }
}

/// Serves until `shutdown` completes, then drains for at most [`DRAIN_TIMEOUT`].
///
/// At most `state.limits.max_connections` connections are open at once. A
/// client must send its request headers (after its TLS handshake) within the
/// header-read timeout (2 s), and a kept-alive connection is closed after
/// idling as long. When the cap is reached, a new connection is admitted by closing
/// the oldest one that never sent a request (else the oldest kept-alive one
/// between requests); a connection with a request in flight is never closed
/// for room. When every connection has a request in flight, the new one waits
/// (accepted, not served, and nothing more is accepted) until one ends.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let conns = Arc::new(Conns::new(state.limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let tls = state.web.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    let mut next_id: u64 = 0;
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        tokio::select! {
            _ = conns.make_room() => {}
            _ = &mut shutdown => break,
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let (slot, guard) = conns.admit(next_id);
        let task = tokio::spawn(connection(
            stream,
            state.clone(),
            http.clone(),
            tls.clone(),
            slot,
            guard,
            stop_rx.clone(),
        ));
        conns.set_abort(next_id, task.abort_handle());
    }
    drop(listener);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, conns.drained())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within 5s; closing them");
        conns.abort_all();
    }
}
