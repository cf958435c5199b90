//! [`ScheduleHandle`]: the remote control of one schedule.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use super::driver::Entry;
use super::{ScheduleError, ScheduleInfo};
use crate::TaskId;

/// Controls one schedule: pause, resume, stop, trigger, and a look at its runs.
///
/// From [`TaskRunner::schedule`](crate::TaskRunner::schedule), or by name from
/// [`TaskRunner::schedule_handle`](crate::TaskRunner::schedule_handle). Cheap to clone;
/// every clone controls the same schedule. Dropping it does not stop the schedule.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{Schedule, ScheduleStatus, Task, TaskContext, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let monitor = runner.schedule("monitor", Schedule::every(Duration::from_secs(60)), || {
///     Task::new("check", |_: TaskContext| async { Ok::<_, String>("ok") })
/// })?;
/// let run = monitor.trigger()?;                 // one run now, outside the timetable
/// monitor.pause();
/// tokio::time::sleep(Duration::from_secs(600)).await;
/// assert_eq!(monitor.info().runs, 1);           // nothing fired while paused
/// monitor.resume();
/// monitor.stop();
/// assert_eq!(monitor.info().status, ScheduleStatus::Stopped);
/// assert_eq!(runner.get_status(run).unwrap().schedule.as_deref(), Some("monitor"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ScheduleHandle {
    entry: Arc<Entry>,
}

impl ScheduleHandle {
    pub(crate) fn new(entry: Arc<Entry>) -> ScheduleHandle {
        ScheduleHandle { entry }
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// Stops firing until [`resume`](Self::resume); a run already started goes on. Fires due
    /// meanwhile are not run later. Returns `false` unless the schedule was active.
    pub fn pause(&self) -> bool {
        self.entry.pause()
    }

    /// Fires again by the timetable, from the next fire time after now. Returns `false`
    /// unless the schedule was paused.
    pub fn resume(&self) -> bool {
        self.entry.resume()
    }

    /// Stops the schedule for good: no more fires (a buffered one is dropped); a run already
    /// started goes on. Its name can then be given to a new schedule. Returns `false` if it
    /// was already stopped.
    pub fn stop(&self) -> bool {
        self.entry.stop()
    }

    /// Starts one run now, outside the timetable, whatever the overlap policy, even while
    /// paused. It counts in [`runs`](ScheduleInfo::runs), not against `max_runs`.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Stopped`], [`ScheduleError::MakeTaskPanicked`] or
    /// [`ScheduleError::Enqueue`] (the runner is shutting down, or the task names an unknown
    /// queue).
    pub fn trigger(&self) -> Result<TaskId, ScheduleError> {
        self.entry.trigger()
    }

    /// A snapshot of the schedule: status, counters, last and next run.
    pub fn info(&self) -> ScheduleInfo {
        self.entry.info()
    }

    /// The next `n` times the schedule will fire (jitter included), fewer if its end time or
    /// `max_runs` comes first; from now if paused, none if stopped.
    pub fn upcoming(&self, n: usize) -> Vec<SystemTime> {
        self.entry.upcoming(n)
    }
}

impl fmt::Debug for ScheduleHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleHandle")
            .field("name", &self.entry.name)
            .field("status", &self.entry.status())
            .finish()
    }
}
