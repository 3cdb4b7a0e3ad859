//! How remora's background threads are scheduled.
//!
//! The work a scrape or a poll does not wait for runs on threads of its
//! own, started by [`spawn`]: the render thread (`remora-render`,
//! `exposition::render`) and the drop thread (`remora-drop`, [`drops`]),
//! which frees what each poll replaced. [`spawn`] lowers the new thread's
//! priority to [`background_nice`] (the process's nice plus 10, at most
//! 19) with `setpriority` on its thread id, under `SCHED_OTHER` (the policy
//! is not changed: never `SCHED_IDLE`, which a busy node's other processes
//! can starve for seconds). A nice-10 thread still gets about a tenth of
//! the share of a nice-0 thread on the same core, so it cannot fall behind
//! without bound, and a scrape or a poll on the async threads is scheduled
//! ahead of it. A failure to lower it is logged at debug and ignored. A
//! thread started from a background thread would inherit its nice: they
//! start none.
//!
//! [`polls`] bounds how many polls of a config of thousands of targets
//! run at once.
//!
//! Nothing here touches the tokio threads: the async workers and the
//! shared blocking pool (the parse of a large body, which is the poll
//! itself, host rounds, bcrypt checks, OTLP flushes) keep the process's
//! policy and nice.

pub mod drops;
pub mod polls;

use std::io;
use std::thread::JoinHandle;

/// How much nicer than the process background threads are.
const NICE_INCREMENT: i32 = 10;

/// The highest (least favoured) nice value Linux has.
const NICE_MAX: i32 = 19;

/// A thread's scheduling policy (`libc::SCHED_*`) and nice value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    pub policy: i32,
    pub nice: i32,
}

/// The nice value of remora's background threads: the process's (its
/// main thread's) plus 10, at most 19.
pub fn background_nice() -> i32 {
    let process = nice_of(std::process::id()).unwrap_or(0);
    process.saturating_add(NICE_INCREMENT).min(NICE_MAX)
}

/// Starts a named background thread that lowers its own priority to
/// [`background_nice`] before it runs `f`.
pub fn spawn<F, T>(name: &str, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let nice = background_nice();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            lower_to(nice);
            f()
        })
}

/// The calling thread's policy and nice value (`None` when they cannot be
/// read, or off Linux).
pub fn current() -> Option<Priority> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pid 0 is the calling thread.
        let policy = unsafe { libc::sched_getscheduler(0) };
        if policy < 0 {
            return None;
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let nice = nice_of(libc::id_t::try_from(tid).ok()?)?;
        Some(Priority { policy, nice })
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// The nice value of thread (or process) `id`; on Linux each thread has
/// its own.
fn nice_of(id: libc::id_t) -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // getpriority may return -1 as a value: errno tells an error apart.
        // SAFETY: errno is the calling thread's; getpriority has no
        // preconditions.
        unsafe {
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, id);
            if nice == -1 && *libc::__errno_location() != 0 {
                return None;
            }
            Some(nice)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = id;
        None
    }
}

/// Sets the calling thread's nice value (Linux only; a failure is logged
/// at debug and ignored: the thread keeps its priority).
fn lower_to(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        // SAFETY: setpriority with PRIO_PROCESS and a thread id changes only
        // that thread on Linux.
        let set = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
        if set != 0 {
            tracing::debug!(
                error = %io::Error::last_os_error(),
                nice,
                "cannot lower a background thread's priority; it keeps the process's"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn background_threads_run_under_sched_other_at_a_positive_nice() {
        let here = current().unwrap();
        let there = spawn("remora-test-bg", current)
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(there.policy, libc::SCHED_OTHER);
        assert_eq!(there.nice, background_nice());
        assert!(background_nice() > here.nice || here.nice == NICE_MAX);
        // The thread that started it keeps its own.
        assert_eq!(current().unwrap(), here);
    }

    #[test]
    fn background_nice_is_ten_above_the_process_at_most_19() {
        let process = nice_of(std::process::id()).unwrap();
        assert_eq!(background_nice(), (process + 10).min(19));
    }
}
