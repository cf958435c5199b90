//! Waiting for the runner to go idle, and shutting it down.

use std::future::Future;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use super::extension::{Extension, Stop};
use super::TaskRunner;
use crate::task::CancelCause;

impl TaskRunner {
    /// Resolves when no task is pending, running or waiting out a retry delay, in any queue.
    /// Resolves at once if the runner is idle already. By then every handle has resolved.
    /// Unlike [`shutdown`](Self::shutdown), the runner goes on taking tasks.
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// for i in 0..10 {
    ///     // Fire and forget: the handles are dropped, the tasks run on.
    ///     drop(runner.enqueue_task(Task::new("job", move |_ctx| async move { Ok::<_, String>(i) }))?);
    /// }
    /// runner.wait_idle().await;
    /// assert_eq!(runner.list_tasks().len(), 10);
    /// assert!(runner.list_tasks().iter().all(|t| t.status.is_terminal()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_idle(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move { shared.wait_idle().await }
    }

    /// Stops every [schedule](Self::schedule), stops taking tasks
    /// ([`EnqueueError::ShuttingDown`](crate::EnqueueError::ShuttingDown)), and resolves once every delayed, pending, running
    /// and retrying task (schedules' runs already started included) has finished. Tasks
    /// waiting in a [paused](Self::pause_queue) queue wait for
    /// [`resume_queue`](Self::resume_queue): to bound the wait, use
    /// [`shutdown_timeout`](Self::shutdown_timeout).
    ///
    /// ```
    /// use taskrunner::{EnqueueError, Task, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let handle = runner.enqueue_task(Task::new("last", |_ctx| async { Ok::<_, String>(1) }))?;
    /// runner.shutdown().await; // the task still finishes
    /// assert_eq!(handle.await?, 1);
    /// let late = runner.enqueue_task(Task::new("late", |_ctx| async { Ok::<_, String>(2) }));
    /// assert!(matches!(late, Err(EnqueueError::ShuttingDown)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        // Schedules stop firing.
        shared.extensions.before_close();
        shared.closed.store(true, Ordering::SeqCst);
        // Durable runs claimed here that have not started go back to the store at once.
        let (extensions, released) = self.begin_shutdown(Stop::Drain);
        async move {
            released.await;
            shared.wait_idle().await;
            // Idle workers end.
            shared.parked.close();
            end_shutdown(extensions).await;
        }
    }

    /// Stops every [schedule](Self::schedule), stops taking tasks and cancels every one:
    /// pending tasks never run, running tasks' abort tokens fire and their futures are
    /// dropped, retrying tasks stop. Each handle resolves
    /// [`TaskError::Shutdown`](crate::TaskError::Shutdown). Resolves once all have ended.
    ///
    /// ```
    /// use taskrunner::{Task, TaskError, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let endless = runner.enqueue_task(Task::new("watch", |_ctx| async {
    ///     std::future::pending::<Result<(), String>>().await
    /// }))?;
    /// runner.shutdown_now().await;
    /// assert!(matches!(endless.await, Err(TaskError::Shutdown)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown_now(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        // Schedules stop firing.
        shared.extensions.before_close();
        shared.closed.store(true, Ordering::SeqCst);
        shared.aborting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Durable runs claimed here, running or not, go back to the store at once.
        let (extensions, released) = self.begin_shutdown(Stop::Abort);
        for job in shared.registry.all() {
            shared.cancel(&*job, CancelCause::Shutdown);
        }
        async move {
            released.await;
            shared.wait_idle().await;
            // Idle workers end.
            shared.parked.close();
            end_shutdown(extensions).await;
        }
    }

    /// The second phase of a shutdown, the runner being closed: each extension's
    /// [`begin_shutdown`](Extension::begin_shutdown), and a future of what they do next.
    fn begin_shutdown(
        &self,
        how: Stop,
    ) -> (
        Vec<Arc<dyn Extension>>,
        impl Future<Output = ()> + Send + 'static,
    ) {
        let extensions = self.shared.extensions.all();
        let begun: Vec<_> = extensions
            .iter()
            .filter_map(|extension| Arc::clone(extension).begin_shutdown(self, how))
            .collect();
        (extensions, async move {
            for future in begun {
                future.await;
            }
        })
    }
}

/// The last phase of a shutdown, the runner being idle: each extension's
/// [`end_shutdown`](Extension::end_shutdown), one after the other.
async fn end_shutdown(extensions: Vec<Arc<dyn Extension>>) {
    for extension in extensions {
        if let Some(future) = extension.end_shutdown() {
            future.await;
        }
    }
}
