//! The read-ahead a queue claims by default (no [`claim_ahead`] set): sized from how fast this
//! process ends the queue's runs, and bounded in time by the heartbeat, which hands back to
//! the store every run claimed ahead that has not started within one heartbeat.
//!
//! Claiming only free slots costs a claim's round trip (a commit) for nearly every run when
//! runs are short; claiming a fixed number ahead holds runs that another process, idle, could
//! start. The adaptive read-ahead claims as many extra runs as this process is expected to
//! start within [`HORIZON`] at the rate it has been ending them: hundreds for a backlog of
//! runs that take microseconds, none for runs that take seconds. Should the runs slow down
//! after a claim (a provider's latency spike), the heartbeat hands back what waits: a run
//! claimed ahead that has not started by the first heartbeat half a heartbeat after its claim
//! goes back to the store, so none waits here past one and a half heartbeats (a heartbeat is
//! a third of the lease) while another process could run it, and the queue stops claiming
//! ahead until its runs are quick again.
//!
//! Queues with a global limit (concurrency, rate or budget) claim no runs ahead: a run
//! claimed ahead would hold a global slot, a start of the rate or a budget reservation while
//! it waits.
//!
//! [`claim_ahead`]: crate::TaskRunnerBuilder::claim_ahead

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Durable, CLAIM_BATCH};
use crate::store::RunId;
use crate::sync::lock_std;

/// How soon the runs claimed ahead are expected to start, at the rate this process ends them.
const HORIZON: Duration = Duration::from_millis(25);

/// A queue's measure of how long its runs take here, from start to end: an exponentially
/// weighted mean (one eighth a sample), in nanoseconds; 0 before the first run has ended.
#[derive(Debug, Default)]
pub(super) struct RunTimes(AtomicU64);

impl RunTimes {
    /// A run took `took` from its start to its end.
    pub(super) fn record(&self, took: Duration) {
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mean| {
                Some(match mean {
                    0 => sample,
                    mean => mean - mean / 8 + sample / 8,
                })
                .map(|m| m.max(1))
            });
    }

    /// Runs claimed ahead waited `waited` without a slot: the runs take at least that long
    /// now, whatever the mean said (the read-ahead shrinks at once, so the runs handed back
    /// are not claimed here again).
    pub(super) fn at_least(&self, waited: Duration) {
        let floor = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.0.fetch_max(floor, Ordering::Relaxed);
    }

    /// How many runs to claim beyond `limit` free slots: what `limit` slots start within
    /// [`HORIZON`] at the measured mean, at most what fills one claim; none before a run has
    /// ended here.
    pub(super) fn ahead(&self, limit: usize) -> usize {
        let mean = u128::from(self.0.load(Ordering::Relaxed));
        if mean == 0 {
            return 0;
        }
        let ahead = limit as u128 * HORIZON.as_nanos() / mean;
        let room = CLAIM_BATCH.saturating_sub(limit) as u128;
        ahead.min(room) as usize
    }
}

impl Durable {
    /// Marks run `id` (claim `token`) started in this process: `false` if it must not run
    /// here after all, because the heartbeat handed it back while it waited for a slot, or
    /// its lease was lost.
    pub(crate) fn begin(&self, id: RunId, token: i64) -> bool {
        match lock_std(&self.active).get_mut(&id) {
            Some(a) if a.token == token && !a.quiet => {
                a.started.get_or_insert_with(Instant::now);
                true
            }
            _ => false,
        }
    }

    /// The runs claimed ahead that have waited for a slot for `waited` or longer: marked not
    /// to run here (a later [`begin`](Self::begin) says `false`), for the heartbeat to hand
    /// back; their queues' read-ahead shrinks to what `waited` allows.
    pub(super) fn take_stale(&self, waited: Duration) -> Vec<(RunId, i64)> {
        let mut active = lock_std(&self.active);
        let mut stale = Vec::new();
        for (id, a) in active.iter_mut() {
            if a.ahead
                && a.started.is_none()
                && !a.quiet
                && !a.ending
                && !a.cancel_sent
                && a.claimed.elapsed() >= waited
            {
                a.quiet = true;
                self.plans[a.plan].times.at_least(waited);
                stale.push((*id, a.token));
            }
        }
        stale
    }

    /// The hand-back of `stale` failed: they run here after all, unless their local task
    /// already found itself handed back (then its entry is gone, and the heartbeat hands the
    /// run back as one this process does not run).
    pub(super) fn keep_stale(&self, stale: &[(RunId, i64)]) {
        let mut active = lock_std(&self.active);
        for (id, token) in stale {
            if let Some(a) = active.get_mut(id).filter(|a| a.token == *token) {
                a.quiet = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_read_ahead_before_a_run_has_ended() {
        assert_eq!(RunTimes::default().ahead(8), 0);
    }

    #[test]
    fn short_runs_fill_a_claim_and_long_runs_claim_nothing_ahead() {
        let quick = RunTimes::default();
        quick.record(Duration::from_micros(50));
        assert_eq!(quick.ahead(8), CLAIM_BATCH - 8);
        let slow = RunTimes::default();
        slow.record(Duration::from_secs(1));
        assert_eq!(slow.ahead(8), 0);
        let middling = RunTimes::default();
        middling.record(Duration::from_millis(5));
        assert_eq!(middling.ahead(8), 40); // 8 slots start 40 runs in 25 ms
    }

    #[test]
    fn a_run_that_waited_a_heartbeat_stops_the_read_ahead() {
        let times = RunTimes::default();
        times.record(Duration::from_micros(50));
        times.at_least(Duration::from_millis(200));
        assert_eq!(times.ahead(1), 0);
        assert_eq!(times.ahead(8), 1);
    }

    #[test]
    fn the_mean_follows_a_slowdown() {
        let times = RunTimes::default();
        times.record(Duration::from_micros(50));
        for _ in 0..40 {
            times.record(Duration::from_secs(2));
        }
        assert_eq!(times.ahead(8), 0);
    }
}
