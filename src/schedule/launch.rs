//! Making one run: the user's `make_task`, tagged with the schedule, enqueued, and watched.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::task::RetryPredicate;
use crate::{EnqueueError, Task, TaskContext, TaskError, TaskId, TaskRunner};

/// Makes one run's task: calls the user's `make_task` (a panic caught) and tags the task
/// with the schedule's name; the [`Enqueue`] it returns puts it in the runner.
pub(crate) type Launch = Box<dyn Fn(&Arc<str>) -> Result<Enqueue, LaunchError> + Send + Sync>;

/// Enqueues a made task; returns its id and a future of how it ended.
pub(crate) type Enqueue =
    Box<dyn FnOnce(&TaskRunner) -> Result<(TaskId, BoxFuture<'static, RunEnd>), EnqueueError>>;

/// Why a fire started no run.
pub(crate) enum LaunchError {
    /// The schedule stopped (or paused, for a fire by the timetable) meanwhile.
    Stopped,
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
    Box::new(move |tag| {
        let mut task = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&make_task))
            .map_err(|panic| LaunchError::Panicked(panic_message(&*panic)))?;
        task.options_mut().schedule = Some(Arc::clone(tag));
        let enqueue: Enqueue = Box::new(move |runner| {
            let handle = runner.enqueue_task(task)?;
            let id = handle.id();
            let ended = handle.map(|result| match result {
                Ok(_) => RunEnd::Completed,
                Err(TaskError::Cancelled | TaskError::Shutdown) => RunEnd::Cancelled,
                Err(error) => RunEnd::Failed(error.to_string()),
            });
            Ok((id, ended.boxed()))
        });
        Ok(enqueue)
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
