//! The flow-control side of [`TaskRunner`]: enqueueing with backpressure, pausing and
//! resuming queues, moving a waiting task, and a shutdown with a deadline.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::enqueue::Room;
use crate::task::{GroupCore, RetryPredicate};
use crate::{
    ConfigError, EnqueueError, Rejected, Task, TaskContext, TaskHandle, TaskId, TaskRunner,
};

impl TaskRunner {
    /// Like [`enqueue_task`](Self::enqueue_task), but a refused task is handed back in the
    /// [`Rejected`] error, whole and never run, so the caller still owns it: it can enqueue it
    /// again later, or wait for room with [`enqueue_task_wait`](Self::enqueue_task_wait).
    ///
    /// # Errors
    ///
    /// The same as [`enqueue_task`](Self::enqueue_task), with the task.
    pub fn try_enqueue_task<F, Fut, P, T, E>(
        &self,
        task: Task<F, P>,
    ) -> Result<TaskHandle<T, E>, Rejected<F, P>>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.enqueue(task, Room::Take, None)
    }

    /// Like [`enqueue_task`](Self::enqueue_task), but when the task's queue is full (its
    /// [`max_pending`](crate::QueueConfig::max_pending)) waits for room instead of failing with
    /// [`EnqueueError::QueueFull`]. Waiters get room in the order they started waiting.
    ///
    /// Cancel-safe: dropping the future before it resolves takes no room and drops the task.
    /// On a queue without `max_pending` it resolves at once.
    ///
    /// # Errors
    ///
    /// The same as [`enqueue_task`](Self::enqueue_task), except `QueueFull`.
    pub fn enqueue_task_wait<F, Fut, P, T, E>(
        &self,
        task: Task<F, P>,
    ) -> impl Future<Output = Result<TaskHandle<T, E>, EnqueueError>> + Send + 'static
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.enqueue_wait(task, None)
    }

    /// [`enqueue_task_wait`](Self::enqueue_task_wait), into `group` if given.
    pub(super) fn enqueue_wait<F, Fut, P, T, E>(
        &self,
        task: Task<F, P>,
        group: Option<Arc<GroupCore>>,
    ) -> impl Future<Output = Result<TaskHandle<T, E>, EnqueueError>> + Send + 'static
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let runner = self.clone();
        async move {
            let task = match runner.enqueue(task, Room::Take, group.as_ref()) {
                Err(Rejected {
                    error: EnqueueError::QueueFull { .. },
                    task,
                }) => task,
                done => return done.map_err(Rejected::into_error),
            };
            let queue = runner.shared.queue(task.queue_name()).map(Arc::clone);
            if let Some(room) = queue.as_ref().and_then(|q| q.room()) {
                // Never closed, so this only waits.
                if let Ok(permit) = room.acquire().await {
                    permit.forget();
                }
            }
            runner
                .enqueue(task, Room::Held, group.as_ref())
                .map_err(Rejected::into_error)
        }
    }

    /// Pauses a queue: nothing new starts in it until [`resume_queue`](Self::resume_queue);
    /// running tasks go on, and tasks can still be enqueued (they wait). Pausing a paused
    /// queue does nothing. [`QueueStats::paused`](crate::QueueStats::paused) shows it.
    /// [`shutdown`](Self::shutdown) waits for the paused queue's tasks too (resume it, or use
    /// [`shutdown_timeout`](Self::shutdown_timeout)); `shutdown_now` cancels them.
    ///
    /// ```
    /// use taskrunner::{Task, TaskContext, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// runner.pause_queue("main")?;
    /// let task = runner.enqueue_task(Task::new("t", |_: TaskContext| async { Ok::<_, String>(()) }))?;
    /// assert_eq!(task.status(), TaskStatus::Pending);
    /// runner.resume_queue("main")?;
    /// task.await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownQueue`] for an undeclared queue.
    pub fn pause_queue(&self, queue: &str) -> Result<(), ConfigError> {
        self.shared
            .queue(queue)
            .ok_or_else(|| ConfigError::UnknownQueue(queue.to_owned()))?
            .pause();
        Ok(())
    }

    /// Ends a [`pause_queue`](Self::pause_queue): waiting tasks start at once in free slots.
    /// Does not cut short a [`TaskContext::pause_queue_for`](crate::TaskContext::pause_queue_for).
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownQueue`] for an undeclared queue.
    pub fn resume_queue(&self, queue: &str) -> Result<(), ConfigError> {
        let q = self
            .shared
            .queue(queue)
            .ok_or_else(|| ConfigError::UnknownQueue(queue.to_owned()))?;
        for job in q.resume() {
            self.shared.start(job);
        }
        Ok(())
    }

    /// Moves waiting task `id` to `priority`: it takes its place in the start order as if
    /// enqueued with it (behind the tasks already waiting at that priority). Returns `true`
    /// if the task was waiting ([`Pending`](crate::TaskStatus::Pending)) and has moved; `false` if
    /// it is running, retrying, delayed, finished or unknown, or already has that priority.
    /// O(log n); the old place is left as a tombstone, skipped when reached.
    ///
    /// ```
    /// use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder()
    ///     .queue("main", QueueConfig::new().concurrency(1))
    ///     .build()?;
    /// let task = || Task::new("t", |_: TaskContext| async { Ok::<_, String>(()) });
    /// let first = runner.enqueue_task(task())?; // running
    /// let later = runner.enqueue_task(task())?; // waiting
    /// assert!(runner.set_priority(later.id(), 10));
    /// assert!(!runner.set_priority(first.id(), 10), "not waiting");
    /// assert_eq!(runner.get_status(later.id()).unwrap().priority, 10);
    /// # first.await?; later.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_priority(&self, id: TaskId, priority: i32) -> bool {
        match self.shared.registry.get(id) {
            Some(job) => self
                .shared
                .queue_of(job.header())
                .set_priority(&job, priority),
            None => false,
        }
    }

    /// A graceful [`shutdown`](Self::shutdown) for at most `timeout`; at the deadline, what
    /// is left is stopped as by [`shutdown_now`](Self::shutdown_now). Resolves once every
    /// task has ended.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Task, TaskContext, TaskError, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let stuck = runner.enqueue_task(Task::new("stuck", |_: TaskContext| async {
    ///     std::future::pending::<()>().await;
    ///     Ok::<_, String>(())
    /// }))?;
    /// runner.shutdown_timeout(Duration::from_secs(30)).await;
    /// assert!(matches!(stuck.await, Err(TaskError::Shutdown)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> impl Future<Output = ()> + Send + 'static {
        let graceful = self.shutdown();
        let runner = self.clone();
        async move {
            if tokio::time::timeout(timeout, graceful).await.is_err() {
                runner.shutdown_now().await;
            }
        }
    }
}
