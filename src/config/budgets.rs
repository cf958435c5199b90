//! The budget settings of [`QueueConfig`]: the queue's budget and each key's.

use super::{Budget, QueueConfig};

impl QueueConfig {
    /// At most `budget.units()` charged by the queue's tasks in any window of
    /// `budget.per()`: see [`Budget`] for how tasks are charged and in which order they
    /// start. Default: none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Budget, QueueConfig};
    ///
    /// // 90,000 tokens a minute for the whole queue.
    /// let llm = QueueConfig::new().concurrency(8).budget(Budget::new(90_000, Duration::from_secs(60)));
    /// # drop(llm);
    /// ```
    pub const fn budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The same budget for each [`concurrency_key`](crate::Task::concurrency_key) (a
    /// tenant, an API key) on its own, on top of the queue's [`budget`](Self::budget): a
    /// task starts when every budget that applies has room for its estimate. A key whose
    /// best waiting task does not fit holds back only that key. Tasks without a key are not
    /// counted. Default: none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Budget, QueueConfig};
    ///
    /// let per_minute = Duration::from_secs(60);
    /// let llm = QueueConfig::new()
    ///     .budget(Budget::new(90_000, per_minute))
    ///     .key_budget(Budget::new(20_000, per_minute)); // each tenant
    /// # drop(llm);
    /// ```
    pub const fn key_budget(mut self, budget: Budget) -> Self {
        self.key_budget = Some(budget);
        self
    }
}
