//! [`TaskContext`]: what a handler knows about the task it is running.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::task::Job;
use crate::TaskId;
/// Handed to a task's handler on every attempt: who the task is, which attempt this is, and
/// the token that fires when the task is cancelled.
///
/// Every attempt also runs inside a `tracing` span named `task` carrying the id, call id,
/// name, queue and attempt number, so a handler's own `tracing` events are tagged with them.
///
/// ```
/// use taskrunner::{Task, TaskContext, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let handle = runner.enqueue_task(
///     Task::new("echo", |ctx: TaskContext| async move {
///         Ok::<_, std::io::Error>(format!("{} on {} (attempt {})", ctx.call_id(), ctx.queue(), ctx.attempt()))
///     })
///     .call_id("call_7"),
/// )?;
/// assert_eq!(handle.await?, "call_7 on main (attempt 1)");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TaskContext {
    job: Arc<dyn Job>,
    attempt: u32,
    /// With a cancel grace, this attempt's own token (see [`Self::abort_token`]).
    attempt_token: OnceLock<CancellationToken>,
}

impl TaskContext {
    /// The task this context is of.
    pub(crate) fn job(&self) -> &Arc<dyn Job> {
        &self.job
    }

    /// Marks the task's attempt as parked by a durable wait: the task ends `Waiting` (its
    /// run waits in the store and resumes as another task), not `Completed`.
    pub(crate) fn mark_parked(&self) {
        self.job
            .header()
            .parked
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn new(job: Arc<dyn Job>, attempt: u32) -> Self {
        TaskContext {
            job,
            attempt,
            attempt_token: OnceLock::new(),
        }
    }

    /// The model's call id this task answers: the one given with
    /// [`Task::call_id`](crate::Task::call_id), or a generated one, unique in the process.
    pub fn call_id(&self) -> &str {
        self.job.header().call_id()
    }

    /// The task's id.
    pub fn task_id(&self) -> TaskId {
        self.job.header().id
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.job.header().name
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The queue the task runs in.
    pub fn queue(&self) -> &str {
        self.job.header().queue.name()
    }

    /// The task's priority (as [`TaskRunner::set_priority`](crate::TaskRunner::set_priority)
    /// last set it, if it did).
    pub fn priority(&self) -> i32 {
        self.job.header().priority()
    }

    /// Fires when the task is cancelled or the runner shuts down with
    /// [`shutdown_now`](crate::TaskRunner::shutdown_now).
    ///
    /// A handler need not watch it: a cancelled task's future is dropped at its next
    /// `.await` anyway. It is for work the handler hands elsewhere (a spawned task, a child
    /// process) that should stop too. A timeout drops the attempt's future but does not fire
    /// the token, since the task may still be retried.
    ///
    /// With a [cancel grace](crate::Task::cancel_grace) it is the token to watch: it fires
    /// on cancel and on this attempt's timeout, and the handler then has the grace to finish
    /// on its own. Each attempt then has its own token (a child of the task's), so the next
    /// attempt after a timeout starts with a fresh one.
    pub fn abort_token(&self) -> &CancellationToken {
        let header = self.job.header();
        if header.cancel_grace().is_none() {
            return header.abort_token();
        }
        self.attempt_token.get_or_init(|| {
            header
                .attempt_token(self.attempt)
                .unwrap_or_else(|| header.abort_token().clone())
        })
    }

    /// Reports progress: `percent` from 0 to 100 (values outside are clamped, NaN is 0) and
    /// a short message. [`TaskHandle::progress`](crate::TaskHandle::progress) and
    /// [`TaskInfo::progress`](crate::TaskInfo::progress) show the latest; subscribers get a
    /// progress event at most every 100 ms a task, so a chatty handler cannot flood them.
    /// Ignored once the task has ended.
    pub fn set_progress(&self, percent: f32, message: impl Into<String>) {
        self.job.header().set_progress(percent, message.into());
    }

    /// Holds every start in this task's queue for `duration` from now: what a handler that
    /// got a 429 with a Retry-After does, so that the queue's other tasks do not hit the
    /// provider meanwhile either. Running tasks go on. A longer hold already in place is
    /// kept; [`QueueStats::paused`](crate::QueueStats::paused) is true while it lasts.
    ///
    /// In a durable run it also pauses the queue in every process on the store: the pause's
    /// end is stored (on the store's clock), and no process claims the queue's runs before
    /// it; each claim loop claims again as it ends (or is told of new runs). It is stored
    /// before the attempt's end is.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// runner.enqueue_task(Task::new("call", |ctx: TaskContext| async move {
    ///     // The provider said 429, Retry-After: 20.
    ///     ctx.pause_queue_for(Duration::from_secs(20));
    ///     Ok::<_, String>(())
    /// }))?.await?;
    /// assert!(runner.queue_stats("main").unwrap().paused);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pause_queue_for(&self, duration: std::time::Duration) {
        self.job.header().queue.hold_for(duration);
        let _ = DURABLE_LIMITS.try_with(|limits| limits.pause_queue_for(duration));
    }

    /// This attempt cost `actual` units (the tokens the provider reported): replaces the
    /// attempt's [`cost`](crate::Task::cost) estimate in its queue's
    /// [budgets](crate::Budget) at once, more or less, so the next starts see the truth (a
    /// smaller actual lets waiting tasks start now). A second call replaces the first. On a
    /// queue without a budget it does nothing. See [`Budget`](crate::Budget) for the
    /// overshoot of an actual above the estimate.
    ///
    /// In a durable run it is also stored, before the attempt's end: it replaces the
    /// estimate its claim reserved ([`RunOptions::cost`](crate::store::RunOptions::cost)) in
    /// its queue's [`global_budget`](crate::QueueConfig::global_budget), so the next claims of
    /// every process see it, and shows in
    /// [`RunInfo::charged`](crate::store::RunInfo::charged).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Budget, QueueConfig, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder()
    ///     .queue("llm", QueueConfig::new().budget(Budget::new(1_000, Duration::from_secs(60))))
    ///     .build()?;
    /// runner.enqueue_task(Task::new("call", |ctx: TaskContext| async move {
    ///     ctx.charge(120); // estimated 900, used 120
    ///     Ok::<_, String>(())
    /// }).queue("llm").cost(900))?.await?;
    /// assert_eq!(runner.queue_stats("llm").unwrap().budget_used, Some(120));
    /// # Ok(())
    /// # }
    /// ```
    pub fn charge(&self, actual: u64) {
        if let Some(control) = self.job.header().queue.control() {
            control.charge(&self.job, self.attempt, actual);
        }
        let _ = DURABLE_LIMITS.try_with(|limits| limits.charge(actual));
    }

    /// Sends `kind` on the runner's event stream as this task's, if anyone listens.
    pub(crate) fn report(&self, kind: impl FnOnce() -> crate::observe::EventKind) {
        let header = self.job.header();
        header.queue.observers().events.emit(header, kind);
    }

    /// Whether the task's cancel has been requested.
    pub fn is_cancelled(&self) -> bool {
        self.abort_token().is_cancelled()
    }
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = self.job.header();
        f.debug_struct("TaskContext")
            .field("task_id", &header.id)
            .field("call_id", &header.call_id())
            .field("name", &header.name)
            .field("queue", &header.queue.name())
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// Where a durable run's handler sends its charges and pauses, to be stored (implemented by
/// the durable layer, above this one, and set for the handler's future).
pub(crate) trait DurableLimits: Send + Sync {
    /// The attempt cost `units` in all.
    fn charge(&self, units: u64);
    /// Pause the queue in every process for `duration` from now.
    fn pause_queue_for(&self, duration: std::time::Duration);
}

tokio::task_local! {
    /// The durable run's [`DurableLimits`], while its handler runs.
    pub(crate) static DURABLE_LIMITS: Arc<dyn DurableLimits>;
}
