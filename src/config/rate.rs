//! [`RateLimit`]: at most `n` starts in any window of length `per`.

use std::time::Duration;

/// At most `n` task starts (retries included) in any window of length `per`, for
/// [`QueueConfig::rate_limit`](crate::QueueConfig::rate_limit): what an API provider counts.
///
/// It is a strict sliding window: up to `n` tasks start at once, then each further start
/// waits until the start `n` before it is `per` old. Tasks held back by it wait in their
/// queue's priority order, hold no slot, and are started by a timer (no polling).
///
/// # Comparison to a GCRA
///
/// A GCRA (`governor`'s quota) with burst `n` lets `n + 1` starts into some windows of length
/// `per` (the burst, then one more as soon as one emission interval has passed). This limiter
/// never does, at the cost of keeping the last `n` start times (16 bytes each).
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{QueueConfig, RateLimit, TaskRunner};
///
/// # fn main() -> Result<(), taskrunner::ConfigError> {
/// let runner = TaskRunner::builder()
///     .queue("llm", QueueConfig::new().rate_limit(RateLimit::new(60, Duration::from_secs(60))))
///     .build()?;
/// # drop(runner);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub(crate) n: u32,
    pub(crate) per: Duration,
}

/// The most starts a rate limit may count per window: it keeps one start time for each.
pub const MAX_RATE: u32 = 1_000_000;

impl RateLimit {
    /// At most `n` starts in any window of length `per`. Zero for either, `n` above
    /// [`MAX_RATE`], or a window over a year, is rejected by
    /// [`build`](crate::TaskRunnerBuilder::build).
    pub const fn new(n: u32, per: Duration) -> Self {
        RateLimit { n, per }
    }

    /// How many starts a window allows.
    pub const fn starts(&self) -> u32 {
        self.n
    }

    /// The window's length.
    pub const fn per(&self) -> Duration {
        self.per
    }
}
