//! [`QueueStats`]: a snapshot of one queue's load.

use std::time::Duration;

use tokio::time::Instant;

use super::flow::Block;
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
    /// Units charged in the queue [`budget`](crate::QueueConfig::budget)'s window ending now
    /// (`None` without a budget). Over the budget only by the overshoot of tasks that
    /// charged more than their estimate.
    pub budget_used: Option<u64>,
    /// Waiting tasks held back by a [`Budget`](crate::Budget): every pending task while the
    /// queue's best waiting task does not fit the queue's budget, else those of keys whose
    /// best task does not fit their key budget.
    pub waiting_for_budget: usize,
}

impl Queue {
    /// A snapshot of the queue's counts, why its waiting tasks wait, and recent wait and run
    /// times.
    pub(crate) fn stats(&self) -> QueueStats {
        let now = Stamp::now();
        let mut state = self.lock();
        // Within a level the first out is the first in, so the oldest waiting task is the
        // oldest of the levels' fronts (a cancelled front is skipped: close enough).
        let oldest = state
            .waiting
            .level_fronts()
            .map(|entry| entry.job.header())
            .filter(|header| header.phase() == Phase::Queued)
            .map(Header::created_at)
            .min();
        let (budget_used, waiting_for_budget) = Queue::budget_counts(&mut state);
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
            budget_used,
            waiting_for_budget,
        };
        drop(state);
        stats.wait_time = self.tag.timings.wait.percentiles();
        stats.run_time = self.tag.timings.run.percentiles();
        stats
    }

    /// Why `header`'s waiting task does not start, as far as the queue can tell.
    pub(crate) fn why_waiting(&self, header: &Header) -> Option<WaitReason> {
        let state = self.lock();
        match header.phase() {
            Phase::Delayed => return Some(WaitReason::Delayed),
            Phase::Held => return Some(WaitReason::GroupLimit),
            Phase::Queued => {}
            _ => return None,
        }
        let Some(flow) = state.flow.as_deref() else {
            return Some(WaitReason::NoSlot);
        };
        let now = Instant::now();
        match flow.blocked(now) {
            Some(Block::Paused) => return Some(WaitReason::Paused),
            Some(Block::Until(_, why)) => return Some(why),
            None => {}
        }
        if flow.budgets.as_ref().is_some_and(|b| b.head_waits(now)) {
            return Some(WaitReason::Budget);
        }
        if let (Some(key), Some(keys)) = (flow.key_of(header), &flow.keys) {
            if keys.is_held(key) {
                return Some(WaitReason::Budget);
            }
            if !keys.is_free(key) {
                return Some(WaitReason::KeyBusy);
            }
        }
        Some(WaitReason::NoSlot)
    }

    /// (units used in the queue budget's window, tasks waiting for a budget).
    pub(super) fn budget_counts(state: &mut super::State) -> (Option<u64>, usize) {
        let pending = state.pending();
        let Some(flow) = state.flow.as_deref_mut() else {
            return (None, 0);
        };
        let held = flow.keys.as_ref().map_or(0, |keys| keys.held_queued());
        let Some(budgets) = flow.budgets.as_mut() else {
            return (None, 0);
        };
        let now = Instant::now();
        let waiting = if budgets.head_waits(now) {
            pending
        } else {
            held.min(pending)
        };
        (budgets.used(now), waiting)
    }
}
