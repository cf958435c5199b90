//! [`ScheduleError`]: why a schedule was not created, or a trigger did not run.

use crate::EnqueueError;

/// A schedule was rejected, or could not run.
///
/// Returned by [`Schedule::cron`](crate::Schedule::cron),
/// [`Schedule::timezone`](crate::Schedule::timezone),
/// [`TaskRunner::schedule`](crate::TaskRunner::schedule) and
/// [`ScheduleHandle::trigger`](crate::ScheduleHandle::trigger). Each message names the thing
/// at fault and says what to do.
///
/// ```
/// use taskrunner::{Schedule, ScheduleError};
///
/// let err = Schedule::cron("*/5 25 * * *").unwrap_err();
/// assert!(matches!(err, ScheduleError::InvalidCron { ref field, .. } if field == "hour"));
/// assert!(err.to_string().contains("`*/5 25 * * *`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error(
        "invalid cron expression `{expression}`: the {field} {reason}; use 5 fields \
         `minute hour day-of-month month day-of-week`, or 6 with seconds first"
    )]
    InvalidCron {
        /// The expression as given.
        expression: String,
        /// The field at fault (`second`, `minute`, `hour`, `day of month`, `month`,
        /// `day of week`), or `expression` when the whole of it is wrong.
        field: String,
        /// What is wrong with it, as the end of a sentence that starts with the field.
        reason: String,
    },
    /// `Schedule::every` was given a zero interval.
    #[error("schedule `{name}` has a zero interval: give `Schedule::every` a positive duration")]
    ZeroInterval {
        /// The schedule's name.
        name: String,
    },
    /// `max_runs(0)`: the schedule would never run.
    #[error("schedule `{name}` has max_runs(0): give it at least 1, or no limit")]
    ZeroMaxRuns {
        /// The schedule's name.
        name: String,
    },
    /// The end time is before the start time.
    #[error("schedule `{name}` ends before it starts: give an end time after its start time")]
    EndBeforeStart {
        /// The schedule's name.
        name: String,
    },
    /// The timetable has no fire time after now: a cron date that never occurs (such as
    /// February 30), or an end time already past.
    #[error(
        "schedule `{name}` would never fire: its timetable has no time after now \
         (check the cron expression's date and the end time)"
    )]
    NeverFires {
        /// The schedule's name.
        name: String,
    },
    /// The time zone is not in the time zone database.
    #[error(
        "unknown time zone `{0}`: use an IANA name such as `Europe/Paris` or `America/New_York`"
    )]
    UnknownTimeZone(String),
    /// A schedule of that name already exists in the runner and is not stopped.
    #[error("a schedule named `{0}` already exists: stop it first, or give this one another name")]
    Duplicate(String),
    /// The schedule's name is empty.
    #[error("a schedule name is empty: give every schedule a non-empty name")]
    EmptyName,
    /// The schedule was stopped, so it cannot be triggered.
    #[error("schedule `{0}` is stopped: create a new schedule to run it again")]
    Stopped(String),
    /// The task factory panicked, so no run was enqueued.
    #[error("schedule `{name}`: make_task panicked: {message}")]
    MakeTaskPanicked {
        /// The schedule's name.
        name: String,
        /// The panic's message.
        message: String,
    },
    /// The runner refused the run (it is shutting down, or the task's queue is unknown).
    #[error("schedule `{name}`: the run was not enqueued: {source}")]
    Enqueue {
        /// The schedule's name.
        name: String,
        /// Why the runner refused it.
        #[source]
        source: EnqueueError,
    },
    /// The runner is shutting down, or was dropped: it takes no new schedules.
    #[error("the task runner is shutting down and takes no new schedules")]
    ShuttingDown,
    /// `schedule` was called outside a tokio runtime.
    #[error(
        "no tokio runtime: call TaskRunner::schedule from inside a tokio runtime \
         (for example under #[tokio::main])"
    )]
    NoRuntime,
}
