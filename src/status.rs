//! What a task's status looks like from outside: [`TaskStatus`], the [`TaskInfo`] snapshot,
//! its [`Progress`] and, while it waits, the [`WaitReason`].
//!
//! A leaf: it imports nothing of the crate but [`TaskId`] and [`GroupId`].

use std::time::SystemTime;

use crate::id::{GroupId, TaskId};

/// Where a task is in its life.
///
/// ```text
///             ┌──────── cancel ─────────┐
///             │                         ▼
/// Pending ─► Running ─► Completed   Cancelled
///    ▲          │  └──► Failed          ▲
///    │          ▼                       │
///    └──── Retrying ──── cancel ────────┘
/// ```
///
/// A task enqueued with a [`delay`](crate::Task::delay) starts as `Delayed` and becomes
/// `Pending` (or `Running`) when its start time comes; a cancel ends it `Cancelled`.
///
/// `Completed`, `Failed` and `Cancelled` are terminal: a task that reaches one never leaves it.
/// A timed-out or panicked task ends `Failed`; [`TaskInfo::error`](crate::TaskInfo::error) says
/// why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Waiting in its queue for a free slot.
    Pending,
    /// Waiting for its start time ([`Task::delay`](crate::Task::delay)), not yet in its
    /// queue's order: it holds no slot and is not counted as pending.
    Delayed,
    /// Its handler is running (or, once cancelled, being stopped).
    Running,
    /// An attempt failed; it is waiting out its backoff delay, holding no slot.
    Retrying,
    /// Its handler is waiting for something (a signal, a timer, another task) and gave its
    /// slot back meanwhile; when the wait ends it waits for a slot of its queue again, as
    /// `Pending`, and goes on where it was.
    Waiting,
    /// The handler returned `Ok`.
    Completed,
    /// The handler failed, timed out or panicked, with no retry left.
    Failed,
    /// Cancelled, or stopped by [`shutdown_now`](crate::TaskRunner::shutdown_now).
    ///
    /// A running task says so as soon as its cancel is accepted (`cancel()` returned
    /// `true`), though its handler's future is dropped, and its slot freed, only when its
    /// worker next gets to it (at once, unless a [cancel grace](crate::Task::cancel_grace) lets
    /// the handler finish); its [`finished_at`](crate::TaskInfo::finished_at) is set then.
    Cancelled,
}

impl TaskStatus {
    /// Whether the task has ended (`Completed`, `Failed` or `Cancelled`).
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// How far a running task has got, as its handler reported with
/// [`TaskContext::set_progress`](crate::TaskContext::set_progress).
///
/// ```
/// use taskrunner::{Progress, Task, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let handle = runner.enqueue_task(Task::new("pages", |ctx| async move {
///     ctx.set_progress(40.0, "page 4 of 10");
///     std::future::pending::<Result<(), String>>().await
/// }))?;
/// tokio::task::yield_now().await;
/// assert_eq!(handle.progress(), Some(Progress { percent: 40.0, message: "page 4 of 10".into() }));
/// handle.cancel();
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// From 0 to 100.
    pub percent: f32,
    /// What the handler is doing.
    pub message: String,
}

/// A snapshot of one task's status, from [`TaskRunner::get_status`](crate::TaskRunner::get_status),
/// [`TaskRunner::list_tasks`](crate::TaskRunner::list_tasks) or
/// [`TaskHandle::info`](crate::TaskHandle::info).
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{RetryPolicy, Task, TaskRunner, TaskStatus};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let handle = runner.enqueue_task(
///     Task::new("fetch", |ctx| async move {
///         if ctx.attempt() == 1 { Err("HTTP 503".to_owned()) } else { Ok(()) }
///     })
///     .call_id("call_9")
///     .retry(RetryPolicy::fixed(Duration::from_millis(100))),
/// )?;
/// let id = handle.id();
/// handle.await?;
/// let info = runner.get_status(id).unwrap();
/// assert_eq!((info.name.as_str(), info.call_id.as_str(), info.queue.as_str()), ("fetch", "call_9", "main"));
/// assert_eq!((info.status, info.attempts), (TaskStatus::Completed, 2));
/// assert!(info.started_at.unwrap() <= info.finished_at.unwrap());
/// assert_eq!(info.error, None, "a success clears the last attempt's error");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// The model's call id (given or generated).
    pub call_id: String,
    /// The task's name.
    pub name: String,
    /// The queue it runs in.
    pub queue: String,
    /// Its priority.
    pub priority: i32,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// When it was enqueued.
    pub created_at: SystemTime,
    /// When its first attempt started.
    pub started_at: Option<SystemTime>,
    /// When it reached its terminal status.
    pub finished_at: Option<SystemTime>,
    /// Why its last attempt failed (kept while it retries), or why it was cancelled.
    pub error: Option<String>,
    /// The last progress its handler reported, if any.
    pub progress: Option<Progress>,
    /// Why it waits, while it is [`Delayed`](TaskStatus::Delayed) or
    /// [`Pending`](TaskStatus::Pending): its start time, a paused queue, a rate limit, its
    /// concurrency key, or no free slot. `None` otherwise.
    pub waiting_for: Option<WaitReason>,
    /// The [schedule](crate::Schedule) whose run this task is, if any.
    pub schedule: Option<String>,
    /// The [group](crate::TaskGroup) it was enqueued into, if any.
    pub group: Option<GroupId>,
    /// Its estimated cost per attempt ([`Task::cost`](crate::Task::cost)), if it has one.
    pub cost: Option<u64>,
    /// The units its queue's [budgets](crate::Budget) charged it across its attempts: each
    /// attempt's estimate, replaced by what its handler
    /// [charged](crate::TaskContext::charge). `None` until an attempt starts under a budget.
    pub charged: Option<u64>,
}
/// Why a waiting task does not start, in [`QueueStats::waiting_for`](crate::QueueStats::waiting_for)
/// and [`TaskInfo::waiting_for`](crate::TaskInfo::waiting_for): where to look when a queue
/// seems stuck.
///
/// ```
/// use taskrunner::{Task, TaskContext, TaskRunner, WaitReason};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// runner.pause_queue("main")?;
/// let task = runner.enqueue_task(Task::new("t", |_: TaskContext| async { Ok::<_, String>(()) }))?;
/// let info = runner.get_status(task.id()).unwrap();
/// assert_eq!(info.waiting_for, Some(WaitReason::Paused));
/// assert_eq!(runner.queue_stats("main").unwrap().waiting_for, Some(WaitReason::Paused));
/// # runner.resume_queue("main")?;
/// # task.await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitReason {
    /// Its start time ([`Task::delay`](crate::Task::delay)) has not come.
    Delayed,
    /// Its queue is paused ([`TaskRunner::pause_queue`](crate::TaskRunner::pause_queue) or
    /// [`TaskContext::pause_queue_for`](crate::TaskContext::pause_queue_for)).
    Paused,
    /// Its queue's [`RateLimit`](crate::RateLimit) allows no start before a timer fires.
    RateLimited,
    /// Its [`concurrency_key`](crate::Task::concurrency_key) runs as many tasks as the
    /// queue's [`key_concurrency`](crate::QueueConfig::key_concurrency) allows.
    KeyBusy,
    /// Every slot of its queue is taken.
    NoSlot,
    /// Its estimated [cost](crate::Task::cost) does not fit its queue's (or its key's)
    /// [`Budget`](crate::Budget) until older charges leave the window; or a task ahead of
    /// it in its queue waits so.
    Budget,
    /// Its [group](crate::TaskGroup) runs as many tasks as its
    /// [`concurrency`](crate::TaskGroup::concurrency) allows (across queues); it waits
    /// outside its queue's order, so it holds up no other task there.
    GroupLimit,
}
