//! How a runner and its queues are set up: [`QueueConfig`] and its flow-control settings,
//! [`RateLimit`], and the runner's defaults.
//!
//! A leaf: it imports nothing of the crate but [`ConfigError`](crate::ConfigError).

mod budget;
mod budgets;
mod flow;
mod global;
mod rate;

pub use budget::Budget;
pub use rate::{RateLimit, MAX_RATE};

use std::time::Duration;

/// The settings of one queue, for [`TaskRunnerBuilder::queue`](crate::TaskRunnerBuilder::queue).
///
/// # Default
///
/// Concurrency 3, the same as the default `main` queue.
///
/// ```
/// use taskrunner::{QueueConfig, TaskRunner};
///
/// # fn main() -> Result<(), taskrunner::ConfigError> {
/// let runner = TaskRunner::builder()
///     .queue("llm", QueueConfig::new().concurrency(1))
///     .build()?;
/// assert_eq!(runner.queue_stats("llm").unwrap().limit, 1);
/// assert_eq!(runner.queue_stats("main").unwrap().limit, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub(crate) concurrency: usize,
    /// At most this many of the queue's durable runs at once across every process.
    pub(crate) global_concurrency: Option<usize>,
    /// At most this many claims of the queue's durable runs in any window, across every process.
    pub(crate) global_rate_limit: Option<RateLimit>,
    /// At most this many units charged by the queue's durable runs in any window, across every process.
    pub(crate) global_budget: Option<Budget>,
    pub(crate) max_pending: Option<usize>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) key_concurrency: Option<usize>,
    pub(crate) aging: Option<Duration>,
    /// Units charged per window, for the whole queue and for each concurrency key.
    pub(crate) budget: Option<Budget>,
    pub(crate) key_budget: Option<Budget>,
}

impl QueueConfig {
    /// A queue with concurrency 3.
    pub const fn new() -> Self {
        QueueConfig {
            concurrency: 3,
            global_concurrency: None,
            global_rate_limit: None,
            global_budget: None,
            max_pending: None,
            rate_limit: None,
            key_concurrency: None,
            aging: None,
            budget: None,
            key_budget: None,
        }
    }

    /// How many of the queue's tasks may run at once. Zero is rejected by
    /// [`build`](crate::TaskRunnerBuilder::build) with
    /// [`ConfigError::ZeroConcurrency`](crate::ConfigError::ZeroConcurrency).
    pub const fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// How many of the queue's durable runs may run at once across every process sharing
    /// the runner's [store](crate::TaskRunnerBuilder::store), counted inside the claim
    /// (a run waiting out a retry's backoff counts: its process holds it). Unlimited unless
    /// set; [`concurrency`](Self::concurrency) still limits each process. Zero is rejected
    /// by [`build`](crate::TaskRunnerBuilder::build).
    ///
    /// ```
    /// use taskrunner::QueueConfig;
    ///
    /// // 4 at once in this process, 8 at once across all of them.
    /// let agents = QueueConfig::new().concurrency(4).global_concurrency(8);
    /// # drop(agents);
    /// ```
    pub const fn global_concurrency(mut self, n: usize) -> Self {
        self.global_concurrency = Some(n);
        self
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig::new()
    }
}

/// The queue every runner has unless its builder configures it otherwise.
pub const DEFAULT_QUEUE: &str = "main";

/// How many finished tasks' records are kept by default.
pub const DEFAULT_RETAIN_FINISHED: usize = 10_000;

/// How many events a subscriber may fall behind by default before it misses some.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// How many undrained notifications the inbox keeps by default.
pub const DEFAULT_NOTIFICATION_CAPACITY: usize = 1000;

/// The most characters a notification's summary has by default, the `…` of a cut included.
pub const DEFAULT_SUMMARY_LEN: usize = 200;
