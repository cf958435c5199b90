//! The limits a queue holds across every process sharing a store (set here, counted in the
//! store's claim).

use super::{QueueConfig, RateLimit};

impl QueueConfig {
    /// At most `limit.starts()` claims of the queue's durable runs in any window of
    /// `limit.per()`, across every process sharing the runner's
    /// [store](crate::TaskRunnerBuilder::store) (SQLite or PostgreSQL): two workers sharing
    /// one API key share one rate. Counted inside the claim's transaction, so two processes
    /// never both take the last place; a claim takes only what the window allows now, and a
    /// claim loop held back claims again one average gap (`per / starts`, at most its poll
    /// interval) later. A claim is a start: a retry's later attempts in the same process
    /// are not counted again, a run claimed again after its worker was lost is. So the limit
    /// is exact for runs that start when claimed: with
    /// [`claim_ahead`](crate::TaskRunnerBuilder::claim_ahead), or a per-process limit that
    /// holds claimed runs back, runs claimed in one window may start in the next. Every
    /// process serving the queue must set the same limit: one without it claims uncounted.
    ///
    /// Unlimited unless set; [`rate_limit`](Self::rate_limit) still limits each process. A
    /// zero count or window, a count over [`MAX_RATE`](crate::MAX_RATE) or a window over a
    /// year is rejected by [`build`](crate::TaskRunnerBuilder::build) with
    /// [`ConfigError::InvalidSetting`](crate::ConfigError::InvalidSetting).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{QueueConfig, RateLimit, TaskRunner};
    ///
    /// # fn main() -> Result<(), taskrunner::ConfigError> {
    /// // 60 calls a minute for every worker on the store together.
    /// let llm = QueueConfig::new().global_rate_limit(RateLimit::new(60, Duration::from_secs(60)));
    /// let runner = TaskRunner::builder().queue("llm", llm).build()?;
    /// # drop(runner);
    /// # Ok(())
    /// # }
    /// ```
    pub const fn global_rate_limit(mut self, limit: RateLimit) -> Self {
        self.global_rate_limit = Some(limit);
        self
    }
}
