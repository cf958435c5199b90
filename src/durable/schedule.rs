//! Durable schedules: [`TaskRunner::schedule_run`] keeps a [`Schedule`] in the store, and
//! every process that registered its definition fires it, each occurrence once.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{upgrade, Durable};
use crate::runner::Shared;
use crate::schedule::StoredSpec;
use crate::store::{
    duration_ms, now_ms, to_time, Fire, Fired, NewSchedule, RunId, ScheduleRow, StoreError,
};
use crate::{
    Schedule, ScheduleError, ScheduleInfo, ScheduleStatus, TaskContext, TaskDef, TaskRunner,
};

/// Why [`TaskRunner::schedule_run`] could not store a schedule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleRunError {
    /// The schedule itself is wrong (a zero interval, `max_runs(0)`, no fire time, an empty
    /// name).
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The store could not be written, or the runner has none.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A durable schedule, by name, from [`TaskRunner::schedule_run`] or
/// [`TaskRunner::durable_schedule`]: pause, resume, stop and read it from any process that
/// shares the store.
#[derive(Clone)]
pub struct DurableSchedule {
    name: String,
    durable: Arc<Durable>,
}

impl fmt::Debug for DurableSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableSchedule")
            .field("name", &self.name)
            .finish()
    }
}

// ===== impl TaskRunner =====

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
        let durable = Arc::clone(self.shared.durable.get().ok_or(StoreError::NoStore)?);
        if name.is_empty() {
            return Err(ScheduleError::EmptyName.into());
        }
        schedule.check(name)?;
        let origin = SystemTime::now();
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
        let durable = self.shared.durable.get().ok_or(StoreError::NoStore)?;
        Ok(DurableSchedule {
            name: name.to_owned(),
            durable: Arc::clone(durable),
        })
    }

    /// Every durable schedule in the store, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoStore`] without a store, [`StoreError::Database`] if it cannot be read.
    pub async fn durable_schedules(&self) -> Result<Vec<ScheduleInfo>, StoreError> {
        let durable = self.shared.durable.get().ok_or(StoreError::NoStore)?;
        Ok(durable
            .store
            .list_schedules()
            .await?
            .iter()
            .map(info)
            .collect())
    }
}

// ===== impl DurableSchedule =====

impl DurableSchedule {
    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// No fire until [`resume`](Self::resume)d, in any process; fires due meanwhile are not
    /// run later. Returns `false` unless it was active.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if the store cannot be written.
    pub async fn pause(&self) -> Result<bool, StoreError> {
        self.durable
            .store
            .set_schedule_status(&self.name, "paused", None, ["active", "active"])
            .await
    }

    /// Fires again from the next occurrence after now. Returns `false` unless it was paused.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if the store cannot be read or written.
    pub async fn resume(&self) -> Result<bool, StoreError> {
        let Some(row) = self.durable.store.schedule(&self.name).await? else {
            return Ok(false);
        };
        let schedule = rebuild(&row).map_err(|e| StoreError::Database(e.to_string()))?;
        let next = schedule
            .next_fire(to_time(row.origin), SystemTime::now())
            .map(|at| fire_times(&schedule, &self.name, at));
        let (status, next) = match next {
            Some(next) => ("active", Some(next)),
            None => ("stopped", None),
        };
        let done = self
            .durable
            .store
            .set_schedule_status(&self.name, status, next, ["paused", "paused"])
            .await?;
        self.durable.schedules_wake.notify_one();
        Ok(done)
    }

    /// No more fires, in any process; a run already submitted goes on. Returns `false` if
    /// it was already stopped (or does not exist).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if the store cannot be written.
    pub async fn stop(&self) -> Result<bool, StoreError> {
        self.durable
            .store
            .set_schedule_status(&self.name, "stopped", None, ["active", "paused"])
            .await
    }

    /// The durable run of its latest fire, if any: await it with
    /// [`run_handle`](TaskRunner::run_handle), or read it with
    /// [`run_info`](TaskRunner::run_info).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if the store cannot be read.
    pub async fn last_run(&self) -> Result<Option<RunId>, StoreError> {
        let row = self.durable.store.schedule(&self.name).await?;
        Ok(row.and_then(|r| r.last_run_id).map(RunId::from_i64))
    }

    /// The schedule as stored: status, runs, failures, skipped fires, last and next fire
    /// (`last_task` is `None`: its runs are durable runs, listed by
    /// [`list_runs`](TaskRunner::list_runs)). `None` if there is no such schedule.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if the store cannot be read.
    pub async fn info(&self) -> Result<Option<ScheduleInfo>, StoreError> {
        Ok(self
            .durable
            .store
            .schedule(&self.name)
            .await?
            .as_ref()
            .map(info))
    }
}

// ===== the fire loop =====

/// Fires the due durable schedules of the definitions this process registered: each due one
/// is a compare-and-swap in the store, so the processes that race for it fire it once.
pub(super) async fn fire_loop(weak: Weak<Shared>, durable: Arc<Durable>) {
    let names: Vec<String> = durable.defs.keys().cloned().collect();
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = durable.schedules_wake.notified() => {}
            _ = durable.claiming.cancelled() => return,
        }
        let Some(runner) = upgrade(&weak) else {
            return;
        };
        if runner.is_shutting_down() {
            return;
        }
        drop(runner);
        wait = durable.poll;
        match durable.store.due_schedules(&names, now_ms()).await {
            Ok(due) => {
                for row in due {
                    fire(&durable, &row).await;
                }
            }
            Err(e) => tracing::warn!("reading due schedules failed: {e}"),
        }
        if let Ok(Some(due)) = durable.store.next_schedule_due(&names).await {
            let until = Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0));
            wait = wait.min(until.max(Duration::from_millis(1)));
        }
    }
}

async fn fire(durable: &Durable, row: &ScheduleRow) {
    let Some(expected) = row.next_fire_at else {
        return;
    };
    let schedule = match rebuild(row) {
        Ok(schedule) => schedule,
        Err(e) => {
            tracing::warn!(schedule = %row.name, "cannot read the stored schedule: {e}");
            return;
        }
    };
    let origin = to_time(row.origin);
    let now = SystemTime::now();
    // Coalesce: one run, for the latest occurrence due; the others are counted as skipped.
    let mut fire_at = to_time(expected);
    let mut coalesced = 0;
    while let Some(later) = schedule.next_fire(origin, fire_at).filter(|t| *t <= now) {
        fire_at = later;
        coalesced += 1;
        if coalesced >= 100_000 {
            break;
        }
    }
    let next = schedule
        .next_fire(origin, fire_at.max(now))
        .map(|at| fire_times(&schedule, &row.name, at));
    let fire = Fire {
        name: row.name.clone(),
        expected,
        fire_at: ms(fire_at),
        coalesced,
        next,
        overlap: schedule.overlap,
        max_runs: schedule.max_runs,
    };
    match durable.store.fire_schedule(&fire).await {
        Ok(Fired::Run(id)) => {
            tracing::debug!(schedule = %row.name, run = %id, "durable schedule fired");
            durable.wake_queue(&row.queue);
        }
        Ok(Fired::Skipped) => {
            tracing::debug!(schedule = %row.name, "previous run unfinished: fire skipped");
        }
        Ok(Fired::Lost) => {}
        Err(e) => tracing::warn!(schedule = %row.name, "firing the schedule failed: {e}"),
    }
}

fn rebuild(row: &ScheduleRow) -> Result<Schedule, ScheduleError> {
    let spec: StoredSpec =
        serde_json::from_str(&row.spec).map_err(|_| ScheduleError::NeverFires {
            name: row.name.clone(),
        })?;
    Schedule::from_stored(&spec)
}

/// The nominal time `at` and its due time (jitter added), in ms.
fn fire_times(schedule: &Schedule, name: &str, at: SystemTime) -> (i64, i64) {
    let nominal = ms(at);
    let jitter = duration_ms(schedule.jitter_for(name, at));
    (nominal, nominal.saturating_add(jitter))
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, duration_ms)
}

fn info(row: &ScheduleRow) -> ScheduleInfo {
    let status = match row.status.as_str() {
        "active" => ScheduleStatus::Active,
        "paused" => ScheduleStatus::Paused,
        _ => ScheduleStatus::Stopped,
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    ScheduleInfo {
        name: row.name.clone(),
        status,
        runs: count(row.runs),
        failures: count(row.failures),
        skipped: count(row.skipped),
        last_run_at: row.last_fire_at.map(to_time),
        next_run_at: row
            .due_at
            .filter(|_| status == ScheduleStatus::Active)
            .map(to_time),
        last_error: row.last_error.clone(),
        last_task: None,
    }
}
