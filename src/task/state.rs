//! The lifecycle state machine: a task's [`Phase`], the transitions between phases, and
//! the one way a task reaches its end.
//!
//! Every phase change happens under the header's `record` lock (taken after the queue lock
//! where both are needed), so each change is one atomic step with its timestamps and error;
//! `Header::phase` mirrors it for lock-free reads on the hot path.
//!
//! The transition that moves a task to a terminal phase returns a [`Finished`]: the only
//! value that can [`publish`](super::Job::publish) the task's result, made nowhere else. So
//! exactly one caller ends each task, and it cannot forget to: `Finished` is `must_use`,
//! and the runner's `finish` is the only place that consumes it.

use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use super::header::Header;
use super::record::{Record, Stamp};
use crate::status::TaskStatus;
use crate::sync::{fence, lock};

/// The internal state machine: [`TaskStatus`] plus the distinctions only the runner needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Enqueued and registered, not yet admitted to its queue.
    New = 0,
    /// In its queue's heap.
    Queued = 1,
    Running = 2,
    /// Running, but cancel was asked: the worker will drop the handler and end it `Cancelled`.
    Cancelling = 3,
    Retrying = 4,
    Completed = 5,
    Failed = 6,
    Cancelled = 7,
    /// Waiting out its [`Task::delay`](crate::Task::delay), not yet admitted to its queue.
    Delayed = 8,
    /// Out of its queue's order, waiting for a place in its group (at its cap), or for its
    /// cancelled group to end it.
    Held = 9,
}

impl Phase {
    pub(crate) const fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::New,
            1 => Phase::Queued,
            2 => Phase::Running,
            3 => Phase::Cancelling,
            4 => Phase::Retrying,
            5 => Phase::Completed,
            6 => Phase::Failed,
            8 => Phase::Delayed,
            9 => Phase::Held,
            _ => Phase::Cancelled,
        }
    }

    pub(crate) const fn status(self) -> TaskStatus {
        match self {
            Phase::New | Phase::Queued | Phase::Held => TaskStatus::Pending,
            Phase::Running => TaskStatus::Running,
            // Its cancel was accepted: it ends `Cancelled` whatever its handler does now.
            Phase::Cancelling => TaskStatus::Cancelled,
            Phase::Retrying => TaskStatus::Retrying,
            Phase::Completed => TaskStatus::Completed,
            Phase::Failed => TaskStatus::Failed,
            Phase::Cancelled => TaskStatus::Cancelled,
            Phase::Delayed => TaskStatus::Delayed,
        }
    }
}

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
    fn phase(&self) -> Phase {
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
    fn ending(self) -> Ending {
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
    ending: Ending,
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
    /// Held by its group, out of its queue's order: now `Cancelled`.
    Held,
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

// ===== transitions =====

impl Header {
    fn set_phase(&self, record: &mut Record, phase: Phase) {
        record.phase = phase;
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    /// `New` → `Delayed`. False if it was cancelled. Call under the queue lock.
    pub(crate) fn delay(&self) -> bool {
        let mut record = lock(&self.record);
        if record.phase != Phase::New {
            return false;
        }
        self.set_phase(&mut record, Phase::Delayed);
        true
    }

    /// Whether the task is in a phase its queue may admit it from (`New`, `Delayed`,
    /// `Retrying` or `Held`): not cancelled. Stable under the queue lock.
    pub(crate) fn admissible(&self) -> bool {
        matches!(
            self.phase(),
            Phase::New | Phase::Retrying | Phase::Delayed | Phase::Held
        )
    }

    /// `New`, `Delayed`, `Retrying` or `Queued` → `Held`: its group keeps it from starting.
    /// Call under the queue lock and the group's lock.
    pub(crate) fn hold(&self) {
        let mut record = lock(&self.record);
        if matches!(
            record.phase,
            Phase::New | Phase::Retrying | Phase::Delayed | Phase::Queued | Phase::Held
        ) {
            self.set_phase(&mut record, Phase::Held);
        }
    }

    /// `New`, `Delayed`, `Retrying` or `Held` → `Running` at `now`. False if it was
    /// cancelled. Call under the queue lock.
    pub(crate) fn admit_running(&self, now: Stamp) -> bool {
        let mut record = lock(&self.record);
        if !matches!(
            record.phase,
            Phase::New | Phase::Retrying | Phase::Delayed | Phase::Held
        ) {
            return false;
        }
        self.mark_running(&mut record, now);
        true
    }

    /// `New`, `Delayed`, `Retrying` or `Held` → `Queued`. False if it was cancelled. Call
    /// under the queue lock.
    pub(crate) fn admit_queued(&self) -> bool {
        let mut record = lock(&self.record);
        if !matches!(
            record.phase,
            Phase::New | Phase::Retrying | Phase::Delayed | Phase::Held
        ) {
            return false;
        }
        self.set_phase(&mut record, Phase::Queued);
        true
    }

    /// `Queued` → `Running` at `now`. False if it was cancelled (a tombstone). Call under the
    /// queue lock.
    pub(crate) fn start_queued(&self, now: Stamp) -> bool {
        let mut record = lock(&self.record);
        if record.phase != Phase::Queued {
            return false;
        }
        self.mark_running(&mut record, now);
        true
    }

    fn mark_running(&self, record: &mut Record, now: Stamp) {
        if record.started_at == Stamp::NONE {
            record.started_at = now;
            let wait = now.since(self.created_at());
            self.queue.timings.wait.record(wait);
            crate::observe::metrics::waited(self.queue.name(), wait);
        }
        record.attempt_or_end = now;
        self.set_phase(record, Phase::Running);
    }

    /// Asks the task to stop: a task not running ends `Cancelled` at once; a running one
    /// becomes `Cancelling`, and its worker ends it. Call under the queue lock, which
    /// `Queued` and `Retrying` counts depend on, and then, once that lock is released,
    /// [`wake_cancelled`](Self::wake_cancelled).
    pub(crate) fn request_cancel(&self, cause: CancelCause) -> Cancel {
        let now = Stamp::now();
        let mut record = lock(&self.record);
        let from = match record.phase {
            Phase::New => CancelFrom::New,
            Phase::Queued => CancelFrom::Queued,
            Phase::Retrying => CancelFrom::Retrying,
            Phase::Delayed => CancelFrom::Delayed,
            Phase::Held => CancelFrom::Held,
            Phase::Running => CancelFrom::Running,
            Phase::Cancelling => CancelFrom::Cancelling,
            Phase::Completed | Phase::Failed | Phase::Cancelled => CancelFrom::Finished,
        };
        let finished = match from {
            CancelFrom::Cancelling | CancelFrom::Finished => None,
            CancelFrom::Running => {
                record.cause = cause;
                self.set_phase(&mut record, Phase::Cancelling);
                None
            }
            _ => {
                record.cause = cause;
                Some(self.finish(&mut record, cause.ending(), None, now))
            }
        };
        Cancel { from, finished }
    }

    /// Tells whoever waits on the task (its handler's abort token, its worker, its backoff
    /// or delay timer) that a cancel was accepted. Call after
    /// [`request_cancel`](Self::request_cancel) said it was, with no lock held: waking runs
    /// other code.
    pub(crate) fn wake_cancelled(&self) {
        // Pairs with the fence in `abort_token`: either it sees this token, or it sees the
        // phase `request_cancel` set.
        fence(Ordering::SeqCst);
        if let Some(token) = self.token.get() {
            token.cancel();
        }
        self.waker.wake();
    }

    /// Ends the running attempt at `now` as `transition` says, or `Cancelled` if a cancel
    /// came while it ran. Call under the queue lock, which the `Retrying` count depends on.
    pub(crate) fn end_attempt(&self, transition: Transition, now: Stamp) -> AttemptEnd {
        // The worker's waker: a finished record kept in the registry must not pin the
        // worker's tokio task.
        drop(self.waker.take());
        let mut record = lock(&self.record);
        if record.attempt_or_end != Stamp::NONE {
            let run = now.since(record.attempt_or_end);
            self.queue.timings.run.record(run);
            crate::observe::metrics::ran(self.queue.name(), run);
        }
        if record.phase == Phase::Cancelling {
            let ending = record.cause.ending();
            return AttemptEnd::Finished(self.finish(&mut record, ending, None, now));
        }
        match transition {
            Transition::Retry { error, delay } => {
                record.set_error(Some(error.into_boxed_str()));
                self.set_phase(&mut record, Phase::Retrying);
                AttemptEnd::Retrying(delay)
            }
            Transition::End { ending, error } => {
                AttemptEnd::Finished(self.finish(&mut record, ending, error, now))
            }
        }
    }

    /// The one way into a terminal phase.
    fn finish(
        &self,
        record: &mut Record,
        ending: Ending,
        error: Option<String>,
        now: Stamp,
    ) -> Finished {
        let phase = ending.phase();
        record.attempt_or_end = now;
        let error = match phase {
            Phase::Cancelled => Some(
                match record.cause {
                    CancelCause::User => "cancelled",
                    CancelCause::Shutdown => "stopped by shutdown",
                }
                .into(),
            ),
            _ => error.map(String::into_boxed_str),
        };
        record.set_error(error);
        self.set_phase(record, phase);
        Finished { ending }
    }
}

/// Waits until the task's cancel is requested (for a task waiting out its backoff or its
/// start delay).
pub(crate) async fn cancelled(header: &Header) {
    std::future::poll_fn(|cx| {
        header.waker.register(cx.waker());
        if matches!(header.phase(), Phase::Retrying | Phase::Delayed) {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}
