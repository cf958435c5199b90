//! [`RunOptions`]: the options of one submitted run.

use std::time::Duration;

/// Options for one submitted run, for [`TaskRunner::submit_with`](crate::TaskRunner::submit_with)
/// and [`TaskRunner::submit_many`](crate::TaskRunner::submit_many).
///
/// # Default
///
/// The definition's priority, no delay, no deduplication key, a generated call id, no cost
/// estimate.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::RunOptions;
///
/// let options = RunOptions::new()
///     .priority(5)
///     .delay(Duration::from_secs(60))
///     .dedup_key("req-42")
///     .call_id("call_7");
/// # drop(options);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    pub(crate) priority: Option<i32>,
    pub(crate) delay: Duration,
    pub(crate) dedup_key: Option<String>,
    pub(crate) call_id: Option<String>,
    pub(crate) notify: bool,
    pub(crate) cost: Option<u64>,
}

impl RunOptions {
    /// Options with every default.
    pub fn new() -> Self {
        RunOptions::default()
    }

    /// Higher is claimed first (default: the definition's priority).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Not claimed before `delay` has passed (status
    /// [`RunStatus::Delayed`](super::RunStatus::Delayed) meanwhile).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// While a run submitted with this key has not finished, submitting another with it
    /// returns the existing run instead (same id): submitting becomes idempotent.
    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// When the run ends, deposit a [`RunNotification`](crate::store::RunNotification) in the
    /// store, for
    /// [`TaskRunner::drain_run_notifications`](crate::TaskRunner::drain_run_notifications)
    /// on any process to hand to exactly one drainer.
    pub fn notify(mut self) -> Self {
        self.notify = true;
        self
    }

    /// The estimate of what the run costs, in its queue's
    /// [`global_budget`](crate::QueueConfig::global_budget) units (tokens), stored with the
    /// run: a claim takes it only when the estimate fits the budget's window across every
    /// process, and reserves it; [`TaskContext::charge`](crate::TaskContext::charge) from its
    /// handler replaces it with the actual, so the next claims see the truth. A submit whose
    /// estimate is larger than the whole global budget of its queue (as this process
    /// declared the queue) is refused with
    /// [`StoreError::OverBudget`](crate::store::StoreError::OverBudget). Shown as
    /// [`RunInfo::cost`](super::RunInfo::cost).
    ///
    /// ```
    /// use taskrunner::RunOptions;
    ///
    /// let options = RunOptions::new().cost(1_200); // about 1,200 tokens
    /// # drop(options);
    /// ```
    pub fn cost(mut self, estimate: u64) -> Self {
        self.cost = Some(estimate);
        self
    }

    /// The model's call id the run answers (echoed in [`TaskContext::call_id`](crate::TaskContext::call_id)).
    pub fn call_id(mut self, call_id: impl Into<String>) -> Self {
        self.call_id = Some(call_id.into());
        self
    }
}
