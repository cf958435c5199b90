//! [`GroupCore`]: what the members of one task group share: its cap on running members
//! across queues, its cancel, and the list of its live members.
//!
//! The public face is `TaskGroup` (in the runner); this is the part a queue consults when a
//! member is about to take a slot, so it lives below the queues.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::cell::Job;
use super::header::Header;
use super::state::Phase;
use crate::id::{GroupId, TaskId};
use crate::sync::{lock, AtomicBool, AtomicUsize, Mutex};

/// How many finished members a group remembers for its `list()`.
pub(crate) const RECENT_FINISHED: usize = 1024;

/// No cap.
const UNCAPPED: usize = usize::MAX;

/// What a group's members share.
///
/// Lock order: a queue's `state`, then this group's `state`, then a task's `record`. No
/// queue lock is ever taken under this one: a held member is put back in its queue by the
/// runner after this lock is released.
pub(crate) struct GroupCore {
    pub(crate) id: GroupId,
    /// Set, under `state`, by the group's cancel: from then no member starts and none joins.
    cancelled: AtomicBool,
    /// At most this many members hold a slot at once, across queues (`UNCAPPED`: no cap).
    cap: AtomicUsize,
    /// Members holding a slot: taken by [`admit`](Self::admit), given back by
    /// [`release`](Self::release) when the attempt ends.
    running: AtomicUsize,
    state: Mutex<GroupState>,
    /// Woken when the last live member ends.
    idle: tokio::sync::Notify,
}

struct GroupState {
    /// The live members.
    members: HashMap<TaskId, Arc<dyn Job>>,
    /// Members a queue would have started but for the cap: highest priority first, then in
    /// enqueue order. Each is in phase `Held`, out of its queue's order.
    held: BTreeMap<(Reverse<i32>, TaskId), Arc<dyn Job>>,
    /// The last [`RECENT_FINISHED`] members to end, oldest first.
    finished: VecDeque<TaskId>,
    /// How many members have ended.
    ended: u64,
}

impl GroupCore {
    pub(crate) fn new() -> GroupCore {
        GroupCore {
            id: GroupId::next(),
            cancelled: AtomicBool::new(false),
            cap: AtomicUsize::new(UNCAPPED),
            running: AtomicUsize::new(0),
            state: Mutex::new(GroupState {
                members: HashMap::new(),
                held: BTreeMap::new(),
                finished: VecDeque::new(),
                ended: 0,
            }),
            idle: tokio::sync::Notify::new(),
        }
    }

    /// The cap, if any.
    pub(crate) fn cap(&self) -> Option<usize> {
        Some(self.cap.load(Ordering::SeqCst)).filter(|&c| c != UNCAPPED)
    }

    /// Sets the cap (at least 1). Returns whether held members may now start.
    pub(crate) fn set_cap(&self, cap: usize) -> bool {
        let state = lock(&self.state);
        self.cap.store(cap.max(1), Ordering::SeqCst);
        !state.held.is_empty()
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Members holding a slot now.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Adds a new member. False if the group was cancelled: the task must be refused.
    pub(crate) fn join(&self, job: &Arc<dyn Job>) -> bool {
        let mut state = lock(&self.state);
        if self.cancelled.load(Ordering::SeqCst) {
            return false;
        }
        state.members.insert(job.header().id, Arc::clone(job));
        true
    }

    /// A member ended: forgets it (but for its id, in the recent list).
    pub(crate) fn leave(&self, id: TaskId) {
        let mut state = lock(&self.state);
        if state.members.remove(&id).is_none() {
            return;
        }
        state.ended += 1;
        if state.finished.len() == RECENT_FINISHED {
            state.finished.pop_front();
        }
        state.finished.push_back(id);
        let idle = state.members.is_empty();
        drop(state);
        if idle {
            self.idle.notify_waiters();
        }
    }

    /// Whether `job`, which a queue would start now, may take a slot: if so it counts as
    /// running in the group. If not (the group is at its cap, or cancelled), the task is
    /// now `Held`: out of its queue's order, waiting for a place in the group (or for the
    /// group's cancel to end it). Call under the task's queue lock, with the task in a phase
    /// that may start (a cancel cannot come in between: it takes that lock).
    pub(crate) fn admit(&self, job: &Arc<dyn Job>) -> bool {
        let cap = self.cap.load(Ordering::SeqCst);
        if cap == UNCAPPED && !self.cancelled.load(Ordering::SeqCst) {
            self.running.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        let mut state = lock(&self.state);
        let cancelled = self.cancelled.load(Ordering::SeqCst);
        if !cancelled && self.running.load(Ordering::SeqCst) < self.cap.load(Ordering::SeqCst) {
            self.running.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        let header = job.header();
        header.hold();
        if !cancelled {
            let key = (Reverse(header.priority()), header.id);
            state.held.insert(key, Arc::clone(job));
        }
        false
    }

    /// A member's attempt ended: gives back its place. Returns whether a held member may
    /// take it (then the runner calls [`next_held`](Self::next_held) once the queue lock is
    /// released).
    pub(crate) fn release(&self) -> bool {
        self.running.fetch_sub(1, Ordering::SeqCst);
        if self.cap.load(Ordering::SeqCst) == UNCAPPED {
            return false;
        }
        !lock(&self.state).held.is_empty()
    }

    /// The best held member, taken out of the held list, if the group has a free place for
    /// it. The runner puts it back in its queue (where it passes [`admit`](Self::admit)
    /// again when a slot is free) and asks again, until this says `None`.
    pub(crate) fn next_held(&self) -> Option<Arc<dyn Job>> {
        let mut state = lock(&self.state);
        if self.cancelled.load(Ordering::SeqCst)
            || self.running.load(Ordering::SeqCst) >= self.cap.load(Ordering::SeqCst)
        {
            return None;
        }
        state.held.pop_first().map(|(_, job)| job)
    }

    /// A held member was cancelled: forgets it. Call under its queue lock.
    pub(crate) fn forget_held(&self, header: &Header) {
        let key = (Reverse(header.priority()), header.id);
        lock(&self.state).held.remove(&key);
    }

    /// Cancels the group: no member starts from now on and no task joins. Returns the live
    /// members in the order to cancel them: the waiting ones first, then those holding a
    /// slot. No member can start from here on (its queue asks the group first), so one found
    /// waiting stays waiting until its cancel: none is handed a slot a running member frees.
    pub(crate) fn close(&self) -> Vec<Arc<dyn Job>> {
        let mut state = lock(&self.state);
        self.cancelled.store(true, Ordering::SeqCst);
        state.held.clear();
        let mut members: Vec<Arc<dyn Job>> = state.members.values().cloned().collect();
        drop(state);
        // In id order, each phase read once: the same order every time (loom needs that).
        members.sort_unstable_by_key(|job| job.header().id);
        let (running, mut waiting): (Vec<_>, Vec<_>) = members
            .into_iter()
            .partition(|job| matches!(job.header().phase(), Phase::Running | Phase::Cancelling));
        waiting.extend(running);
        waiting
    }

    /// The live members, in no particular order.
    pub(crate) fn members(&self) -> Vec<Arc<dyn Job>> {
        lock(&self.state).members.values().cloned().collect()
    }

    /// The ids of the last members to end, oldest first.
    pub(crate) fn recent(&self) -> Vec<TaskId> {
        lock(&self.state).finished.iter().copied().collect()
    }

    /// How many members have ended.
    pub(crate) fn ended(&self) -> u64 {
        lock(&self.state).ended
    }

    /// Waits until the group has no live member.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.state).members.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

impl std::fmt::Debug for GroupCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCore")
            .field("id", &self.id)
            .field("cap", &self.cap())
            .field("running", &self.running())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
