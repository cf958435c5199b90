//! [`QueueTag`]: what a task knows of its queue.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::cell::Job;
use crate::observe::{Observers, Timings};

/// A queue as its tasks see it: which queue it is, its name, and where its tasks report.
///
/// A task's header holds its queue's tag, not the queue: the tag knows nothing of the
/// queue's waiting order or slots, so the task layer sits below the queue layer. The runner
/// finds the queue itself by [`index`](QueueTag::index).
pub(crate) struct QueueTag {
    /// The queue's position in its runner's list of queues.
    index: usize,
    name: Box<str>,
    observers: Arc<Observers>,
    /// Wait and run times of the queue's tasks, for its stats.
    pub(crate) timings: Timings,
    /// What a running handler may ask of its queue, set by the queue when it is made.
    control: OnceLock<Weak<dyn QueueControl>>,
}

/// What a running handler may ask of its own queue ([`TaskContext::pause_queue_for`](crate::TaskContext::pause_queue_for)).
pub(crate) trait QueueControl: Send + Sync {
    /// Starts nothing more from the queue for `duration`.
    fn hold_for(&self, duration: Duration);
    /// The running `job` gives its slot back while its handler waits. False if it holds
    /// none to give.
    fn suspend(&self, job: &Arc<dyn Job>) -> bool;
    /// The suspended `job` asks for a slot again: true if it has one now; else it waits in
    /// the queue's order, and its worker is woken once it is started.
    fn resume(&self, job: &Arc<dyn Job>) -> bool;
    /// The running `job`'s attempt number `attempt` cost `actual` units: replaces what it
    /// reserved (nothing if that attempt is not the one running).
    fn charge(&self, job: &Arc<dyn Job>, attempt: u32, actual: u64);
}

impl QueueTag {
    pub(crate) fn new(index: usize, name: &str, observers: Arc<Observers>) -> QueueTag {
        QueueTag {
            index,
            name: name.into(),
            observers,
            timings: Timings::default(),
            control: OnceLock::new(),
        }
    }

    /// The queue's position in its runner's list of queues.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn observers(&self) -> &Observers {
        &self.observers
    }

    /// Connects the tag to its queue's controls (once).
    pub(crate) fn set_control(&self, control: Weak<dyn QueueControl>) {
        let _ = self.control.set(control);
    }

    /// The queue, if it still exists.
    pub(crate) fn control(&self) -> Option<Arc<dyn QueueControl>> {
        self.control.get().and_then(Weak::upgrade)
    }

    /// Holds the queue for `duration`, if it still exists.
    pub(crate) fn hold_for(&self, duration: Duration) {
        if let Some(control) = self.control.get().and_then(Weak::upgrade) {
            control.hold_for(duration);
        }
    }
}
