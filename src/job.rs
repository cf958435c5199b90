//! The type-erased task that queues, workers, the registry and handles share.
//!
//! One allocation per task, a [`TaskCell`], holds everything: the non-generic [`Header`]
//! (identity, options, state machine, status record), the handler, and the slot its typed
//! result waits in for the [`TaskHandle`](crate::TaskHandle). Queues and the registry see it as
//! `Arc<dyn Job>`; the handle sees it as `Arc<dyn Outcome<T, E>>`.
//!
//! Every phase change happens under the header's `record` lock (taken after the queue lock
//! where both are needed), so each change is one atomic step with its timestamps and error;
//! `phase` mirrors it for lock-free reads on the hot path.

use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use compact_str::CompactString;
use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use futures::FutureExt;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::events::EventKind;
use crate::queue::Queue;
use crate::status::Phase;
use crate::sync::{fence, lock, lock_std, AtomicU8, Mutex};
use crate::task::{Options, RetryPredicate};
use crate::{Progress, RetryPolicy, TaskContext, TaskError, TaskId, TaskInfo, TaskStatus};

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Attempt {
    Ok,
    Err {
        retry: bool,
        message: String,
        /// The wait the error asked for (`Task::retry_after`), if any.
        retry_after: Option<Duration>,
    },
    TimedOut,
    Panicked(String),
    /// The task's cancel was requested while the attempt ran; its future was dropped.
    Cancelled,
}

/// How a task ended, for the handle.
#[derive(Debug)]
pub(crate) enum End {
    /// `Ok` staged by the last attempt.
    Completed,
    /// `Err` staged by the last attempt.
    Failed,
    TimedOut,
    Panicked(String),
    Cancelled,
    Shutdown,
}

/// Who asked for a cancel: it decides between [`TaskError::Cancelled`] and
/// [`TaskError::Shutdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    User,
    Shutdown,
}

impl Cause {
    pub(crate) fn end(self) -> End {
        match self {
            Cause::User => End::Cancelled,
            Cause::Shutdown => End::Shutdown,
        }
    }
}

/// A task as queues, workers and the registry see it.
pub(crate) trait Job: Send + Sync + 'static {
    fn header(&self) -> &Header;
    /// Runs attempt number `attempt` (1-based) inside its tracing span, raced against the
    /// task's cancel and timeout, panics caught. Stages the handler's typed result.
    fn run(self: Arc<Self>, attempt: u32) -> BoxFuture<'static, Attempt>;
    /// Delivers the final result to the handle and drops the handler. Called exactly once,
    /// by whoever moved the task to its terminal phase.
    fn publish(&self, end: End);
}

/// A task as its [`TaskHandle`](crate::TaskHandle) sees it.
pub(crate) trait Outcome<T, E>: Job {
    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError<E>>>;
    /// The handle is gone: drop the result instead of keeping it.
    fn detach(&self);
}

// ===== Header =====

/// Everything about a task that does not depend on its types.
pub(crate) struct Header {
    pub(crate) id: TaskId,
    /// Inline when short (most names are): no allocation of its own, nothing to free on
    /// another thread.
    pub(crate) name: CompactString,
    call_id: OnceLock<CompactString>,
    pub(crate) queue: Arc<Queue>,
    /// The priority it was enqueued with, or the one
    /// [`TaskRunner::set_priority`](crate::TaskRunner::set_priority) moved it to (changed under
    /// the queue lock). Read with [`Header::priority`].
    priority: AtomicI32,
    /// Retry and timeout, boxed: most tasks set neither, and then pay 8 bytes, not 64.
    options: Option<Box<Options>>,
    created_at: Stamp,
    phase: AtomicU8,
    attempts: AtomicU32,
    /// Retries taken on a `Task::retry_after` wait: not counted against `max_retries`.
    waited_out: AtomicU32,
    /// The worker or backoff timer waiting on this task, woken by a cancel.
    waker: AtomicWaker,
    token: OnceLock<CancellationToken>,
    record: Mutex<Record>,
}

/// The mutable part of a task's status, changed only under its lock.
struct Record {
    phase: Phase,
    cause: Cause,
    started_at: Stamp,
    /// When the running (or last) attempt started, for its run time.
    attempt_started: Stamp,
    finished_at: Stamp,
    error: Option<Box<str>>,
    /// Boxed: most tasks never report progress.
    progress: Option<Box<ProgressState>>,
}

struct ProgressState {
    progress: Progress,
    /// When the last progress event went out, for coalescing.
    last_event: Option<tokio::time::Instant>,
}

/// At most one progress event a task per this long.
const PROGRESS_EVENT_EVERY: Duration = Duration::from_millis(100);

/// A wall-clock time as nanoseconds since the Unix epoch; 0 means none. Half the size of an
/// `Option<SystemTime>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    const NONE: Stamp = Stamp(0);

    pub(crate) fn now() -> Stamp {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        // u64 nanoseconds last until the year 2554.
        let nanos = since_epoch
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since_epoch.subsec_nanos()));
        Stamp(nanos.max(1))
    }

    fn get(self) -> Option<SystemTime> {
        (self != Stamp::NONE).then(|| SystemTime::UNIX_EPOCH + Duration::from_nanos(self.0))
    }

    /// The time from `earlier` to this, zero if the wall clock went back.
    pub(crate) fn since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
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
    /// Running: now `Cancelling`; the worker ends it.
    Running,
    /// Already being cancelled.
    Cancelling,
    /// Already finished: nothing to do.
    Finished,
}

impl Header {
    pub(crate) fn new(
        id: TaskId,
        name: String,
        call_id: Option<String>,
        queue: Arc<Queue>,
        priority: i32,
        options: Option<Box<Options>>,
    ) -> Header {
        Header {
            id,
            name: CompactString::from(name),
            call_id: call_id.map_or_else(OnceLock::new, |c| OnceLock::from(CompactString::from(c))),
            queue,
            priority: AtomicI32::new(priority),
            options,
            created_at: Stamp::now(),
            phase: AtomicU8::new(Phase::New as u8),
            attempts: AtomicU32::new(0),
            waited_out: AtomicU32::new(0),
            waker: AtomicWaker::new(),
            token: OnceLock::new(),
            record: Mutex::new(Record {
                phase: Phase::New,
                cause: Cause::User,
                started_at: Stamp::NONE,
                attempt_started: Stamp::NONE,
                finished_at: Stamp::NONE,
                error: None,
                progress: None,
            }),
        }
    }

    pub(crate) fn call_id(&self) -> &str {
        self.call_id
            .get_or_init(|| compact_str::format_compact!("call-{}", self.id))
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// The task's priority now (see [`Header::set_priority`]).
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

    fn cancel_requested(&self) -> bool {
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

    fn set_phase(&self, record: &mut Record, phase: Phase) {
        record.phase = phase;
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    pub(crate) fn created_at(&self) -> Stamp {
        self.created_at
    }

    pub(crate) fn options(&self) -> Option<&Options> {
        self.options.as_deref()
    }

    /// The last attempt's error message, or why the task was cancelled.
    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.record).error.as_deref().map(str::to_owned)
    }

    pub(crate) fn progress(&self) -> Option<Progress> {
        lock(&self.record)
            .progress
            .as_ref()
            .map(|state| state.progress.clone())
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
        if !matches!(record.phase, Phase::Running | Phase::Cancelling) {
            return;
        }
        let event = {
            let state = record.progress.get_or_insert_with(|| {
                Box::new(ProgressState {
                    progress: Progress::default(),
                    last_event: None,
                })
            });
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
                .hub()
                .events
                .emit(self, || EventKind::Progress(progress));
        }
        drop(record);
    }

    pub(crate) fn retry(&self) -> Option<&RetryPolicy> {
        self.options.as_ref()?.retry.as_ref()
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.options.as_ref()?.timeout
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

    /// `New`, `Delayed` or `Retrying` → `Running` (if `start`, at `now`) or `Queued`. False
    /// if it was cancelled. Call under the queue lock.
    pub(crate) fn admit(&self, start: bool, now: Stamp) -> bool {
        let mut record = lock(&self.record);
        if !matches!(record.phase, Phase::New | Phase::Retrying | Phase::Delayed) {
            return false;
        }
        if start {
            self.mark_running(&mut record, now);
        } else {
            self.set_phase(&mut record, Phase::Queued);
        }
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
            let wait = now.since(self.created_at);
            self.queue.timings.wait.record(wait);
            crate::metrics::waited(&self.queue, wait);
        }
        record.attempt_started = now;
        self.set_phase(record, Phase::Running);
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
                (n < crate::RETRY_AFTER_LIMIT).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts a new attempt and returns its number.
    pub(crate) fn begin_attempt(&self) -> u32 {
        self.attempts.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Asks the task to stop. Call under the queue lock, which `Queued` and `Retrying` counts
    /// depend on.
    pub(crate) fn request_cancel(&self, cause: Cause) -> CancelFrom {
        let now = Stamp::now();
        let from = {
            let mut record = lock(&self.record);
            let from = match record.phase {
                Phase::New => CancelFrom::New,
                Phase::Queued => CancelFrom::Queued,
                Phase::Retrying => CancelFrom::Retrying,
                Phase::Delayed => CancelFrom::Delayed,
                Phase::Running => CancelFrom::Running,
                Phase::Cancelling => return CancelFrom::Cancelling,
                Phase::Completed | Phase::Failed | Phase::Cancelled => return CancelFrom::Finished,
            };
            record.cause = cause;
            if from == CancelFrom::Running {
                self.set_phase(&mut record, Phase::Cancelling);
            } else {
                self.finish(&mut record, Phase::Cancelled, None, now);
            }
            from
        };
        fence(Ordering::SeqCst);
        if let Some(token) = self.token.get() {
            token.cancel();
        }
        self.waker.wake();
        from
    }

    /// Ends an attempt at `now`: `Running` → `to` (`Retrying`, `Completed` or `Failed`) with
    /// `error`, or `Cancelling` → `Cancelled`. Returns the phase reached and, if cancelled,
    /// its cause.
    pub(crate) fn end_attempt(
        &self,
        to: Phase,
        error: Option<String>,
        now: Stamp,
    ) -> (Phase, Cause) {
        // The worker's waker: a finished record kept in the registry must not pin the
        // worker's tokio task.
        drop(self.waker.take());
        let mut record = lock(&self.record);
        if record.attempt_started != Stamp::NONE {
            let run = now.since(record.attempt_started);
            self.queue.timings.run.record(run);
            crate::metrics::ran(&self.queue, run);
        }
        if record.phase == Phase::Cancelling {
            self.finish(&mut record, Phase::Cancelled, None, now);
        } else if to == Phase::Retrying {
            record.error = error.map(String::into_boxed_str);
            self.set_phase(&mut record, Phase::Retrying);
        } else {
            self.finish(&mut record, to, error, now);
        }
        (record.phase, record.cause)
    }

    fn finish(&self, record: &mut Record, phase: Phase, error: Option<String>, now: Stamp) {
        debug_assert!(phase.is_terminal());
        record.finished_at = now;
        record.error = match phase {
            Phase::Cancelled => Some(
                match record.cause {
                    Cause::User => "cancelled",
                    Cause::Shutdown => "stopped by shutdown",
                }
                .into(),
            ),
            _ => error.map(String::into_boxed_str),
        };
        self.set_phase(record, phase);
    }

    /// A snapshot of the task's status, with why it waits if it does.
    pub(crate) fn info(&self) -> TaskInfo {
        let mut info = self.snapshot();
        if matches!(info.status, TaskStatus::Pending | TaskStatus::Delayed) {
            // Asked once the record lock is released: the queue lock comes first.
            info.waiting_for = self.queue.why_waiting(self);
        }
        info
    }

    /// A consistent snapshot of the task's status record.
    fn snapshot(&self) -> TaskInfo {
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
            finished_at: record.finished_at.get(),
            error: record.error.as_deref().map(str::to_owned),
            progress: record.progress.as_ref().map(|state| state.progress.clone()),
            waiting_for: None,
            schedule: self
                .options()
                .and_then(|options| options.schedule.as_deref())
                .map(str::to_owned),
        }
    }
}

/// The tracing span every attempt runs in. Costs one branch when no subscriber listens.
fn attempt_span(header: &Header, attempt: u32) -> tracing::Span {
    tracing::info_span!(
        "task",
        id = header.id.as_u64(),
        call_id = header.call_id(),
        name = header.name.as_str(),
        queue = header.queue.name(),
        attempt,
    )
}

// ===== TaskCell =====

/// The one allocation behind a task.
pub(crate) struct TaskCell<F, P, T, E> {
    pub(crate) header: Header,
    /// The handler and the retry predicate, dropped when the task ends (in `publish`, where
    /// a panic in their `Drop` is contained), so a finished record holds nothing they
    /// captured. Together: a predicate is nearly always zero-sized, and then costs nothing.
    handler: std::sync::Mutex<Option<(F, P)>>,
    slot: std::sync::Mutex<Slot<T, E>>,
}

struct Slot<T, E> {
    /// The last attempt's result, until the task ends.
    staged: Option<Result<T, E>>,
    state: SlotState<T, E>,
}

enum SlotState<T, E> {
    Waiting(Option<Waker>),
    Ready(Result<T, TaskError<E>>),
    Taken,
    Detached,
}

impl<F, P, T, E> TaskCell<F, P, T, E> {
    pub(crate) fn new(header: Header, handler: F, retry_if: P) -> Self {
        TaskCell {
            header,
            handler: std::sync::Mutex::new(Some((handler, retry_if))),
            slot: std::sync::Mutex::new(Slot {
                staged: None,
                state: SlotState::Waiting(None),
            }),
        }
    }
}

impl<F, Fut, P, T, E> TaskCell<F, P, T, E>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    P: RetryPredicate<E>,
    T: Send + 'static,
    E: Display + Send + 'static,
{
    /// Deposits the task's notification, if it asked for one (or the runner asks for all).
    fn notify(&self, result: &Result<T, TaskError<E>>) {
        let header = &self.header;
        let hub = header.queue.hub();
        let summarizer = header.options().and_then(|o| o.notify.as_ref());
        if summarizer.is_none() && !hub.notify_all {
            return;
        }
        let text = match result {
            Ok(value) => match summarizer {
                Some(summarize) => {
                    std::panic::catch_unwind(AssertUnwindSafe(|| summarize(value as &dyn Any)))
                        .unwrap_or_else(|_| "(the task's summary panicked)".to_owned())
                }
                None => "completed".to_owned(),
            },
            Err(error) => header.last_error().unwrap_or_else(|| error.to_string()),
        };
        hub.inbox.deposit(
            header.id,
            header.call_id(),
            &header.name,
            header.queue.name(),
            header.phase().status(),
            text,
        );
    }

    /// Calls the handler and awaits it, staging its result.
    async fn call(self: Arc<Self>, attempt: u32) -> Attempt {
        let ctx = TaskContext::new(self.clone(), attempt);
        let future = match lock_std(&self.handler).as_ref() {
            Some((handler, _)) => handler(ctx),
            // Only a finished task has no handler, and a finished task is never run.
            None => return Attempt::Cancelled,
        };
        match future.await {
            Ok(value) => {
                lock_std(&self.slot).staged = Some(Ok(value));
                Attempt::Ok
            }
            Err(error) => {
                let retry = lock_std(&self.handler)
                    .as_ref()
                    .is_some_and(|(_, retry_if)| retry_if.should_retry(&error));
                let message = error.to_string();
                let retry_after = self
                    .header
                    .options()
                    .map(|o| &o.flow)
                    .and_then(|f| f.retry_after.as_ref())
                    .and_then(|asks| asks(&error as &dyn Any));
                lock_std(&self.slot).staged = Some(Err(error));
                Attempt::Err {
                    retry,
                    message,
                    retry_after,
                }
            }
        }
    }
}

impl<F, Fut, P, T, E> Job for TaskCell<F, P, T, E>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    P: RetryPredicate<E>,
    T: Send + 'static,
    E: Display + Send + 'static,
{
    fn header(&self) -> &Header {
        &self.header
    }

    fn run(self: Arc<Self>, attempt: u32) -> BoxFuture<'static, Attempt> {
        let span = attempt_span(&self.header, attempt);
        let race = Race {
            call: Some(self.clone().call(attempt)),
            timeout: self.header.timeout(),
            deadline: None,
            attempt,
            grace: self.header.cancel_grace(),
            grace_timer: None,
            ending: None,
            job: self,
        };
        Box::pin(
            AssertUnwindSafe(race)
                .catch_unwind()
                .map(|caught| {
                    caught.unwrap_or_else(|panic| Attempt::Panicked(panic_message(panic)))
                })
                .instrument(span),
        )
    }

    fn publish(&self, end: End) {
        // The handler and its captures go now, outside any lock; a panic in their `Drop` is
        // contained, so that the handle still resolves and the worker goes on.
        let handler = lock_std(&self.handler).take();
        contain("the task's handler panicked as it was dropped", || {
            drop(handler)
        });
        let mut staged = lock_std(&self.slot).staged.take();
        let result = match end {
            End::Completed | End::Failed => match staged.take() {
                Some(Ok(value)) => Ok(value),
                Some(Err(error)) => Err(TaskError::Failed(error)),
                None => {
                    debug_assert!(false, "a task ended Completed/Failed with nothing staged");
                    Err(TaskError::Cancelled)
                }
            },
            End::TimedOut => Err(TaskError::TimedOut),
            End::Panicked(message) => Err(TaskError::Panicked(message)),
            End::Cancelled => Err(TaskError::Cancelled),
            End::Shutdown => Err(TaskError::Shutdown),
        };
        // A value the last attempt returned within a cancel grace, not delivered.
        contain("the task's result panicked as it was dropped", || {
            drop(staged)
        });
        // User code (a summary) may run here: no lock is held.
        contain("the task's notification panicked", || self.notify(&result));
        let mut slot = lock_std(&self.slot);
        let waker = match &mut slot.state {
            SlotState::Waiting(waker) => {
                let waker = waker.take();
                slot.state = SlotState::Ready(result);
                waker
            }
            // Nobody will read it; drop it (after unlocking).
            SlotState::Detached => {
                drop(slot);
                contain("the task's result panicked as it was dropped", || {
                    drop(result)
                });
                return;
            }
            SlotState::Ready(_) | SlotState::Taken => {
                debug_assert!(false, "a task's result was published twice");
                None
            }
        };
        drop(slot);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<F, Fut, P, T, E> Outcome<T, E> for TaskCell<F, P, T, E>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    P: RetryPredicate<E>,
    T: Send + 'static,
    E: Display + Send + 'static,
{
    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError<E>>> {
        let mut slot = lock_std(&self.slot);
        match &mut slot.state {
            SlotState::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            SlotState::Ready(_) => match std::mem::replace(&mut slot.state, SlotState::Taken) {
                SlotState::Ready(result) => Poll::Ready(result),
                _ => unreachable!("matched Ready above"),
            },
            SlotState::Taken | SlotState::Detached => {
                panic!("a TaskHandle was polled after it resolved")
            }
        }
    }

    fn detach(&self) {
        let mut slot = lock_std(&self.slot);
        let old = std::mem::replace(&mut slot.state, SlotState::Detached);
        drop(slot);
        drop(old);
    }
}

pin_project_lite::pin_project! {
    /// One attempt's future raced against the task's cancel and its timeout. The attempt's
    /// future is dropped in place when the race ends, inside the `catch_unwind` that wraps
    /// the race, so a handler whose future panics as it is dropped cannot take the worker
    /// down; the timer is made on the first poll, inside it too.
    struct Race<C, J> {
        #[pin]
        call: Option<C>,
        timeout: Option<Duration>,
        #[pin]
        deadline: Option<Sleep>,
        attempt: u32,
        // The task's cancel grace: how long the attempt may go on once its token fired.
        grace: Option<Duration>,
        #[pin]
        grace_timer: Option<Sleep>,
        // How the attempt ends, once a cancel or timeout came during a grace.
        ending: Option<Attempt>,
        job: Arc<J>,
    }
}

impl<C, J> Future for Race<C, J>
where
    C: Future<Output = Attempt>,
    J: Job,
{
    type Output = Attempt;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt> {
        let mut this = self.project();
        let header = this.job.header();
        #[cfg(debug_assertions)]
        let _polling = crate::handle::own_queue::enter(&header.queue);
        header.waker.register(cx.waker());
        if this.ending.is_none() && header.cancel_requested() {
            // The cancel fired the task's token already.
            match *this.grace {
                None => {
                    drop_attempt(this.call);
                    return Poll::Ready(Attempt::Cancelled);
                }
                Some(grace) => {
                    *this.ending = Some(Attempt::Cancelled);
                    this.grace_timer.set(Some(tokio::time::sleep(grace)));
                }
            }
        }
        if let Some(timeout) = this.timeout.take() {
            this.deadline.set(Some(tokio::time::sleep(timeout)));
        }
        let Some(call) = this.call.as_mut().as_pin_mut() else {
            return Poll::Ready(Attempt::Cancelled);
        };
        if let Poll::Ready(attempt) = call.poll(cx) {
            this.call.set(None);
            // Within a grace, the handler stopped on its own: it ends as it was told to.
            return Poll::Ready(this.ending.take().unwrap_or(attempt));
        }
        if this.ending.is_none() {
            if let Some(deadline) = this.deadline.as_mut().as_pin_mut() {
                if deadline.poll(cx).is_ready() {
                    match *this.grace {
                        None => {
                            drop_attempt(this.call);
                            return Poll::Ready(Attempt::TimedOut);
                        }
                        Some(grace) => {
                            *this.ending = Some(Attempt::TimedOut);
                            if let Some(token) = header.attempt_token(*this.attempt) {
                                token.cancel();
                            }
                            this.grace_timer.set(Some(tokio::time::sleep(grace)));
                            // Let the handler see its token before the grace is counted.
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
        if let Some(timer) = this.grace_timer.as_pin_mut() {
            if timer.poll(cx).is_ready() {
                drop_attempt(this.call);
                return Poll::Ready(this.ending.take().unwrap_or(Attempt::Cancelled));
            }
        }
        Poll::Pending
    }
}

/// Drops a cancelled or timed-out attempt's future. A panic in its `Drop` is logged, not
/// propagated: the attempt ends as cancelled or timed out all the same.
fn drop_attempt<C>(call: Pin<&mut Option<C>>) {
    let mut call = call;
    contain("a task's future panicked as it was dropped", || {
        call.set(None)
    });
}

/// Runs `f` (user code, or a drop of something user code made), logging a panic instead of
/// propagating it.
pub(crate) fn contain(what: &str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
        tracing::warn!(panic = %panic_message(panic), "{what}");
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

fn panic_message(panic: Box<dyn Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => match panic.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "a panic with a non-string payload".to_owned(),
        },
    }
}
