//! [`RateLimit`]: at most `n` starts in any window of length `per`, as a strict sliding
//! window over the last `n` start times.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::config::RateLimit;

/// The last `n` start times of a queue.
pub(super) struct Window {
    limit: RateLimit,
    starts: VecDeque<Instant>,
}

impl Window {
    pub(super) fn new(limit: RateLimit) -> Window {
        Window {
            limit,
            starts: VecDeque::new(),
        }
    }

    /// `None` if a start is allowed at `now`, else when the next one is.
    pub(super) fn next_start(&self, now: Instant) -> Option<Instant> {
        if self.starts.len() < self.limit.n as usize {
            return None;
        }
        // Windows are half-open, [t, t + per): a start exactly `per` after the n-th last one
        // shares no window with it.
        let free = *self.starts.front()? + self.limit.per;
        (free > now).then_some(free)
    }

    /// Counts a start at `now` (allowed by `next_start`).
    pub(super) fn record(&mut self, now: Instant) {
        if self.starts.len() == self.limit.n as usize {
            self.starts.pop_front();
        }
        self.starts.push_back(now);
    }
}
