//! A running task's handler gives its slot back while it waits, and asks for one again
//! (`TaskContext::without_slot`).

use std::sync::{Arc, Weak};

use super::flow::Came;
use super::{Queue, State};
use std::time::Duration;

use crate::observe::metrics::Gauged;
use crate::task::{Header, Job, Phase, QueueControl, Stamp};

impl Queue {
    /// `job`'s handler waits without its slot: the task goes `Waiting`, its slot passes to
    /// the next waiting task (or is given up) and its group place is given back. False, doing
    /// nothing, if it holds no slot to give (it gave it back already, or is being cancelled).
    pub(crate) fn suspend_slot(&self, job: &Arc<dyn Job>) -> bool {
        let now = Stamp::now();
        let header = job.header();
        let group = header.group.as_ref();
        let mut state = self.lock();
        if !header.suspend() {
            return false;
        }
        state.suspended += 1;
        let readmit = group.is_some_and(|group| group.release());
        let next = if state.flow.is_some() {
            // Its concurrency key is given back too: it takes it again when it starts again.
            self.end_attempt_flow(&mut state, header, now)
        } else if state.running > state.limit {
            None
        } else {
            state.pop_startable(now)
        };
        if next.is_none() {
            state.running -= 1;
        }
        drop(state);
        if let Some(host) = self.host.get().and_then(Weak::upgrade) {
            if let (true, Some(group)) = (readmit, group) {
                host.readmit(group);
            }
            if let Some(next) = next {
                host.start_job(next);
            }
        }
        true
    }

    /// `job`'s handler is done waiting and wants its slot back: true if it has one at once
    /// (`Running`); otherwise it waits in the queue's order at its priority (`Pending`), or
    /// at its group's cap, and whoever starts it wakes its worker. False also if it is being
    /// cancelled.
    pub(crate) fn resume_slot(&self, job: &Arc<dyn Job>) -> bool {
        let header = job.header();
        header.set_resuming(true);
        match self.admit_from(Arc::clone(job), Came::Resume) {
            Some(started) if started.header().id == header.id => {
                header.set_resuming(false);
                true
            }
            Some(other) => {
                if let Some(host) = self.host.get().and_then(Weak::upgrade) {
                    host.start_job(other);
                }
                header.phase() == Phase::Running
            }
            None => header.phase() == Phase::Running,
        }
    }

    /// The attempt of `header`'s task ended while its handler was without a slot, in phase
    /// `was`: takes it out of the counts it was in.
    pub(super) fn forget_slotless(&self, state: &mut State, header: &Header, was: Phase) {
        match was {
            Phase::Waiting => state.suspended -= 1,
            Phase::Queued => {
                state.tombstones += 1;
                if state.flow.is_some() {
                    self.cancel_queued_flow(state, header);
                }
                state.compact();
            }
            Phase::Held => {
                state.held -= 1;
                if let Some(flow) = state.flow.as_deref_mut() {
                    self.leave_room(flow);
                }
                if let Some(group) = &header.group {
                    group.forget_held(header);
                }
            }
            // A cancel took it out already.
            _ => {}
        }
    }
}

impl Gauged for Queue {
    fn name(&self) -> &str {
        self.tag.name()
    }

    fn counts(&self) -> (usize, usize, usize) {
        let state = self.lock();
        (state.pending(), state.running, state.retrying)
    }

    fn budget(&self) -> Option<(u64, usize)> {
        if self.budgets == [None, None] {
            return None;
        }
        let (used, waiting) = Queue::budget_counts(&mut self.lock());
        Some((used.unwrap_or(0), waiting))
    }
}

impl QueueControl for Queue {
    fn hold_for(&self, duration: Duration) {
        Queue::hold_for(self, duration);
    }

    fn suspend(&self, job: &Arc<dyn Job>) -> bool {
        Queue::suspend_slot(self, job)
    }

    fn resume(&self, job: &Arc<dyn Job>) -> bool {
        Queue::resume_slot(self, job)
    }

    fn charge(&self, job: &Arc<dyn Job>, attempt: u32, actual: u64) {
        Queue::charge(self, job, attempt, actual);
    }
}
