//! Recent wait and run times of one queue's tasks, for the percentiles in
//! [`QueueStats`](crate::QueueStats).
//!
//! Each is a ring of the last [`SAMPLES`] durations, written with two atomic operations
//! and no lock (a writer racing a reader may leave one sample torn between old and new,
//! which a percentile shrugs off), allocated on the first sample, and sorted only when
//! someone asks for the stats.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How many recent samples the percentiles are computed from.
pub(crate) const SAMPLES: usize = 256;

/// Percentiles of recent durations, from [`QueueStats`](crate::QueueStats).
///
/// ```
/// use taskrunner::{Task, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// for ms in [10, 20, 30] {
///     runner.enqueue_task(Task::new("t", move |_ctx| async move {
///         tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
///         Ok::<_, String>(())
///     }))?.await?;
/// }
/// let run = runner.queue_stats("main").unwrap().run_time.unwrap();
/// assert_eq!(run.samples, 3);
/// assert!(run.p50 <= run.p90 && run.p90 <= run.p99 && run.p99 <= run.max);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Percentiles {
    /// The median.
    pub p50: Duration,
    /// 90 % of the samples are at most this.
    pub p90: Duration,
    /// 99 % of the samples are at most this.
    pub p99: Duration,
    /// The longest.
    pub max: Duration,
    /// How many samples these come from (at most 256: the most recent ones).
    pub samples: usize,
}

/// The last [`SAMPLES`] durations, in nanoseconds.
#[derive(Default)]
pub(crate) struct Samples {
    ring: OnceLock<Box<[AtomicU64]>>,
    /// How many samples were ever recorded; the next goes to `written % SAMPLES`.
    written: AtomicUsize,
}

impl Samples {
    pub(crate) fn record(&self, duration: Duration) {
        let ring = self
            .ring
            .get_or_init(|| (0..SAMPLES).map(|_| AtomicU64::new(0)).collect());
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let n = self.written.fetch_add(1, Ordering::Relaxed);
        ring[n % SAMPLES].store(nanos, Ordering::Relaxed);
    }

    /// The percentiles of the recent samples, or `None` before the first.
    pub(crate) fn percentiles(&self) -> Option<Percentiles> {
        let ring = self.ring.get()?;
        let count = self.written.load(Ordering::Relaxed).min(SAMPLES);
        if count == 0 {
            return None;
        }
        let mut nanos: Vec<u64> = ring[..count]
            .iter()
            .map(|sample| sample.load(Ordering::Relaxed))
            .collect();
        nanos.sort_unstable();
        // Nearest rank: the smallest sample with at least p % of them at or below it.
        let rank = |p: usize| Duration::from_nanos(nanos[(count * p).div_ceil(100).max(1) - 1]);
        Some(Percentiles {
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: Duration::from_nanos(nanos[count - 1]),
            samples: count,
        })
    }
}

/// One queue's recent wait times (from enqueue to first start) and run times (of each
/// attempt).
#[derive(Default)]
pub(crate) struct Timings {
    pub(crate) wait: Samples,
    pub(crate) run: Samples,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_the_recent_samples() {
        let samples = Samples::default();
        assert_eq!(samples.percentiles(), None);
        for ms in 1..=100 {
            samples.record(Duration::from_millis(ms));
        }
        let p = samples.percentiles().unwrap();
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max, p.samples),
            (
                Duration::from_millis(50),
                Duration::from_millis(90),
                Duration::from_millis(99),
                Duration::from_millis(100),
                100
            )
        );
        // Only the most recent SAMPLES count.
        for _ in 0..SAMPLES {
            samples.record(Duration::from_secs(1));
        }
        let p = samples.percentiles().unwrap();
        assert_eq!((p.p50, p.samples), (Duration::from_secs(1), SAMPLES));
    }
}
