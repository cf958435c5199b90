//! [`Budget`]: at most `units` charged in any window of length `per`.

use std::fmt;
use std::time::Duration;

/// At most `units` (tokens, cents, requests weighted by size) charged in any window of
/// length `per`, for [`QueueConfig::budget`](crate::QueueConfig::budget) and
/// [`QueueConfig::key_budget`](crate::QueueConfig::key_budget): what a provider's
/// tokens-per-minute limit counts.
///
/// # How a task is charged
///
/// A task declares an estimate with [`Task::cost`](crate::Task::cost). Each attempt starts
/// only when its estimate fits in the window as it stands (every budget that applies: the
/// queue's, and its key's), and reserves it at its start time; while it waits for room it
/// holds no slot, and its [`WaitReason`](crate::WaitReason) is
/// [`Budget`](crate::WaitReason::Budget). From inside the handler,
/// [`TaskContext::charge`](crate::TaskContext::charge) replaces the estimate with the actual,
/// more or less, at once: the next starts see the truth. A charge counts at the time its
/// attempt started.
///
/// - **Overshoot.** A task whose charge rises above the least it held in the window before
///   (its estimate, or a lower charge it made earlier) may take a window over `units` by
///   that rise (it already ran); the next starts wait until the window has absorbed it.
///   Nothing else ever takes a window over `units`.
/// - **Retries charge again**: each attempt reserves its estimate at its start.
/// - **Cancel**: a task cancelled before it starts reserved nothing; one cancelled while it
///   runs keeps what it reserved or charged.
/// - **A task without an estimate** reserves 0 (it fits whenever the window is not over
///   `units`) until it charges.
/// - **Order.** Waiting tasks start in their queue's priority order: when the best waiting
///   task's estimate does not fit the queue's budget, nothing behind it starts until it does
///   (a large task at the head reserves the window; it is never starved by small ones). A
///   key whose best task does not fit its key budget holds back only that key's tasks, as
///   a key at its [`key_concurrency`](crate::QueueConfig::key_concurrency) does.
/// - An estimate larger than the whole budget could never start: `enqueue_task` refuses it
///   with [`EnqueueError::OverBudget`](crate::EnqueueError::OverBudget).
///
/// Zero units, a zero window or a window over a year are rejected by
/// [`build`](crate::TaskRunnerBuilder::build).
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{Budget, QueueConfig, TaskRunner};
///
/// # fn main() -> Result<(), taskrunner::ConfigError> {
/// let runner = TaskRunner::builder()
///     .queue("llm", QueueConfig::new().budget(Budget::new(90_000, Duration::from_secs(60))))
///     .build()?;
/// assert_eq!(runner.queue_stats("llm").unwrap().budget_used, Some(0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub(crate) units: u64,
    pub(crate) per: Duration,
}

impl Budget {
    /// At most `units` charged in any window of length `per`.
    pub const fn new(units: u64, per: Duration) -> Self {
        Budget { units, per }
    }

    /// How many units a window allows.
    pub const fn units(&self) -> u64 {
        self.units
    }

    /// The window's length.
    pub const fn per(&self) -> Duration {
        self.per
    }

    /// What is wrong with it, if anything.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.units == 0 {
            return Some("allows 0 units, so no task with a cost would run: use 1 or more");
        }
        if self.per.is_zero() {
            return Some("has a zero window: give it a positive duration");
        }
        if self.per > super::flow::MAX_RATE_WINDOW {
            return Some("has a window over a year: use a shorter one (a year at most)");
        }
        None
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} units per {:?}", self.units, self.per)
    }
}
