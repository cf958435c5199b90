//! [`TaskRunner`]: named queues of tasks, run under per-queue concurrency limits.
//!
//! The public API is a facade: each method finds the queue or task it is about and hands
//! the work to the engine in `shared.rs`.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config::{QueueConfig, DEFAULT_QUEUE};
use crate::error::ConfigError;
use crate::id::TaskId;
use crate::queue::QueueStats;
use crate::status::TaskInfo;
use crate::task::CancelCause;

mod builder;
mod calls;
mod cancel_on_drop;
mod enqueue;
mod extension;
mod flow_control;
mod group;
mod handle;
mod observe;
mod park;
mod registry;
mod rejected;
mod shared;
mod shutdown;
mod worker;

#[cfg(all(test, not(taskrunner_loom)))]
mod without_slot_tests;

#[cfg(all(test, not(taskrunner_loom)))]
mod without_slot_model;

pub use builder::TaskRunnerBuilder;
pub use cancel_on_drop::CancelOnDropHandle;
pub(crate) use extension::Extension;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use extension::{BuildHook, Stop};
pub use group::{GroupStats, TaskGroup};
pub use handle::TaskHandle;
pub use rejected::Rejected;
pub(crate) use shared::Shared;

/// Runs tasks in named queues, each with its own concurrency limit and priority order.
///
/// A `TaskRunner` is a cheap handle: clone it freely and share it between tasks and threads;
/// every clone drives the same queues. It needs a tokio runtime (the multi-thread or the
/// current-thread one, with time enabled if tasks use timeouts or retries).
///
/// # When the runtime goes away
///
/// Like a `JoinHandle`, which resolves with an error when its runtime shuts down, every
/// [`TaskHandle`] resolves when the runtime its task was running on shuts down: the tasks
/// running there, waiting for a slot their workers held, or waiting out a retry delay there
/// end [`TaskError::Shutdown`](crate::TaskError::Shutdown) (their futures are dropped first).
/// The runner itself stays usable: used from a new runtime, it runs new tasks there.
///
/// ```
/// use futures::FutureExt;
/// use taskrunner::{Task, TaskContext, TaskError, TaskRunner};
///
/// let runner = TaskRunner::new();
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let handle = rt.block_on(async {
///     runner.enqueue_task(Task::new("forever", |_: TaskContext| async {
///         std::future::pending::<Result<(), String>>().await
///     }))
/// }).unwrap();
/// drop(rt);
/// assert!(matches!(handle.now_or_never(), Some(Err(TaskError::Shutdown))));
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let again = rt.block_on(async {
///     let task = Task::new("again", |_: TaskContext| async { Ok::<_, String>(1) });
///     runner.enqueue_task(task).unwrap().await
/// });
/// assert_eq!(again.unwrap(), 1);
/// ```
///
/// # When to use it
///
/// Use it where a model's action calls, or any other jobs, must run concurrently but not
/// all at once: a rate-limited API gets a queue with a small limit, urgent calls get a higher
/// priority, flaky calls get a [`RetryPolicy`](crate::RetryPolicy), and the whole lot can be
/// watched ([`list_tasks`](Self::list_tasks)), cancelled and shut down.
///
/// # Comparison to a `Semaphore` loop
///
/// `tokio::spawn` behind a [`Semaphore`](tokio::sync::Semaphore) limits concurrency too, but
/// waiters are served first-come-first-served, a retry's sleep keeps its permit, there is no
/// record of what is running, and every waiting task is a parked tokio task. Here a waiting
/// task is an entry in its queue's order, a freed slot goes to the highest priority, a backoff holds no slot,
/// and every task has a status.
///
/// # Example
///
/// ```
/// use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::builder()
///     .queue("llm", QueueConfig::new().concurrency(1))
///     .build()?;
///
/// let answer = runner.enqueue_task(
///     Task::new("ask", |_: TaskContext| async { Ok::<_, std::io::Error>("42") }).queue("llm"),
/// )?;
/// assert_eq!(answer.await?, "42");
/// runner.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TaskRunner {
    pub(crate) shared: Arc<Shared>,
    /// Shared by every clone of this runner and nothing else: when the last clone goes,
    /// event streams end, though handles and running tasks may keep `shared` alive. `None`
    /// in the runner handles the crate makes for itself ([`TaskRunner::from_shared`]).
    _owner: Option<Arc<Owner>>,
}

/// Ends the runner's event streams when the last clone of the runner is dropped.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.observers.events.close();
    }
}

// ===== impl TaskRunner =====

impl TaskRunner {
    /// A runner with one queue, `main`, of concurrency 3.
    pub fn new() -> Self {
        let defaults = TaskRunner::builder();
        TaskRunner::assemble(vec![(DEFAULT_QUEUE.into(), QueueConfig::new())], &defaults)
    }

    /// A builder for a runner with more queues, or other limits.
    pub fn builder() -> TaskRunnerBuilder {
        TaskRunnerBuilder::new()
    }

    /// The status of task `id`, or `None` if no such task exists or its record was evicted
    /// (see [`TaskRunnerBuilder::retain_finished`]).
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let handle = runner.enqueue_task(Task::new("ping", |_ctx| async { Ok::<_, String>(()) }))?;
    /// let id = handle.id();
    /// assert_eq!(runner.get_status(id).unwrap().status, TaskStatus::Running);
    /// handle.await?;
    /// let info = runner.get_status(id).unwrap();
    /// assert_eq!((info.status, info.attempts), (TaskStatus::Completed, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_status(&self, id: TaskId) -> Option<TaskInfo> {
        self.shared
            .registry
            .get(id)
            .map(|job| self.shared.info(&*job))
    }

    /// The status of every task the runner knows: all unfinished ones and the most recent
    /// finished ones, ordered by id (enqueue order).
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// for name in ["a", "b"] {
    ///     runner.enqueue_task(Task::new(name, |_ctx| async { Ok::<_, String>(()) }))?.await?;
    /// }
    /// let names: Vec<String> = runner.list_tasks().into_iter().map(|t| t.name).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// assert!(runner.list_tasks().iter().all(|t| t.status == TaskStatus::Completed));
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_tasks(&self) -> Vec<TaskInfo> {
        let mut tasks: Vec<TaskInfo> = self
            .shared
            .registry
            .all()
            .iter()
            .map(|job| self.shared.info(&**job))
            .collect();
        tasks.sort_unstable_by_key(|info| info.id);
        tasks
    }

    /// Cancels task `id` (see [`TaskHandle::cancel`]). Returns `false` if it had already
    /// finished, was already cancelled, or is unknown.
    ///
    /// ```
    /// use taskrunner::{Task, TaskContext, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let handle = runner.enqueue_task(Task::new("crawl", |_: TaskContext| async {
    ///     std::future::pending::<Result<(), String>>().await
    /// }))?;
    /// let id = handle.id();
    /// assert!(runner.cancel(id));
    /// assert_eq!(runner.get_status(id).unwrap().status, TaskStatus::Cancelled);
    /// assert!(!runner.cancel(id), "already cancelled");
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel(&self, id: TaskId) -> bool {
        match self.shared.registry.get(id) {
            Some(job) => self.shared.cancel(&*job, CancelCause::User),
            None => false,
        }
    }

    /// Changes a queue's concurrency limit at once. Raising it starts waiting tasks now;
    /// lowering it lets running tasks finish, and starts no more until the queue is under the
    /// new limit.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownQueue`] for an undeclared queue, [`ConfigError::ZeroConcurrency`]
    /// for a limit of zero.
    ///
    /// ```
    /// use taskrunner::{QueueConfig, TaskRunner};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder().queue("llm", QueueConfig::new().concurrency(1)).build()?;
    /// runner.set_concurrency("llm", 4)?; // the provider raised our rate limit
    /// assert_eq!(runner.queue_stats("llm").unwrap().limit, 4);
    /// assert!(runner.set_concurrency("llm", 0).is_err());
    /// assert!(runner.set_concurrency("nope", 2).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_concurrency(&self, queue: &str, limit: usize) -> Result<(), ConfigError> {
        let q = self
            .shared
            .queue(queue)
            .ok_or_else(|| ConfigError::UnknownQueue(queue.to_owned()))?;
        if limit == 0 {
            return Err(ConfigError::ZeroConcurrency {
                queue: queue.to_owned(),
            });
        }
        for job in q.set_limit(limit) {
            self.shared.start(job);
        }
        Ok(())
    }

    /// A snapshot of a queue's load, or `None` for an undeclared queue.
    ///
    /// With feature `metrics`, the same numbers (and more) also go to the
    /// [`metrics`](https://docs.rs/metrics) facade as they change, labelled `queue`:
    /// counters `taskrunner_tasks_{enqueued,started,completed,failed,retried,cancelled}_total`,
    /// gauges `taskrunner_tasks_{pending,running,retrying}`, histograms
    /// `taskrunner_task_wait_seconds` (enqueue to first start) and
    /// `taskrunner_task_run_seconds` (each attempt).
    ///
    /// ```
    /// use taskrunner::{QueueConfig, Task, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder().queue("one", QueueConfig::new().concurrency(1)).build()?;
    /// let slow = || Task::new("slow", |_ctx| async {
    ///     tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    ///     Ok::<_, String>(())
    /// }).queue("one");
    /// let (a, b) = (runner.enqueue_task(slow())?, runner.enqueue_task(slow())?);
    /// let stats = runner.queue_stats("one").unwrap();
    /// assert_eq!((stats.running, stats.pending, stats.limit), (1, 1, 1));
    /// a.await?;
    /// b.await?;
    /// assert!(runner.queue_stats("nope").is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn queue_stats(&self, queue: &str) -> Option<QueueStats> {
        self.shared.queue(queue).map(|q| q.stats())
    }

    /// The names of the runner's queues, sorted.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.queues.keys().map(|n| n.to_string()).collect();
        names.sort_unstable();
        names
    }

    /// Whether [`shutdown`](Self::shutdown) or [`shutdown_now`](Self::shutdown_now) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

impl Default for TaskRunner {
    fn default() -> Self {
        TaskRunner::new()
    }
}

impl fmt::Debug for TaskRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRunner")
            .field("queues", &self.queue_names())
            .field("live", &self.shared.live.load(Ordering::Relaxed))
            .field("records", &self.shared.registry.len())
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

// ===== hooks for the layers above: schedules, the durable store =====

impl TaskRunner {
    /// The state every clone shares, for the schedule module.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A runner handle over `shared`, for the schedule module. It does not count as a clone
    /// of the user's runner: dropping it never ends the event streams.
    pub(crate) fn from_shared(shared: Arc<Shared>) -> TaskRunner {
        TaskRunner {
            shared,
            _owner: None,
        }
    }
}
