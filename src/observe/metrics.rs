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
//! | `taskrunner_budget_used_units` | gauge | units charged in the queue budget's window (queues with a budget) |
//! | `taskrunner_tasks_waiting_for_budget` | gauge | waiting tasks held back by a budget (queues with a budget) |
//!
//! The gauges are set whenever a task enters or leaves a state, from the queue's own
//! counts (the same as [`TaskRunner::queue_stats`](crate::TaskRunner::queue_stats)).

use std::time::Duration;

/// A queue as its metrics see it: its name (the `queue` label) and its counts for the gauges.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) trait Gauged {
    fn name(&self) -> &str;
    /// Pending, running and retrying tasks.
    fn counts(&self) -> (usize, usize, usize);
    /// Units used in the queue budget's window and tasks waiting for a budget, if the
    /// queue has budgets.
    fn budget(&self) -> Option<(u64, usize)> {
        None
    }
}

/// How a task ended, as the counters count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Completed,
    /// Failed, timed out or panicked.
    Failed,
    /// Cancelled or stopped by shutdown.
    Cancelled,
    /// A durable run's attempt parked on a wait: the run waits in the store.
    Waiting,
}

#[cfg(feature = "metrics")]
fn label(queue: &str) -> [(&'static str, String); 1] {
    [("queue", queue.to_owned())]
}

#[inline]
pub(crate) fn enqueued(queue: &dyn Gauged) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("taskrunner_tasks_enqueued_total", &label(queue.name())).increment(1);
        gauges(queue);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = queue;
}

#[inline]
pub(crate) fn started(queue: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("taskrunner_tasks_started_total", &label(queue)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = queue;
}

#[inline]
pub(crate) fn retried(queue: &dyn Gauged) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("taskrunner_tasks_retried_total", &label(queue.name())).increment(1);
        gauges(queue);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = queue;
}

#[inline]
pub(crate) fn ended(queue: &dyn Gauged, ended: Ended) {
    #[cfg(feature = "metrics")]
    {
        let name = match ended {
            Ended::Completed => "taskrunner_tasks_completed_total",
            Ended::Failed => "taskrunner_tasks_failed_total",
            Ended::Cancelled => "taskrunner_tasks_cancelled_total",
            Ended::Waiting => "taskrunner_tasks_parked_total",
        };
        metrics::counter!(name, &label(queue.name())).increment(1);
        gauges(queue);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (queue, ended);
}

/// Sets the queue's gauges from its counts.
#[inline]
pub(crate) fn gauges(queue: &dyn Gauged) {
    #[cfg(feature = "metrics")]
    {
        let (pending, running, retrying) = queue.counts();
        let labels = label(queue.name());
        metrics::gauge!("taskrunner_tasks_pending", &labels).set(pending as f64);
        metrics::gauge!("taskrunner_tasks_running", &labels).set(running as f64);
        metrics::gauge!("taskrunner_tasks_retrying", &labels).set(retrying as f64);
        if let Some((used, waiting)) = queue.budget() {
            metrics::gauge!("taskrunner_budget_used_units", &labels).set(used as f64);
            metrics::gauge!("taskrunner_tasks_waiting_for_budget", &labels).set(waiting as f64);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = queue;
}

/// A task waited `wait` from enqueue to its first start.
#[inline]
pub(crate) fn waited(queue: &str, wait: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("taskrunner_task_wait_seconds", &label(queue)).record(wait.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (queue, wait);
}

/// An attempt ran for `run`.
#[inline]
pub(crate) fn ran(queue: &str, run: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("taskrunner_task_run_seconds", &label(queue)).record(run.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (queue, run);
}
