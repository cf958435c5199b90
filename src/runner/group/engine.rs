//! The engine's side of groups: putting held members back in their queues, and the group's
//! cancel.

use std::sync::Arc;

use crate::runner::Shared;
use crate::task::{CancelCause, GroupCore, Phase};

impl Shared {
    /// While `group` has a free place, puts its best held member back in its queue (where
    /// it starts at once if a slot is free, else waits in its place).
    pub(crate) fn pump(self: &Arc<Self>, group: &GroupCore) {
        while let Some(job) = group.next_held() {
            let queue = Arc::clone(self.queue_of(job.header()));
            if let Some(job) = queue.admit_held(job) {
                self.start(job);
            }
        }
    }

    /// Cancels `group`: closes it (no member starts from now, none joins), then ends its
    /// waiting members, then stops its running ones. Returns how many it ended.
    pub(crate) fn cancel_group(&self, group: &GroupCore) -> usize {
        let members = group.close();
        // No member can start from here on (the queues ask the group first), so a member
        // found waiting stays waiting until its cancel below: none is handed a slot a
        // running member frees.
        let (running, waiting): (Vec<_>, Vec<_>) = members
            .into_iter()
            .partition(|job| matches!(job.header().phase(), Phase::Running | Phase::Cancelling));
        let mut ended = 0;
        for job in waiting.iter().chain(&running) {
            ended += usize::from(self.cancel(&**job, CancelCause::User));
        }
        ended
    }
}
