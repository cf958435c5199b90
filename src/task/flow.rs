//! The flow-control options of a task: start delay, concurrency key, dedup key.

use std::time::Duration;

use super::{Task, TaskFlow};

impl<F, P> Task<F, P> {
    /// Starts the task no earlier than `delay` after it is enqueued. Until then its status is
    /// [`Delayed`](crate::TaskStatus::Delayed): it holds no slot, is not counted as pending
    /// (see [`QueueStats::delayed`](crate::QueueStats::delayed)), and can be cancelled.
    /// [`shutdown`](crate::TaskRunner::shutdown) waits for it; `shutdown_now` cancels it.
    /// When the delay ends it enters its queue like a newly enqueued task. A zero delay is no
    /// delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Task, TaskContext, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let later = runner.enqueue_task(
    ///     Task::new("later", |_: TaskContext| async { Ok::<_, String>(()) })
    ///         .delay(Duration::from_secs(10)),
    /// )?;
    /// assert_eq!(later.status(), TaskStatus::Delayed);
    /// later.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn delay(mut self, delay: Duration) -> Self {
        self.flow_mut().delay = Some(delay);
        self
    }

    /// Counts the task against `key` under its queue's
    /// [`key_concurrency`](crate::QueueConfig::key_concurrency): at most that many tasks of
    /// one key (a tenant, a conversation) run at once, while tasks of other keys, or of no
    /// key, go on. On a queue without `key_concurrency` the key is ignored.
    ///
    /// ```
    /// use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder()
    ///     .queue("chat", QueueConfig::new().concurrency(8).key_concurrency(1))
    ///     .build()?;
    /// let reply = runner.enqueue_task(
    ///     Task::new("reply", |_: TaskContext| async { Ok::<_, String>("hi") })
    ///         .queue("chat")
    ///         .concurrency_key("conversation-42"),
    /// )?;
    /// assert_eq!(reply.await?, "hi");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Takes anything that converts into an `Arc<str>`: pass a clone of an `Arc<str>` you
    /// keep per tenant to save an allocation per task.
    pub fn concurrency_key(mut self, key: impl Into<std::sync::Arc<str>>) -> Self {
        self.flow_mut().concurrency_key = Some(key.into());
        self
    }

    /// At most one live task per `key` in the runner: while a task enqueued with this key
    /// has not finished (it is delayed, pending, running or retrying),
    /// [`enqueue_task`](crate::TaskRunner::enqueue_task) refuses another with
    /// [`EnqueueError::Duplicate`](crate::EnqueueError::Duplicate), which names the live
    /// task. Once it ends (however it ends) the key is free again. What a retried agent turn
    /// needs so that the same model call is not run twice: use the call id.
    ///
    /// ```
    /// use taskrunner::{EnqueueError, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let call = || Task::new("search", |_: TaskContext| async { Ok::<_, String>(1) }).dedup_key("call_abc");
    /// let first = runner.enqueue_task(call())?;
    /// match runner.enqueue_task(call()) {
    ///     Err(EnqueueError::Duplicate { existing, .. }) => assert_eq!(existing, first.id()),
    ///     other => panic!("{other:?}"),
    /// }
    /// first.await?;
    /// runner.enqueue_task(call())?.await?; // free again
    /// # Ok(())
    /// # }
    /// ```
    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.flow_mut().dedup_key = Some(key.into().into_boxed_str());
        self
    }

    /// The estimate of what each attempt costs, in its queue's [`Budget`](crate::Budget)
    /// units (tokens): an attempt starts only when it fits every budget that applies, and
    /// reserves it at its start; [`TaskContext::charge`](crate::TaskContext::charge) replaces
    /// it with the actual. An estimate larger than a whole budget of its queue is refused by
    /// `enqueue_task` with [`EnqueueError::OverBudget`](crate::EnqueueError::OverBudget). On
    /// a queue without a budget it is only shown ([`TaskInfo::cost`](crate::TaskInfo::cost)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Budget, QueueConfig, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder()
    ///     .queue("llm", QueueConfig::new().budget(Budget::new(10_000, Duration::from_secs(60))))
    ///     .build()?;
    /// let call = runner.enqueue_task(
    ///     Task::new("summarize", |ctx: TaskContext| async move {
    ///         ctx.charge(1_734); // the tokens the provider reported
    ///         Ok::<_, String>(())
    ///     })
    ///     .queue("llm")
    ///     .cost(1_200),
    /// )?;
    /// let id = call.id();
    /// call.await?;
    /// let info = runner.get_status(id).unwrap();
    /// assert_eq!((info.cost, info.charged), (Some(1_200), Some(1_734)));
    /// assert_eq!(runner.queue_stats("llm").unwrap().budget_used, Some(1_734));
    /// # Ok(())
    /// # }
    /// ```
    pub fn cost(mut self, estimate: u64) -> Self {
        self.flow_mut().cost = Some(estimate);
        self
    }

    pub(super) fn flow_mut(&mut self) -> &mut TaskFlow {
        &mut self.options.get_or_insert_default().flow
    }
}
