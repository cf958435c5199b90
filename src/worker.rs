//! The async half of the runner: a worker runs a task in the slot the task holds, then the
//! next task its queue hands that slot, and when the queue has none, parks for a moment to
//! take a start from any queue; a backoff timer waits out a retry delay.

use std::sync::Arc;
use std::time::Duration;

use crate::events::EventKind;
use crate::job::{cancelled, Attempt, End, Job};
use crate::runner::{Parking, Shared};
use crate::status::Phase;

/// Runs `job`, which already holds a slot of its queue, then whatever the queue hands that
/// slot next, then whatever a start hands it while parked. One tokio task serves many tasks
/// in a row: a freed slot passes to the next waiting task without a spawn, and the worker
/// still yields to the scheduler as often as tokio's coop budget asks.
pub(crate) async fn work(shared: Arc<Shared>, mut job: Arc<dyn Job>) {
    // Made on the first time this worker parks, and reused.
    let mut parking: Option<Arc<Parking>> = None;
    loop {
        let header = job.header();
        let attempt = header.begin_attempt();
        let events = &header.queue.hub().events;
        events.emit(header, || EventKind::Started { attempt });
        let outcome = Arc::clone(&job).run(attempt).await;

        let retry_delay = |retryable: bool| {
            let policy = header.retry().filter(|_| retryable)?;
            // Retries on a wait the error asked for (a 429) do not count.
            let counted = header.counted_attempts(attempt);
            (counted <= policy.retries()).then(|| policy.delay_for(counted))
        };
        let (to, error, end, delay) = match outcome {
            Attempt::Ok => (Phase::Completed, None, End::Completed, None),
            Attempt::Err {
                retry,
                message,
                retry_after,
            } => match retry_after
                .filter(|_| header.take_retry_after())
                .or_else(|| retry_delay(retry))
            {
                Some(delay) => (Phase::Retrying, Some(message), End::Failed, Some(delay)),
                None => (Phase::Failed, Some(message), End::Failed, None),
            },
            Attempt::TimedOut => {
                let message = match header.timeout() {
                    Some(timeout) => format!("timed out after {timeout:?}"),
                    None => "timed out".to_owned(),
                };
                match retry_delay(true) {
                    Some(delay) => (Phase::Retrying, Some(message), End::TimedOut, Some(delay)),
                    None => (Phase::Failed, Some(message), End::TimedOut, None),
                }
            }
            Attempt::Panicked(message) => (
                Phase::Failed,
                Some(format!("panicked: {message}")),
                End::Panicked(message),
                None,
            ),
            Attempt::Cancelled => (Phase::Cancelled, None, End::Cancelled, None),
        };

        let (phase, cause, next) = header.queue.end_attempt(&*job, to, error, || {
            events.emit(header, || EventKind::Retrying {
                attempt,
                delay: delay.unwrap_or_default(),
                error: header.last_error().unwrap_or_default(),
            });
        });
        match (phase, delay) {
            (Phase::Retrying, Some(delay)) => {
                shared.spawn(backoff(Arc::clone(&shared), job, delay));
            }
            (Phase::Cancelled, _) => shared.finish(&*job, cause.end()),
            _ => shared.finish(&*job, end),
        }
        match next {
            Some(next) => job = next,
            // The queue has nothing for this worker: wait a moment for a start elsewhere
            // (in any queue) before leaving, which saves that start a spawn.
            None => {
                let parking = parking.get_or_insert_with(Arc::default);
                match shared.park(parking).await {
                    Some(next) => job = next,
                    None => return,
                }
            }
        }
        // A long run of instantly-ready tasks must not hog the thread: yield once the
        // worker's coop budget is spent (every 128 units), as tokio's own resources do.
        tokio::task::coop::consume_budget().await;
    }
}

/// Waits out a retry delay holding no slot, then puts `job` back in its queue, and starts it
/// at once if a slot is free. A cancel ends the wait early (the canceller has already ended the
/// task).
pub(crate) async fn backoff(shared: Arc<Shared>, job: Arc<dyn Job>, delay: Duration) {
    tokio::select! {
        biased;
        () = cancelled(job.header()) => return,
        () = tokio::time::sleep(delay) => {}
    }
    let queue = Arc::clone(&job.header().queue);
    if let Some(job) = queue.admit(job, true) {
        shared.start(job);
    }
}

/// Waits out a task's start delay holding no slot, then puts it in its queue like a new task,
/// and starts it at once if it may. A cancel ends the wait early (the canceller has already
/// ended the task).
pub(crate) async fn delayed(shared: Arc<Shared>, job: Arc<dyn Job>, delay: Duration) {
    tokio::select! {
        biased;
        () = cancelled(job.header()) => return,
        () = tokio::time::sleep(delay) => {}
    }
    let queue = Arc::clone(&job.header().queue);
    if let Some(job) = queue.admit_delayed(job) {
        shared.start(job);
    }
}
