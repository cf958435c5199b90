//! The async half of the runner: a worker runs a task in the slot the task holds, then the
//! next task its queue hands that slot, and when the queue has none, parks for a moment to
//! take a start from any queue; a backoff timer waits out a retry delay.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Handle, Id};

use super::park::{self, Parking};
use super::Shared;
use crate::observe::metrics;
use crate::observe::EventKind;
use crate::panic::contain;
use crate::sync::lock_std;
use crate::task::{cancelled, AttemptBlock, AttemptEnd, CancelCause, Job};

/// Runs `job`, which already holds a slot of its queue, then whatever the queue hands that
/// slot next, then whatever a start hands it while parked. One tokio task serves many tasks
/// in a row: a freed slot passes to the next waiting task without a spawn, and the worker
/// still yields to the scheduler as often as tokio's coop budget asks.
///
/// Whatever happens to the worker, its task ends: if its runtime shuts down (dropping the
/// worker, possibly before its first poll), the [`Held`] guard drops the attempt's future and
/// ends the task [`TaskError::Shutdown`](crate::TaskError::Shutdown), freeing its slot.
pub(crate) fn work(shared: Arc<Shared>, job: Arc<dyn Job>) -> impl Future<Output = ()> + Send {
    // A block a worker that ended left, if any: a worker often runs one task only (a start
    // into an idle queue), and the block would be its one allocation.
    let attempt = lock_std(&shared.blocks).pop().unwrap_or_default();
    let held = Held {
        shared,
        job: Some(job),
        attempt,
    };
    run_jobs(held)
}

/// How many blocks of ended workers the runner keeps for the next, and how large a block it
/// keeps: at most 8 KiB held by an idle runner.
const SPARE_BLOCKS: usize = 8;
const SPARE_BLOCK_BYTES: usize = 1024;

async fn run_jobs(mut held: Held) {
    // Made on the first time this worker parks, and reused, with its runtime's key.
    let mut parking: Option<(Arc<Parking>, Option<Id>)> = None;
    loop {
        run_held(&mut held).await;
        // The queue has nothing for this worker: it parks until a start (in any queue) hands
        // it one, which saves that start a spawn, or until the runner dismisses it.
        let (spot, key) = &*parking.get_or_insert_with(|| {
            let key = Handle::try_current().ok().map(|handle| handle.id());
            (Arc::default(), key)
        });
        let parked = match key {
            // A runner shutting down parks no worker: its idle ones end.
            Some(key) if !held.shared.closed.load(Ordering::Relaxed) => {
                park::enter(&held.shared, *key, spot)
            }
            _ => false,
        };
        if !parked {
            let mut spare = lock_std(&held.shared.blocks);
            if spare.len() < SPARE_BLOCKS && held.attempt.bytes() <= SPARE_BLOCK_BYTES {
                spare.push(std::mem::take(&mut held.attempt));
            }
            return;
        }
        // Parked, the worker holds the runner weakly (a runner nobody holds is dropped, and
        // dismisses it), and keeps its block unless it grew large.
        let mut attempt = std::mem::take(&mut held.attempt);
        if attempt.bytes() > SPARE_BLOCK_BYTES {
            attempt = AttemptBlock::default();
        }
        let runner = Arc::downgrade(&held.shared);
        drop(held);
        let Some((shared, job)) = park::wait(runner, spot).await else {
            return;
        };
        held = Held {
            shared,
            job: Some(job),
            attempt,
        };
    }
}

/// Runs the task `held` holds a slot for, then whatever its queue hands that slot next,
/// until the queue has nothing for it.
async fn run_held(held: &mut Held) {
    let shared = Arc::clone(&held.shared);
    // The guard owns the task whose slot this worker holds; the loop borrows it.
    while let Some(job) = held.job.as_ref() {
        let header = job.header();
        let queue = shared.queue_of(header);
        let attempt = header.begin_attempt();
        queue
            .observers()
            .events
            .emit(header, || EventKind::Started { attempt });
        metrics::started(queue.name());
        // The attempt's future goes in this worker's block, reused from one attempt to
        // the next: no allocation of its own.
        Arc::clone(job).run(attempt, &mut held.attempt);
        let outcome = std::future::poll_fn(|cx| held.attempt.poll(cx)).await;

        let transition = outcome.classify(header, attempt);
        let (end, next) = queue.end_attempt(&**job, transition);
        // A suspended handler handed the slot goes on in its own worker.
        let next = next.filter(|next| {
            let resuming = next.header().take_resuming();
            if resuming {
                next.header().wake_worker();
            }
            !resuming
        });
        // From here the guard holds the next task's slot, if any.
        let Some(job) = std::mem::replace(&mut held.job, next) else {
            unreachable!("the loop runs only while the guard holds a task")
        };
        match end {
            AttemptEnd::Retrying(delay) => {
                job.header().report_retry(attempt, delay);
                metrics::retried(&**shared.queue_of(job.header()));
                shared.spawn(backoff(Arc::clone(&shared), job, delay));
            }
            AttemptEnd::Finished(finished) => shared.finish(&*job, finished),
        }
        // A long run of instantly-ready tasks must not hog the thread: yield once the
        // worker's coop budget is spent (every 128 units), as tokio's own resources do.
        if held.job.is_some() {
            tokio::task::coop::consume_budget().await;
        }
    }
}

/// Waits out a retry delay holding no slot, then puts `job` back in its queue, and starts it
/// at once if a slot is free. A cancel ends the wait early (the canceller has already ended the
/// task). If the wait is dropped (its runtime shut down), the task ends
/// [`TaskError::Shutdown`](crate::TaskError::Shutdown).
pub(crate) fn backoff(
    shared: Arc<Shared>,
    job: Arc<dyn Job>,
    delay: Duration,
) -> impl Future<Output = ()> + Send {
    wait_out(shared, job, delay, Back::Retry)
}

/// Waits out a task's start delay holding no slot, then puts it in its queue like a new task,
/// and starts it at once if it may; otherwise as [`backoff`].
pub(crate) fn delayed(
    shared: Arc<Shared>,
    job: Arc<dyn Job>,
    delay: Duration,
) -> impl Future<Output = ()> + Send {
    wait_out(shared, job, delay, Back::Delay)
}

/// What a task waited out, and so how its queue takes it back.
#[derive(Clone, Copy)]
enum Back {
    Retry,
    Delay,
}

/// A wait holding no slot, guarded (see [`Waiting`]) from before it is spawned.
fn wait_out(
    shared: Arc<Shared>,
    job: Arc<dyn Job>,
    delay: Duration,
    back: Back,
) -> impl Future<Output = ()> + Send {
    let waiting = Waiting {
        shared,
        job: Some(job),
    };
    async move {
        let mut waiting = waiting;
        let header = waiting.job.as_ref().map(|job| job.header());
        if let Some(header) = header {
            tokio::select! {
                biased;
                () = cancelled(header) => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
        let Some(job) = waiting.job.take() else {
            return;
        };
        let queue = Arc::clone(waiting.shared.queue_of(job.header()));
        let start = match back {
            Back::Retry => queue.admit_retry(job),
            Back::Delay => queue.admit_delayed(job),
        };
        if let Some(job) = start {
            waiting.shared.start(job);
        }
        if let Back::Retry = back {
            metrics::gauges(&*queue);
        }
    }
}

/// The task a worker holds a slot for, and the block its attempt in flight lives in. Dropped
/// with the worker: if that happens before the worker is done with them (its runtime shut
/// down), drops the attempt's future and ends the task, and whatever its queue hands the slot
/// to next.
struct Held {
    shared: Arc<Shared>,
    job: Option<Arc<dyn Job>>,
    attempt: AttemptBlock,
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.attempt.is_live() {
            contain("a task's future panicked as it was dropped", || {
                self.attempt.clear()
            });
        }
        self.shared.abandon(self.job.take());
    }
}

/// A task waiting out its backoff or its start delay; ended `Shutdown` if the wait is
/// dropped before it is done.
struct Waiting {
    shared: Arc<Shared>,
    job: Option<Arc<dyn Job>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            // False, doing nothing, if a cancel already ended it.
            self.shared.cancel(&*job, CancelCause::Shutdown);
        }
    }
}
