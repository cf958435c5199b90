//! [`RetryPolicy`]: how often a failed task is tried again, and how long it waits first.

use std::time::Duration;

/// How a failed task is retried: how many times, and how long it waits before each retry.
///
/// A task has no retries unless [`Task::retry`](crate::Task::retry) gives it a policy. Each
/// retry waits out its delay **without holding a concurrency slot** (the task's status is
/// [`Retrying`](crate::TaskStatus::Retrying) meanwhile), then re-enters its queue at its
/// priority, ahead of equal-priority tasks that were enqueued after it.
///
/// An attempt that returns an error or runs past its timeout is retried; a panic is not (it is
/// a bug, not a transient failure), and neither is an error that
/// [`Task::retry_if`](crate::Task::retry_if) marks permanent.
///
/// The delay is a pure function of the retry number ([`delay_for`](Self::delay_for)), so one
/// policy can be shared by any number of tasks.
///
/// # Default
///
/// [`RetryPolicy::exponential(initial)`](Self::exponential):
///
/// | setting | default |
/// |---|---|
/// | [`max_retries`](Self::max_retries) | 3 (so at most 4 attempts) |
/// | [`factor`](Self::factor) | 2.0 |
/// | [`max_delay`](Self::max_delay) | 60 s, or `initial` if that is longer |
/// | [`jitter`](Self::jitter) | off |
///
/// # Settings that make no sense are clamped, not rejected
///
/// - A `factor` below 1.0, or not finite, is taken as 1.0 (a constant delay).
/// - A `max_delay` below `initial` wins: every delay is `max_delay`.
/// - Jitter on a zero delay has nothing to spread: the delay stays zero.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use taskrunner::RetryPolicy;
///
/// let policy = RetryPolicy::exponential(Duration::from_millis(100))
///     .max_retries(4)
///     .max_delay(Duration::from_millis(500));
///
/// let delays: Vec<_> = (1..=4).map(|retry| policy.delay_for(retry)).collect();
/// assert_eq!(
///     delays,
///     [100, 200, 400, 500].map(Duration::from_millis),
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    initial: Duration,
    factor: f64,
    max_delay: Duration,
    max_retries: u32,
    jitter: bool,
}

const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

// ===== impl RetryPolicy =====

impl RetryPolicy {
    /// Exponential backoff: waits `initial` before the 2nd attempt, and `factor` (2.0) times
    /// longer before each one after, up to [`max_delay`](Self::max_delay).
    pub const fn exponential(initial: Duration) -> Self {
        let max_delay = if initial.as_nanos() > DEFAULT_MAX_DELAY.as_nanos() {
            initial
        } else {
            DEFAULT_MAX_DELAY
        };
        RetryPolicy {
            initial,
            factor: 2.0,
            max_delay,
            max_retries: 3,
            jitter: false,
        }
    }

    /// The same delay before every retry.
    pub const fn fixed(delay: Duration) -> Self {
        RetryPolicy::exponential(delay).factor(1.0)
    }

    /// How many times a failed task is tried again (so at most `n + 1` attempts).
    pub const fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// How much longer each delay is than the one before. Values below 1.0, and values that
    /// are not finite, are taken as 1.0.
    pub const fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() && factor >= 1.0 {
            factor
        } else {
            1.0
        };
        self
    }

    /// The longest delay. If it is below `initial`, every delay is `max_delay`.
    pub const fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Spreads each delay uniformly over `[delay / 2, delay]`, so that many tasks failing
    /// together do not retry in lockstep.
    pub const fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// How many retries this policy allows.
    pub const fn retries(&self) -> u32 {
        self.max_retries
    }

    /// The delay before retry number `retry` (1 is the first retry, before the 2nd attempt),
    /// jitter included. `retry` 0 is treated as 1.
    pub fn delay_for(&self, retry: u32) -> Duration {
        let delay = self.base_delay(retry);
        if self.jitter && !delay.is_zero() {
            // Equal jitter: half fixed, half random, so a delay never collapses to zero.
            let half = delay / 2;
            half + half.mul_f64(fastrand::f64())
        } else {
            delay
        }
    }

    fn base_delay(&self, retry: u32) -> Duration {
        let cap = self.max_delay;
        if self.initial >= cap {
            return cap;
        }
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.factor.powi(exponent);
        // `secs` may be infinite for a large exponent; the cap bounds it.
        Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap))
    }
}
