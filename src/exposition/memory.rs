//! The process allocator, tuned for a sidecar whose heap is mostly one large
//! state rebuilt every cycle (see README "Cost per series").
//!
//! glibc's malloc gives every thread that allocates an arena of its own (up
//! to eight per core): a poll parsed on one tokio worker, a render on the
//! render thread and a scrape on the other worker each leave free chunks in
//! a different arena, where the other threads cannot reuse them, and a freed
//! chunk in the middle of an arena stays resident. [`tune`] keeps one arena;
//! `release` (called by the render thread after each render, once the
//! collected data, labels and per-family text are freed) hands the free
//! pages back to the kernel. Elsewhere than glibc both do nothing.

/// Keeps the process to one malloc arena. Call it first thing in `main`,
/// before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator; called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the allocator's free pages to the kernel.
pub(crate) fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
