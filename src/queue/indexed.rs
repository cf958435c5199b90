//! A queue's waiting entries, and which of them the runner's [`Index`] does not hold: a
//! new task waiting in a plain queue is found through the queue's order alone, and indexed
//! under the queue lock as it leaves the order (it starts, or is cancelled), or when the
//! queue first takes the flow-control path (whose orders and keys are not searched).

use std::sync::Arc;

use super::heap::Keyed;
use super::order::Prioritized;
use super::{Queue, State};
use crate::id::TaskId;
use crate::task::{Header, Job, Phase};

use super::index::Index;

/// A waiting task: highest priority first, then lowest id (enqueue order).
pub(super) struct Entry {
    /// The rank (see [`rank`]), its [`INDEXED`] bit clear if the task is in no index.
    pub(super) key: u128,
    pub(super) job: Arc<dyn Job>,
}

/// The bit of [`Entry::key`] that is clear while its task is in no index but this order:
/// the lowest, below the sequence number (see [`rank`]), so that it changes no entry's
/// place against another's, and the key needs no masking.
const INDEXED: u128 = 1;

impl Entry {
    #[inline]
    pub(super) fn new(job: Arc<dyn Job>) -> Entry {
        let seq = job.header().id.as_u64();
        Entry::with_seq(job, seq)
    }

    /// An entry ranked by priority, then by `seq` (an id, or a fresh one for a moved task).
    #[inline]
    pub(super) fn with_seq(job: Arc<dyn Job>, seq: u64) -> Entry {
        let key = rank(job.header().priority(), seq);
        Entry { key, job }
    }

    /// Whether its task is in no index but this order.
    #[inline]
    fn unindexed(&self) -> bool {
        self.key & INDEXED == 0
    }
}

/// Priority in the high half (shifted to unsigned so the order holds), then the sequence
/// number, shifted left by one for the [`INDEXED`] bit (set here) and inverted so that a
/// lower one ranks higher. Sequence numbers (ids) stay below 2^63.
#[inline]
fn rank(priority: i32, seq: u64) -> u128 {
    let priority = u128::from((priority as u32) ^ (1 << 31));
    priority << 64 | seq_rank(seq)
}

/// The low half of [`rank`]: `seq` shifted for the [`INDEXED`] bit (set), inverted. Every key
/// ranked against an entry's (a key's token too) encodes its sequence number so.
#[inline]
pub(super) fn seq_rank(seq: u64) -> u128 {
    u128::from(!(seq << 1))
}

impl Keyed for Entry {
    #[inline]
    fn key(&self) -> u128 {
        self.key
    }
}

impl Prioritized for Entry {
    #[inline]
    fn priority(&self) -> i32 {
        // The key's high half, back from unsigned: no trip to the task's header.
        (((self.key >> 64) as u32) ^ (1 << 31)) as i32
    }
}

impl State {
    /// Puts a new task (outside a group) in the order of a plain queue, unindexed: the
    /// order finds it.
    #[inline]
    pub(super) fn push_unindexed(&mut self, job: Arc<dyn Job>) {
        let mut entry = Entry::new(job);
        if self.index.is_some() {
            entry.key &= !INDEXED;
        }
        self.waiting.push(entry);
    }

    /// Indexes `job` (under the queue lock): it is leaving the order, or was never in it.
    #[inline]
    pub(super) fn index(&self, job: &Arc<dyn Job>) {
        if let Some(index) = &self.index {
            index.insert(Arc::clone(job));
        }
    }

    /// `entry` left the order to start: indexed now if it was not.
    #[inline]
    pub(super) fn index_leaving(&self, entry: &Entry) {
        if entry.unindexed() {
            self.index(&entry.job);
        }
    }

    /// A waiting task of this plain queue is cancelled: indexed now, before its entry can be
    /// dropped as a tombstone.
    pub(super) fn index_cancelled(&self, header: &Header) {
        if self.index.is_none() || self.flow.is_some() {
            return;
        }
        let key = rank(header.priority(), header.id.as_u64());
        if let Some(entry) = self.waiting.find(header.priority(), key) {
            self.index_leaving(entry);
        }
    }

    /// Before the queue takes the flow-control path, which does not index what leaves its
    /// orders: indexes every waiting task.
    pub(super) fn index_all(&self) {
        if self.flow.is_some() || self.index.is_none() {
            return;
        }
        self.waiting.for_each(|entry| {
            if entry.unindexed() && entry.job.header().phase() == Phase::Queued {
                self.index(&entry.job);
            }
        });
    }
}

/// The task `id`, from `index` or from one of `queues`' orders: the index, then the
/// queues, then the index again, since a task leaves an order for the index under its
/// queue's lock (read the other way, a task moving meanwhile would be missed).
pub(crate) fn find(index: &Index, queues: &[Arc<Queue>], id: TaskId) -> Option<Arc<dyn Job>> {
    if let Some(job) = index.get(id) {
        return Some(job);
    }
    queues
        .iter()
        .find_map(|queue| queue.find_waiting(id))
        .or_else(|| index.get(id))
}

impl Queue {
    /// Indexes in `index` what leaves this queue's order (see the module's note).
    pub(crate) fn index_into(&self, index: Arc<Index>) {
        self.lock().index = Some(index);
    }

    /// The task `id` if it waits in this queue's order, unindexed or not.
    pub(crate) fn find_waiting(&self, id: TaskId) -> Option<Arc<dyn Job>> {
        let state = self.lock();
        if state.flow.is_some() || state.waiting.len() == 0 {
            return None;
        }
        state
            .waiting
            .find_any(|priority| rank(priority, id.as_u64()))
            .map(|entry| Arc::clone(&entry.job))
    }

    /// The waiting tasks that only this queue's order holds.
    pub(crate) fn unindexed(&self) -> Vec<Arc<dyn Job>> {
        let state = self.lock();
        let mut jobs = Vec::new();
        if state.flow.is_none() {
            state.waiting.for_each(|entry| {
                if entry.unindexed() && entry.job.header().phase() == Phase::Queued {
                    jobs.push(Arc::clone(&entry.job));
                }
            });
        }
        jobs
    }
}
