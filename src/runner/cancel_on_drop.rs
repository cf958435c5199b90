//! [`CancelOnDropHandle`], [`TaskRunner::run`] and [`TaskRunner::cancel_and_wait`]: a task
//! tied to the future that awaits it.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::{Shared, TaskHandle, TaskRunner};
use crate::error::TaskError;
use crate::id::TaskId;
use crate::task::{CancelCause, Phase, RetryPredicate, Task, TaskContext};

/// A [`TaskHandle`] that cancels its task when dropped before the task ended, like
/// tokio-util's `AbortOnDropHandle`. Made by [`TaskHandle::cancel_on_drop`].
///
/// It derefs to the [`TaskHandle`] (for `id`, `status`, `cancel`, ...) and awaits like it.
///
/// ```
/// use taskrunner::{Task, TaskRunner, TaskStatus};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let handle = runner.enqueue_task(Task::new("slow", |_ctx| async {
///     std::future::pending::<Result<(), String>>().await
/// }))?.cancel_on_drop();
/// let id = handle.id();
/// drop(handle); // the caller gave up
/// assert_eq!(runner.get_status(id).unwrap().status, TaskStatus::Cancelled);
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a CancelOnDropHandle cancels its task"]
pub struct CancelOnDropHandle<T: 'static, E: 'static> {
    handle: Option<TaskHandle<T, E>>,
}

impl<T: 'static, E: 'static> TaskHandle<T, E> {
    /// This handle, made to cancel its task when dropped before the task ended.
    pub fn cancel_on_drop(self) -> CancelOnDropHandle<T, E> {
        CancelOnDropHandle { handle: Some(self) }
    }
}

impl<T: 'static, E: 'static> CancelOnDropHandle<T, E> {
    /// The plain handle back: dropping it no longer cancels the task.
    pub fn detach(mut self) -> TaskHandle<T, E> {
        self.handle.take().expect("held until dropped or detached")
    }
}

impl<T: 'static, E: 'static> Deref for CancelOnDropHandle<T, E> {
    type Target = TaskHandle<T, E>;

    fn deref(&self) -> &TaskHandle<T, E> {
        self.handle
            .as_ref()
            .expect("held until dropped or detached")
    }
}

impl<T: 'static, E: 'static> Future for CancelOnDropHandle<T, E> {
    type Output = Result<T, TaskError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handle = self
            .handle
            .as_mut()
            .expect("held until dropped or detached");
        Pin::new(handle).poll(cx)
    }
}

impl<T: 'static, E: 'static> Drop for CancelOnDropHandle<T, E> {
    fn drop(&mut self) {
        // False, doing nothing, once the task has ended (or its result was taken).
        if let Some(handle) = &self.handle {
            handle.cancel();
        }
    }
}

impl<T: 'static, E: 'static> fmt::Debug for CancelOnDropHandle<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CancelOnDropHandle")
            .field(&self.handle)
            .finish()
    }
}

impl TaskRunner {
    /// Enqueues `task` and awaits its result: [`enqueue_task`](Self::enqueue_task) and the
    /// handle in one call, with one error type. A refused task resolves
    /// [`TaskError::Rejected`]. The task is enqueued when this is called; dropping the
    /// future before it resolves cancels the task.
    ///
    /// `?` works with one error type across both steps, since
    /// `TaskError<E>: From<EnqueueError>`:
    ///
    /// ```
    /// use taskrunner::{Task, TaskContext, TaskError, TaskRunner};
    ///
    /// async fn two_tools(runner: &TaskRunner) -> Result<u32, TaskError<String>> {
    ///     let tool = |n: u32| Task::new("tool", move |_: TaskContext| async move { Ok::<_, String>(n) });
    ///     let a = runner.enqueue_task(tool(1))?.await?; // EnqueueError and TaskError, one `?` each
    ///     let b = runner.run(tool(2)).await?;
    ///     Ok(a + b)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let runner = TaskRunner::new();
    /// assert_eq!(two_tools(&runner).await.unwrap(), 3);
    /// let refused = runner.run(Task::new("t", |_: TaskContext| async { Ok::<_, String>(()) }).queue("nope")).await;
    /// assert_eq!(refused.unwrap_err().kind(), "rejected");
    /// # }
    /// ```
    pub fn run<F, Fut, P, T, E>(
        &self,
        task: Task<F, P>,
    ) -> impl Future<Output = Result<T, TaskError<E>>> + Send + 'static
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let handle = self.enqueue_task(task).map(TaskHandle::cancel_on_drop);
        async move { handle?.await }
    }

    /// Cancels task `id` (as [`cancel`](Self::cancel)) and resolves once it has ended: its
    /// handler's future has been dropped (after its [cancel grace](Task::cancel_grace), if
    /// any) and its slot handed on. Resolves `false` at once if there was nothing to cancel
    /// (unknown, finished, or already being cancelled: then it does not wait).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use taskrunner::{Task, TaskContext, TaskRunner};
    /// use tokio::sync::Notify;
    ///
    /// /// Set when the handler's future is dropped.
    /// struct Flag(Arc<AtomicBool>);
    /// impl Drop for Flag {
    ///     fn drop(&mut self) { self.0.store(true, Ordering::SeqCst); }
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let (dropped, started) = (Arc::new(AtomicBool::new(false)), Arc::new(Notify::new()));
    /// let (d, s) = (dropped.clone(), started.clone());
    /// let h = runner.enqueue_task(Task::new("tool", move |_: TaskContext| {
    ///     let flag = Flag(d.clone());
    ///     s.notify_one();
    ///     async move {
    ///         let _flag = flag;
    ///         std::future::pending::<Result<(), String>>().await
    ///     }
    /// }))?;
    /// started.notified().await;
    /// assert!(runner.cancel_and_wait(h.id()).await);
    /// assert!(dropped.load(Ordering::SeqCst), "the handler's future is gone");
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel_and_wait(&self, id: TaskId) -> impl Future<Output = bool> + Send + 'static {
        let shared = std::sync::Arc::clone(&self.shared);
        let job = shared.registry.get(id);
        async move {
            let Some(job) = job else {
                return false;
            };
            if !shared.cancel(&*job, CancelCause::User) {
                return false;
            }
            let _waiting = Waiter::new(&shared);
            loop {
                let ended = shared.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                // Read after the waiter was counted: `finish` reads the count after the
                // phase was set, so one of the two sees the other.
                if matches!(
                    job.header().phase(),
                    Phase::Completed | Phase::Failed | Phase::Cancelled
                ) {
                    return true;
                }
                ended.await;
            }
        }
    }
}

/// A `cancel_and_wait` waiting: while there is one, every task's end wakes the waiters.
struct Waiter<'a>(&'a Shared);

impl<'a> Waiter<'a> {
    fn new(shared: &'a Shared) -> Waiter<'a> {
        shared.cancel_waiters.fetch_add(1, Ordering::SeqCst);
        Waiter(shared)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.cancel_waiters.fetch_sub(1, Ordering::SeqCst);
    }
}
