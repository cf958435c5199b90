//! [`ScheduleInfo`] and [`ScheduleStatus`]: a snapshot of one schedule.

use std::time::SystemTime;

use crate::TaskId;

/// Whether a schedule fires.
///
/// ```
/// use taskrunner::ScheduleStatus;
///
/// assert_ne!(ScheduleStatus::Active, ScheduleStatus::Paused);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleStatus {
    /// It fires by its timetable.
    Active,
    /// It does not fire until resumed; fires due meanwhile are not run later.
    Paused,
    /// It fires no more: stopped by hand or by shutdown, after `max_runs`, or past its end
    /// time. A run already started goes on.
    Stopped,
}

/// A snapshot of one schedule: what it is doing and how its runs went. From
/// [`ScheduleHandle::info`](crate::ScheduleHandle::info) or
/// [`TaskRunner::schedules`](crate::TaskRunner::schedules).
///
/// Times are on the schedule's clock: the wall time at its creation plus the time tokio has
/// counted since, so that on tokio's paused clock they advance with it.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{Schedule, ScheduleStatus, Task, TaskContext, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let ping = runner.schedule("ping", Schedule::every(Duration::from_secs(1)), || {
///     Task::new("ping", |_: TaskContext| async { Ok::<_, String>(()) })
/// })?;
/// tokio::time::sleep(Duration::from_millis(3500)).await;
/// let info = ping.info();
/// assert_eq!((info.name.as_str(), info.status, info.runs), ("ping", ScheduleStatus::Active, 3));
/// assert!(info.next_run_at > info.last_run_at);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleInfo {
    /// The schedule's name, unique in its runner.
    pub name: String,
    /// Active, paused or stopped.
    pub status: ScheduleStatus,
    /// Fires that started a run (by the timetable or a trigger), plus fires whose
    /// `make_task` panicked.
    pub runs: u64,
    /// Runs that ended failed, timed out or panicked, and fires whose `make_task` panicked
    /// or whose run the runner refused.
    pub failures: u64,
    /// Fires passed over because the previous run was unfinished (see
    /// [`Overlap`](crate::Overlap)).
    pub skipped: u64,
    /// When the latest run was started.
    pub last_run_at: Option<SystemTime>,
    /// When the next fire is due, jitter included; `None` unless active.
    pub next_run_at: Option<SystemTime>,
    /// Why the latest failed run failed.
    pub last_error: Option<String>,
    /// The latest run's task.
    pub last_task: Option<TaskId>,
}
