//! The tokio runtime a runner falls back to when it is called from outside any runtime, and
//! whether that runtime still lives.
//!
//! A runner remembers the runtime it was built in (or first used from), so that
//! `enqueue_task` works from a plain thread too. A `Handle` outlives its runtime, and
//! spawning through the handle of a runtime that has shut down silently drops the future; so
//! a small watcher task lives on the remembered runtime, and when that runtime shuts down
//! (dropping the watcher) it marks the handle dead. The next call from inside a live runtime
//! remembers that one instead; a call from outside any runtime meanwhile gets
//! [`EnqueueError::NoRuntime`](crate::EnqueueError::NoRuntime).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::sync::lock_std;

/// The remembered runtime. Shared by the runner and the watcher on that runtime.
#[derive(Default)]
pub(crate) struct Fallback {
    /// The remembered runtime's handle and the number of the watcher that guards it.
    handle: Mutex<Option<(Handle, u64)>>,
    /// Whether a live runtime is remembered: the lock-free check on every enqueue.
    alive: AtomicBool,
    /// How many runtimes have been remembered: numbers the watchers.
    generation: AtomicU64,
    /// Fires when the runner is gone, so that its watchers end.
    gone: CancellationToken,
}

impl Fallback {
    /// A fallback that remembers the current runtime, if there is one.
    pub(crate) fn new() -> Arc<Fallback> {
        let fallback = Arc::new(Fallback::default());
        if let Ok(handle) = Handle::try_current() {
            fallback.remember(handle);
        }
        fallback
    }

    /// Whether a live runtime can run the runner's work: the current one, or the remembered
    /// one. Remembers the current one if the remembered one has died.
    pub(crate) fn ensure(self: &Arc<Self>) -> bool {
        if self.alive.load(Ordering::Acquire) {
            return true;
        }
        match Handle::try_current() {
            Ok(handle) => {
                self.remember(handle);
                true
            }
            Err(_) => false,
        }
    }

    /// The current runtime's handle, else the remembered one while it lives.
    pub(crate) fn handle(&self) -> Option<Handle> {
        Handle::try_current().ok().or_else(|| {
            lock_std(&self.handle)
                .as_ref()
                .map(|(handle, _)| handle.clone())
        })
    }

    fn remember(self: &Arc<Self>, handle: Handle) {
        let mut slot = lock_std(&self.handle);
        if self.alive.load(Ordering::Acquire) {
            return;
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *slot = Some((handle.clone(), generation));
        self.alive.store(true, Ordering::Release);
        drop(slot);
        // Spawned with no lock held: on a runtime shutting down, it is dropped at once,
        // and its drop takes the lock.
        drop(handle.spawn(watch(Arc::clone(self), generation)));
    }

    /// The runner is gone: its watchers may end.
    pub(crate) fn close(&self) {
        self.gone.cancel();
    }
}

/// Lives on the remembered runtime until the runner is gone; dropped before that, its
/// runtime has shut down.
fn watch(fallback: Arc<Fallback>, generation: u64) -> impl Future<Output = ()> + Send {
    let mut watcher = Watcher {
        fallback,
        generation,
        done: false,
    };
    async move {
        let gone = watcher.fallback.gone.clone();
        gone.cancelled().await;
        watcher.disarm();
    }
}

struct Watcher {
    fallback: Arc<Fallback>,
    generation: u64,
    done: bool,
}

impl Watcher {
    fn disarm(&mut self) {
        self.done = true;
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slot = lock_std(&self.fallback.handle);
        if matches!(&*slot, Some((_, generation)) if *generation == self.generation) {
            *slot = None;
            self.fallback.alive.store(false, Ordering::Release);
        }
    }
}

/// Whether the runtime `handle` (or the current one) has its timer enabled. A `Sleep` made
/// without one panics; the panic is caught here (the panic hook still reports it).
pub(crate) fn timers_enabled(handle: Option<&Handle>) -> bool {
    let _entered = handle.map(Handle::enter);
    std::panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok()
}
