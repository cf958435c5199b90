//! [`Rejected`]: a task the runner refused, handed back whole.

use crate::error::EnqueueError;
use crate::task::{RetryAny, Task};

/// A task refused by [`TaskRunner::try_enqueue_task`](crate::TaskRunner::try_enqueue_task),
/// handed back whole with the reason, so that it can be enqueued again (for example with
/// [`enqueue_task_wait`](crate::TaskRunner::enqueue_task_wait) after
/// [`EnqueueError::QueueFull`]) instead of being lost.
///
/// ```
/// use taskrunner::{EnqueueError, Task, TaskContext, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let runner = TaskRunner::new();
/// let task = Task::new("t", |_: TaskContext| async { Ok::<_, String>(1) }).queue("nope");
/// let refused = runner.try_enqueue_task(task).unwrap_err();
/// assert_eq!(refused.error, EnqueueError::UnknownQueue("nope".into()));
/// // Still ours: fix it and enqueue it again.
/// let again = runner.enqueue_task(refused.into_task().queue("main")).unwrap();
/// assert_eq!(again.await.unwrap(), 1);
/// # }
/// ```
pub struct Rejected<F, P = RetryAny> {
    /// Why the task was refused.
    pub error: EnqueueError,
    /// The task, as it was given.
    pub task: Task<F, P>,
}

impl<F, P> Rejected<F, P> {
    /// The reason, dropping the task.
    pub fn into_error(self) -> EnqueueError {
        self.error
    }

    /// The task, to enqueue again.
    pub fn into_task(self) -> Task<F, P> {
        self.task
    }
}

impl<F, P> std::fmt::Debug for Rejected<F, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .field("task", &self.task)
            .finish()
    }
}

impl<F, P> std::fmt::Display for Rejected<F, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "task `{}` refused: {}", self.task.name(), self.error)
    }
}

impl<F, P> std::error::Error for Rejected<F, P> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
