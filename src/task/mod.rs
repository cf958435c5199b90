//! [`Task`]: a handler and the options it runs with, ready to enqueue.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use compact_str::CompactString;

use crate::config::DEFAULT_QUEUE;
use crate::retry::RetryPolicy;

mod attempt;
mod block;
mod boxed;
mod cell;
mod context;
mod def;
mod flow;
mod group;
mod header;
mod hooks;
mod name;
mod options;
mod outcome;
mod record;
mod state;
mod tag;
mod yield_slot;

#[cfg(debug_assertions)]
pub(crate) use attempt::own_queue;
#[cfg(test)]
pub(crate) use attempt::Attempt;
pub(crate) use block::AttemptBlock;
pub use boxed::{BoxHandler, BoxRetryPredicate, BoxTask};
pub(crate) use cell::{Job, TaskCell, TypedJob};
pub use context::TaskContext;
pub(crate) use context::{DurableLimits, DURABLE_LIMITS};
pub use def::TaskDef;
pub(crate) use group::GroupCore;
pub(crate) use header::Header;
pub use name::{IntoTaskName, TaskName};
pub(crate) use options::{Options, TaskFlow};
pub use options::{RetryAny, RetryPredicate};
pub(crate) use record::Stamp;
pub(crate) use state::{
    cancelled, AttemptEnd, Cancel, CancelCause, CancelFrom, Ending, Finished, Phase, Transition,
};
pub(crate) use tag::{QueueControl, QueueTag};

/// How many retries on a wait its error asked for ([`Task::retry_after`]) a task may take.
/// They do not count against [`max_retries`](crate::RetryPolicy::max_retries); this bound
/// keeps a provider that answers 429 forever from holding a task forever.
pub const RETRY_AFTER_LIMIT: u32 = 16;

/// A unit of work for a [`TaskRunner`](crate::TaskRunner): a named handler and the options it
/// runs with.
///
/// The handler is called once per attempt with a fresh [`TaskContext`](crate::TaskContext) and
/// returns a future of `Result<T, E>`. It is `Fn`, not `FnOnce`, because a retried task calls
/// it again. `E` must implement `Display`, so that [`TaskInfo::error`](crate::TaskInfo::error)
/// can say what went wrong.
///
/// Every option has a default: queue `main`, priority 0, no retry, no timeout, a generated call
/// id.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{RetryPolicy, Task, TaskContext, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let task = Task::new("fetch_price", |ctx: TaskContext| async move {
///     println!("attempt {} of call {}", ctx.attempt(), ctx.call_id());
///     Ok::<u32, std::io::Error>(42)
/// })
/// .priority(10)
/// .retry(RetryPolicy::exponential(Duration::from_millis(100)).max_retries(3))
/// .timeout(Duration::from_secs(30))
/// .call_id("call_abc");
///
/// let price = runner.enqueue_task(task)?.await?;
/// assert_eq!(price, 42);
/// # Ok(())
/// # }
/// ```
#[must_use = "a task does nothing until it is enqueued"]
pub struct Task<F, P = RetryAny> {
    /// Inline when short (see [`IntoTaskName`]).
    name: CompactString,
    /// Inline up to 24 bytes: a name from anywhere, and no allocation for a short one.
    queue: CompactString,
    priority: i32,
    /// Retry and timeout, boxed: most tasks set neither, and the box passes as it is to the
    /// running task.
    options: Option<Box<Options>>,
    retry_if: P,
    call_id: Option<String>,
    handler: F,
}

/// A task taken apart by the runner that enqueues it ([`Task::into_parts`]).
pub(crate) struct Parts<F, P> {
    pub(crate) name: CompactString,
    pub(crate) call_id: Option<String>,
    pub(crate) priority: i32,
    pub(crate) options: Option<Box<Options>>,
    pub(crate) handler: F,
    pub(crate) retry_if: P,
}

// ===== what the runner reads of a task =====

impl<F, P> Task<F, P> {
    /// The queue the task asks for.
    pub(crate) fn queue_name(&self) -> &str {
        &self.queue
    }

    /// The options the task set, if any.
    pub(crate) fn options(&self) -> Option<&Options> {
        self.options.as_deref()
    }

    /// The task's options, made if it set none.
    pub(crate) fn options_mut(&mut self) -> &mut Options {
        self.options.get_or_insert_default()
    }

    /// The task taken apart, for the runner to build its cell from.
    pub(crate) fn into_parts(self) -> Parts<F, P> {
        Parts {
            name: self.name,
            call_id: self.call_id,
            priority: self.priority,
            options: self.options,
            handler: self.handler,
            retry_if: self.retry_if,
        }
    }
}

// ===== impl Task =====

impl<F> Task<F> {
    /// A task named `name` (used in status records, events and tracing) that runs `handler`.
    ///
    /// The handler's argument needs no annotation: `|ctx| async move { .. }` is enough.
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let queue = String::from("main"); // say, read from configuration
    /// let task = Task::new("x", |ctx| async move {
    ///     Ok::<_, std::io::Error>(format!("attempt {} on {}", ctx.attempt(), ctx.queue()))
    /// })
    /// .queue(queue.as_str());
    /// assert_eq!(runner.enqueue_task(task)?.await?, "attempt 1 on main");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Captured values
    ///
    /// The handler is `Fn`, called once per attempt, so it cannot give away what it captured:
    /// moving a captured `String` into the `async move` block fails with E0507 ("cannot move
    /// out of `query`, a captured variable in an `Fn` closure"):
    ///
    /// ```compile_fail,E0507
    /// # use taskrunner::{Task, TaskContext};
    /// let query = String::from("tokio");
    /// let task = Task::new("search", move |_: TaskContext| async move {
    ///     Ok::<_, String>(query.len()) // `query` moves into the first attempt's future
    /// });
    /// ```
    ///
    /// Two fixes. Clone it inside the closure, so each attempt's future owns its copy:
    ///
    /// ```
    /// # use taskrunner::{Task, TaskContext};
    /// let query = String::from("tokio");
    /// let _task = Task::new("search", move |_: TaskContext| {
    ///     let query = query.clone();
    ///     async move { Ok::<_, String>(query.len()) }
    /// });
    /// ```
    ///
    /// Or define the handler once as a [`TaskDef`] that takes its input as an argument, and
    /// make a task per call with [`TaskDef::with`] (it clones the input for each attempt):
    ///
    /// ```
    /// # use taskrunner::{TaskContext, TaskDef};
    /// let search = TaskDef::new("search", |_: TaskContext, query: String| async move {
    ///     Ok::<_, String>(query.len())
    /// });
    /// let _task = search.with(String::from("tokio"));
    /// ```
    pub fn new<Fut, T, E>(name: impl IntoTaskName, handler: F) -> Self
    where
        F: Fn(TaskContext) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        Task {
            name: name.into_task_name().0,
            queue: CompactString::const_new(DEFAULT_QUEUE),
            priority: 0,
            options: None,
            retry_if: RetryAny,
            call_id: None,
            handler,
        }
    }
}

impl<F, P> Task<F, P> {
    /// The queue to run in (default `main`): any string, borrowed or owned. It must have
    /// been declared on the runner, or [`enqueue_task`](crate::TaskRunner::enqueue_task) fails
    /// with [`EnqueueError::UnknownQueue`](crate::EnqueueError::UnknownQueue).
    pub fn queue(mut self, queue: impl AsRef<str>) -> Self {
        self.queue = CompactString::new(queue.as_ref());
        self
    }

    /// Higher runs first (default 0). Equal priorities run in enqueue order.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Retry failed attempts by `policy`. Without it, the first failure is final.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.options.get_or_insert_default().retry = Some(policy);
        self
    }

    /// Only retry errors for which `predicate` returns `true`; the others fail the task at
    /// once. Timeouts are always retried while retries remain.
    ///
    /// ```
    /// # use taskrunner::{Task, TaskContext};
    /// use std::io::{Error, ErrorKind};
    ///
    /// let task = Task::new("read", |_: TaskContext| async { Ok::<(), Error>(()) })
    ///     .retry_if(|e: &Error| e.kind() != ErrorKind::NotFound);
    /// # drop(task);
    /// ```
    pub fn retry_if<Q>(self, predicate: Q) -> Task<F, Q> {
        Task {
            name: self.name,
            queue: self.queue,
            priority: self.priority,
            options: self.options,
            retry_if: predicate,
            call_id: self.call_id,
            handler: self.handler,
        }
    }

    /// Limit each attempt to `timeout`, counted from the attempt's start (not from enqueue).
    /// A timed-out attempt's future is dropped; it is retried like an error if retries remain,
    /// else the task ends with [`TaskError::TimedOut`](crate::TaskError::TimedOut).
    ///
    /// A zero timeout is rejected by `enqueue_task`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.get_or_insert_default().timeout = Some(timeout);
        self
    }

    /// Lets the handler stop on its own when the task is cancelled or times out: its abort
    /// token ([`TaskContext::abort_token`](crate::TaskContext::abort_token)) fires first, and
    /// the handler has up to `grace` to finish (to clean up, save partial work, kill what it
    /// started) before its future is dropped. Its result is `Cancelled` or `TimedOut` all
    /// the same (except that a handler panicking during the grace of a timeout ends
    /// `Panicked`, as any panic does); a timed-out attempt is then retried as usual.
    ///
    /// **The task keeps its slot during the grace period**: the queue's limit counts it
    /// until its handler has stopped. Its status says `Cancelled` as soon as a cancel is
    /// accepted. Zero (the default, unless the runner's
    /// [`cancel_grace`](crate::TaskRunnerBuilder::cancel_grace) says otherwise) drops the
    /// future at once, with no grace. The runtime must have its timer enabled.
    ///
    /// With a grace, each attempt has its own abort token, so that a timed-out attempt's
    /// firing does not reach the next attempt; without one, a timeout fires no token.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use taskrunner::{Task, TaskError, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let cleaned = Arc::new(AtomicBool::new(false));
    /// let c = Arc::clone(&cleaned);
    /// let handle = runner.enqueue_task(
    ///     Task::new("crawl", move |ctx| {
    ///         let c = Arc::clone(&c);
    ///         async move {
    ///             ctx.abort_token().cancelled().await;
    ///             tokio::time::sleep(Duration::from_millis(50)).await; // flush what it has
    ///             c.store(true, Ordering::SeqCst);
    ///             Ok::<_, String>(())
    ///         }
    ///     })
    ///     .cancel_grace(Duration::from_secs(1)),
    /// )?;
    /// tokio::time::sleep(Duration::from_millis(10)).await;
    /// handle.cancel();
    /// assert!(matches!(handle.await, Err(TaskError::Cancelled)));
    /// assert!(cleaned.load(Ordering::SeqCst));
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.options.get_or_insert_default().cancel_grace = Some(grace);
        self
    }

    /// The model's call id this task answers, echoed in [`TaskContext::call_id`],
    /// [`TaskInfo`](crate::TaskInfo) and tracing. If not set, a unique one (`call-<id>`) is
    /// generated.
    pub fn call_id(mut self, call_id: impl Into<String>) -> Self {
        self.call_id = Some(call_id.into());
        self
    }

    /// Names this task `name`, replacing the name it was made with: for one call of a
    /// [`TaskDef`](crate::TaskDef), whose tasks otherwise all carry the definition's name.
    /// The name shows in [`TaskContext::name`](crate::TaskContext::name),
    /// [`TaskInfo`](crate::TaskInfo), events, notifications and tracing.
    ///
    /// (A builder named `name` would clash with the getter [`name`](Self::name), hence
    /// `named`.)
    ///
    /// ```
    /// use taskrunner::{TaskContext, TaskDef, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let agent = TaskDef::new("agent", |ctx: TaskContext, goal: &'static str| async move {
    ///     Ok::<_, String>(format!("{} works on {goal}", ctx.name()))
    /// });
    /// let task = agent.with("the report").named("researcher");
    /// assert_eq!(task.name(), "researcher");
    /// let handle = runner.enqueue_task(task)?;
    /// assert_eq!(runner.get_status(handle.id()).unwrap().name, "researcher");
    /// assert_eq!(handle.await?, "researcher works on the report");
    /// # Ok(())
    /// # }
    /// ```
    pub fn named(mut self, name: impl IntoTaskName) -> Self {
        self.name = name.into_task_name().0;
        self
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<F, P> fmt::Debug for Task<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .field("priority", &self.priority)
            .field(
                "retry",
                &self.options.as_ref().and_then(|o| o.retry.as_ref()),
            )
            .field("timeout", &self.options.as_ref().and_then(|o| o.timeout))
            .field("call_id", &self.call_id)
            .finish_non_exhaustive()
    }
}
