//! The flow-control settings of [`QueueConfig`]: bounded depth, rate limit, per-key
//! concurrency, aging; and their validation.

use std::time::Duration;

use super::rate::{RateLimit, MAX_RATE};
use super::QueueConfig;
use crate::error::ConfigError;

/// The longest window a rate limit may count over.
pub(super) const MAX_RATE_WINDOW: Duration = Duration::from_secs(365 * 86_400);

impl QueueConfig {
    /// At most `n` tasks may wait (be [`Pending`](crate::TaskStatus::Pending)) in the queue.
    /// Past it, [`enqueue_task`](crate::TaskRunner::enqueue_task) fails with
    /// [`EnqueueError::QueueFull`](crate::EnqueueError::QueueFull) (and
    /// [`try_enqueue_task`](crate::TaskRunner::try_enqueue_task) hands the task back), while
    /// [`enqueue_task_wait`](crate::TaskRunner::enqueue_task_wait) waits for room, first come
    /// first served.
    ///
    /// The place is taken before the task is built (so that a refused task is handed back
    /// whole): while `n` tasks wait, a new task is refused even if it could have started at
    /// once (a task of an idle concurrency key, say).
    ///
    /// Only new tasks are refused: a task coming back from a backoff or its
    /// [`delay`](crate::Task::delay) was accepted already, and waits even if that takes the
    /// queue past `n` for a while. Delayed and running tasks are not counted. Default:
    /// unbounded. Zero is a [`ConfigError`].
    ///
    /// ```
    /// use taskrunner::{EnqueueError, QueueConfig, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder()
    ///     .queue("io", QueueConfig::new().concurrency(1).max_pending(1))
    ///     .build()?;
    /// let task = || Task::new("io", |_: TaskContext| async { Ok::<_, String>(()) }).queue("io");
    /// let _running = runner.enqueue_task(task())?;
    /// let _waiting = runner.enqueue_task(task())?;
    /// let refused = runner.try_enqueue_task(task()).unwrap_err();
    /// assert!(matches!(refused.error, EnqueueError::QueueFull { max_pending: 1, .. }));
    /// let _later = runner.enqueue_task_wait(refused.task).await?; // waits for room
    /// # Ok(())
    /// # }
    /// ```
    pub const fn max_pending(mut self, n: usize) -> Self {
        self.max_pending = Some(n);
        self
    }

    /// At most `limit.starts()` tasks start (retries included) in any window of length
    /// `limit.per()`: see [`RateLimit`]. Default: none. Zero starts, a zero window, a window
    /// over a year or more than [`MAX_RATE`](crate::MAX_RATE) starts are a [`ConfigError`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{QueueConfig, RateLimit, TaskRunner};
    ///
    /// # fn main() -> Result<(), taskrunner::ConfigError> {
    /// let runner = TaskRunner::builder()
    ///     .queue("llm", QueueConfig::new().concurrency(4).rate_limit(RateLimit::new(60, Duration::from_secs(60))))
    ///     .build()?;
    /// # drop(runner);
    /// # Ok(())
    /// # }
    /// ```
    pub const fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// At most `n` running tasks per [`concurrency_key`](crate::Task::concurrency_key) (a
    /// tenant, a conversation), on top of the queue's own limit. A key at its limit never
    /// holds back tasks of other keys or of no key; within a key, tasks start by priority
    /// then in enqueue order; keys with tasks of equal priority take turns (round robin), so
    /// one key's thousand tasks do not delay another key's one. Tasks without a key are not
    /// limited by it. Default: none (keys are ignored). Zero is a [`ConfigError`].
    ///
    /// ```
    /// use taskrunner::{QueueConfig, TaskRunner};
    ///
    /// # fn main() -> Result<(), taskrunner::ConfigError> {
    /// let runner = TaskRunner::builder()
    ///     .queue("chat", QueueConfig::new().concurrency(8).key_concurrency(1))
    ///     .build()?;
    /// # drop(runner);
    /// # Ok(())
    /// # }
    /// ```
    pub const fn key_concurrency(mut self, n: usize) -> Self {
        self.key_concurrency = Some(n);
        self
    }

    /// A waiting task gains +1 priority per `interval` waited, so low priorities are not
    /// starved by a stream of higher ones: effective priority = priority +
    /// floor(waited / interval), at millisecond resolution. Tasks are ordered by
    /// `priority·interval − entry time`, which does not change as time passes: no re-sort,
    /// pushes and pops stay O(log n). The wait counts from when the task entered the queue
    /// (again after a retry's backoff, or a [`set_priority`](crate::TaskRunner::set_priority)).
    /// Default: none. An interval under 1 ms or over 2³² ms (49 days) is a [`ConfigError`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{QueueConfig, TaskRunner};
    ///
    /// # fn main() -> Result<(), taskrunner::ConfigError> {
    /// // A background task (priority 0) waiting 90 s ranks with a fresh priority-3 task.
    /// let runner = TaskRunner::builder()
    ///     .queue("tools", QueueConfig::new().aging(Duration::from_secs(30)))
    ///     .build()?;
    /// # drop(runner);
    /// # Ok(())
    /// # }
    /// ```
    pub const fn aging(mut self, interval: Duration) -> Self {
        self.aging = Some(interval);
        self
    }

    /// Checks the settings of queue `queue`.
    pub(crate) fn validate(&self, queue: &str) -> Result<(), ConfigError> {
        let invalid = |setting: &'static str, problem: &'static str| {
            Err(ConfigError::InvalidSetting {
                queue: queue.to_owned(),
                setting,
                problem,
            })
        };
        if self.concurrency == 0 {
            return Err(ConfigError::ZeroConcurrency {
                queue: queue.to_owned(),
            });
        }
        if self.max_pending == Some(0) {
            return invalid(
                "max_pending",
                "is 0, so no task could ever wait: use 1 or more",
            );
        }
        if self.key_concurrency == Some(0) {
            return invalid(
                "key_concurrency",
                "is 0, so no task with a key could ever run: use 1 or more",
            );
        }
        if let Some(problem) = self.rate_limit.and_then(rate_problem) {
            return invalid("rate_limit", problem);
        }
        if let Some(problem) = self.global_rate_limit.and_then(rate_problem) {
            return invalid("global_rate_limit", problem);
        }
        for (setting, budget) in [
            ("budget", self.budget),
            ("key_budget", self.key_budget),
            ("global_budget", self.global_budget),
        ] {
            if let Some(problem) = budget.and_then(|b| b.problem()) {
                return invalid(setting, problem);
            }
        }
        if let Some(interval) = self.aging {
            if interval < Duration::from_millis(1) {
                return invalid("aging", "interval is under 1 ms: use 1 ms or more");
            }
            if interval > Duration::from_millis(u64::from(u32::MAX)) {
                return invalid(
                    "aging",
                    "interval is over 2^32 ms (49 days): use a shorter one",
                );
            }
        }
        Ok(())
    }

    /// Whether any setting needs the queue's flow-control path.
    pub(crate) const fn uses_flow(&self) -> bool {
        self.max_pending.is_some()
            || self.rate_limit.is_some()
            || self.key_concurrency.is_some()
            || self.aging.is_some()
            || self.budget.is_some()
            || self.key_budget.is_some()
    }
}

/// What is wrong with a rate limit, if anything.
fn rate_problem(rate: RateLimit) -> Option<&'static str> {
    if rate.n == 0 {
        return Some("allows 0 starts, so nothing would run: use 1 or more");
    }
    if rate.n > MAX_RATE {
        return Some("counts more than 1,000,000 starts a window: use a shorter window");
    }
    if rate.per > MAX_RATE_WINDOW {
        return Some("has a window over a year: use a shorter one (a year at most)");
    }
    if rate.per.is_zero() {
        return Some("has a zero window: give it a positive duration");
    }
    None
}
