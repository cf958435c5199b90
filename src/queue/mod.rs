//! One named queue: its concurrency limit, its waiting tasks in start order, and the slot
//! accounting.
//!
//! Everything here is synchronous and short: each operation takes the queue's lock once,
//! does O(log n) work on the waiting order, and hands back the tasks that should start now. Starting them
//! (spawning a worker) is the caller's job, outside the lock.
//!
//! A queue with flow-control settings (or once paused, held or reprioritised) takes the path
//! in `dispatch.rs` instead, where a free slot is not enough to start: see `flow.rs`.

use std::sync::{Arc, OnceLock, Weak};

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::QueueConfig;
use crate::observe::Observers;
use crate::sync::Mutex;
use crate::task::{
    AttemptEnd, Cancel, CancelCause, CancelFrom, GroupCore, Header, Job, QueueControl, QueueTag,
    Stamp, Transition,
};

use flow::{Came, Flow};
pub(crate) use index::Index;
pub(crate) use indexed::find;
use indexed::Entry;
use order::Order;
use waiting::group_admits;

// ===== Queue =====

/// One queue. Its tasks know it by its [`QueueTag`]; the runner that owns it is its [`Host`].
pub(crate) struct Queue {
    /// Its identity, shared with its tasks: index, name, observers, timings.
    tag: Arc<QueueTag>,
    /// The queue's waiting order and counts. Lock order: this first, then a task's record
    /// lock (`Header::record`); nothing else is locked under it. Wakers and events are not
    /// fired under it: operations return what to start or wake, and the caller does it after
    /// the lock is released.
    state: Mutex<State>,
    /// The runner, for the queue's own timers (a rate limit, a pause that runs out). Unset
    /// when a queue is driven alone in tests.
    host: OnceLock<Weak<dyn Host>>,
    /// Room for waiting tasks under `max_pending`: a permit per free place, taken by a new
    /// task before it is built, so that a refused task is handed back whole, and awaited
    /// (first come, first served) by `enqueue_task_wait`.
    /// Boxed: a plain queue pays one word for it, and its hot fields stay close together.
    room: Option<Box<Room>>,
    /// The queue's budget and its key budget, for the check at enqueue.
    budgets: [Option<crate::config::Budget>; 2],
}

/// What a queue needs of the runner that owns it: a timer that wakes the queue at `at` and
/// starts what it releases then.
pub(crate) trait Host: Send + Sync {
    fn wake_at(&self, queue: usize, at: Instant);
    /// Runs `job`, which the queue just gave a slot (outside the queue lock).
    fn start_job(&self, job: Arc<dyn Job>);
    /// A place freed in `group`, which holds members at its cap: put them back in their
    /// queues while it has places.
    fn readmit(&self, group: &Arc<GroupCore>);
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
    /// Tasks of this queue held by their group at its cap (phase `Held`): out of the order.
    held: usize,
    /// Tasks whose handler gave its slot back while it waits (phase `Waiting`).
    suspended: usize,
    limit: usize,
    /// Cancelled (or moved) entries still in an order; skipped when popped.
    tombstones: usize,
    /// Flow control (pause, rate limit, keys, aging, bounded depth, moved priorities): `None`
    /// until a queue uses any, so that a plain queue pays one branch for all of it.
    flow: Option<Box<Flow>>,
    /// The runner's index, where a new task waiting here is put as it leaves the order
    /// (see `indexed.rs`). Unset when a queue is driven alone in tests.
    index: Option<Arc<Index>>,
}

/// Below this many tombstones the waiting order is never compacted.
const COMPACT_MIN: usize = 64;

impl Queue {
    /// A queue of concurrency `limit` alone, for tests.
    #[cfg(test)]
    pub(crate) fn new(name: &str, limit: usize, observers: Arc<Observers>) -> Queue {
        let config = QueueConfig::new().concurrency(limit);
        Queue::with_config(QueueTag::new(0, name, observers), &config)
    }

    /// A queue set up by `config`, known to its tasks by `tag`.
    pub(crate) fn with_config(tag: QueueTag, config: &QueueConfig) -> Queue {
        let flow = config.uses_flow().then(|| Box::new(Flow::new(config)));
        let waiting = if config.aging.is_some() {
            Order::flat()
        } else {
            Order::new()
        };
        Queue {
            tag: Arc::new(tag),
            host: OnceLock::new(),
            budgets: [config.budget, config.key_budget],
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
                held: 0,
                suspended: 0,
                limit: config.concurrency,
                tombstones: 0,
                flow,
                index: None,
            }),
        }
    }

    /// Connects the queue to the runner that owns it (for its timers), and its tag to the
    /// queue (for a handler's `pause_queue_for`).
    pub(crate) fn connect(self: &Arc<Self>, host: Weak<dyn Host>) {
        let _ = self.host.set(host);
        let this: Arc<dyn QueueControl> = Arc::clone(self) as Arc<dyn QueueControl>;
        self.tag.set_control(Arc::downgrade(&this));
    }

    pub(crate) fn name(&self) -> &str {
        self.tag.name()
    }

    /// The queue's identity as its tasks hold it.
    pub(crate) fn tag(&self) -> &Arc<QueueTag> {
        &self.tag
    }

    /// Where this queue's tasks report events and notifications.
    pub(crate) fn observers(&self) -> &Observers {
        self.tag.observers()
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

    /// Admits a new task: it takes a free slot at once (returned, for the caller to run) or
    /// waits in the queue. Returns `None` also if the task was cancelled meanwhile.
    pub(crate) fn admit_new(&self, job: Arc<dyn Job>) -> Option<Arc<dyn Job>> {
        self.admit_from(job, Came::New)
    }

    /// Admits a task whose backoff ended, like [`admit_new`](Self::admit_new).
    pub(crate) fn admit_retry(&self, job: Arc<dyn Job>) -> Option<Arc<dyn Job>> {
        self.admit_from(job, Came::Retry)
    }

    /// Admits a task whose start delay ended, like [`admit_new`](Self::admit_new).
    pub(crate) fn admit_delayed(&self, job: Arc<dyn Job>) -> Option<Arc<dyn Job>> {
        self.admit_from(job, Came::Delay)
    }

    /// Admits a task its group held and now has a place for, like
    /// [`admit_new`](Self::admit_new).
    pub(crate) fn admit_held(&self, job: Arc<dyn Job>) -> Option<Arc<dyn Job>> {
        self.admit_from(job, Came::Held)
    }

    fn admit_from(&self, job: Arc<dyn Job>, came: Came) -> Option<Arc<dyn Job>> {
        // A new task that starts at once starts when it was created; read no clock for it.
        let now = if came == Came::New {
            job.header().created_at()
        } else {
            Stamp::now()
        };
        // A new task outside a group: indexed here, under the lock (the runner indexes the
        // others), unless it waits in the order, where it is found.
        let fresh = came == Came::New && job.header().group.is_none();
        let mut state = self.lock();
        if state.flow.is_some() {
            if fresh {
                state.index(&job);
            }
            return self.admit_flow(&mut state, job, came, now);
        }
        let start = state.running < state.limit;
        if start && job.header().group.is_some() && job.header().admissible() && !group_admits(&job)
        {
            state.left(came);
            state.held += 1;
            return None;
        }
        let admitted = if start {
            job.header().admit_running(now)
        } else {
            job.header().admit_queued()
        };
        if !admitted || start {
            if fresh {
                state.index(&job);
            }
            if !admitted {
                return None;
            }
        }
        state.left(came);
        if start {
            state.running += 1;
            return Some(job);
        }
        if fresh {
            state.push_unindexed(job);
        } else {
            state.waiting.push(Entry::new(job));
        }
        None
    }

    /// Puts a new task aside until its start delay ends (then [`admit_delayed`](Self::admit_delayed)).
    /// False if it was cancelled meanwhile.
    pub(crate) fn delay(&self, header: &Header) -> bool {
        let mut state = self.lock();
        let delayed = header.delay();
        state.delayed += usize::from(delayed);
        delayed
    }

    /// Ends the running attempt of `job` as `transition` says (see [`Header::end_attempt`])
    /// and passes its slot on: returns what the attempt's end led to, and the next task to
    /// run in the slot, or `None` if the slot was given up.
    pub(crate) fn end_attempt(
        &self,
        job: &dyn Job,
        transition: Transition,
    ) -> (AttemptEnd, Option<Arc<dyn Job>>) {
        // One clock read, outside the lock: when this task ended and the next one started.
        let now = Stamp::now();
        let group = job.header().group.as_ref();
        let mut state = self.lock();
        let (end, slotless) = job.header().end_attempt(transition, now);
        if let Some(budgets) = state.flow.as_deref_mut().and_then(|f| f.budgets.as_mut()) {
            budgets.ended(job.header().id);
        }
        if matches!(end, AttemptEnd::Retrying(_)) {
            state.retrying += 1;
        }
        if let Some(was) = slotless {
            // It had given its slot (and its group place) back: nothing to pass on.
            self.forget_slotless(&mut state, job.header(), was);
            return (end, None);
        }
        // Its place in its group, given back before the slot is passed on, so that the next
        // member may take both.
        let readmit = group.is_some_and(|group| group.release());
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
        drop(state);
        if let (true, Some(group)) = (readmit, group) {
            if let Some(host) = self.host.get().and_then(Weak::upgrade) {
                host.readmit(group);
            }
        }
        (end, next)
    }

    /// Asks `header`'s task to stop, keeping the counts right; wakes whoever waits on the
    /// task once the queue lock is released.
    pub(crate) fn cancel(&self, header: &Header, cause: CancelCause) -> Cancel {
        let mut state = self.lock();
        let cancel = header.request_cancel(cause);
        match cancel.from {
            CancelFrom::Queued => {
                state.index_cancelled(header);
                state.tombstones += 1;
                if state.flow.is_some() {
                    self.cancel_queued_flow(&mut state, header);
                }
                state.compact();
            }
            CancelFrom::Retrying => state.retrying -= 1,
            CancelFrom::Delayed => state.delayed -= 1,
            CancelFrom::Waiting => state.suspended -= 1,
            CancelFrom::Held => {
                state.held -= 1;
                if let Some(flow) = state.flow.as_deref_mut() {
                    self.leave_room(flow);
                }
                if let Some(group) = &header.group {
                    group.forget_held(header);
                }
            }
            _ => {}
        }
        // A budget may have held the queue back for this task (none starts in a shutdown).
        let queued = cancel.from == CancelFrom::Queued && cause == CancelCause::User;
        let started = queued.then(|| self.budget_recheck(&mut state));
        drop(state);
        if !matches!(cancel.from, CancelFrom::Cancelling | CancelFrom::Finished) {
            header.wake_cancelled();
        }
        self.start_jobs(started.unwrap_or_default());
        cancel
    }

    /// Sets the limit; returns the waiting tasks that may start now.
    pub(crate) fn set_limit(&self, limit: usize) -> Vec<Arc<dyn Job>> {
        let now = Stamp::now();
        let mut state = self.lock();
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
}

mod budget;
mod dispatch;
mod flow;
mod heap;
mod index;
mod indexed;
mod keys;
mod ledger;
mod locked;
mod order;
mod rate;
mod room;
mod stats;
mod suspend;
mod waiting;

pub use stats::QueueStats;

#[cfg(test)]
mod test_job;

#[cfg(all(test, not(taskrunner_loom)))]
mod model_tests;

#[cfg(all(test, not(taskrunner_loom)))]
mod flow_model_tests;

#[cfg(all(test, taskrunner_loom))]
mod loom_tests;

#[cfg(all(test, taskrunner_loom))]
mod loom_group_tests;

#[cfg(all(test, taskrunner_loom))]
mod loom_index_tests;
