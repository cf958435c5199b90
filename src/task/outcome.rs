//! What the state machine's transitions take and give: how an attempt ends, how a task
//! ended, who cancelled it and where the cancel found it, and the one proof of an end.

use std::time::Duration;

use super::state::Phase;

/// How a task ended: what its handle resolves with.
#[derive(Debug)]
pub(crate) enum Ending {
    /// `Ok` staged by the last attempt.
    Completed,
    /// `Err` staged by the last attempt.
    Failed,
    TimedOut,
    Panicked(String),
    Cancelled,
    Shutdown,
}

impl Ending {
    /// The terminal phase this ending records.
    pub(super) fn phase(&self) -> Phase {
        match self {
            Ending::Completed => Phase::Completed,
            Ending::Failed | Ending::TimedOut | Ending::Panicked(_) => Phase::Failed,
            Ending::Cancelled | Ending::Shutdown => Phase::Cancelled,
        }
    }
}

/// Who asked for a cancel: it decides between [`TaskError::Cancelled`](crate::TaskError::Cancelled)
/// and [`TaskError::Shutdown`](crate::TaskError::Shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelCause {
    User,
    Shutdown,
}

impl CancelCause {
    pub(super) fn ending(self) -> Ending {
        match self {
            CancelCause::User => Ending::Cancelled,
            CancelCause::Shutdown => Ending::Shutdown,
        }
    }
}

/// Proof that a transition just moved a task to its terminal phase, carrying how it ended.
///
/// Made only here, by the one transition that reaches a terminal phase under the task's
/// record lock, so there is exactly one per task. The runner's `finish` consumes it to do
/// the rest of the ending: the event, the handle's result, the notification, the callbacks.
#[must_use = "a task that reached its terminal phase must be handed to the runner's `finish`"]
#[derive(Debug)]
pub(crate) struct Finished {
    pub(super) ending: Ending,
}

impl Finished {
    pub(crate) fn ending(&self) -> &Ending {
        &self.ending
    }

    pub(crate) fn into_ending(self) -> Ending {
        self.ending
    }
}

/// How an attempt is to end, decided by classifying what it came to
/// ([`Attempt::classify`](super::attempt::Attempt::classify)).
#[derive(Debug)]
pub(crate) enum Transition {
    /// Back to the queue after `delay`, holding no slot.
    Retry { error: String, delay: Duration },
    /// The task ends, with the last attempt's error message if it failed.
    End {
        ending: Ending,
        error: Option<String>,
    },
}

/// What ending an attempt led to.
#[must_use]
#[derive(Debug)]
pub(crate) enum AttemptEnd {
    /// The task waits out `delay` in backoff.
    Retrying(Duration),
    /// The task ended (perhaps not as the attempt said: a cancel asked while it ran wins).
    Finished(Finished),
}

/// Where a cancel found the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelFrom {
    /// Registered but not yet admitted to its queue: now `Cancelled`.
    New,
    /// Waiting in its queue: now `Cancelled`, a tombstone there.
    Queued,
    /// In backoff: now `Cancelled`.
    Retrying,
    /// Waiting out its start delay: now `Cancelled`.
    Delayed,
    /// Held by its group, out of its queue's order: now `Cancelled` (or `Cancelling`, if its
    /// handler waits to get a slot back).
    Held,
    /// Its handler waits without a slot: now `Cancelling`; its worker ends it.
    Waiting,
    /// Running: now `Cancelling`; the worker ends it.
    Running,
    /// Already being cancelled.
    Cancelling,
    /// Already finished: nothing to do.
    Finished,
}

/// What a cancel request did: where it found the task and, if that ended the task, the proof.
#[must_use]
#[derive(Debug)]
pub(crate) struct Cancel {
    pub(crate) from: CancelFrom,
    pub(crate) finished: Option<Finished>,
}
