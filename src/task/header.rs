//! [`Header`]: everything about a task that does not depend on its types.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use compact_str::{CompactString, ToCompactString};
use futures::task::AtomicWaker;
use tokio_util::sync::CancellationToken;

use super::group::GroupCore;
use super::options::Options;
use super::record::{Record, Stamp};
use super::state::Phase;
use super::tag::QueueTag;
use crate::id::{GroupId, TaskId};
use crate::observe::{EventKind, Subject};
use crate::retry::RetryPolicy;
use crate::status::{Progress, TaskInfo};
use crate::sync::{fence, lock, lock_std, AtomicU8, Mutex};

/// At most one progress event a task per this long.
const PROGRESS_EVENT_EVERY: Duration = Duration::from_millis(100);

/// Everything about a task that does not depend on its types.
pub(crate) struct Header {
    pub(crate) id: TaskId,
    /// Inline when short (most names are): no allocation of its own, nothing to free on
    /// another thread.
    pub(crate) name: CompactString,
    /// The given call id, or `call-{id}`, made when the task is: a lazy cell and `format!`
    /// cost ~650 instructions a task, paid by every attempt's span (whose fields are
    /// evaluated even when nobody listens, once `tracing`'s `log` feature is on).
    call_id: CompactString,
    /// Whether the call id was given (and so is in the runner's call index).
    pub(crate) call_given: bool,
    /// Its queue, by tag: the runner finds the queue itself by the tag's index.
    pub(crate) queue: Arc<QueueTag>,
    /// The priority it was enqueued with, or the one
    /// [`TaskRunner::set_priority`](crate::TaskRunner::set_priority) moved it to (changed under
    /// the queue lock). Read with [`Header::priority`].
    priority: AtomicI32,
    /// The group it was enqueued into, if any.
    pub(crate) group: Option<Arc<GroupCore>>,
    /// Retry and timeout, boxed: most tasks set neither, and then pay 8 bytes, not 64.
    options: Option<Box<Options>>,
    created_at: Stamp,
    pub(super) phase: AtomicU8,
    attempts: AtomicU32,
    /// Retries taken on a `Task::retry_after` wait: not counted against `max_retries`.
    waited_out: AtomicU32,
    /// The worker or backoff timer waiting on this task, woken by a cancel.
    pub(super) waker: AtomicWaker,
    /// A handler that gave its slot back waits to get one: the start wakes it (see
    /// `Header::set_resuming`).
    pub(super) resuming: std::sync::atomic::AtomicBool,
    /// A durable run's attempt that parked on a wait (see `TaskContext::mark_parked`): it
    /// ends `Waiting`, not `Completed`, in the events and metrics.
    pub(crate) parked: std::sync::atomic::AtomicBool,
    pub(super) token: OnceLock<CancellationToken>,
    /// The task's status record. Lock order: a queue's `state` lock, then this; nothing is
    /// locked while this is held, but for the event channel's own lock when a progress or
    /// retry event goes out (so that no event follows the terminal one).
    pub(super) record: Mutex<Record>,
    /// Units charged under its queue's budgets across its attempts ([`NOT_CHARGED`] until
    /// an attempt reserves any). Changed under the queue lock.
    charged: std::sync::atomic::AtomicU64,
}

/// [`Header::charged`] of a task no budget has charged.
const NOT_CHARGED: u64 = u64::MAX;

impl Header {
    #[inline(always)]
    pub(crate) fn new(
        id: TaskId,
        name: CompactString,
        call_id: Option<String>,
        queue: Arc<QueueTag>,
        priority: i32,
        options: Option<Box<Options>>,
    ) -> Header {
        Header {
            id,
            name,
            call_given: call_id.is_some(),
            call_id: call_id.map_or_else(|| generated_call_id(id), CompactString::from),
            queue,
            priority: AtomicI32::new(priority),
            group: None,
            options,
            created_at: Stamp::now(),
            phase: AtomicU8::new(Phase::New as u8),
            attempts: AtomicU32::new(0),
            waited_out: AtomicU32::new(0),
            waker: AtomicWaker::new(),
            resuming: std::sync::atomic::AtomicBool::new(false),
            parked: std::sync::atomic::AtomicBool::new(false),
            token: OnceLock::new(),
            record: Mutex::new(Record::new()),
            charged: std::sync::atomic::AtomicU64::new(NOT_CHARGED),
        }
    }

    /// The same header, a member of `group` (for tests: the runner sets the field in place,
    /// since this moves the whole header).
    #[cfg(test)]
    pub(crate) fn with_group(mut self, group: Option<Arc<GroupCore>>) -> Header {
        self.group = group;
        self
    }

    pub(crate) fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The id of its group, if any.
    pub(crate) fn group_id(&self) -> Option<GroupId> {
        self.group.as_ref().map(|g| g.id)
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// The task's priority now (see [`Header::set_priority`]).
    /// The estimate each attempt reserves under its queue's budgets.
    pub(crate) fn cost(&self) -> Option<u64> {
        self.options()?.flow.cost
    }

    /// Units charged across its attempts, if a budget charged any.
    pub(crate) fn charged(&self) -> Option<u64> {
        Some(self.charged.load(Ordering::Relaxed)).filter(|&c| c != NOT_CHARGED)
    }

    /// An attempt's charge went from `was` to `now` (`was` 0 for a new reservation). Under
    /// the queue lock.
    pub(crate) fn recharge(&self, was: u64, now: u64) {
        let total = self.charged().unwrap_or(0);
        let total = total.saturating_sub(was).saturating_add(now);
        self.charged
            .store(total.min(NOT_CHARGED - 1), Ordering::Relaxed);
    }

    pub(crate) fn priority(&self) -> i32 {
        self.priority.load(Ordering::Relaxed)
    }

    /// Records a new priority. Call under the queue lock, which also moves the task's entry.
    pub(crate) fn set_priority(&self, priority: i32) {
        self.priority.store(priority, Ordering::Relaxed);
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// The abort token, made on first use. It fires when the task is cancelled.
    pub(crate) fn abort_token(&self) -> &CancellationToken {
        let token = self.token.get_or_init(CancellationToken::new);
        // Pairs with the fence in `request_cancel`: either it sees this token, or this sees
        // its phase.
        fence(Ordering::SeqCst);
        if self.cancel_requested() {
            token.cancel();
        }
        token
    }

    pub(super) fn cancel_requested(&self) -> bool {
        matches!(self.phase(), Phase::Cancelling | Phase::Cancelled)
    }

    /// How long a cancelled or timed-out attempt may go on after its token fired, if at all.
    pub(crate) fn cancel_grace(&self) -> Option<Duration> {
        self.options.as_ref()?.cancel_grace.filter(|g| !g.is_zero())
    }

    /// With a cancel grace, the abort token of attempt `attempt`: a child of the task's
    /// token, made on first use (by the handler or by the attempt's timeout).
    pub(crate) fn attempt_token(&self, attempt: u32) -> Option<CancellationToken> {
        self.cancel_grace()?;
        let options = self.options.as_ref()?;
        let mut slot = lock_std(&options.attempt_token);
        match &*slot {
            Some((a, token)) if *a == attempt => Some(token.clone()),
            _ => {
                let token = self.abort_token().child_token();
                *slot = Some((attempt, token.clone()));
                Some(token)
            }
        }
    }

    pub(crate) fn created_at(&self) -> Stamp {
        self.created_at
    }

    pub(crate) fn options(&self) -> Option<&Options> {
        self.options.as_deref()
    }

    /// The last attempt's error message, or why the task was cancelled.
    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.record).error().map(str::to_owned)
    }

    pub(crate) fn progress(&self) -> Option<Progress> {
        lock(&self.record).progress().cloned()
    }

    /// Records progress (`percent` clamped to 0–100; NaN is 0) while the task runs, and
    /// emits a progress event unless one went out less than 100 ms ago.
    pub(crate) fn set_progress(&self, percent: f32, message: String) {
        let percent = if percent.is_nan() {
            0.0
        } else {
            percent.clamp(0.0, 100.0)
        };
        // Emitted under the record lock: the terminal event goes out only after the phase
        // left `Running` under this lock, so no progress event can follow it.
        let mut record = lock(&self.record);
        if !matches!(
            record.phase,
            Phase::Running | Phase::Cancelling | Phase::Waiting
        ) {
            return;
        }
        let event = {
            let state = record.progress_mut();
            state.progress = Progress { percent, message };
            let now = tokio::time::Instant::now();
            let due = state
                .last_event
                .is_none_or(|last| now.duration_since(last) >= PROGRESS_EVENT_EVERY);
            if due {
                state.last_event = Some(now);
            }
            due.then(|| state.progress.clone())
        };
        if let Some(progress) = event {
            self.queue
                .observers()
                .events
                .emit(self, || EventKind::Progress(progress));
        }
        drop(record);
    }

    /// Sends the `Retrying` event of attempt `attempt`, which failed and waits `delay`, if
    /// the task is still in its backoff. Sent under the record lock, like progress: a cancel
    /// of the backoff ends the task under this lock, so its terminal event comes after this
    /// one, or this one is not sent.
    pub(crate) fn report_retry(&self, attempt: u32, delay: Duration) {
        let record = lock(&self.record);
        if record.phase == Phase::Retrying {
            let error = record.error().unwrap_or_default();
            self.queue
                .observers()
                .events
                .emit(self, || EventKind::Retrying {
                    attempt,
                    delay,
                    error: error.to_owned(),
                });
        }
        drop(record);
    }

    /// Sends the `Delayed` event of a task that waits out `delay` before its queue sees it,
    /// if it still does: under the record lock, like [`report_retry`](Self::report_retry),
    /// so that a cancel's terminal event cannot come before it.
    pub(crate) fn report_delayed(&self, delay: Duration) {
        let record = lock(&self.record);
        if record.phase == Phase::Delayed {
            self.queue.observers().events.emit(self, || {
                let now = SystemTime::now();
                EventKind::Delayed {
                    // Past the end of time: a century is as good as forever.
                    until: now
                        .checked_add(delay)
                        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400)),
                }
            });
        }
        drop(record);
    }

    pub(crate) fn retry(&self) -> Option<&RetryPolicy> {
        self.options.as_ref()?.retry.as_ref()
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.options.as_ref()?.timeout
    }

    /// Attempts that count against `max_retries`: all but those retried on a
    /// `Task::retry_after` wait.
    pub(crate) fn counted_attempts(&self, attempt: u32) -> u32 {
        attempt.saturating_sub(self.waited_out.load(Ordering::Relaxed))
    }

    /// Takes one of the task's [`RETRY_AFTER_LIMIT`](crate::RETRY_AFTER_LIMIT) retries on a
    /// wait its error asked for; false once they are used up.
    pub(crate) fn take_retry_after(&self) -> bool {
        self.waited_out
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < super::RETRY_AFTER_LIMIT).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts a new attempt and returns its number.
    pub(crate) fn begin_attempt(&self) -> u32 {
        self.attempts.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A consistent snapshot of the task's status record (without why it waits, which its
    /// queue knows).
    pub(crate) fn snapshot(&self) -> TaskInfo {
        let record = lock(&self.record);
        TaskInfo {
            id: self.id,
            call_id: self.call_id().to_owned(),
            name: self.name.to_string(),
            queue: self.queue.name().to_owned(),
            priority: self.priority(),
            status: record.phase.status(),
            attempts: self.attempts(),
            created_at: self.created_at.get().unwrap_or(SystemTime::UNIX_EPOCH),
            started_at: record.started_at.get(),
            finished_at: record.finished_at().and_then(Stamp::get),
            error: record.error().map(str::to_owned),
            progress: record.progress().cloned(),
            waiting_for: None,
            schedule: self
                .options()
                .and_then(|options| options.schedule.as_deref())
                .map(str::to_owned),
            group: self.group_id(),
            cost: self.cost(),
            charged: self.charged(),
        }
    }
}

impl Subject for Header {
    fn id(&self) -> TaskId {
        self.id
    }

    fn call_id(&self) -> &str {
        Header::call_id(self)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn queue(&self) -> &str {
        self.queue.name()
    }

    fn schedule(&self) -> Option<&str> {
        self.options()?.schedule.as_deref()
    }

    fn group(&self) -> Option<GroupId> {
        self.group_id()
    }
}

/// `call-{id}`, inline (up to 24 bytes: ids below 10^19).
fn generated_call_id(id: TaskId) -> CompactString {
    // compact_str formats integers without `fmt` and without a UTF-8 check.
    let digits = id.as_u64().to_compact_string();
    let mut call_id = CompactString::const_new("call-");
    call_id.push_str(&digits);
    call_id
}

#[cfg(all(test, not(taskrunner_loom)))]
mod tests {
    use super::generated_call_id;
    use crate::id::TaskId;

    #[test]
    fn a_generated_call_id_is_call_dash_the_id() {
        for n in [1, 9, 10, 12_345, u64::MAX] {
            assert_eq!(generated_call_id(TaskId::from_u64(n)), format!("call-{n}"));
        }
    }
}
