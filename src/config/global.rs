//! The limits a queue holds across every process sharing a store (set here, counted in the
//! store's claim).

use super::{Budget, QueueConfig, RateLimit};

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

    /// At most `budget.units()` charged by the queue's durable runs in any window of
    /// `budget.per()`, across every process sharing the runner's
    /// [store](crate::TaskRunnerBuilder::store) (SQLite or PostgreSQL): two workers sharing
    /// one API key share one tokens-per-minute limit. A run declares its estimate with
    /// [`RunOptions::cost`](crate::store::RunOptions::cost); a claim takes runs in claim
    /// order while their estimates fit the window as the store holds it (counted inside the
    /// claim's transaction, so two processes never both take the last units), and stores
    /// each estimate as the run's charge at the claim's time;
    /// [`TaskContext::charge`](crate::TaskContext::charge) from the handler replaces it with
    /// the actual, so the next claims see the truth. Charges are kept one row per charged
    /// attempt and pruned as they age out of the window.
    ///
    /// The rules are [`Budget`]'s, per claim: the best waiting run whose estimate does not
    /// fit holds back the runs behind it (it is never starved by small ones); a run without
    /// an estimate reserves nothing and fits whenever the window is not over; a charge above
    /// the estimate may take one window over by that rise, and the next claims wait until
    /// the window has absorbed it. A claim reserves: a run claimed again (after its worker
    /// was lost) is charged again, and an attempt retried in the process that claimed it
    /// counts what its handler charges; a run resumed after a durable sleep or a wait's
    /// timeout reserves nothing again (what it charges counts), while one resumed by a signal
    /// or its children's end is reserved for again like a new claim (under-using the window,
    /// never over it). A run handed back unstarted keeps its reservation
    /// until it ages out (the window is under-used, never over). A submit whose estimate
    /// exceeds the whole budget is refused with
    /// [`StoreError::OverBudget`](crate::store::StoreError::OverBudget); a claim loop held
    /// back by the budget tries again within its
    /// [`poll_interval`](crate::TaskRunnerBuilder::poll_interval) (or when told of new
    /// runs). Every process serving the queue must set the same budget: one without it
    /// claims without counting.
    ///
    /// Unlimited unless set; [`budget`](Self::budget) still limits each process. Zero units,
    /// a zero window or a window over a year are rejected by
    /// [`build`](crate::TaskRunnerBuilder::build) with
    /// [`ConfigError::InvalidSetting`](crate::ConfigError::InvalidSetting).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Budget, QueueConfig, TaskRunner};
    ///
    /// # fn main() -> Result<(), taskrunner::ConfigError> {
    /// // 90,000 tokens a minute for every worker on the store together.
    /// let llm = QueueConfig::new().global_budget(Budget::new(90_000, Duration::from_secs(60)));
    /// let runner = TaskRunner::builder().queue("llm", llm).build()?;
    /// # drop(runner);
    /// # Ok(())
    /// # }
    /// ```
    pub const fn global_budget(mut self, budget: Budget) -> Self {
        self.global_budget = Some(budget);
        self
    }
}
