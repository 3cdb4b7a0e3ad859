//! Open-file descriptors (issue 28, SPEC section 10): remora raises its
//! soft `RLIMIT_NOFILE` to the hard limit at start (as Prometheus and
//! node_exporter do), keeps [`RESERVE`] descriptors for its listener, the
//! scrapes' connections, the config file and the host collectors, and
//! bounds the target connections by what is left: a poll takes one of
//! [`poll_permits`] for its connection and gives it back when done. A poll
//! that finds no permit within its target's timeout is not made; it is
//! counted as `remora_target_polls_total{result="fd_limit"}` and logged
//! once. When a config has more targets than permits, its clients keep no
//! idle pooled connection ([`keep_idle_connections`]), so descriptors are
//! held only by polls in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

/// Descriptors kept out of the targets' reach: the listener and scrape
/// connections, the config file and its watcher, the OTLP push, the host
/// collectors' files, the runtime's own (epoll, eventfd, pipes).
pub const RESERVE: u64 = 64;

/// What [`raise`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit now.
    pub after: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Errors reading or raising the limit.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    #[error("cannot read the open-file limit: {0}")]
    Get(std::io::Error),
    #[error("cannot raise the open-file limit from {from} to {to}: {source}")]
    Set {
        from: u64,
        to: u64,
        #[source]
        source: std::io::Error,
    },
}

fn get() -> Result<libc::rlimit, FdLimitError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(FdLimitError::Get(std::io::Error::last_os_error()));
    }
    Ok(lim)
}

/// The most the kernel lets a soft limit be (an unlimited hard limit cannot
/// be a soft one on Linux).
fn ceiling(hard: u64) -> u64 {
    if hard != libc::RLIM_INFINITY {
        return hard;
    }
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// Raises the soft open-file limit to the hard limit. Call it first in
/// `main`, before any thread starts.
pub fn raise() -> Result<Raised, FdLimitError> {
    let lim = get()?;
    let (before, hard) = (lim.rlim_cur, lim.rlim_max);
    let to = ceiling(hard);
    if before >= to {
        return Ok(Raised {
            before,
            after: before,
            hard,
        });
    }
    let new = libc::rlimit {
        rlim_cur: to,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
        return Err(FdLimitError::Set {
            from: before,
            to,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(Raised {
        before,
        after: to,
        hard,
    })
}

/// Descriptors open now (entries of /proc/self/fd); 0 when unreadable.
pub fn in_use() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// How many target connections the limit allows: the soft limit less the
/// reserve and what is open already, at least 1.
pub fn budget(soft: u64, in_use: u64) -> usize {
    let left = soft.saturating_sub(RESERVE).saturating_sub(in_use);
    usize::try_from(left)
        .unwrap_or(usize::MAX)
        .clamp(1, Semaphore::MAX_PERMITS)
}

static PERMITS: OnceLock<(Arc<Semaphore>, usize)> = OnceLock::new();

fn permits() -> &'static (Arc<Semaphore>, usize) {
    PERMITS.get_or_init(|| {
        let soft = get().map_or(1024, |l| l.rlim_cur);
        let n = budget(soft, in_use());
        tracing::debug!(permits = n, soft_limit = soft, "target connections bounded");
        (Arc::new(Semaphore::new(n)), n)
    })
}

/// The permits of target connections, one per poll in flight, shared by
/// every config generation (sized at first use from the limit then).
pub fn poll_permits() -> &'static Arc<Semaphore> {
    &permits().0
}

/// How many target connections may be open at once.
pub fn permits_total() -> usize {
    permits().1
}

/// Whether clients of a config with `targets` targets keep an idle
/// connection between polls: only when every target can have one.
pub fn keep_idle_connections(targets: usize) -> bool {
    targets <= permits_total()
}

static LOGGED: AtomicBool = AtomicBool::new(false);

/// Logs, once in the process's life, that a poll found no descriptor.
pub fn log_refused_once(target: &str) {
    if !LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            target = target,
            permits = permits_total(),
            "open-file limit reached: polls wait for a free descriptor and those that find none in their timeout are skipped (remora_target_polls_total{{result=\"fd_limit\"}}); raise the limit (ulimit -n / LimitNOFILE) or split the targets"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_limit_less_the_reserve_and_what_is_open() {
        assert_eq!(budget(256, 10), 256 - 64 - 10);
        assert_eq!(budget(1024, 0), 960);
        assert_eq!(budget(60, 10), 1);
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let before = get().unwrap();
        let r = raise().unwrap();
        assert!(r.after >= r.before);
        assert_eq!(r.before, before.rlim_cur);
        assert_eq!(get().unwrap().rlim_cur, r.after);
    }
}
