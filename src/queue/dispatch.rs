//! The flow-control path of a [`Queue`]: admitting, starting and ending tasks when a pause,
//! a rate limit, concurrency keys or a bounded depth may hold a waiting task back although a
//! slot is free, and the timer that starts it when that ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::budget::Gate;
use super::flow::{is_live, Block, Came, Flow};
use super::keys::Keys;
use super::{group_admits, Entry, Queue, QueueConfig, State};
use crate::task::Phase;
use crate::task::{Header, Job, Stamp};
use crate::TaskId;

/// What became of a popped entry.
#[derive(PartialEq, Eq)]
enum Popped {
    /// Its task started.
    Started,
    /// A tombstone: cancelled, or moved to another entry.
    Dead,
    /// Its group, at its cap, holds the task now.
    Held,
}

/// Starts `entry`'s task if it is still waiting, this is its live entry and its group lets
/// it.
fn try_start(moved: &mut HashMap<TaskId, u128>, entry: &Entry, now: Stamp) -> Popped {
    let header = entry.job.header();
    if !moved.is_empty() {
        if let Some(&key) = moved.get(&header.id) {
            if key != entry.key && header.phase() == Phase::Queued {
                return Popped::Dead;
            }
            moved.remove(&header.id);
        }
    }
    if header.group.is_some() && header.phase() == Phase::Queued && !group_admits(&entry.job) {
        return Popped::Held;
    }
    if header.start_queued(now) {
        Popped::Started
    } else {
        Popped::Dead
    }
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
        // Nothing waits: the task may start at once. Otherwise it joins its order first, and
        // the best waiting task starts, so that a task arriving just as a rate limit frees a
        // start neither jumps ahead of older ones nor starts a second task of a busy key.
        let idle = state.pending() == 0;
        let flow = state.flow.as_deref_mut()?;
        let now = flow.now();
        let header = job.header();
        let key = flow.key_of(header);
        let block = flow.blocked(now);
        let free = state.running < state.limit;
        let could_start = free && block.is_none();
        let start = could_start
            && idle
            && key
                .as_ref()
                .is_none_or(|k| flow.keys.as_ref().is_some_and(|keys| keys.is_free(k)))
            && flow
                .budgets
                .as_mut()
                .is_none_or(|b| b.fits(header, key, now));
        if start && header.group.is_some() && header.admissible() && !group_admits(&job) {
            // It waits, outside the order: it keeps (or takes) its place under max_pending.
            match came {
                Came::New | Came::Held => {}
                Came::Retry => state.retrying -= 1,
                Came::Delay => state.delayed -= 1,
                Came::Resume => state.suspended -= 1,
            }
            if matches!(came, Came::Retry | Came::Delay | Came::Resume) {
                self.take_room(flow);
            }
            if came != Came::Held {
                state.held += 1;
            }
            return None;
        }
        let admitted = if start {
            header.admit_running(stamp)
        } else {
            header.admit_queued()
        };
        if !admitted {
            if came == Came::New {
                self.give_back_room(flow);
            }
            return None;
        }
        match came {
            Came::New => {}
            Came::Retry => state.retrying -= 1,
            Came::Delay => state.delayed -= 1,
            Came::Held => state.held -= 1,
            Came::Resume => state.suspended -= 1,
        }
        if start {
            state.running += 1;
            flow.record_start(now, header);
            if let (Some(key), Some(keys)) = (key, &mut flow.keys) {
                keys.acquire(key);
            }
            match came {
                Came::New => self.give_back_room(flow),
                Came::Held => self.leave_room(flow),
                Came::Retry | Came::Delay | Came::Resume => {}
            }
            return Some(job);
        }
        if matches!(came, Came::Retry | Came::Delay | Came::Resume) {
            self.take_room(flow);
        }
        let seq = header.id.as_u64();
        // From a clone of the task's own handle: its key stays borrowed, no shared count is
        // touched.
        let entry = flow.entry(Arc::clone(&job), now, seq);
        let Flow { moved, keys, .. } = flow;
        match (key, keys) {
            (Some(key), Some(keys)) => {
                state.tombstones -= keys.push(key, entry, true, &|e| is_live(moved, e));
            }
            _ => state.waiting.push(entry),
        }
        if could_start {
            let next = self.pop_flow(state, now, stamp);
            state.running += usize::from(next.is_some());
            return next;
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
        if let Some(key) = flow.key_of(ended) {
            let Flow { moved, keys, .. } = flow;
            if let Some(keys) = keys {
                state.tombstones -= keys.release(key, &|e| is_live(moved, e));
            }
        }
        if state.running > state.limit {
            return None;
        }
        let now = flow.now();
        self.pop_flow(state, now, stamp)
    }

    pub(super) fn cancel_queued_flow(&self, state: &mut State, header: &Header) {
        let Some(flow) = state.flow.as_deref_mut() else {
            return;
        };
        self.leave_room(flow);
        // Its entries are dead now whatever they say: forget where it was moved to.
        if !flow.moved.is_empty() {
            flow.moved.remove(&header.id);
        }
        if let Some(key) = flow.key_of(header) {
            let Flow { moved, keys, .. } = flow;
            if let Some(keys) = keys {
                state.tombstones -= keys.cancel_queued(key, &|e| is_live(moved, e));
            }
        }
    }

    /// Pops the best task that may start now and marks it running (the caller counts its
    /// slot). Sets a timer if a time-bound block holds waiting tasks back.
    fn pop_flow(&self, state: &mut State, now: Instant, stamp: Stamp) -> Option<Arc<dyn Job>> {
        let State {
            waiting,
            tombstones,
            held,
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
            if flow.budgets.is_some() {
                match self.budget_gate(flow, waiting, from_key, now) {
                    Gate::Go => {}
                    Gate::Stop => return None,
                    Gate::Again => continue,
                }
            }
            if !from_key {
                let entry = waiting.pop()?;
                match try_start(&mut flow.moved, &entry, stamp) {
                    Popped::Started => {
                        flow.record_start(now, entry.job.header());
                        self.leave_room(flow);
                        return Some(entry.job);
                    }
                    Popped::Dead => *tombstones -= 1,
                    Popped::Held => *held += 1,
                }
                continue;
            }
            let slot = flow.keys.as_mut()?.pop_token()?;
            loop {
                let Flow { moved, keys, .. } = &mut *flow;
                let keys = keys.as_mut()?;
                match keys.pop_entry(slot) {
                    Some(entry) => match try_start(moved, &entry, stamp) {
                        Popped::Started => {
                            *tombstones -= keys.started(slot, &|e| is_live(moved, e));
                            flow.record_start(now, entry.job.header());
                            self.leave_room(flow);
                            return Some(entry.job);
                        }
                        Popped::Dead => *tombstones -= 1,
                        Popped::Held => *held += 1,
                    },
                    None => {
                        *tombstones -= keys.exhausted(slot, &|e| is_live(moved, e));
                        break;
                    }
                }
                if flow.budgets.is_some() {
                    // The key's next task passes the budget gate too: back to the top.
                    let Flow { moved, keys, .. } = &mut *flow;
                    *tombstones -= keys.as_mut()?.exhausted(slot, &|e| is_live(moved, e));
                    break;
                }
            }
        }
    }

    /// Starts waiting tasks while slots are free and nothing holds them back.
    pub(super) fn fill(&self, state: &mut State, stamp: Stamp) -> Vec<Arc<dyn Job>> {
        let Some(now) = state.flow.as_deref().map(Flow::now) else {
            return Vec::new();
        };
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
        let mut state = self.lock();
        let Some(flow) = state.flow.as_deref_mut() else {
            return Vec::new();
        };
        let now = Instant::now();
        if flow.timer.is_some_and(|t| t <= now) {
            flow.timer = None;
        }
        // A hold that has run out no longer needs the clock read.
        if flow.hold_until.is_some_and(|t| t <= now) {
            flow.hold_until = None;
        }
        self.release_keys(&mut state, now, false);
        self.fill(&mut state, stamp)
    }

    /// Sets a timer to [`wake`](Self::wake) the queue at `at`, unless one fires by then.
    /// The timer is set when the queue lock is released ([`Locked`](super::Locked)): spawning
    /// it runs other code.
    pub(super) fn arm_at(&self, flow: &mut Flow, at: Instant) {
        self.arm(flow, at);
    }

    fn arm(&self, flow: &mut Flow, at: Instant) {
        if flow.timer.is_some_and(|t| t <= at) {
            return;
        }
        flow.timer = Some(at);
        flow.arm = Some(at);
    }

    /// The queue's flow control, made (and every waiting task indexed) on first use.
    fn flow_mut(state: &mut State) -> &mut Flow {
        state.index_all();
        Queue::flow_mut_of(&mut state.flow)
    }

    fn flow_mut_of(flow: &mut Option<Box<Flow>>) -> &mut Flow {
        flow.get_or_insert_with(|| Box::new(Flow::new(&QueueConfig::new())))
    }

    /// Nothing new starts until [`resume`](Self::resume).
    pub(crate) fn pause(&self) {
        Queue::flow_mut(&mut self.lock()).paused = true;
    }

    /// Ends a pause; returns the tasks that may start now.
    pub(crate) fn resume(&self) -> Vec<Arc<dyn Job>> {
        let stamp = Stamp::now();
        let mut state = self.lock();
        Queue::flow_mut(&mut state).paused = false;
        self.fill(&mut state, stamp)
    }

    /// No start for `duration` from now (longer holds win).
    pub(crate) fn hold_for(&self, duration: Duration) {
        let now = Instant::now();
        // A hold past what the clock can count is as good as forever: a century.
        let until = now
            .checked_add(duration)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        let mut state = self.lock();
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
        let mut guard = self.lock();
        let state = &mut *guard;
        let header = job.header();
        if header.phase() != Phase::Queued || header.priority() == priority {
            return false;
        }
        state.index_all();
        header.set_priority(priority);
        let flow = Queue::flow_mut_of(&mut state.flow);
        let now = flow.now();
        let entry = flow.entry(Arc::clone(job), now, TaskId::next().as_u64());
        flow.moved.insert(header.id, entry.key);
        let key = flow.key_of(header);
        // The old entry is now a tombstone.
        state.tombstones += 1;
        let Flow { moved, keys, .. } = flow;
        match (&key, keys) {
            (Some(key), Some(keys)) => {
                state.tombstones -= keys.push(key, entry, false, &|e| is_live(moved, e));
            }
            _ => state.waiting.push(entry),
        }
        state.compact();
        // A budget may have held the queue back for the task it moved, or behind it.
        let started = self.budget_recheck(state);
        drop(guard);
        self.start_jobs(started);
        true
    }
}
