//! [`QueueStats`]: a snapshot of one queue's load.

use std::time::Duration;

use super::Queue;
use crate::observe::Percentiles;
use crate::status::WaitReason;
use crate::task::{Header, Phase, Stamp};

/// A snapshot of one queue's load, from [`TaskRunner::queue_stats`](crate::TaskRunner::queue_stats).
///
/// ```
/// use taskrunner::TaskRunner;
///
/// # fn main() {
/// let stats = TaskRunner::new().queue_stats("main").unwrap();
/// assert_eq!((stats.pending, stats.running, stats.retrying, stats.limit), (0, 0, 0, 3));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Tasks waiting for a slot.
    pub pending: usize,
    /// Tasks holding a slot.
    pub running: usize,
    /// Tasks waiting out a retry delay (they hold no slot).
    pub retrying: usize,
    /// The concurrency limit.
    pub limit: usize,
    /// How long ago the oldest task now waiting for a slot was enqueued (`None` when none
    /// waits). A task waiting again after a retry counts from its first enqueue.
    pub oldest_pending_age: Option<Duration>,
    /// Recent wait times, from enqueue to first start, of the last 256 tasks that started
    /// (`None` before the first).
    pub wait_time: Option<Percentiles>,
    /// Recent run times of the last 256 attempts that ended (`None` before the first).
    pub run_time: Option<Percentiles>,
    /// Tasks waiting for their start time ([`Task::delay`](crate::Task::delay)); they are not
    /// in `pending` and hold no slot.
    pub delayed: usize,
    /// Whether the queue is paused ([`TaskRunner::pause_queue`](crate::TaskRunner::pause_queue),
    /// or a [`TaskContext::pause_queue_for`](crate::TaskContext::pause_queue_for) that has
    /// not run out): nothing starts.
    pub paused: bool,
    /// Why the queue's waiting tasks do not start although it has a free slot, if they do not.
    pub waiting_for: Option<WaitReason>,
}

impl Queue {
    /// A snapshot of the queue's counts, why its waiting tasks wait, and recent wait and run
    /// times.
    pub(crate) fn stats(&self) -> QueueStats {
        let now = Stamp::now();
        let state = self.lock();
        // Within a level the first out is the first in, so the oldest waiting task is the
        // oldest of the levels' fronts (a cancelled front is skipped: close enough).
        let oldest = state
            .waiting
            .level_fronts()
            .map(|entry| entry.job.header())
            .filter(|header| header.phase() == Phase::Queued)
            .map(Header::created_at)
            .min();
        let (paused, waiting_for) = match &state.flow {
            Some(flow) => {
                let pending = state.pending() > 0;
                let free = state.running < state.limit;
                flow.describe(tokio::time::Instant::now(), pending && free)
            }
            None => (false, None),
        };
        let mut stats = QueueStats {
            pending: state.pending(),
            running: state.running,
            retrying: state.retrying,
            limit: state.limit,
            delayed: state.delayed,
            paused,
            waiting_for,
            oldest_pending_age: oldest.map(|created| now.since(created)),
            wait_time: None,
            run_time: None,
        };
        drop(state);
        stats.wait_time = self.tag.timings.wait.percentiles();
        stats.run_time = self.tag.timings.run.percentiles();
        stats
    }
}
