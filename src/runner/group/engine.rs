//! The engine's side of groups: putting held members back in their queues, and the group's
//! cancel.

use std::sync::Arc;

use crate::runner::Shared;
use crate::task::{CancelCause, GroupCore};

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
    /// waiting members, then stops its running ones (the order [`GroupCore::close`] gives).
    /// Returns how many it ended.
    pub(crate) fn cancel_group(&self, group: &GroupCore) -> usize {
        group
            .close()
            .iter()
            .map(|job| usize::from(self.cancel(&**job, CancelCause::User)))
            .sum()
    }
}
