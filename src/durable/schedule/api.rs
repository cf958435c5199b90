//! The durable-schedule API on [`TaskRunner`]: [`schedule_run`](TaskRunner::schedule_run),
//! [`durable_schedule`](TaskRunner::durable_schedule) and
//! [`durable_schedules`](TaskRunner::durable_schedules).

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;

use super::stored::{fire_times, info, ms};
use super::{DurableSchedule, ScheduleRunError};
use crate::durable::Durable;
use crate::store::{NewSchedule, StoreError};
use crate::{Schedule, ScheduleError, ScheduleInfo, TaskContext, TaskDef, TaskRunner};

impl TaskRunner {
    /// Stores a durable schedule: runs of `def` on `input`, fired by `schedule`'s timetable.
    /// Every process that [registered](crate::TaskRunnerBuilder::register) `def` may fire it;
    /// each occurrence fires exactly once across them (a compare-and-swap of the next nominal
    /// fire time, in the transaction that submits the run), with no leader. Each fire is an
    /// ordinary durable run (retries, leases, `run_info`).
    ///
    /// - If a schedule of this `name` exists and is not stopped, it is kept as stored (its
    ///   timetable, input and counts) and its handle returned, so every process can run the
    ///   same start-up code. A stopped one is replaced.
    /// - Fires missed while every process was down (or busy) are coalesced into one run, for
    ///   the latest missed occurrence; the ones passed over are counted in
    ///   [`ScheduleInfo::skipped`].
    /// - Overlap: `Skip` (the default) and `BufferOne` skip a fire while the previous run is
    ///   unfinished (counted in `skipped`; `BufferOne` does not buffer across processes);
    ///   `CancelPrevious` cancels it; `Allow` starts the new run anyway.
    /// - Each run's call id is `<name>@<nominal fire time in ms since the epoch>`: one per
    ///   occurrence, usable as an idempotency key for the run's side effects.
    /// - `max_runs`, start and end times and jitter (the same delay in every process) work as
    ///   for [`TaskRunner::schedule`].
    ///
    /// A due fire is seen within the runner's
    /// [`poll_interval`](crate::TaskRunnerBuilder::poll_interval) (at once for a schedule
    /// created in this process).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::store::SqliteStore;
    /// use taskrunner::{RunFilter, Schedule, ScheduleStatus, TaskContext, TaskDef, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("taskrunner-doc-sched-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let digest = TaskDef::new("digest", |_: TaskContext, to: String| async move {
    ///     Ok::<_, String>(format!("digest sent to {to}"))
    /// });
    /// let runner = TaskRunner::builder()
    ///     .store(SqliteStore::open(dir.join("runs.db")).await?)
    ///     .register(&digest)
    ///     .poll_interval(Duration::from_millis(20))
    ///     .build()?;
    /// let nightly = runner
    ///     .schedule_run("digest", Schedule::every(Duration::from_millis(50)).max_runs(2), &digest, "ops".to_owned())
    ///     .await?;
    /// while nightly.info().await?.map(|i| i.status) != Some(ScheduleStatus::Stopped) {
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    /// }
    /// assert_eq!(runner.list_runs(RunFilter::new().name("digest")).await?.len(), 2);
    /// # runner.shutdown().await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ScheduleRunError::Schedule`] for a schedule that is wrong (as
    /// [`TaskRunner::schedule`] checks it), [`ScheduleRunError::Store`] without a store, for
    /// an input that does not serialize, or if the store cannot be written.
    pub async fn schedule_run<H, I, Fut, T, E>(
        &self,
        name: &str,
        schedule: Schedule,
        def: &TaskDef<H>,
        input: I,
    ) -> Result<DurableSchedule, ScheduleRunError>
    where
        H: Fn(TaskContext, I) -> Fut,
        I: Serialize,
        Fut: Future<Output = Result<T, E>>,
    {
        let durable = Arc::clone(Durable::of(&self.shared).ok_or(StoreError::NoStore)?);
        if name.is_empty() {
            return Err(ScheduleError::EmptyName.into());
        }
        schedule.check(name)?;
        // The store's clock: every process computes this schedule's times from it.
        let origin = crate::store::to_time(durable.store.now_ms().await?);
        let Some(first) = schedule.first_fire(origin) else {
            return Err(ScheduleError::NeverFires {
                name: name.to_owned(),
            }
            .into());
        };
        let input = serde_json::to_string(&input).map_err(|e| StoreError::Json {
            name: def.name().to_owned(),
            what: "input",
            reason: e.to_string(),
        })?;
        let spec = serde_json::to_string(&schedule.to_stored()).unwrap_or_default();
        let max_attempts = def
            .retry_policy()
            .map_or(1, |p| p.retries().saturating_add(1));
        let (next_fire_at, due_at) = fire_times(&schedule, name, first);
        durable
            .store
            .create_schedule(&NewSchedule {
                name: name.to_owned(),
                def_name: def.name().to_owned(),
                queue: def.queue_name().to_owned(),
                priority: def.priority_value(),
                max_attempts: i32::try_from(max_attempts).unwrap_or(i32::MAX),
                input,
                spec,
                origin: ms(origin),
                next_fire_at,
                due_at,
            })
            .await?;
        durable.schedules_wake.notify_one();
        Ok(DurableSchedule {
            name: name.to_owned(),
            durable,
        })
    }

    /// The durable schedule `name`, to pause, resume, stop or read from this process (it
    /// need not exist yet: [`DurableSchedule::info`] says).
    ///
    /// # Errors
    ///
    /// [`StoreError::NoStore`] if the runner has no store.
    pub fn durable_schedule(&self, name: &str) -> Result<DurableSchedule, StoreError> {
        let durable = Durable::of(&self.shared).ok_or(StoreError::NoStore)?;
        Ok(DurableSchedule {
            name: name.to_owned(),
            durable: Arc::clone(durable),
        })
    }

    /// Every durable schedule in the store, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoStore`] without a store, [`StoreError::Database`] or [`StoreError::Unavailable`] if it cannot be read.
    pub async fn durable_schedules(&self) -> Result<Vec<ScheduleInfo>, StoreError> {
        let durable = Durable::of(&self.shared).ok_or(StoreError::NoStore)?;
        Ok(durable
            .store
            .list_schedules()
            .await?
            .iter()
            .map(info)
            .collect())
    }
}
