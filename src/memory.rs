//! The process allocator, set up for a sidecar whose heap is mostly one
//! large state rebuilt at every poll (docs/performance.md, "Cost per series").
//!
//! glibc's malloc gives each thread that allocates an arena of its own, up
//! to eight per core. A poll runs on whichever blocking thread is free, so
//! over minutes several threads each parse a large body, and each of their
//! arenas keeps that poll's peak resident: at 100k series RSS grew to
//! 142 MiB in 30 s with the defaults and stays at 84 MiB with one arena.
//! One arena used to slow scrapes (the render allocated hundreds of
//! thousands of small objects under the arena's lock); the render now
//! writes the text with a few reused buffers, and scrape latency and CPU
//! are the same with one arena as with the default (CHANGELOG.md, issue 13 step 5).
//! Elsewhere than glibc this does nothing.

/// Keeps the process to one malloc arena, unless the environment already
/// says how many (`GLIBC_TUNABLES=glibc.malloc.arena_max=N`). Call it
/// first thing in `main`, before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
        if !set {
            // SAFETY: mallopt only sets a parameter of the allocator, and
            // no other thread exists yet.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
        }
    }
}

/// Gives the heap's free pages back to the system (glibc's `malloc_trim`):
/// with one arena, what a replaced config generation freed stays resident
/// otherwise, and each reload would add to the process's memory. Blocking
/// (it walks the heap): call it off async threads. Elsewhere than glibc
/// this does nothing.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}
