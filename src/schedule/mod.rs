//! Recurring schedules: a task made and enqueued on an interval or a cron timetable.
//!
//! [`TaskRunner::schedule`] takes a name, a [`Schedule`] (when), and a `make_task` closure
//! (what: a fresh [`Task`] each fire), and returns a [`ScheduleHandle`] to pause, resume,
//! stop or trigger it and read its [`ScheduleInfo`]. Each run is an ordinary task of the
//! runner (events, status, retries, notifications), tagged with its schedule's name in
//! [`TaskInfo::schedule`](crate::TaskInfo::schedule) and
//! [`Event::schedule`](crate::Event::schedule).
//!
//! - Timetables: [`Schedule::every`] (fixed rate, no drift) and [`Schedule::cron`] (with
//!   `croner`, in UTC or a [time zone](Schedule::timezone) by `jiff`), with start and end
//!   times, [`max_runs`](Schedule::max_runs) and deterministic [`jitter`](Schedule::jitter).
//! - A fire that finds the previous run unfinished follows the [`Overlap`] policy
//!   (default [`Overlap::Skip`], counted in [`ScheduleInfo::skipped`]).
//! - Fires missed while paused are not run on resume; fires that fell due while the
//!   process was busy are coalesced into one.
//! - The runner's [event stream](TaskRunner::subscribe) carries schedule events:
//!   [`ScheduleFired`](crate::EventKind::ScheduleFired), `ScheduleSkipped`,
//!   `SchedulePaused`, `ScheduleResumed`, `ScheduleStopped`.
//! - [`shutdown`](TaskRunner::shutdown) stops every schedule first, then finishes the runs
//!   already started.
//! - A schedule's clock is the wall time at its creation plus the time tokio has counted
//!   since, so tests on tokio's paused clock drive cron timetables too.

mod cron;
mod driver;
mod error;
mod handle;
mod info;
mod launch;
mod spec;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use error::ScheduleError;
pub use handle::ScheduleHandle;
pub use info::{ScheduleInfo, ScheduleStatus};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use spec::StoredSpec;
pub use spec::{Overlap, Schedule};

use driver::Entry;

use crate::runner::{Extension, Shared};
use crate::sync::lock_std;
use crate::task::RetryPredicate;
use crate::{Task, TaskContext, TaskRunner};

/// A runner's schedules, in creation order.
#[derive(Default)]
pub(crate) struct Schedules {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    entries: Vec<Arc<Entry>>,
    /// Set by shutdown: no new schedules.
    closed: bool,
}

impl Schedules {
    /// The schedules of the runner behind `shared`, added to its extensions by the first.
    fn of(shared: &Shared) -> &Arc<Schedules> {
        shared.extensions.get_or_add(Arc::default)
    }

    /// Stops every schedule and takes no new ones: the first step of a shutdown.
    fn stop_all(&self) {
        let entries = {
            let mut registry = lock_std(&self.inner);
            registry.closed = true;
            registry.entries.clone()
        };
        for entry in entries {
            entry.stop();
        }
    }

    fn insert(&self, entry: Arc<Entry>) -> Result<(), ScheduleError> {
        let mut registry = lock_std(&self.inner);
        if registry.closed {
            return Err(ScheduleError::ShuttingDown);
        }
        if let Some(i) = registry.entries.iter().position(|e| e.name == entry.name) {
            if registry.entries[i].status() != ScheduleStatus::Stopped {
                return Err(ScheduleError::Duplicate(entry.name.to_string()));
            }
            registry.entries.remove(i);
        }
        registry.entries.push(entry);
        Ok(())
    }

    fn get(&self, name: &str) -> Option<Arc<Entry>> {
        let registry = lock_std(&self.inner);
        registry.entries.iter().find(|e| &*e.name == name).cloned()
    }

    fn all(&self) -> Vec<Arc<Entry>> {
        lock_std(&self.inner).entries.clone()
    }
}

/// A shutdown stops every schedule before the runner stops taking tasks.
impl Extension for Schedules {
    fn before_close(&self) {
        self.stop_all();
    }
}

impl fmt::Debug for Schedules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedules")
            .field("len", &lock_std(&self.inner).entries.len())
            .finish()
    }
}

// ===== impl TaskRunner: schedules =====

impl TaskRunner {
    /// Runs a fresh task from `make_task` each time `schedule` fires, until stopped.
    ///
    /// `name` is unique among the runner's schedules that are not stopped. Each run is an
    /// ordinary task of this runner, tagged with `name` in its
    /// [`TaskInfo::schedule`](crate::TaskInfo::schedule). A `make_task` that panics fails that
    /// fire (counted in [`ScheduleInfo::failures`]); the schedule goes on.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Duplicate`], [`ScheduleError::EmptyName`],
    /// [`ScheduleError::ZeroInterval`], [`ScheduleError::ZeroMaxRuns`],
    /// [`ScheduleError::EndBeforeStart`], [`ScheduleError::NeverFires`],
    /// [`ScheduleError::ShuttingDown`] or
    /// [`ScheduleError::NoRuntime`], each naming what is wrong.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Overlap, Schedule, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let monitor = runner.schedule(
    ///     "system_monitor",
    ///     Schedule::every(Duration::from_secs(300)).overlap(Overlap::Skip).max_runs(3),
    ///     || Task::new("check", |_: TaskContext| async { Ok::<_, String>(()) }),
    /// )?;
    /// tokio::time::sleep(Duration::from_secs(3600)).await;
    /// assert_eq!(monitor.info().runs, 3);
    /// assert_eq!(runner.schedules().len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn schedule<M, F, Fut, P, T, E>(
        &self,
        name: impl Into<String>,
        schedule: Schedule,
        make_task: M,
    ) -> Result<ScheduleHandle, ScheduleError>
    where
        M: Fn() -> Task<F, P> + Send + Sync + 'static,
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let name: String = name.into();
        if name.is_empty() {
            return Err(ScheduleError::EmptyName);
        }
        schedule.check(&name)?;
        if schedule.first_fire(SystemTime::now()).is_none() {
            return Err(ScheduleError::NeverFires { name });
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| ScheduleError::NoRuntime)?;
        if self.is_shutting_down() {
            return Err(ScheduleError::ShuttingDown);
        }
        let launch = launch::launcher(make_task);
        let entry = Arc::new(Entry::new(name.into(), schedule, launch, self.shared()));
        Schedules::of(self.shared()).insert(Arc::clone(&entry))?;
        drop(runtime.spawn(driver::drive(Arc::clone(&entry))));
        Ok(ScheduleHandle::new(entry))
    }

    /// A snapshot of every schedule of this runner, in creation order (a stopped one stays
    /// listed until a new schedule takes its name).
    pub fn schedules(&self) -> Vec<ScheduleInfo> {
        self.shared()
            .extensions
            .get::<Schedules>()
            .map(|schedules| schedules.all().iter().map(|entry| entry.info()).collect())
            .unwrap_or_default()
    }

    /// The handle of the schedule named `name`, from anywhere that has the runner.
    pub fn schedule_handle(&self, name: &str) -> Option<ScheduleHandle> {
        self.shared()
            .extensions
            .get::<Schedules>()
            .and_then(|schedules| schedules.get(name))
            .map(ScheduleHandle::new)
    }
}
