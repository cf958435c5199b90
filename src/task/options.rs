//! The options few tasks set, boxed apart from the task, and the retry predicate.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::retry::RetryPolicy;
use crate::status::TaskInfo;

/// The options few tasks set.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
    /// Deposit a notification when the task ends; renders an `Ok` value (a `&T`) as text.
    pub(crate) notify: Option<Summarizer>,
    pub(crate) on_complete: Option<OnComplete>,
    pub(crate) on_error: Option<OnError>,
    /// Flow control: start delay, concurrency key, dedup key, 429 handling. Inline: the
    /// options are boxed already, and a task with a key needs no second allocation.
    pub(crate) flow: TaskFlow,
    /// The schedule that enqueued this task, as one of its runs.
    pub(crate) schedule: Option<std::sync::Arc<str>>,
    /// How long a cancelled or timed-out attempt may go on after its token fired.
    pub(crate) cancel_grace: Option<Duration>,
    /// With a cancel grace: the running attempt's number and its abort token, a child of
    /// the task's, which a timeout fires (a cancel fires the task's, and so this one).
    pub(crate) attempt_token: std::sync::Mutex<Option<(u32, tokio_util::sync::CancellationToken)>>,
}

pub(crate) type OnComplete = Box<dyn Fn(&TaskInfo) + Send + Sync>;
pub(crate) type OnError = Box<dyn Fn(&TaskInfo, &str) + Send + Sync>;

/// Renders a task's `Ok` value, passed as `&dyn Any` (it is always the task's own `T`).
pub(crate) type Summarizer = Box<dyn Fn(&dyn Any) -> String + Send + Sync>;

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("notify", &self.notify.is_some())
            .field("on_complete", &self.on_complete.is_some())
            .field("on_error", &self.on_error.is_some())
            .field("flow", &self.flow)
            .field("schedule", &self.schedule)
            .field("cancel_grace", &self.cancel_grace)
            .finish()
    }
}

/// The default retry predicate: with a [`RetryPolicy`], every error is retried.
///
/// Replace it with [`Task::retry_if`](crate::Task::retry_if).
///
/// ```
/// use taskrunner::{RetryAny, RetryPredicate};
///
/// assert!(RetryPredicate::<std::io::Error>::should_retry(&RetryAny, &std::io::Error::other("x")));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryAny;

/// Decides whether a handler's error is worth another attempt. Implemented for
/// [`RetryAny`] and for every `Fn(&E) -> bool`.
///
/// ```
/// use taskrunner::RetryPredicate;
///
/// /// Retries server errors, not client errors.
/// struct ServerErrors;
///
/// impl RetryPredicate<u16> for ServerErrors {
///     fn should_retry(&self, status: &u16) -> bool {
///         *status >= 500
///     }
/// }
///
/// assert!(ServerErrors.should_retry(&503) && !ServerErrors.should_retry(&404));
/// // A closure is a predicate too: `.retry_if(|status: &u16| *status >= 500)`.
/// ```
pub trait RetryPredicate<E>: Send + Sync + 'static {
    /// `true` to retry (if the policy has retries left), `false` if the error is permanent.
    fn should_retry(&self, error: &E) -> bool;
}

impl<E> RetryPredicate<E> for RetryAny {
    fn should_retry(&self, _: &E) -> bool {
        true
    }
}

impl<E, P> RetryPredicate<E> for P
where
    P: Fn(&E) -> bool + Send + Sync + 'static,
{
    fn should_retry(&self, error: &E) -> bool {
        self(error)
    }
}
/// A task's flow-control options, boxed inside its options: most tasks set none.
#[derive(Default)]
pub(crate) struct TaskFlow {
    pub(crate) delay: Option<Duration>,
    pub(crate) concurrency_key: Option<Arc<str>>,
    pub(crate) dedup_key: Option<Box<str>>,
    /// The wait an error asks for, given the error as `&dyn Any` (always the task's `E`).
    pub(crate) retry_after: Option<RetryAfter>,
    /// The estimate each attempt reserves under its queue's budgets (`Task::cost`).
    pub(crate) cost: Option<u64>,
}

pub(crate) type RetryAfter = Box<dyn Fn(&dyn std::any::Any) -> Option<Duration> + Send + Sync>;

impl fmt::Debug for TaskFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFlow")
            .field("delay", &self.delay)
            .field("concurrency_key", &self.concurrency_key)
            .field("dedup_key", &self.dedup_key)
            .field("retry_after", &self.retry_after.is_some())
            .field("cost", &self.cost)
            .finish()
    }
}
