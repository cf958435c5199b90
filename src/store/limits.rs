//! The limits a queue's claims hold across every process on one store, checked inside the
//! claim's transaction: `global_concurrency` (runs running now), `global_rate_limit`
//! (claims in the last window, kept as one `taskrunner_claim_times` row per claim and
//! pruned as they age out; migration 0010), `global_budget` (units charged in the last
//! window, one `taskrunner_charges` row per charged attempt: [`budget`]) and a queue's
//! pause (`taskrunner_queue_pauses`, one row per paused queue; migration 0012).

pub(crate) mod budget;
mod writes;

pub(crate) use writes::Charge;

use std::time::Duration;

/// A queue's global limits, as the claim checks them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GlobalLimits {
    /// At most this many of the queue's runs running at once.
    pub concurrency: Option<usize>,
    /// At most `.0` claims in any window of `.1` milliseconds.
    pub rate: Option<(i64, i64)>,
    /// At most `.0` units charged in any window of `.1` milliseconds.
    pub budget: Option<(i64, i64)>,
}

impl GlobalLimits {
    /// The limits of a queue with `global_concurrency` `concurrency` and
    /// `global_rate_limit` `rate` (`starts`, `per`).
    pub fn new(concurrency: Option<usize>, rate: Option<(u32, Duration)>) -> Self {
        GlobalLimits {
            concurrency,
            rate: rate.map(|(n, per)| (i64::from(n), millis(per))),
            budget: None,
        }
    }

    /// The same with a `global_budget` of `units` per `per`.
    pub fn with_budget(mut self, budget: Option<(u64, Duration)>) -> Self {
        self.budget =
            budget.map(|(units, per)| (i64::try_from(units).unwrap_or(i64::MAX), millis(per)));
        self
    }

    /// Whether any limit is set (the claim then counts under a lock).
    pub(crate) const fn any(&self) -> bool {
        self.concurrency.is_some() || self.rate.is_some() || self.budget.is_some()
    }

    /// How long a claim loop held back by the rate limit waits before it claims again: one
    /// average gap between claims (the window over its starts), at least 1 ms.
    pub fn rate_gap(&self) -> Option<Duration> {
        self.rate.map(|(n, per)| {
            let gap = per / n.max(1);
            Duration::from_millis(u64::try_from(gap).unwrap_or(1).max(1))
        })
    }
}

/// A `global_concurrency` alone (`None`: no limit).
impl From<Option<usize>> for GlobalLimits {
    fn from(concurrency: Option<usize>) -> Self {
        GlobalLimits::new(concurrency, None)
    }
}

/// A window in milliseconds, at least 1.
fn millis(per: Duration) -> i64 {
    i64::try_from(per.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// The condition a claim adds so that a paused queue claims nothing: queue `$queue` has no
/// pause ending after `$now` (`ctx.pause_queue_for` on a durable run; see `writes.rs`).
macro_rules! not_paused {
    ($queue:literal, $now:literal) => {
        concat!(
            " AND NOT EXISTS (SELECT 1 FROM taskrunner_queue_pauses \
             WHERE queue = ",
            $queue,
            " AND until_at > ",
            $now,
            ")"
        )
    };
}
pub(crate) use not_paused;
