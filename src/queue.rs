//! One named queue: its concurrency limit, its waiting tasks in start order, and the slot
//! accounting.
//!
//! Everything here is synchronous and short: each operation takes the queue's lock once,
//! does O(log n) work on the waiting order, and hands back the tasks that should start now. Starting them
//! (spawning a worker) is the caller's job, outside the lock.
//!
//! A queue with flow-control settings (or once paused, held or reprioritised) takes the path
//! in `dispatch.rs` instead, where a free slot is not enough to start: see `flow.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::job::{CancelFrom, Cause, Header, Job, Stamp};
use crate::runner::Hub;
use crate::status::Phase;
use crate::sync::{lock, Mutex};

use flow::{Came, Flow};
use order::{Order, Prioritized};
pub use timing::Percentiles;
use timing::Timings;

pub use flow::WaitReason;
pub(crate) use flow::{RetryAfter, TaskFlow};
pub use rate::{RateLimit, MAX_RATE};

/// The settings of one queue, for [`TaskRunnerBuilder::queue`](crate::TaskRunnerBuilder::queue).
///
/// # Default
///
/// Concurrency 3, the same as the default `main` queue.
///
/// ```
/// use taskrunner::{QueueConfig, TaskRunner};
///
/// # fn main() -> Result<(), taskrunner::ConfigError> {
/// let runner = TaskRunner::builder()
///     .queue("llm", QueueConfig::new().concurrency(1))
///     .build()?;
/// assert_eq!(runner.queue_stats("llm").unwrap().limit, 1);
/// assert_eq!(runner.queue_stats("main").unwrap().limit, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub(crate) concurrency: usize,
    /// At most this many of the queue's durable runs at once across every process.
    pub(crate) global_concurrency: Option<usize>,
    pub(crate) max_pending: Option<usize>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) key_concurrency: Option<usize>,
    pub(crate) aging: Option<Duration>,
}

impl QueueConfig {
    /// A queue with concurrency 3.
    pub const fn new() -> Self {
        QueueConfig {
            concurrency: 3,
            global_concurrency: None,
            max_pending: None,
            rate_limit: None,
            key_concurrency: None,
            aging: None,
        }
    }

    /// How many of the queue's tasks may run at once. Zero is rejected by
    /// [`build`](crate::TaskRunnerBuilder::build) with
    /// [`ConfigError::ZeroConcurrency`](crate::ConfigError::ZeroConcurrency).
    pub const fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// How many of the queue's durable runs may run at once across every process sharing
    /// the runner's [store](crate::TaskRunnerBuilder::store), counted inside the claim
    /// (a run waiting out a retry's backoff counts: its process holds it). Unlimited unless
    /// set; [`concurrency`](Self::concurrency) still limits each process. Zero is rejected
    /// by [`build`](crate::TaskRunnerBuilder::build).
    ///
    /// ```
    /// use taskrunner::QueueConfig;
    ///
    /// // 4 at once in this process, 8 at once across all of them.
    /// let agents = QueueConfig::new().concurrency(4).global_concurrency(8);
    /// # drop(agents);
    /// ```
    pub const fn global_concurrency(mut self, n: usize) -> Self {
        self.global_concurrency = Some(n);
        self
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig::new()
    }
}

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
    pub waiting_for: Option<crate::WaitReason>,
}

// ===== Queue =====

pub(crate) struct Queue {
    name: Box<str>,
    state: Mutex<State>,
    hub: Arc<Hub>,
    /// Recent wait and run times, recorded by the tasks' state machine.
    pub(crate) timings: Timings,
    /// Room for waiting tasks under `max_pending`: a permit per free place, taken by a new
    /// task before it is built, so that a refused task is handed back whole, and awaited
    /// (first come, first served) by `enqueue_task_wait`.
    /// Boxed: a plain queue pays one word for it, and its hot fields stay close together.
    room: Option<Box<Room>>,
}

/// `max_pending`'s room: the semaphore and its size.
struct Room {
    places: Semaphore,
    max_pending: usize,
}

struct State {
    /// Waiting tasks in start order (those with a concurrency key wait in `flow`'s keys).
    waiting: Order<Entry>,
    /// Tasks holding a slot. May exceed `limit` for a moment after the limit is lowered; the
    /// excess slots are given up as their tasks finish.
    running: usize,
    retrying: usize,
    delayed: usize,
    limit: usize,
    /// Cancelled (or moved) entries still in an order; skipped when popped.
    tombstones: usize,
    /// Flow control (pause, rate limit, keys, aging, bounded depth, moved priorities): `None`
    /// until a queue uses any, so that a plain queue pays one branch for all of it.
    flow: Option<Box<Flow>>,
}

/// A waiting task: highest priority first, then lowest id (enqueue order).
struct Entry {
    key: u128,
    job: Arc<dyn Job>,
}

impl Entry {
    fn new(job: Arc<dyn Job>) -> Entry {
        let seq = job.header().id.as_u64();
        Entry::with_seq(job, seq)
    }

    /// An entry ranked by priority, then by `seq` (an id, or a fresh one for a moved task).
    fn with_seq(job: Arc<dyn Job>, seq: u64) -> Entry {
        // Priority in the high half (shifted to unsigned so the order holds), then the
        // sequence number inverted so that a lower one ranks higher.
        let priority = u128::from((job.header().priority() as u32) ^ (1 << 31));
        let key = priority << 64 | u128::from(!seq);
        Entry { key, job }
    }
}

impl heap::Keyed for Entry {
    fn key(&self) -> u128 {
        self.key
    }
}

impl Prioritized for Entry {
    fn priority(&self) -> i32 {
        // The key's high half, back from unsigned: no trip to the task's header.
        (((self.key >> 64) as u32) ^ (1 << 31)) as i32
    }
}

/// Below this many tombstones the waiting order is never compacted.
const COMPACT_MIN: usize = 64;

impl Queue {
    #[cfg(test)]
    pub(crate) fn new(name: &str, limit: usize, hub: Arc<Hub>) -> Queue {
        Queue::with_config(name, &QueueConfig::new().concurrency(limit), hub)
    }

    pub(crate) fn with_config(name: &str, config: &QueueConfig, hub: Arc<Hub>) -> Queue {
        let flow = config.uses_flow().then(|| Box::new(Flow::new(config)));
        let waiting = if config.aging.is_some() {
            Order::flat()
        } else {
            Order::new()
        };
        Queue {
            name: name.into(),
            hub,
            timings: Timings::default(),
            room: config.max_pending.map(|n| {
                Box::new(Room {
                    places: Semaphore::new(n.min(Semaphore::MAX_PERMITS)),
                    max_pending: n,
                })
            }),
            state: Mutex::new(State {
                waiting,
                running: 0,
                retrying: 0,
                delayed: 0,
                limit: config.concurrency,
                tombstones: 0,
                flow,
            }),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Where this queue's tasks report events and notifications.
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The room semaphore of a queue with `max_pending`.
    pub(crate) fn room(&self) -> Option<&Semaphore> {
        self.room.as_deref().map(|room| &room.places)
    }

    pub(crate) fn max_pending(&self) -> usize {
        self.room
            .as_deref()
            .map_or(usize::MAX, |room| room.max_pending)
    }

    /// Admits a new task (`retried` false) or one whose backoff ended (`retried` true): it
    /// takes a free slot at once (returned, for the caller to run) or waits in its queue.
    /// Returns `None` also if the task was cancelled meanwhile.
    pub(crate) fn admit(&self, job: Arc<dyn Job>, retried: bool) -> Option<Arc<dyn Job>> {
        self.admit_from(job, if retried { Came::Retry } else { Came::New })
    }

    /// Admits a task whose start delay ended.
    pub(crate) fn admit_delayed(&self, job: Arc<dyn Job>) -> Option<Arc<dyn Job>> {
        self.admit_from(job, Came::Delay)
    }

    fn admit_from(&self, job: Arc<dyn Job>, came: Came) -> Option<Arc<dyn Job>> {
        // A new task that starts at once starts when it was created; read no clock for it.
        let now = if came == Came::New {
            job.header().created_at()
        } else {
            Stamp::now()
        };
        let mut state = lock(&self.state);
        if state.flow.is_some() {
            return self.admit_flow(&mut state, job, came, now);
        }
        let start = state.running < state.limit;
        if !job.header().admit(start, now) {
            return None;
        }
        match came {
            Came::New => {}
            Came::Retry => state.retrying -= 1,
            Came::Delay => state.delayed -= 1,
        }
        if start {
            state.running += 1;
            return Some(job);
        }
        state.waiting.push(Entry::new(job));
        None
    }

    /// Puts a new task aside until its start delay ends (then [`admit_delayed`](Self::admit_delayed)).
    /// False if it was cancelled meanwhile.
    pub(crate) fn delay(&self, header: &Header) -> bool {
        let mut state = lock(&self.state);
        let delayed = header.delay();
        state.delayed += usize::from(delayed);
        delayed
    }

    /// Ends the running attempt of `job` (see [`Header::end_attempt`]) and passes its slot on:
    /// returns the next task to run in it, or `None` if the slot was given up.
    ///
    /// `on_retrying` runs under the queue lock if the task goes into backoff, so that what it
    /// reports comes before anything a cancel of the backoff reports (a cancel needs the lock).
    pub(crate) fn end_attempt(
        &self,
        job: &dyn Job,
        to: Phase,
        error: Option<String>,
        on_retrying: impl FnOnce(),
    ) -> (Phase, Cause, Option<Arc<dyn Job>>) {
        // One clock read, outside the lock: when this task ended and the next one started.
        let now = Stamp::now();
        let mut state = lock(&self.state);
        let (phase, cause) = job.header().end_attempt(to, error, now);
        if phase == Phase::Retrying {
            state.retrying += 1;
            on_retrying();
        }
        let next = if state.flow.is_some() {
            self.end_attempt_flow(&mut state, job.header(), now)
        } else if state.running > state.limit {
            None
        } else {
            state.pop_startable(now)
        };
        if next.is_none() {
            state.running -= 1;
        }
        (phase, cause, next)
    }

    /// Asks `header`'s task to stop, keeping the counts right.
    pub(crate) fn cancel(&self, header: &Header, cause: Cause) -> CancelFrom {
        let mut state = lock(&self.state);
        let from = header.request_cancel(cause);
        match from {
            CancelFrom::Queued => {
                state.tombstones += 1;
                if state.flow.is_some() {
                    self.cancel_queued_flow(&mut state, header);
                }
                state.compact();
            }
            CancelFrom::Retrying => state.retrying -= 1,
            CancelFrom::Delayed => state.delayed -= 1,
            _ => {}
        }
        from
    }

    /// Sets the limit; returns the waiting tasks that may start now.
    pub(crate) fn set_limit(&self, limit: usize) -> Vec<Arc<dyn Job>> {
        let now = Stamp::now();
        let mut state = lock(&self.state);
        state.limit = limit;
        if state.flow.is_some() {
            return self.fill(&mut state, now);
        }
        let mut started = Vec::new();
        while state.running < state.limit {
            match state.pop_startable(now) {
                Some(job) => {
                    state.running += 1;
                    started.push(job);
                }
                None => break,
            }
        }
        started
    }

    /// Pending, running and retrying, for the metrics gauges.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let state = lock(&self.state);
        (state.pending(), state.running, state.retrying)
    }

    pub(crate) fn stats(&self) -> QueueStats {
        let now = Stamp::now();
        let state = lock(&self.state);
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
        stats.wait_time = self.timings.wait.percentiles();
        stats.run_time = self.timings.run.percentiles();
        stats
    }
}

impl State {
    fn pending(&self) -> usize {
        let keyed = self.flow.as_ref().map_or(0, |f| f.keyed_len());
        self.waiting.len() + keyed - self.tombstones
    }

    /// Pops the best task still waiting and marks it running, skipping tombstones.
    fn pop_startable(&mut self, now: Stamp) -> Option<Arc<dyn Job>> {
        while let Some(entry) = self.waiting.pop() {
            if entry.job.header().start_queued(now) {
                return Some(entry.job);
            }
            self.tombstones -= 1;
        }
        None
    }

    /// Drops tombstones once they are most of the waiting entries, so cancelled tasks cannot pile up.
    /// Amortised O(1) per cancel.
    fn compact(&mut self) {
        let keyed = self.flow.as_ref().map_or(0, |f| f.keyed_len());
        if self.tombstones >= COMPACT_MIN && self.tombstones * 2 > self.waiting.len() + keyed {
            match self.flow.as_mut() {
                Some(flow) => flow.retain_live(&mut self.waiting),
                None => self
                    .waiting
                    .retain(|entry| entry.job.header().phase() == Phase::Queued),
            }
            self.tombstones = 0;
        }
    }
}

mod dispatch;
mod flow;
mod flow_config;
mod heap;
mod keys;
mod order;
mod rate;
mod timing;

#[cfg(test)]
mod test_job;

#[cfg(all(test, not(taskrunner_loom)))]
mod model_tests;

#[cfg(all(test, not(taskrunner_loom)))]
mod flow_model_tests;

#[cfg(all(test, taskrunner_loom))]
mod loom_tests;
