//! What a task does when it ends, beyond resolving its handle: callbacks, a notification,
//! and reading a wait from its error (`retry_after`).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::options::{RetryAfter, Summarizer};
use super::{Task, TaskContext};
use crate::status::TaskInfo;

impl<F, P> Task<F, P> {
    /// Calls `callback` with the task's final status record once it completes.
    ///
    /// It runs once, on the runner's worker, right after the handle resolves: keep it short.
    /// A panic in it is caught and ignored.
    pub fn on_complete(mut self, callback: impl Fn(&TaskInfo) + Send + Sync + 'static) -> Self {
        self.options.get_or_insert_default().on_complete = Some(Box::new(callback));
        self
    }

    /// Calls `callback` with the task's final status record and its error message once it
    /// fails, times out, panics or is cancelled (the message is also in
    /// [`TaskInfo::error`](crate::TaskInfo::error)).
    ///
    /// It runs once, on the runner's worker or in the call that cancelled the task, right
    /// after the handle resolves: keep it short. A panic in it is caught and ignored.
    pub fn on_error(mut self, callback: impl Fn(&TaskInfo, &str) + Send + Sync + 'static) -> Self {
        self.options.get_or_insert_default().on_error = Some(Box::new(callback));
        self
    }
}

impl<F, Fut, P, T, E> Task<F, P>
where
    F: Fn(TaskContext) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    T: 'static,
{
    /// When the task ends, deposit a [`Notification`](crate::Notification) in the runner's
    /// inbox, its summary the `Ok` value's `Debug` text (or the error), for an agent loop
    /// to [drain](crate::TaskRunner::drain_notifications) before its next model call.
    pub fn notify(self) -> Self
    where
        T: fmt::Debug,
    {
        self.notify_with(|value: &T| format!("{value:?}"))
    }

    /// Reads from an error the wait it asks for (a 429's Retry-After): when `asks` returns
    /// `Some(wait)`, the task is retried after `wait` instead of its backoff delay, and that
    /// retry does not count against [`max_retries`](crate::RetryPolicy::max_retries) (a 429
    /// is not a failure), even without a [`retry`](Self::retry) policy. A task gets at most
    /// [`RETRY_AFTER_LIMIT`](crate::RETRY_AFTER_LIMIT) such retries; past them its errors are
    /// handled as if `asks` returned `None` (by its retry policy, if any). Like any retry,
    /// the wait holds no slot. To hold back the whole queue meanwhile, the handler also calls
    /// [`TaskContext::pause_queue_for`](crate::TaskContext::pause_queue_for).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Task, TaskContext, TaskRunner};
    ///
    /// #[derive(Debug)]
    /// enum ApiError { TooManyRequests { retry_after: Duration }, Other(String) }
    /// # impl std::fmt::Display for ApiError {
    /// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    /// #         match self {
    /// #             ApiError::TooManyRequests { .. } => f.write_str("429"),
    /// #             ApiError::Other(message) => f.write_str(message),
    /// #         }
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let call = Task::new("call", |ctx: TaskContext| async move {
    ///     match ctx.attempt() {
    ///         1 => Err(ApiError::TooManyRequests { retry_after: Duration::from_secs(20) }),
    ///         2 => Ok(2),
    ///         _ => Err(ApiError::Other("unreachable here".into())),
    ///     }
    /// })
    /// .retry_after(|e: &ApiError| match e {
    ///     ApiError::TooManyRequests { retry_after } => Some(*retry_after),
    ///     ApiError::Other(_) => None,
    /// });
    /// assert_eq!(runner.enqueue_task(call)?.await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn retry_after(
        mut self,
        asks: impl Fn(&E) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self
    where
        E: 'static,
    {
        let asks: RetryAfter =
            Box::new(move |error: &dyn Any| error.downcast_ref::<E>().and_then(&asks));
        self.flow_mut().retry_after = Some(asks);
        self
    }

    /// Like [`notify`](Self::notify), with the `Ok` value rendered by `summary`.
    pub fn notify_with(mut self, summary: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        let summarizer: Summarizer = Box::new(move |value: &dyn Any| {
            value.downcast_ref::<T>().map_or_else(String::new, &summary)
        });
        self.options.get_or_insert_default().notify = Some(summarizer);
        self
    }
}
