//! The drop thread: frees what a poll's publication replaced, off the
//! async threads and off the shared blocking pool.
//!
//! Freeing the previous poll's series takes milliseconds at 100k series:
//! on an async worker, under the store's lock, it held back the scrapes
//! queued on that worker and the render. One thread, `remora-drop`,
//! started at the first [`drop_later`] with [`super::spawn`] (nice 10,
//! `SCHED_OTHER`), does it instead; a tokio blocking-pool thread is never
//! used, so no pool thread's priority depends on what it ran before.
//!
//! The queue is bounded ([`QUEUE`] values): each value can be a whole
//! target's previous state (tens of MB at 100k series), so an unbounded
//! queue behind a thread that falls behind would hold old states without
//! limit. A full queue, or no drop thread (it could not be started), drops
//! the value on the caller (an async worker; outside a runtime the caller
//! drops it anyway, `targets::poller::drop_off_async`): the caller pays,
//! which slows the producer down instead of growing memory. The thread is
//! never joined: it holds no lock anyone waits for, and the process exits
//! without waiting for it (what is still queued goes with the process's
//! memory).

use std::any::Any;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

/// How many values may wait for the drop thread.
pub const QUEUE: usize = 32;

/// The name of the drop thread.
pub const THREAD_NAME: &str = "remora-drop";

type Garbage = Box<dyn Any + Send>;

/// A drop thread's queue.
struct Dropper(SyncSender<Garbage>);

impl Dropper {
    /// Starts a drop thread with room for `capacity` values; it ends when
    /// the `Dropper` is dropped (the global one never is).
    fn start(capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Garbage>(capacity);
        super::spawn(THREAD_NAME, move || {
            for garbage in rx {
                drop(garbage);
            }
        })?;
        Ok(Dropper(tx))
    }

    /// Queues `value`, or drops it here when the queue is full.
    fn drop_later<T: Send + 'static>(&self, value: T) {
        match self.0.try_send(Box::new(value)) {
            Ok(()) => {}
            Err(TrySendError::Full(garbage) | TrySendError::Disconnected(garbage)) => drop(garbage),
        }
    }
}

/// Drops `value` on the drop thread, or here when its queue is full or the
/// thread could not be started.
pub fn drop_later<T: Send + 'static>(value: T) {
    static DROPPER: OnceLock<Option<Dropper>> = OnceLock::new();
    let dropper = DROPPER.get_or_init(|| {
        Dropper::start(QUEUE)
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot start the drop thread; replaced state is dropped where it is replaced")
            })
            .ok()
    });
    match dropper {
        Some(d) => d.drop_later(value),
        None => drop(value),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::time::Duration;

    /// Reports, when dropped, the thread it was dropped on.
    struct Sentinel(
        Sender<(
            Option<String>,
            std::thread::ThreadId,
            Option<super::super::Priority>,
        )>,
    );
    impl Drop for Sentinel {
        fn drop(&mut self) {
            let t = std::thread::current();
            let _ = self.0.send((
                t.name().map(str::to_string),
                t.id(),
                super::super::current(),
            ));
        }
    }

    #[test]
    fn the_drop_thread_runs_under_sched_other_at_the_background_nice() {
        let (tx, rx) = channel();
        drop_later(Sentinel(tx));
        let (name, _, priority) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        let priority = priority.unwrap();
        assert_eq!(priority.policy, libc::SCHED_OTHER);
        assert_eq!(priority.nice, super::super::background_nice());
        assert!(priority.nice > 0);
    }

    /// Tells it holds the drop thread, then holds it until unplugged.
    struct Plug(Sender<()>, Receiver<()>);
    impl Drop for Plug {
        fn drop(&mut self) {
            let _ = self.0.send(());
            let _ = self.1.recv_timeout(Duration::from_secs(30));
        }
    }

    #[test]
    fn a_full_queue_drops_on_the_caller() {
        // A drop thread of its own: the global one is shared with other tests.
        let dropper = Dropper::start(1).unwrap();
        let (held_tx, held) = channel();
        let (unplug, plug) = channel();
        dropper.drop_later(Plug(held_tx, plug));
        held.recv_timeout(Duration::from_secs(10)).unwrap();
        // The thread is held and the queue has one slot: the first
        // sentinel waits, the second is dropped here.
        let (tx, rx) = channel();
        let here = std::thread::current().id();
        dropper.drop_later(Sentinel(tx.clone()));
        dropper.drop_later(Sentinel(tx));
        let (_, id, _) = rx.try_recv().unwrap();
        assert_eq!(id, here);
        assert!(rx.try_recv().is_err(), "the queued one was dropped early");
        drop(unplug);
        let (name, id, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        assert_ne!(id, here);
    }
}
