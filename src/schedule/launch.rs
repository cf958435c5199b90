//! Making one run: the user's `make_task`, tagged with the schedule, enqueued, and watched.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::task::RetryPredicate;
use crate::{EnqueueError, Task, TaskContext, TaskError, TaskId, TaskRunner};

/// Makes one run: calls the user's `make_task`, tags the task, enqueues it, and returns its
/// id and a future of how it ended.
pub(crate) type Launch = Box<
    dyn Fn(&TaskRunner, &Arc<str>) -> Result<(TaskId, BoxFuture<'static, RunEnd>), LaunchError>
        + Send
        + Sync,
>;

/// Why a fire started no run.
pub(crate) enum LaunchError {
    Panicked(String),
    Enqueue(EnqueueError),
}

/// How a run ended, as a schedule counts it.
pub(crate) enum RunEnd {
    Completed,
    /// Failed, timed out or panicked, with the message.
    Failed(String),
    Cancelled,
}

/// Wraps `make_task` into a [`Launch`]: a panic in it is caught, its task is tagged with the
/// schedule's name, and the run's end is reported without its result type.
pub(crate) fn launcher<M, F, Fut, P, T, E>(make_task: M) -> Launch
where
    M: Fn() -> Task<F, P> + Send + Sync + 'static,
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    P: RetryPredicate<E>,
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    Box::new(move |runner, tag| {
        let mut task = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&make_task))
            .map_err(|panic| LaunchError::Panicked(panic_message(&*panic)))?;
        task.options.get_or_insert_default().schedule = Some(Arc::clone(tag));
        let handle = runner.enqueue_task(task).map_err(LaunchError::Enqueue)?;
        let id = handle.id();
        let ended = handle.map(|result| match result {
            Ok(_) => RunEnd::Completed,
            Err(TaskError::Cancelled | TaskError::Shutdown) => RunEnd::Cancelled,
            Err(error) => RunEnd::Failed(error.to_string()),
        });
        Ok((id, ended.boxed()))
    })
}

/// A panic's message, if it has one.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_owned())
}
