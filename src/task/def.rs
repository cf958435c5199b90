//! [`TaskDef`]: a named, reusable task with default options, made into a [`Task`] per call.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::name::{IntoTaskName, TaskName};
use crate::{RetryPolicy, Task, TaskContext};

/// How many times a durable run is recovered after losing its worker, unless
/// [`TaskDef::max_recoveries`] says otherwise.
const DEFAULT_MAX_RECOVERIES: u32 = 10;

/// A reusable task definition: a name, a handler taking an input, and default options.
///
/// Frameworks register their actions once (like Daydreams' `task({ key, handler, retry,
/// queueKey, priority, timeoutMs })`) and make a [`Task`] for each call with
/// [`with`](Self::with); the task starts from the definition's defaults, and any option can
/// be set again on it for that one call.
///
/// The handler gets the input by value on every attempt, so the input must be `Clone`: a
/// retried task calls the handler again with a fresh copy.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{QueueConfig, RetryPolicy, TaskContext, TaskDef, TaskRunner};
///
/// #[derive(Clone)]
/// struct Query { text: String }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::builder().queue("tools", QueueConfig::new().concurrency(3)).build()?;
/// let search = TaskDef::new("search", |_ctx: TaskContext, query: Query| async move {
///     Ok::<_, std::io::Error>(format!("results for {}", query.text))
/// })
/// .queue("tools")
/// .retry(RetryPolicy::exponential(Duration::from_millis(100)))
/// .timeout(Duration::from_secs(10));
///
/// let normal = runner.enqueue_task(search.with(Query { text: "rust".into() }))?;
/// let urgent = runner.enqueue_task(search.with(Query { text: "tokio".into() }).priority(10))?;
/// assert_eq!(normal.await?, "results for rust");
/// assert_eq!(urgent.await?, "results for tokio");
/// # Ok(())
/// # }
/// ```
pub struct TaskDef<H> {
    /// Inline when short: each task made from it copies it without an allocation.
    name: TaskName,
    handler: Arc<H>,
    queue: compact_str::CompactString,
    priority: i32,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
    max_recoveries: u32,
}

impl<H> TaskDef<H> {
    /// A definition named `name` whose handler takes a [`TaskContext`] and an input.
    ///
    /// The context needs no annotation; the input does (it is the definition's input type):
    ///
    /// ```
    /// use taskrunner::{TaskDef, TaskRunner};
    ///
    /// #[derive(Clone)]
    /// struct Query(String);
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let search = TaskDef::new("s", |ctx, q: Query| async move {
    ///     Ok::<_, String>(format!("{} for {}", ctx.name(), q.0))
    /// });
    /// let answer = runner.enqueue_task(search.with(Query("rust".into())))?.await?;
    /// assert_eq!(answer, "s for rust");
    /// # Ok(())
    /// # }
    /// ```
    pub fn new<I, Fut, T, E>(name: impl IntoTaskName, handler: H) -> Self
    where
        H: Fn(TaskContext, I) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        TaskDef {
            name: name.into_task_name(),
            handler: Arc::new(handler),
            queue: compact_str::CompactString::const_new(crate::DEFAULT_QUEUE),
            priority: 0,
            retry: None,
            timeout: None,
            max_recoveries: DEFAULT_MAX_RECOVERIES,
        }
    }

    /// The default queue (otherwise `main`): any string, borrowed or owned.
    pub fn queue(mut self, queue: impl AsRef<str>) -> Self {
        self.queue = compact_str::CompactString::new(queue.as_ref());
        self
    }

    /// The default priority (otherwise 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The default retry policy (otherwise none).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The default timeout per attempt (otherwise none).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many times a durable run of this definition is recovered after the process
    /// running it died (default 10) before it fails "worker lost".
    ///
    /// A recovery is not a retry: a run whose process was killed, crashed or lost its
    /// lease is claimed again without using one of its retries, because the run did not
    /// fail, its worker did. But a run that kills its process every time (out of memory, an
    /// abort in native code) would take down worker after worker forever, so recoveries are
    /// bounded too. Ten: unrelated crashes (deploys, evictions) seldom hit one run ten times
    /// in a row, while a run that is itself the cause is stopped after ten workers lost.
    /// Handing runs back at a graceful shutdown is not counted. Unused outside a durable
    /// store.
    ///
    /// ```
    /// use taskrunner::{TaskContext, TaskDef};
    ///
    /// let def = TaskDef::new("parse", |_: TaskContext, doc: String| async move {
    ///     Ok::<_, String>(doc.len())
    /// })
    /// .max_recoveries(2); // the third worker lost fails the run
    /// # drop(def);
    /// ```
    pub fn max_recoveries(mut self, n: u32) -> Self {
        self.max_recoveries = n;
        self
    }

    /// The definition's name.
    pub fn name(&self) -> &str {
        &self.name.0
    }

    // Read by the durable store, which runs a definition from a stored input.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn handler(&self) -> &Arc<H> {
        &self.handler
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn queue_name(&self) -> &str {
        &self.queue
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn priority_value(&self) -> i32 {
        self.priority
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn max_recoveries_value(&self) -> u32 {
        self.max_recoveries
    }

    /// A task that runs the handler on `input`, with the definition's options; set any of
    /// them again on the returned task to override it for this call.
    pub fn with<I, Fut, T, E>(
        &self,
        input: I,
    ) -> Task<impl Fn(TaskContext) -> Fut + Send + Sync + 'static>
    where
        H: Fn(TaskContext, I) -> Fut + Send + Sync + 'static,
        I: Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let handler = Arc::clone(&self.handler);
        let mut task = Task::new(self.name.clone(), move |ctx: TaskContext| {
            handler(ctx, input.clone())
        })
        .queue(&self.queue)
        .priority(self.priority);
        if let Some(policy) = &self.retry {
            task = task.retry(policy.clone());
        }
        if let Some(timeout) = self.timeout {
            task = task.timeout(timeout);
        }
        task
    }
}

impl<H> Clone for TaskDef<H> {
    fn clone(&self) -> Self {
        TaskDef {
            name: self.name.clone(),
            handler: Arc::clone(&self.handler),
            queue: self.queue.clone(),
            priority: self.priority,
            retry: self.retry.clone(),
            timeout: self.timeout,
            max_recoveries: self.max_recoveries,
        }
    }
}

impl<H> fmt::Debug for TaskDef<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskDef")
            .field("name", &self.name.0)
            .field("queue", &self.queue)
            .field("priority", &self.priority)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
