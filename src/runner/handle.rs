//! [`TaskHandle`]: the caller's side of an enqueued task.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::Shared;
use crate::error::TaskError;
use crate::id::TaskId;
use crate::status::{Progress, TaskInfo, TaskStatus};
#[cfg(debug_assertions)]
use crate::task::{own_queue, Header, Phase};
use crate::task::{CancelCause, TypedJob};

/// A future of an enqueued task's result, and a remote control for it.
///
/// Await it for `Result<T, TaskError<E>>`; it resolves exactly once, after the task's
/// terminal status is visible through [`status`](Self::status),
/// [`TaskRunner::get_status`](crate::TaskRunner::get_status) and
/// [`TaskRunner::queue_stats`](crate::TaskRunner::queue_stats).
///
/// Dropping a handle does **not** cancel its task: the task runs on, and its result is
/// dropped. Call [`cancel`](Self::cancel) to stop it.
///
/// # Deadlock: awaiting a task of your own queue from a handler
///
/// A handler holds a slot of its queue while it runs. If it enqueues a task into **its own
/// queue** and awaits that task's handle, the new task needs a free slot of that queue: when
/// every slot is held by handlers waiting like this one (with concurrency 1, at once), none
/// ever frees and they wait forever. The same holds across two queues that wait on each
/// other. Ways out:
///
/// - enqueue the sub-task into **another queue** (one for sub-tasks), whose slots are not
///   held by the waiting parents;
/// - or don't await it: return, and let the sub-task report through a
///   [notification](crate::Task::notify), an [event](crate::TaskRunner::subscribe) or a
///   callback;
/// - or await it with a timeout (`tokio::time::timeout`), and cancel it on expiry.
///
/// In debug builds, a handler polling the handle of a task that waits in the handler's own
/// full queue logs a `tracing` warning (once a handle) naming the queue.
///
/// ```
/// use taskrunner::{Task, TaskContext, TaskError, TaskRunner, TaskStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let handle = runner.enqueue_task(Task::new("forever", |_: TaskContext| async {
///     std::future::pending::<Result<(), std::io::Error>>().await
/// }))?;
/// assert_eq!(handle.status(), TaskStatus::Running);
/// assert!(handle.cancel());
/// assert!(matches!(handle.await, Err(TaskError::Cancelled)));
/// # Ok(())
/// # }
/// ```
#[must_use = "a TaskHandle does nothing unless awaited; dropping it does not cancel the task"]
pub struct TaskHandle<T: 'static, E: 'static> {
    cell: Arc<dyn TypedJob<T, E>>,
    /// The runner, until the result is taken (`None`): then the task has ended, so a cancel
    /// has nothing to do and dropping the handle has nothing to tell the task. One word for
    /// both, so that a release-build handle is 24 bytes.
    shared: Option<Arc<Shared>>,
    /// The own-queue deadlock warning was logged (debug builds only).
    #[cfg(debug_assertions)]
    warned: bool,
}

impl<T: 'static, E: 'static> TaskHandle<T, E> {
    pub(crate) fn new(cell: Arc<dyn TypedJob<T, E>>, shared: Arc<Shared>) -> Self {
        TaskHandle {
            cell,
            shared: Some(shared),
            #[cfg(debug_assertions)]
            warned: false,
        }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.cell.header().id
    }

    /// The task's call id.
    pub fn call_id(&self) -> &str {
        self.cell.header().call_id()
    }

    /// The task's status now.
    pub fn status(&self) -> TaskStatus {
        self.cell.header().phase().status()
    }

    /// The latest progress the handler reported, if any.
    pub fn progress(&self) -> Option<Progress> {
        self.cell.header().progress()
    }

    /// A full status record, even after the runner has evicted the task's record.
    pub fn info(&self) -> TaskInfo {
        match &self.shared {
            Some(shared) => shared.info(&*self.cell),
            // The result was taken: the task has ended, and waits for nothing.
            None => self.cell.header().snapshot(),
        }
    }

    /// Cancels the task: if waiting, it never runs; if running, its abort token fires and its
    /// future is dropped; if waiting out a retry delay, it stops. The handle then resolves
    /// [`TaskError::Cancelled`]. Returns `false` if the task had already finished (or was
    /// already cancelled).
    ///
    /// Its [`status`](Self::status) is [`Cancelled`](TaskStatus::Cancelled) as soon as this
    /// returns `true`, a running task's too, though its handler's future is dropped (and
    /// its slot freed) when its worker next gets to it: at once, on its next poll.
    ///
    /// ```
    /// use taskrunner::{Task, TaskError, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let search = runner.enqueue_task(Task::new("search", |_ctx| async {
    ///     std::future::pending::<Result<(), String>>().await // the user gave up on it
    /// }))?;
    /// assert!(search.cancel());
    /// assert_eq!(search.status(), TaskStatus::Cancelled);
    /// assert!(!search.cancel(), "nothing left to cancel");
    /// assert!(matches!(search.await, Err(TaskError::Cancelled)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel(&self) -> bool {
        // Once the result is taken the task has ended: nothing to cancel.
        self.shared
            .as_ref()
            .is_some_and(|shared| shared.cancel(&*self.cell, CancelCause::User))
    }
}

impl<T: 'static, E: 'static> Future for TaskHandle<T, E> {
    type Output = Result<T, TaskError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = self.cell.poll_result(cx);
        if result.is_ready() {
            self.shared = None;
        }
        #[cfg(debug_assertions)]
        if result.is_pending() && !self.warned {
            self.warned = match &self.shared {
                Some(shared) => warn_own_queue(shared, self.cell.header()),
                None => false,
            };
        }
        result
    }
}

impl<T: 'static, E: 'static> Drop for TaskHandle<T, E> {
    fn drop(&mut self) {
        if self.shared.is_some() {
            self.cell.detach();
        }
    }
}

impl<T: 'static, E: 'static> fmt::Debug for TaskHandle<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = self.cell.header();
        f.debug_struct("TaskHandle")
            .field("id", &header.id)
            .field("name", &header.name)
            .field("status", &header.phase().status())
            .finish()
    }
}

/// The debug-build check for the own-queue deadlock (see [`TaskHandle`]): whether a handler
/// polling the handle of `awaited` risks it; logs a warning if so.
#[cfg(debug_assertions)]
fn warn_own_queue(shared: &Shared, awaited: &Header) -> bool {
    if !own_queue::is_polling(&awaited.queue) || awaited.phase() != Phase::Queued {
        return false;
    }
    let queue = shared.queue_of(awaited);
    let stats = queue.stats();
    if stats.running < stats.limit {
        return false;
    }
    tracing::warn!(
        queue = queue.name(),
        task = %awaited.id,
        "a handler of queue `{}` awaits task {} waiting in the same queue, which is full \
         ({} of {} slots held): if the running handlers all wait like this, none frees its \
         slot and they deadlock; enqueue the sub-task into another queue, or do not await it",
        queue.name(),
        awaited.id,
        stats.running,
        stats.limit,
    );
    true
}
