//! Per-queue metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): whatever recorder the application installs (a Prometheus exporter, StatsD,
//! ...) receives them. Without the feature, every function here is empty and inlined away.
//!
//! Every metric carries the label `queue`:
//!
//! | name | kind | what |
//! |---|---|---|
//! | `taskrunner_tasks_enqueued_total` | counter | tasks accepted by `enqueue_task` |
//! | `taskrunner_tasks_started_total` | counter | attempts started (retries included) |
//! | `taskrunner_tasks_completed_total` | counter | tasks that ended `Ok` |
//! | `taskrunner_tasks_failed_total` | counter | tasks that failed, timed out or panicked |
//! | `taskrunner_tasks_retried_total` | counter | attempts that went into a retry backoff |
//! | `taskrunner_tasks_cancelled_total` | counter | tasks cancelled or stopped by shutdown |
//! | `taskrunner_tasks_pending` | gauge | tasks waiting for a slot |
//! | `taskrunner_tasks_running` | gauge | tasks holding a slot |
//! | `taskrunner_tasks_retrying` | gauge | tasks waiting out a retry delay |
//! | `taskrunner_task_wait_seconds` | histogram | from enqueue to first start |
//! | `taskrunner_task_run_seconds` | histogram | each attempt's run time |
//!
//! The gauges are set whenever a task enters or leaves a state, from the queue's own
//! counts (the same as [`TaskRunner::queue_stats`](crate::TaskRunner::queue_stats)).

use std::time::Duration;

use crate::job::End;
use crate::queue::Queue;

#[cfg(feature = "metrics")]
fn label(queue: &Queue) -> [(&'static str, String); 1] {
    [("queue", queue.name().to_owned())]
}

/// A task was accepted into `queue`.
#[inline]
pub(crate) fn enqueued(queue: &Queue) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("taskrunner_tasks_enqueued_total", &label(queue)).increment(1);
        gauges(queue);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = queue;
}

/// An attempt started.
#[inline]
pub(crate) fn started(queue: &Queue) {
    #[cfg(feature = "metrics")]
    metrics::counter!("taskrunner_tasks_started_total", &label(queue)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = queue;
}

/// An attempt failed and its task waits out a backoff.
#[inline]
pub(crate) fn retried(queue: &Queue) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("taskrunner_tasks_retried_total", &label(queue)).increment(1);
        gauges(queue);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = queue;
}

/// A task ended as `end`.
#[inline]
pub(crate) fn ended(queue: &Queue, end: &End) {
    #[cfg(feature = "metrics")]
    {
        let name = match end {
            End::Completed => "taskrunner_tasks_completed_total",
            End::Failed | End::TimedOut | End::Panicked(_) => "taskrunner_tasks_failed_total",
            End::Cancelled | End::Shutdown => "taskrunner_tasks_cancelled_total",
        };
        metrics::counter!(name, &label(queue)).increment(1);
        gauges(queue);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (queue, end);
}

/// The queue's counts changed (a start, or a task left its backoff).
#[inline]
pub(crate) fn gauges(queue: &Queue) {
    #[cfg(feature = "metrics")]
    {
        let stats = queue.counts();
        let labels = label(queue);
        metrics::gauge!("taskrunner_tasks_pending", &labels).set(stats.0 as f64);
        metrics::gauge!("taskrunner_tasks_running", &labels).set(stats.1 as f64);
        metrics::gauge!("taskrunner_tasks_retrying", &labels).set(stats.2 as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = queue;
}

/// A task waited `wait` from enqueue to its first start.
#[inline]
pub(crate) fn waited(queue: &Queue, wait: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("taskrunner_task_wait_seconds", &label(queue)).record(wait.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (queue, wait);
}

/// An attempt ran for `run`.
#[inline]
pub(crate) fn ran(queue: &Queue, run: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("taskrunner_task_run_seconds", &label(queue)).record(run.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (queue, run);
}
