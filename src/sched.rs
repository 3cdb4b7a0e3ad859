//! How remora's background threads are scheduled.
//!
//! The poll's parse and extraction and the render are the CPU remora spends;
//! a scrape only copies the text they published. On a busy core a woken
//! thread waits for the running one's time slice (about 3 ms on Linux 6)
//! unless the running one is `SCHED_IDLE`: so the background work runs under
//! `SCHED_IDLE`, and a scrape, or anything on the async threads, preempts it
//! at once. In a container (its own cgroup, as a sidecar is) `SCHED_IDLE`
//! only yields to remora's own threads: the container's share of the CPU
//! is weighed as before.

use std::cell::Cell;

/// Puts the calling thread under `SCHED_IDLE` (once per thread; a failure
/// is ignored: the thread keeps its policy). Linux only.
pub fn background() {
    thread_local! {
        static DONE: Cell<bool> = const { Cell::new(false) };
    }
    if DONE.with(|d| d.replace(true)) {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is a valid pointer.
        unsafe {
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn background_threads_run_under_sched_idle() {
        let policies = std::thread::spawn(|| {
            // SAFETY: pid 0 is the calling thread.
            let before = unsafe { libc::sched_getscheduler(0) };
            super::background();
            super::background();
            // SAFETY: as above.
            let after = unsafe { libc::sched_getscheduler(0) };
            (before, after)
        })
        .join()
        .unwrap();
        assert_eq!(policies.1, libc::SCHED_IDLE);
        // Other threads keep theirs.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, policies.0);
    }
}
