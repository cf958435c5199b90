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
    /// Its handler runs but gave its slot back while it waits (`TaskContext::without_slot`).
    Waiting = 10,
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
            10 => Phase::Waiting,
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
            Phase::Waiting => TaskStatus::Waiting,
            Phase::Completed => TaskStatus::Completed,
            Phase::Failed => TaskStatus::Failed,
            Phase::Cancelled => TaskStatus::Cancelled,
            Phase::Delayed => TaskStatus::Delayed,
        }
    }
}

pub(crate) use super::outcome::{
    AttemptEnd, Cancel, CancelCause, CancelFrom, Ending, Finished, Transition,
};

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
            Phase::New | Phase::Retrying | Phase::Delayed | Phase::Held | Phase::Waiting
        )
    }

    /// `New`, `Delayed`, `Retrying` or `Queued` → `Held`: its group keeps it from starting.
    /// Call under the queue lock and the group's lock.
    pub(crate) fn hold(&self) {
        let mut record = lock(&self.record);
        if matches!(
            record.phase,
            Phase::New
                | Phase::Retrying
                | Phase::Delayed
                | Phase::Queued
                | Phase::Held
                | Phase::Waiting
        ) {
            self.set_phase(&mut record, Phase::Held);
        }
    }

    /// `Running` → `Waiting`: the handler gives its slot back while it waits. False if it
    /// holds none to give (it gave it back already, or is being cancelled). Call under the
    /// queue lock.
    pub(crate) fn suspend(&self) -> bool {
        let mut record = lock(&self.record);
        if record.phase != Phase::Running || record.slotless {
            return false;
        }
        record.slotless = true;
        self.set_phase(&mut record, Phase::Waiting);
        true
    }

    /// Marks the task as waiting to get a slot back for its suspended handler: whoever
    /// starts it wakes the handler instead of running a new attempt.
    pub(crate) fn set_resuming(&self, on: bool) {
        self.resuming.store(on, Ordering::SeqCst);
    }

    /// Whether the task being started is a suspended handler getting its slot back (then
    /// it is woken, once): see [`set_resuming`](Self::set_resuming).
    pub(crate) fn take_resuming(&self) -> bool {
        self.resuming.load(Ordering::Relaxed) && self.resuming.swap(false, Ordering::SeqCst)
    }

    /// Wakes the worker polling the task's attempt.
    pub(crate) fn wake_worker(&self) {
        self.waker.wake();
    }

    /// `New`, `Delayed`, `Retrying` or `Held` → `Running` at `now`. False if it was
    /// cancelled. Call under the queue lock.
    pub(crate) fn admit_running(&self, now: Stamp) -> bool {
        let mut record = lock(&self.record);
        if !matches!(
            record.phase,
            Phase::New | Phase::Retrying | Phase::Delayed | Phase::Held | Phase::Waiting
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
            Phase::New | Phase::Retrying | Phase::Delayed | Phase::Held | Phase::Waiting
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
        record.slotless = false;
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
            Phase::Waiting => CancelFrom::Waiting,
            Phase::Running => CancelFrom::Running,
            Phase::Cancelling => CancelFrom::Cancelling,
            Phase::Completed | Phase::Failed | Phase::Cancelled => CancelFrom::Finished,
        };
        // A handler that gave its slot back is still running: its worker ends it.
        let suspended = record.slotless && matches!(from, CancelFrom::Queued | CancelFrom::Held);
        let finished = match from {
            CancelFrom::Cancelling | CancelFrom::Finished => None,
            CancelFrom::Running | CancelFrom::Waiting => {
                record.cause = cause;
                self.set_phase(&mut record, Phase::Cancelling);
                None
            }
            _ if suspended => {
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
    ///
    /// Also returns, for an attempt that had given its slot back, the phase it was in then
    /// (`Waiting`, `Queued`, `Held` or `Cancelling`), for the queue to fix its counts: such
    /// an attempt holds no slot to pass on.
    pub(crate) fn end_attempt(
        &self,
        transition: Transition,
        now: Stamp,
    ) -> (AttemptEnd, Option<Phase>) {
        // The worker's waker: a finished record kept in the registry must not pin the
        // worker's tokio task.
        drop(self.waker.take());
        let mut record = lock(&self.record);
        let slotless = std::mem::take(&mut record.slotless).then_some(record.phase);
        self.resuming.store(false, Ordering::SeqCst);
        (
            self.end_attempt_locked(&mut record, transition, now),
            slotless,
        )
    }

    fn end_attempt_locked(
        &self,
        record: &mut Record,
        transition: Transition,
        now: Stamp,
    ) -> AttemptEnd {
        if record.attempt_or_end != Stamp::NONE {
            let run = now.since(record.attempt_or_end);
            self.queue.timings.run.record(run);
            crate::observe::metrics::ran(self.queue.name(), run);
        }
        if record.phase == Phase::Cancelling {
            let ending = record.cause.ending();
            return AttemptEnd::Finished(self.finish(record, ending, None, now));
        }
        match transition {
            Transition::Retry { error, delay } => {
                record.set_error(Some(error.into_boxed_str()));
                self.set_phase(record, Phase::Retrying);
                AttemptEnd::Retrying(delay)
            }
            Transition::End { ending, error } => {
                AttemptEnd::Finished(self.finish(record, ending, error, now))
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
