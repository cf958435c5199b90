//! [`SignalError`]: why a signal was not kept.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::store::RunId;
use crate::TaskId;

/// Why [`TaskRunner::signal`](crate::TaskRunner::signal) or
/// [`TaskRunner::signal_task`](crate::TaskRunner::signal_task) did not keep a signal. A
/// signal is never dropped silently: it is kept for the run (or task), or this says why not.
///
/// ```
/// use taskrunner::{SignalError, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let runner = TaskRunner::new();
/// let task = runner.enqueue_task(taskrunner::Task::new("quick", |_| async { Ok::<_, String>(()) })).unwrap();
/// let id = task.id();
/// task.await.unwrap();
/// let err = runner.signal_task(id, "approve", true).unwrap_err();
/// assert!(matches!(err, SignalError::TaskFinished { .. }));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// No run of that id is in the store.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error(
        "signal `{name}` to run {run}: no such run in the store (never submitted to it, or \
         pruned): check the run's id and the store"
    )]
    UnknownRun {
        /// The run.
        run: RunId,
        /// The signal's name.
        name: String,
    },
    /// The run has ended: nothing would ever consume the signal.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error(
        "signal `{name}` to run {run}: the run has already ended ({status}), so nothing would \
         consume it: signal runs that have not finished (see `TaskRunner::run_info`)"
    )]
    RunFinished {
        /// The run.
        run: RunId,
        /// The signal's name.
        name: String,
        /// How it ended: `completed`, `failed` or `cancelled`.
        status: String,
    },
    /// The runner has no durable store.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error(
        "signal `{name}` to run {run}: this runner has no durable store: build it with \
         `TaskRunner::builder().store(..)` on the runs' store"
    )]
    NoStore {
        /// The run.
        run: RunId,
        /// The signal's name.
        name: String,
    },
    /// The value does not serialize to JSON.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error("signal `{name}` to run {run}: its value does not serialize to JSON: {reason}")]
    Serialize {
        /// The run.
        run: RunId,
        /// The signal's name.
        name: String,
        /// What serde said.
        reason: String,
    },
    /// The store could not be read or written; the signal may be sent again.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error("signal `{name}` to run {run}: the durable store failed: {reason} (send it again)")]
    Store {
        /// The run.
        run: RunId,
        /// The signal's name.
        name: String,
        /// The store's error.
        reason: String,
    },
    /// No task of that id is known to this runner.
    #[error(
        "signal `{name}` to task {task}: this runner has no such task (it was enqueued on \
         another runner, or its record was dropped): check the task's id"
    )]
    UnknownTask {
        /// The task.
        task: TaskId,
        /// The signal's name.
        name: String,
    },
    /// The task has ended: nothing would ever consume the signal.
    #[error(
        "signal `{name}` to task {task}: the task has already ended, so nothing would consume \
         it: signal tasks that have not finished"
    )]
    TaskFinished {
        /// The task.
        task: TaskId,
        /// The signal's name.
        name: String,
    },
}
