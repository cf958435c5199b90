//! A queue's flow control: what may hold a waiting task back although a slot is free (a
//! pause, a rate limit, its concurrency key), and the timer that starts it when that ends.
//!
//! A queue with none of these settings never reaches this file: its state has no `Flow`,
//! and each operation pays one branch for all of it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::keys::Keys;
use super::order::Order;
use super::rate::Window;
use super::{Entry, Queue, QueueConfig, State};
use crate::job::{Header, Job, Stamp};
use crate::status::Phase;
use crate::sync::lock;
use crate::TaskId;

/// Why a waiting task does not start, in [`QueueStats::waiting_for`](crate::QueueStats::waiting_for)
/// and [`TaskInfo::waiting_for`](crate::TaskInfo::waiting_for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitReason {
    /// Its start time ([`Task::delay`](crate::Task::delay)) has not come.
    Delayed,
    /// Its queue is paused ([`TaskRunner::pause_queue`](crate::TaskRunner::pause_queue) or
    /// [`TaskContext::pause_queue_for`](crate::TaskContext::pause_queue_for)).
    Paused,
    /// Its queue's [`RateLimit`](crate::RateLimit) allows no start before a timer fires.
    RateLimited,
    /// Its [`concurrency_key`](crate::Task::concurrency_key) runs as many tasks as the
    /// queue's [`key_concurrency`](crate::QueueConfig::key_concurrency) allows.
    KeyBusy,
    /// Every slot of its queue is taken.
    NoSlot,
}

/// A task's flow-control options, boxed inside its options: most tasks set none.
#[derive(Default)]
pub(crate) struct TaskFlow {
    pub(crate) delay: Option<Duration>,
    pub(crate) concurrency_key: Option<Arc<str>>,
    pub(crate) dedup_key: Option<Box<str>>,
    /// The wait an error asks for, given the error as `&dyn Any` (always the task's `E`).
    pub(crate) retry_after: Option<RetryAfter>,
}

pub(crate) type RetryAfter = Box<dyn Fn(&dyn std::any::Any) -> Option<Duration> + Send + Sync>;

impl fmt::Debug for TaskFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFlow")
            .field("delay", &self.delay)
            .field("concurrency_key", &self.concurrency_key)
            .field("dedup_key", &self.dedup_key)
            .field("retry_after", &self.retry_after.is_some())
            .finish()
    }
}

/// How a task came to its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Came {
    /// Enqueued (it holds a place of `max_pending`, if the queue has one).
    New,
    /// Back from a backoff.
    Retry,
    /// Its start delay ended.
    Delay,
}

/// What holds every start of a queue back.
enum Block {
    Paused,
    Until(Instant, WaitReason),
}

pub(super) struct Flow {
    paused: bool,
    /// No start before this (`TaskContext::pause_queue_for`).
    hold_until: Option<Instant>,
    rate: Option<Window>,
    /// When the wake-up timer that is set will fire, if one is.
    timer: Option<Instant>,
    /// Tasks moved by `set_priority`: the key of their live entry (older ones are tombstones).
    moved: HashMap<TaskId, u128>,
    keys: Option<Keys>,
    aging: Option<Aging>,
    /// Waiting tasks that hold no place of `max_pending` (back from a backoff or a delay when
    /// the queue was full).
    overflow: usize,
}

struct Aging {
    interval_ms: u64,
    epoch: Instant,
}

/// Under aging, the low bits of an entry's key that keep its id (the tie-break).
const AGING_ID_BITS: u32 = 61;

impl Flow {
    pub(super) fn new(config: &QueueConfig) -> Flow {
        Flow {
            paused: false,
            hold_until: None,
            rate: config.rate_limit.map(Window::new),
            timer: None,
            moved: HashMap::new(),
            keys: config
                .key_concurrency
                .map(|n| Keys::new(n, config.aging.is_some())),
            aging: config.aging.map(|interval| Aging {
                interval_ms: interval.as_millis() as u64,
                epoch: Instant::now(),
            }),
            overflow: 0,
        }
    }

    pub(super) fn keyed_len(&self) -> usize {
        self.keys.as_ref().map_or(0, Keys::len)
    }

    /// The task's concurrency key, if the queue limits keys and the task has one.
    fn key_of(&self, header: &Header) -> Option<Arc<str>> {
        self.keys.as_ref()?;
        header.options()?.flow.as_ref()?.concurrency_key.clone()
    }

    fn blocked(&self, now: Instant) -> Option<Block> {
        if self.paused {
            return Some(Block::Paused);
        }
        if let Some(until) = self.hold_until.filter(|&t| t > now) {
            return Some(Block::Until(until, WaitReason::Paused));
        }
        let next = self.rate.as_ref()?.next_start(now)?;
        Some(Block::Until(next, WaitReason::RateLimited))
    }

    /// (paused, why waiting tasks do not start) for the queue's stats; `stuck` if tasks wait
    /// with a slot free.
    pub(super) fn describe(&self, now: Instant, stuck: bool) -> (bool, Option<WaitReason>) {
        let paused = self.paused || self.hold_until.is_some_and(|t| t > now);
        let why = match self.blocked(now) {
            Some(Block::Paused) => Some(WaitReason::Paused),
            Some(Block::Until(_, why)) => Some(why),
            None => self.keys.as_ref().map(|_| WaitReason::KeyBusy),
        };
        (paused, why.filter(|_| stuck))
    }

    /// The entry for a task entering the order at `now`, ranked among equals by `seq` (its
    /// id, or a fresh number to go behind every task already waiting).
    fn entry(&self, job: Arc<dyn Job>, now: Instant, seq: u64) -> Entry {
        let Some(aging) = &self.aging else {
            return Entry::with_seq(job, seq);
        };
        let header = job.header();
        // priority·interval − entry time, in ms since the queue was made: a task's rank
        // against another's does not change as time passes.
        let waited_since = now.saturating_duration_since(aging.epoch).as_millis() as i128;
        let score = i128::from(header.priority()) * i128::from(aging.interval_ms) - waited_since;
        // |score| < 2^65: biased to unsigned, then the id (inverted: lower ranks higher).
        let biased = (score + (1 << 66)) as u128;
        let id = u128::from(!seq) & ((1 << AGING_ID_BITS) - 1);
        Entry {
            key: biased << AGING_ID_BITS | id,
            job,
        }
    }

    fn record_start(&mut self, now: Instant) {
        if let Some(rate) = &mut self.rate {
            rate.record(now);
        }
    }

    /// Keeps only live entries (queued, and not an old entry of a moved task).
    pub(super) fn retain_live(&mut self, waiting: &mut Order<Entry>) {
        let moved = &self.moved;
        let live = |entry: &Entry| {
            let header = entry.job.header();
            header.phase() == Phase::Queued
                && moved.get(&header.id).is_none_or(|key| *key == entry.key)
        };
        waiting.retain(live);
        if let Some(keys) = &mut self.keys {
            keys.retain(live);
        }
    }
}

/// Starts `entry`'s task if it is still waiting and this is its live entry.
fn try_start(moved: &mut HashMap<TaskId, u128>, entry: &Entry, now: Stamp) -> bool {
    let header = entry.job.header();
    if !moved.is_empty() {
        if let Some(&key) = moved.get(&header.id) {
            if key != entry.key && header.phase() == Phase::Queued {
                return false;
            }
            moved.remove(&header.id);
        }
    }
    header.start_queued(now)
}

// ===== impl Queue: the flow-control path =====

impl Queue {
    pub(super) fn admit_flow(
        &self,
        state: &mut State,
        job: Arc<dyn Job>,
        came: Came,
        stamp: Stamp,
    ) -> Option<Arc<dyn Job>> {
        let now = Instant::now();
        let flow = state.flow.as_deref_mut()?;
        let header = job.header();
        let key = flow.key_of(header);
        let block = flow.blocked(now);
        let free = state.running < state.limit;
        let start = free
            && block.is_none()
            && key
                .as_ref()
                .is_none_or(|k| flow.keys.as_ref().is_some_and(|keys| keys.is_free(k)));
        if !header.admit(start, stamp) {
            if came == Came::New {
                self.give_back_room();
            }
            return None;
        }
        match came {
            Came::New => {}
            Came::Retry => state.retrying -= 1,
            Came::Delay => state.delayed -= 1,
        }
        if start {
            state.running += 1;
            flow.record_start(now);
            if let (Some(key), Some(keys)) = (&key, &mut flow.keys) {
                keys.acquire(key);
            }
            if came == Came::New {
                self.give_back_room();
            }
            return Some(job);
        }
        if came != Came::New {
            self.take_room(flow);
        }
        let seq = header.id.as_u64();
        let entry = flow.entry(job, now, seq);
        match (&key, &mut flow.keys) {
            (Some(key), Some(keys)) => keys.push(key, entry, true),
            _ => state.waiting.push(entry),
        }
        if let (Some(Block::Until(at, _)), true) = (block, free) {
            self.arm(flow, at);
        }
        None
    }

    pub(super) fn end_attempt_flow(
        &self,
        state: &mut State,
        ended: &Header,
        stamp: Stamp,
    ) -> Option<Arc<dyn Job>> {
        let flow = state.flow.as_deref_mut()?;
        if let (Some(key), Some(keys)) = (flow.key_of(ended), &mut flow.keys) {
            state.tombstones -= keys.release(&key);
        }
        if state.running > state.limit {
            return None;
        }
        self.pop_flow(state, Instant::now(), stamp)
    }

    pub(super) fn cancel_queued_flow(&self, state: &mut State, header: &Header) {
        let Some(flow) = state.flow.as_deref_mut() else {
            return;
        };
        self.leave_room(flow);
        if let (Some(key), Some(keys)) = (flow.key_of(header), &mut flow.keys) {
            state.tombstones -= keys.cancel_queued(&key);
        }
    }

    /// Pops the best task that may start now and marks it running (the caller counts its
    /// slot). Sets a timer if a time-bound block holds waiting tasks back.
    fn pop_flow(&self, state: &mut State, now: Instant, stamp: Stamp) -> Option<Arc<dyn Job>> {
        let State {
            waiting,
            tombstones,
            flow,
            ..
        } = state;
        let flow = flow.as_deref_mut()?;
        match flow.blocked(now) {
            None => {}
            Some(Block::Paused) => return None,
            Some(Block::Until(at, _)) => {
                if waiting.len() + flow.keyed_len() > *tombstones {
                    self.arm(flow, at);
                }
                return None;
            }
        }
        loop {
            let main = waiting.peek_key();
            let token = flow.keys.as_mut().and_then(Keys::peek_key);
            let from_key = match (main, token) {
                (None, None) => return None,
                (Some(main), Some(token)) => token > main,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            if !from_key {
                let entry = waiting.pop()?;
                if try_start(&mut flow.moved, &entry, stamp) {
                    flow.record_start(now);
                    self.leave_room(flow);
                    return Some(entry.job);
                }
                *tombstones -= 1;
                continue;
            }
            let keys = flow.keys.as_mut()?;
            let name = keys.pop_token()?;
            loop {
                match keys.pop_entry(&name) {
                    Some(entry) => {
                        if try_start(&mut flow.moved, &entry, stamp) {
                            keys.started(&name);
                            flow.record_start(now);
                            self.leave_room(flow);
                            return Some(entry.job);
                        }
                        *tombstones -= 1;
                    }
                    None => {
                        *tombstones -= keys.exhausted(&name);
                        break;
                    }
                }
            }
        }
    }

    /// Starts waiting tasks while slots are free and nothing holds them back.
    pub(super) fn fill(&self, state: &mut State, stamp: Stamp) -> Vec<Arc<dyn Job>> {
        let now = Instant::now();
        let mut started = Vec::new();
        while state.running < state.limit {
            match self.pop_flow(state, now, stamp) {
                Some(job) => {
                    state.running += 1;
                    started.push(job);
                }
                None => break,
            }
        }
        started
    }

    /// The timer fired: starts what may start now (and sets the next timer if needed).
    pub(crate) fn wake(&self) -> Vec<Arc<dyn Job>> {
        let stamp = Stamp::now();
        let mut state = lock(&self.state);
        let Some(flow) = state.flow.as_deref_mut() else {
            return Vec::new();
        };
        if flow.timer.is_some_and(|t| t <= Instant::now()) {
            flow.timer = None;
        }
        self.fill(&mut state, stamp)
    }

    /// Sets a timer to [`wake`](Self::wake) the queue at `at`, unless one fires by then.
    fn arm(&self, flow: &mut Flow, at: Instant) {
        if flow.timer.is_some_and(|t| t <= at) {
            return;
        }
        flow.timer = Some(at);
        if let Some(shared) = self.hub.runner() {
            let name = self.name.clone();
            let runner = Arc::clone(&shared);
            shared.spawn(async move {
                tokio::time::sleep_until(at).await;
                runner.wake_queue(&name);
            });
        }
    }

    fn flow_mut<'a>(state: &'a mut State) -> &'a mut Flow {
        state
            .flow
            .get_or_insert_with(|| Box::new(Flow::new(&QueueConfig::new())))
    }

    /// Nothing new starts until [`resume`](Self::resume).
    pub(crate) fn pause(&self) {
        Queue::flow_mut(&mut lock(&self.state)).paused = true;
    }

    /// Ends a pause; returns the tasks that may start now.
    pub(crate) fn resume(&self) -> Vec<Arc<dyn Job>> {
        let stamp = Stamp::now();
        let mut state = lock(&self.state);
        Queue::flow_mut(&mut state).paused = false;
        self.fill(&mut state, stamp)
    }

    /// No start for `duration` from now (longer holds win).
    pub(crate) fn hold_for(&self, duration: Duration) {
        let now = Instant::now();
        let until = now + duration;
        let mut state = lock(&self.state);
        let waiting = state.pending() > 0;
        let flow = Queue::flow_mut(&mut state);
        if flow.hold_until.is_none_or(|t| t < until) {
            flow.hold_until = Some(until);
        }
        if waiting {
            self.arm(flow, until);
        }
    }

    /// Moves a waiting task to `priority`. False if it is not waiting, or already there.
    pub(crate) fn set_priority(&self, job: &Arc<dyn Job>, priority: i32) -> bool {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let header = job.header();
        if header.phase() != Phase::Queued || header.priority() == priority {
            return false;
        }
        header.set_priority(priority);
        let flow = Queue::flow_mut(&mut state);
        let entry = flow.entry(Arc::clone(job), now, TaskId::next().as_u64());
        flow.moved.insert(header.id, entry.key);
        let key = flow.key_of(header);
        match (&key, &mut flow.keys) {
            (Some(key), Some(keys)) => keys.push(key, entry, false),
            _ => state.waiting.push(entry),
        }
        // The old entry is now a tombstone.
        state.tombstones += 1;
        state.compact();
        true
    }

    /// Why `header`'s waiting task does not start, as far as the queue can tell.
    pub(crate) fn why_waiting(&self, header: &Header) -> Option<WaitReason> {
        let state = lock(&self.state);
        match header.phase() {
            Phase::Delayed => return Some(WaitReason::Delayed),
            Phase::Queued => {}
            _ => return None,
        }
        let Some(flow) = state.flow.as_deref() else {
            return Some(WaitReason::NoSlot);
        };
        match flow.blocked(Instant::now()) {
            Some(Block::Paused) => return Some(WaitReason::Paused),
            Some(Block::Until(_, why)) => return Some(why),
            None => {}
        }
        if let (Some(key), Some(keys)) = (flow.key_of(header), &flow.keys) {
            if !keys.is_free(&key) {
                return Some(WaitReason::KeyBusy);
            }
        }
        Some(WaitReason::NoSlot)
    }

    // ----- room under max_pending -----

    /// A new task that holds a place leaves without waiting (it started, or was cancelled).
    fn give_back_room(&self) {
        if let Some(room) = &self.room {
            room.add_permits(1);
        }
    }

    /// A task that holds no place starts waiting: it takes one if there is one.
    fn take_room(&self, flow: &mut Flow) {
        if let Some(room) = &self.room {
            match room.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(_) => flow.overflow += 1,
            }
        }
    }

    /// A waiting task stops waiting (started or cancelled).
    fn leave_room(&self, flow: &mut Flow) {
        if flow.overflow > 0 {
            flow.overflow -= 1;
        } else {
            self.give_back_room();
        }
    }
}
