//! Durable schedules in the store: the rows behind
//! [`TaskRunner::schedule_run`](crate::TaskRunner::schedule_run), and the fire that is a
//! compare-and-swap of the nominal time due, written once for every backend (`schedules_on!`,
//! expanded by each backend's `dialect.rs`).

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::types::RunId;
use super::{Backend, Store, StoreError};
use crate::Overlap;

pub(crate) mod sql;

/// A durable schedule to create.
#[derive(Debug, Clone)]
pub(crate) struct NewSchedule {
    pub(crate) name: String,
    pub(crate) def_name: String,
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) max_attempts: i32,
    pub(crate) input: String,
    pub(crate) spec: String,
    pub(crate) origin: i64,
    pub(crate) next_fire_at: i64,
    pub(crate) due_at: i64,
}

/// A durable schedule as stored.
#[derive(Debug, Clone)]
pub(crate) struct ScheduleRow {
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) spec: String,
    pub(crate) origin: i64,
    pub(crate) status: String,
    pub(crate) next_fire_at: Option<i64>,
    pub(crate) due_at: Option<i64>,
    pub(crate) last_fire_at: Option<i64>,
    pub(crate) last_run_id: Option<i64>,
    pub(crate) runs: i64,
    pub(crate) failures: i64,
    pub(crate) skipped: i64,
    pub(crate) last_error: Option<String>,
}

/// The columns [`schedule_row`] reads, as a literal for `concat!`.
macro_rules! schedule_columns {
    () => {
        "name, queue, spec, origin, status, next_fire_at, due_at, last_fire_at, \
         last_run_id, runs, failures, skipped, last_error"
    };
}
pub(crate) use schedule_columns;

pub(crate) fn schedule_row<'r, R>(row: &'r R) -> Result<ScheduleRow, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ScheduleRow {
        name: row.try_get("name")?,
        queue: row.try_get("queue")?,
        spec: row.try_get("spec")?,
        origin: row.try_get("origin")?,
        status: row.try_get("status")?,
        next_fire_at: row.try_get("next_fire_at")?,
        due_at: row.try_get("due_at")?,
        last_fire_at: row.try_get("last_fire_at")?,
        last_run_id: row.try_get("last_run_id")?,
        runs: row.try_get("runs")?,
        failures: row.try_get("failures")?,
        skipped: row.try_get("skipped")?,
        last_error: row.try_get("last_error")?,
    })
}

/// [`schedule_row`] of each of `rows`.
pub(crate) fn schedule_rows<R>(rows: &[R]) -> Result<Vec<ScheduleRow>, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    rows.iter().map(schedule_row).collect()
}

/// One fire of a schedule: applied only if its `next_fire_at` is still `expected` (no other
/// process fired it first) and it is active.
#[derive(Debug, Clone)]
pub(crate) struct Fire {
    pub(crate) name: String,
    /// The nominal time the fire was due at, as read.
    pub(crate) expected: i64,
    /// The nominal time of the occurrence run: the latest one due (missed ones coalesced).
    pub(crate) fire_at: i64,
    /// Occurrences passed over by the coalescing (counted in `skipped`).
    pub(crate) coalesced: i64,
    /// The next nominal fire time and its due time (with jitter); `None` once it ends.
    pub(crate) next: Option<(i64, i64)>,
    pub(crate) overlap: Overlap,
    pub(crate) max_runs: Option<u64>,
}

/// What a fire did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fired {
    /// A run was submitted.
    Run(RunId),
    /// The previous run was unfinished: the fire was skipped (counted).
    Skipped,
    /// Another process fired it first, or it was paused or stopped meanwhile.
    Lost,
}

impl Fire {
    /// The call id of the run it submits: `<schedule>@<nominal time in ms>`, one per
    /// occurrence (an idempotency key for the run's side effects).
    pub(crate) fn call_id(&self) -> String {
        format!("{}@{}", self.name, self.fire_at)
    }

    /// Whether this fire's run is the schedule's last (its timetable ends, or `max_runs`).
    pub(crate) fn stops_after(&self, runs_before: i64) -> bool {
        self.next.is_none()
            || self
                .max_runs
                .is_some_and(|max| u64::try_from(runs_before + 1).unwrap_or(0) >= max)
    }
}

impl Store {
    /// Creates the schedule unless one of that name exists and is not stopped; says whether
    /// it created (or replaced a stopped one).
    pub(crate) async fn create_schedule(&self, new: &NewSchedule) -> Result<bool, StoreError> {
        dispatch!(self, s => s.create_schedule(new).await)
    }

    pub(crate) async fn schedule(&self, name: &str) -> Result<Option<ScheduleRow>, StoreError> {
        dispatch!(self, s => s.schedule(name).await)
    }

    pub(crate) async fn list_schedules(&self) -> Result<Vec<ScheduleRow>, StoreError> {
        dispatch!(self, s => s.list_schedules().await)
    }

    /// Active schedules of `names` due at `now` (ms).
    pub(crate) async fn due_schedules(
        &self,
        names: &[String],
        now: i64,
    ) -> Result<Vec<ScheduleRow>, StoreError> {
        let names = serde_json::to_string(names).unwrap_or_default();
        dispatch!(self, s => s.due_schedules(&names, now).await)
    }

    /// The earliest due time (ms) of the active schedules of `names`.
    pub(crate) async fn next_schedule_due(
        &self,
        names: &[String],
    ) -> Result<Option<i64>, StoreError> {
        let names = serde_json::to_string(names).unwrap_or_default();
        dispatch!(self, s => s.next_schedule_due(&names).await)
    }

    pub(crate) async fn fire_schedule(&self, fire: &Fire) -> Result<Fired, StoreError> {
        dispatch!(self, s => s.fire_schedule(fire).await)
    }

    /// Sets the status (and next fire) of schedule `name` if its status is one of `from`;
    /// says whether it did.
    pub(crate) async fn set_schedule_status(
        &self,
        name: &str,
        status: &str,
        next: Option<(i64, i64)>,
        from: [&str; 2],
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.set_schedule_status(name, status, next, from).await)
    }
}
