//! [`Shared`]: the engine every clone of a runner, its workers and its handles share.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::calls::CallIndex;
use super::extension::Extensions;
use super::park::{Handed, Lot};
use super::registry::Registry;
use super::worker;
use crate::error::EnqueueError;
use crate::id::TaskId;
use crate::observe::metrics::{self, Ended};
use crate::observe::{EventKind, Observers};
use crate::queue::{Host, Queue};
use crate::runtime::Fallback;
use crate::status::{TaskInfo, TaskStatus};
use crate::sync::lock_std;
use crate::task::{
    AttemptBlock, AttemptEnd, CancelCause, CancelFrom, Ending, Finished, GroupCore, Header, Job,
    Transition,
};

/// What every clone of a runner, its workers and its handles share.
///
/// Lock order, where two are held at once: `parked`, then a parked worker's spot (see
/// [`Lot`]); a queue's `state`, then a task's `record`. The registry's shards, `dedup`, the
/// extensions' list, and a cell's `handler` and `slot` locks are taken alone.
pub(crate) struct Shared {
    pub(super) queues: HashMap<Box<str>, Arc<Queue>, BuildHasherDefault<NameHasher>>,
    /// The same queues, in the order of their tags' indexes; scanned instead of hashed when
    /// there are few.
    pub(super) queue_list: Vec<Arc<Queue>>,
    pub(super) registry: Registry,
    /// The tasks with a given call id, found by it.
    pub(super) calls: CallIndex,
    pub(super) observers: Arc<Observers>,
    /// Tasks enqueued and not yet finished: pending, running or retrying.
    pub(super) live: AtomicUsize,
    pub(super) idle: Notify,
    /// Woken as tasks end while a `cancel_and_wait` waits (`cancel_waiters` > 0).
    pub(super) ended: Notify,
    pub(super) cancel_waiters: AtomicUsize,
    /// Set by shutdown: no new tasks.
    pub(super) closed: AtomicBool,
    /// Set by shutdown_now: a task that slips in anyway is cancelled.
    pub(super) aborting: AtomicBool,
    /// The runtime to spawn on when called from outside one, while it lives.
    pub(super) runtime: Arc<Fallback>,
    /// The cancel grace of tasks that set none.
    pub(super) cancel_grace: std::time::Duration,
    /// Idle workers waiting for a start, each to be handed a job instead of a spawn, by
    /// the key of their runtime.
    pub(super) parked: Lot<Handed, tokio::runtime::Id>,
    /// The attempt blocks of workers that ended, for the next workers (a few at most).
    pub(super) blocks: std::sync::Mutex<Vec<AttemptBlock>>,
    /// The live task of each dedup key (`Task::dedup_key`).
    pub(super) dedup: std::sync::Mutex<HashMap<Box<str>, TaskId>>,
    /// This, weakly: for a queue's timer to reach the runner.
    pub(super) this: OnceLock<Weak<Shared>>,
    /// The layers built on the runner (schedules, the durable store), each by its type.
    pub(crate) extensions: Extensions,
}

/// Up to this many queues, a lookup compares names one by one: cheaper than hashing.
const SCAN_QUEUES: usize = 8;

/// FNV-1a for queue names: a handful of short strings the runner itself declared, looked
/// up on every enqueue; SipHash's flood resistance buys nothing here.
#[derive(Default)]
pub(super) struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Calls the task's `on_complete` or `on_error`, once, containing a panic.
fn run_callbacks(shared: &Shared, job: &dyn Job) {
    let header = job.header();
    let Some(options) = header.options() else {
        return;
    };
    if header.parked.load(Ordering::Acquire) {
        return; // its run is waiting, not done: the callbacks are for ends
    }
    if options.on_complete.is_none() && options.on_error.is_none() {
        return;
    }
    let info = shared.info(job);
    let call = || match (&options.on_complete, &options.on_error) {
        (Some(on_complete), _) if info.status == TaskStatus::Completed => on_complete(&info),
        (_, Some(on_error)) if info.status != TaskStatus::Completed => {
            on_error(&info, info.error.as_deref().unwrap_or_default())
        }
        _ => {}
    };
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err() {
        tracing::warn!(task = %header.id, "a task's completion callback panicked");
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.runtime.close();
    }
}

// ===== impl Shared =====

impl Shared {
    pub(crate) fn queue(&self, name: &str) -> Option<&Arc<Queue>> {
        if self.queue_list.len() <= SCAN_QUEUES {
            self.queue_list.iter().find(|q| q.name() == name)
        } else {
            self.queues.get(name)
        }
    }

    /// The queue `header`'s task is in, found by its tag's index.
    pub(crate) fn queue_of(&self, header: &Header) -> &Arc<Queue> {
        &self.queue_list[header.queue.index()]
    }

    /// A snapshot of `job`'s status, with why it waits if it does.
    pub(crate) fn info(&self, job: &dyn Job) -> TaskInfo {
        let header = job.header();
        let mut info = header.snapshot();
        if matches!(info.status, TaskStatus::Pending | TaskStatus::Delayed) {
            // Asked once the record lock is released: the queue lock comes first.
            info.waiting_for = self.queue_of(header).why_waiting(header);
        }
        info
    }

    pub(super) fn ensure_runtime(&self) -> Result<(), EnqueueError> {
        if self.runtime.ensure() {
            Ok(())
        } else {
            Err(EnqueueError::NoRuntime)
        }
    }

    /// Starts `job`, which already holds a slot of its queue: hands it to a parked worker if
    /// one is waiting, else spawns a worker for it.
    pub(crate) fn start(self: &Arc<Self>, job: Arc<dyn Job>) {
        if job.header().take_resuming() {
            // A handler that gave its slot back got one again: its worker goes on.
            job.header().wake_worker();
            return;
        }
        let handed = (Arc::clone(self), job);
        if let Err((this, job)) = self.parked.hand(|| self.runtime_key(), handed) {
            self.spawn(worker::work(this, job));
        }
    }

    /// Ends `job`, whose worker holds its slot but is being dropped (its runtime shut down),
    /// as [`TaskError::Shutdown`](crate::TaskError::Shutdown), then every task its queue hands
    /// that slot to next: there is no runtime left here to run them on. A loop, not a spawn
    /// per task: a spawn on a runtime that has shut down drops its future at once.
    pub(crate) fn abandon(&self, mut job: Option<Arc<dyn Job>>) {
        while let Some(current) = job {
            let header = current.header();
            let queue = self.queue_of(header);
            // The task is running: the cancel makes it `Cancelling`, and ending its attempt
            // ends it `Shutdown` (or `Cancelled`, if a user's cancel came first).
            let cancel = queue.cancel(header, CancelCause::Shutdown);
            debug_assert!(cancel.finished.is_none());
            let transition = Transition::End {
                ending: Ending::Shutdown,
                error: None,
            };
            let (end, next) = queue.end_attempt(&*current, transition);
            match end {
                AttemptEnd::Finished(finished) => self.finish(&*current, finished),
                AttemptEnd::Retrying(_) => debug_assert!(false, "an abandoned task in backoff"),
            }
            job = next.filter(|next| {
                // A suspended handler handed the slot has a worker of its own.
                let resuming = next.header().take_resuming();
                if resuming {
                    next.header().wake_worker();
                }
                !resuming
            });
        }
    }

    /// Spawns `future` on the current runtime, or the one the runner remembers. With
    /// neither, or on a runtime that has shut down, the future is dropped unpolled: the
    /// runner's futures end their tasks `Shutdown` when dropped.
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        match self.runtime.handle() {
            Some(handle) => drop(handle.spawn(future)),
            None => drop(future),
        }
    }

    /// Cancels `job` for `cause`; ends it at once unless its worker must (it is running).
    pub(crate) fn cancel(&self, job: &dyn Job, cause: CancelCause) -> bool {
        let cancel = self.queue_of(job.header()).cancel(job.header(), cause);
        if let Some(finished) = cancel.finished {
            self.finish(job, finished);
        }
        // Already cancelled or finished: its status already says so, nothing more to do.
        !matches!(cancel.from, CancelFrom::Cancelling | CancelFrom::Finished)
    }

    /// After `job` reached its terminal phase: records it, resolves its handle, and counts it
    /// out of `live`.
    pub(crate) fn finish(&self, job: &dyn Job, finished: Finished) {
        let header = job.header();
        if let Some(evicted) = self.registry.retire(header.id) {
            if evicted.header().call_given {
                self.calls.remove(evicted.header());
            }
        }
        if let Some(group) = &header.group {
            group.leave(header.id);
        }
        if let Some(key) = header
            .options()
            .map(|o| &o.flow)
            .and_then(|f| f.dedup_key.as_deref())
        {
            let mut live = lock_std(&self.dedup);
            if live.get(key) == Some(&header.id) {
                live.remove(key);
            }
        }
        let queue = self.queue_of(header);
        // A durable run's attempt that parked on a wait ended its task, not its run.
        let parked = header.parked.load(Ordering::Acquire);
        queue
            .observers()
            .events
            .emit(header, || match finished.ending() {
                Ending::Completed if parked => EventKind::Waiting,
                Ending::Completed => EventKind::Completed,
                Ending::Failed => EventKind::Failed {
                    error: header.last_error().unwrap_or_default(),
                },
                Ending::TimedOut => EventKind::TimedOut,
                Ending::Panicked(message) => EventKind::Panicked {
                    message: message.clone(),
                },
                Ending::Cancelled | Ending::Shutdown => EventKind::Cancelled,
            });
        let counted = match finished.ending() {
            Ending::Completed if parked => Ended::Waiting,
            Ending::Completed => Ended::Completed,
            Ending::Cancelled | Ending::Shutdown => Ended::Cancelled,
            Ending::Failed | Ending::TimedOut | Ending::Panicked(_) => Ended::Failed,
        };
        metrics::ended(&**queue, counted);
        job.publish(finished);
        if self.cancel_waiters.load(Ordering::SeqCst) > 0 {
            self.ended.notify_waiters();
        }
        run_callbacks(self, job);
        self.release();
    }

    /// A queue's timer fired: starts what its flow control now lets start.
    /// A queue's timer fired: starts what the queue releases now.
    pub(crate) fn wake_queue(self: &Arc<Self>, queue: usize) {
        let queue = Arc::clone(&self.queue_list[queue]);
        for job in queue.wake() {
            self.start(job);
        }
    }

    pub(super) fn release(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.registry.trim();
            self.idle.notify_waiters();
        }
    }

    pub(super) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Shared {
    /// Where the runner's tasks report.
    pub(crate) fn observers(&self) -> &Arc<Observers> {
        &self.observers
    }
}

/// A queue's timers: a sleep on the runner's runtime that wakes the queue, holding the runner
/// weakly so that it does not keep a dropped runner alive.
impl Host for Shared {
    fn start_job(&self, job: Arc<dyn Job>) {
        if let Some(this) = self.this.get().and_then(Weak::upgrade) {
            this.start(job);
        }
    }

    fn readmit(&self, group: &Arc<GroupCore>) {
        if let Some(this) = self.this.get().and_then(Weak::upgrade) {
            this.pump(group);
        }
    }

    fn wake_at(&self, queue: usize, at: Instant) {
        let Some(this) = self.this.get() else {
            return;
        };
        let runner = Weak::clone(this);
        self.spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(runner) = runner.upgrade() {
                runner.wake_queue(queue);
            }
        });
    }
}
