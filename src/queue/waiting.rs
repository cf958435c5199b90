//! A queue's waiting tasks: their count, and popping the next one to start.

use std::sync::Arc;

use super::flow::Came;
use super::{State, COMPACT_MIN};
use crate::task::{Job, Phase, Stamp};

/// Whether `job`, which its queue would start now, may start as far as its group is
/// concerned (see [`GroupCore::admit`](crate::task::GroupCore::admit)); if not it is `Held` now. Call under the queue lock,
/// with the task in a phase it may start from.
pub(super) fn group_admits(job: &Arc<dyn Job>) -> bool {
    match &job.header().group {
        None => true,
        Some(group) => group.admit(job),
    }
}

impl State {
    /// Tasks waiting to start: in the order, with a key, or held by their group.
    pub(super) fn pending(&self) -> usize {
        let keyed = self.flow.as_ref().map_or(0, |f| f.keyed_len());
        self.waiting.len() + keyed + self.held - self.tombstones
    }

    /// A task came back to the queue from `came`: it is no longer counted there.
    pub(super) fn left(&mut self, came: Came) {
        match came {
            Came::New => {}
            Came::Retry => self.retrying -= 1,
            Came::Delay => self.delayed -= 1,
            Came::Held => self.held -= 1,
            Came::Resume => self.suspended -= 1,
        }
    }

    /// Pops the best task still waiting and marks it running, skipping tombstones (and
    /// handing members of a group at its cap to their group).
    pub(super) fn pop_startable(&mut self, now: Stamp) -> Option<Arc<dyn Job>> {
        while let Some(entry) = self.waiting.pop() {
            let header = entry.job.header();
            if header.group.is_some()
                && header.phase() == Phase::Queued
                && !group_admits(&entry.job)
            {
                self.held += 1;
                continue;
            }
            if header.start_queued(now) {
                self.index_leaving(&entry);
                return Some(entry.job);
            }
            self.tombstones -= 1;
        }
        None
    }

    /// Drops tombstones once they are most of the waiting entries, so cancelled tasks cannot pile up.
    /// Amortised O(1) per cancel.
    pub(super) fn compact(&mut self) {
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
