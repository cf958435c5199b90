//! The crate's error types: what went wrong, and what to do about it.

use crate::id::{GroupId, TaskId};

/// A runner or queue setting was rejected.
///
/// Returned by [`TaskRunnerBuilder::build`](crate::TaskRunnerBuilder::build) and
/// [`TaskRunner::set_concurrency`](crate::TaskRunner::set_concurrency).
///
/// ```
/// use taskrunner::{ConfigError, QueueConfig, TaskRunner};
///
/// let err = TaskRunner::builder().queue("", QueueConfig::new()).build().unwrap_err();
/// assert_eq!(err, ConfigError::EmptyQueueName);
/// let err = TaskRunner::new().set_concurrency("llm", 2).unwrap_err();
/// assert!(err.to_string().starts_with("unknown queue `llm`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A queue was given a concurrency limit of zero, which would never run anything.
    #[error(
        "queue `{queue}` has concurrency 0: a queue needs at least one slot to run tasks \
         (use 1 or more)"
    )]
    ZeroConcurrency {
        /// The queue's name.
        queue: String,
    },
    /// The named queue does not exist.
    #[error(
        "unknown queue `{0}`: declare it with `TaskRunner::builder().queue(\"{0}\", QueueConfig::new())`"
    )]
    UnknownQueue(String),
    /// The builder declared the same queue twice.
    #[error("queue `{0}` is declared twice: declare each queue once")]
    DuplicateQueue(String),
    /// A queue name was empty.
    #[error("a queue name is empty: give every queue a non-empty name")]
    EmptyQueueName,
    /// A definition was registered on a builder with no store to take its runs from.
    #[error(
        "`{0}` is registered but the runner has no store: add `.store(SqliteStore::open(path).await?)` \
         to the builder, or do not register it"
    )]
    RegisterWithoutStore(String),
    /// Two registered definitions have the same name.
    #[error(
        "two definitions named `{0}` are registered: give each durable definition its own name"
    )]
    DuplicateRegistration(String),
    /// A runner with a store was built outside a tokio runtime.
    #[error(
        "a runner with a durable store must be built inside a tokio runtime (it starts its claim \
         loops): build it under #[tokio::main]"
    )]
    StoreNeedsRuntime,
    /// A queue setting is zero or out of range.
    #[error("queue `{queue}`: `{setting}` {problem}")]
    InvalidSetting {
        /// The queue's name.
        queue: String,
        /// The setting at fault, as named on [`QueueConfig`](crate::QueueConfig).
        setting: &'static str,
        /// What is wrong with it and what to use instead.
        problem: &'static str,
    },
}

/// A task was not accepted by [`TaskRunner::enqueue_task`](crate::TaskRunner::enqueue_task).
///
/// The task was not queued and its handler never runs.
///
/// ```
/// use taskrunner::{EnqueueError, Task, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let task = Task::new("t", |_ctx| async { Ok::<_, String>(()) }).queue("llm");
/// match runner.enqueue_task(task) {
///     Err(EnqueueError::UnknownQueue(queue)) => assert_eq!(queue, "llm"),
///     other => panic!("{other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The task names a queue the runner does not have.
    #[error(
        "unknown queue `{0}`: declare it with `TaskRunner::builder().queue(\"{0}\", QueueConfig::new())`"
    )]
    UnknownQueue(String),
    /// [`shutdown`](crate::TaskRunner::shutdown) or
    /// [`shutdown_now`](crate::TaskRunner::shutdown_now) has begun; the runner takes no new tasks.
    #[error("the task runner is shutting down and accepts no new tasks")]
    ShuttingDown,
    /// The task was given a timeout of zero, so every attempt would time out at once.
    #[error("task `{task}` has a zero timeout: give it a positive duration or no timeout")]
    ZeroTimeout {
        /// The task's name.
        task: String,
    },
    /// `enqueue_task` was called outside a tokio runtime, and the runner was not built
    /// inside one either.
    #[error(
        "no tokio runtime: build the TaskRunner or call enqueue_task from inside a tokio runtime \
         (for example under #[tokio::main])"
    )]
    NoRuntime,
    /// The task has a timeout, a retry policy or a cancel grace, which need tokio's timer,
    /// and the runtime it was enqueued on was built without it.
    #[error(
        "task `{task}` has a timeout, a retry policy or a cancel grace, but the tokio runtime \
         has timers disabled: build the runtime with `enable_time()` (or `enable_all()`)"
    )]
    TimersDisabled {
        /// The task's name.
        task: String,
    },
    /// The task's queue already has as many waiting tasks as its
    /// [`max_pending`](crate::QueueConfig::max_pending) allows.
    /// [`TaskRunner::try_enqueue_task`](crate::TaskRunner::try_enqueue_task) hands the task
    /// back with this error; [`enqueue_task_wait`](crate::TaskRunner::enqueue_task_wait) waits
    /// for room instead.
    #[error(
        "queue `{queue}` is full: {max_pending} tasks are waiting already (its max_pending); \
         retry later, or wait for room with enqueue_task_wait"
    )]
    QueueFull {
        /// The queue's name.
        queue: String,
        /// Its `max_pending`.
        max_pending: usize,
    },
    /// A task with the same [`dedup_key`](crate::Task::dedup_key) has not finished yet.
    #[error(
        "a task with dedup key `{key}` is already live (task {existing}); await that one instead"
    )]
    Duplicate {
        /// The dedup key.
        key: String,
        /// The live task that has it.
        existing: TaskId,
    },
    /// The [task group](crate::TaskGroup) was cancelled: it takes no new task.
    #[error(
        "task group {group} was cancelled and takes no new tasks: make a new group with \
         `runner.group()` for new work"
    )]
    GroupCancelled {
        /// The group.
        group: GroupId,
    },
    /// The task's [`cost`](crate::Task::cost) estimate is larger than a whole
    /// [`Budget`](crate::Budget) of its queue (its `budget`, or its `key_budget` for a task
    /// with a concurrency key), so it could never start.
    #[error(
        "a task's estimated cost of {cost} units is more than a whole budget of queue \
         `{queue}` ({units} units a window), so it could never start: lower its Task::cost, \
         or raise the queue's budget (key_budget for a task with a concurrency key)"
    )]
    OverBudget {
        /// Its queue.
        queue: String,
        /// Its estimate.
        cost: u64,
        /// The units per window of the budget it exceeds.
        units: u64,
    },
}

/// Why a task did not produce a value. The error side of awaiting a
/// [`TaskHandle`](crate::TaskHandle).
///
/// `E` is the handler's own error type.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{Task, TaskError, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let failed = runner.enqueue_task(Task::new("f", |_ctx| async { Err::<(), _>("HTTP 404") }))?;
/// assert_eq!(failed.await.unwrap_err().into_failed(), Some("HTTP 404"));
/// let slow = runner.enqueue_task(
///     Task::new("s", |_ctx| async {
///         tokio::time::sleep(Duration::from_secs(5)).await;
///         Ok::<_, String>(())
///     })
///     .timeout(Duration::from_secs(1)),
/// )?;
/// assert!(matches!(slow.await, Err(TaskError::TimedOut)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TaskError<E> {
    /// The handler returned an error on its last attempt (retries exhausted, none
    /// configured, or the error was marked permanent).
    #[error("task failed: {0}")]
    Failed(E),
    /// The last attempt ran past its timeout (see [`Task::timeout`](crate::Task::timeout)).
    #[error("task timed out")]
    TimedOut,
    /// The task was cancelled by [`TaskHandle::cancel`](crate::TaskHandle::cancel) or
    /// [`TaskRunner::cancel`](crate::TaskRunner::cancel).
    #[error("task was cancelled")]
    Cancelled,
    /// The handler panicked; the panic message is kept. Panics are not retried.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// The task was stopped by [`TaskRunner::shutdown_now`](crate::TaskRunner::shutdown_now).
    #[error("task was stopped because the runner shut down")]
    Shutdown,
    /// The task was never enqueued: the runner refused it (see [`EnqueueError`]). Made by
    /// [`TaskRunner::run`](crate::TaskRunner::run) and by `?` on an `enqueue_task` result in
    /// a function returning `Result<_, TaskError<E>>`.
    #[error("task was refused: {0}")]
    Rejected(#[source] EnqueueError),
}

impl<E> From<EnqueueError> for TaskError<E> {
    fn from(error: EnqueueError) -> Self {
        TaskError::Rejected(error)
    }
}

impl<E> TaskError<E> {
    /// The handler's error, if the task failed with one.
    pub fn into_failed(self) -> Option<E> {
        match self {
            TaskError::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the task ended because it was cancelled or shut down.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled | TaskError::Shutdown)
    }

    /// A stable name for the variant, for logs, metrics labels and a framework's own error
    /// mapping: `"failed"`, `"timed_out"`, `"cancelled"`, `"panicked"`, `"shutdown"` or
    /// `"rejected"`. These names do not change between versions.
    ///
    /// ```
    /// use taskrunner::{EnqueueError, TaskError};
    ///
    /// assert_eq!(TaskError::Failed("HTTP 404").kind(), "failed");
    /// assert_eq!(TaskError::<String>::TimedOut.kind(), "timed_out");
    /// assert_eq!(TaskError::<String>::from(EnqueueError::ShuttingDown).kind(), "rejected");
    /// ```
    pub const fn kind(&self) -> &'static str {
        match self {
            TaskError::Failed(_) => "failed",
            TaskError::TimedOut => "timed_out",
            TaskError::Cancelled => "cancelled",
            TaskError::Panicked(_) => "panicked",
            TaskError::Shutdown => "shutdown",
            TaskError::Rejected(_) => "rejected",
        }
    }
}

/// Why a durable [step](crate::TaskContext::step) could not give back its result.
///
/// A step's own error is returned as it is; this covers what the store adds. A handler's
/// error type takes it with `?` when it implements `From<StepError>` (done here for `String`;
/// `Box<dyn Error>` and `anyhow::Error` take any error already).
///
/// ```
/// use taskrunner::StepError;
///
/// let e = StepError::LeaseLost { step: "search".into(), index: 2 };
/// assert!(e.to_string().starts_with("step `search` #2: this process lost the run"));
/// let as_string: String = e.into();
/// assert!(as_string.contains("search"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The step succeeded but its output does not serialize to JSON, so it cannot be stored
    /// (and the run cannot go on without running it again).
    #[error(
        "step `{step}` #{index}: its output does not serialize to JSON, so it cannot be \
         stored: {reason} (return a type that serde can serialize, such as a struct deriving \
         Serialize with string map keys)"
    )]
    Serialize {
        /// The step's name.
        step: String,
        /// Which call of that name in the run, from 0.
        index: u32,
        /// What serde said.
        reason: String,
    },
    /// The output stored by an earlier attempt no longer deserializes as the type asked for:
    /// the step's output type changed while the run was in flight. The step is not run again.
    #[error(
        "step `{step}` #{index}: its stored output no longer deserializes as `{type_name}`: \
         {reason} (the step's output type changed since the run stored it: keep the old \
         type readable, or give the changed step a new name)"
    )]
    Deserialize {
        /// The step's name.
        step: String,
        /// Which call of that name in the run, from 0.
        index: u32,
        /// The type asked for.
        type_name: &'static str,
        /// What serde said.
        reason: String,
    },
    /// This process no longer holds the run (its lease expired and another claim took it),
    /// so the step's result was not stored: the run goes on in the process that holds it.
    #[error(
        "step `{step}` #{index}: this process lost the run's claim (its lease expired and \
         another claim holds it), so the step's result was not stored"
    )]
    LeaseLost {
        /// The step's name.
        step: String,
        /// Which call of that name in the run, from 0.
        index: u32,
    },
    /// The store could not be read or written.
    #[error("step `{step}` #{index}: the durable store failed: {reason}")]
    Store {
        /// The step's name.
        step: String,
        /// Which call of that name in the run, from 0.
        index: u32,
        /// The store's error.
        reason: String,
    },
    /// A signal's value does not deserialize as (or, for an in-process task, is not) the
    /// type [`TaskContext::wait_for_signal`](crate::TaskContext::wait_for_signal) waits for.
    /// The signal is consumed: a replay gets the same error.
    #[error(
        "signal `{signal}` #{index}: its value is not a `{type_name}`: {reason} (send a value \
         of the type the handler waits for)"
    )]
    SignalType {
        /// The signal's name.
        signal: String,
        /// Which wait for that name in the run, from 0.
        index: u32,
        /// The type waited for.
        type_name: &'static str,
        /// What serde said, or the type sent.
        reason: String,
    },
    /// A durable run waited for two things at once (say, a `tokio::select!` of two
    /// [`TaskContext::wait_for_signal`](crate::TaskContext::wait_for_signal)s): a run parks
    /// for one thing at a time, so the second wait fails instead of never being woken.
    #[error(
        "`{wait}`: one wait at a time in a run: `{other}` has not ended (await a run's waits \
         one after another; to wait for either of two outcomes, wait for one signal whose \
         value tells them apart)"
    )]
    ConcurrentWait {
        /// The wait that was refused.
        wait: String,
        /// The wait of the same run still in progress.
        other: String,
    },
    /// [`TaskContext::spawn`](crate::TaskContext::spawn) was called outside a durable run.
    #[error(
        "`{what}` needs a durable run: submit the parent with `TaskRunner::submit`; in an \
         in-process task, enqueue the child with `TaskRunner::enqueue_task` and wait for its \
         handle with `TaskContext::join`"
    )]
    NotDurable {
        /// The call.
        what: &'static str,
    },
}

impl From<StepError> for String {
    fn from(error: StepError) -> String {
        error.to_string()
    }
}
