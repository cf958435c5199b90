//! Durable schedules: [`TaskRunner::schedule_run`](crate::TaskRunner::schedule_run) keeps a
//! [`Schedule`](crate::Schedule) in the store, and every process that registered its
//! definition fires it, each occurrence once.
//!
//! Here the public types; the [`TaskRunner`](crate::TaskRunner) methods that create and list
//! them in `api`, the loop that fires them in `fire`, their stored form in `stored`.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use super::Durable;
use crate::store::{to_time, RunId, StoreError};
use crate::{ScheduleError, ScheduleInfo};

mod api;
mod fire;
mod stored;
mod trigger;

pub(super) use fire::fire_loop;
use stored::{fire_times, info, rebuild};

/// Why [`TaskRunner::schedule_run`](crate::TaskRunner::schedule_run) could not store a schedule.
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

/// A durable schedule, by name, from
/// [`TaskRunner::schedule_run`](crate::TaskRunner::schedule_run) or
/// [`TaskRunner::durable_schedule`](crate::TaskRunner::durable_schedule): pause, resume, stop
/// and read it from any process that shares the store.
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
    /// [`StoreError::Database`] or [`StoreError::Unavailable`] if the store cannot be written.
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
    /// [`StoreError::Database`] or [`StoreError::Unavailable`] if the store cannot be read or written.
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
    /// [`StoreError::Database`] or [`StoreError::Unavailable`] if the store cannot be written.
    pub async fn stop(&self) -> Result<bool, StoreError> {
        self.durable
            .store
            .set_schedule_status(&self.name, "stopped", None, ["active", "paused"])
            .await
    }

    /// The durable run of its latest fire, if any: await it with
    /// [`run_handle`](crate::TaskRunner::run_handle), or read it with
    /// [`run_info`](crate::TaskRunner::run_info).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] or [`StoreError::Unavailable`] if the store cannot be read.
    pub async fn last_run(&self) -> Result<Option<RunId>, StoreError> {
        let row = self.durable.store.schedule(&self.name).await?;
        Ok(row.and_then(|r| r.last_run_id).map(RunId::from_i64))
    }

    /// The schedule as stored: status, runs, failures, skipped fires, last and next fire
    /// (`last_task` is `None`: its runs are durable runs, listed by
    /// [`list_runs`](crate::TaskRunner::list_runs)). `None` if there is no such schedule.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] or [`StoreError::Unavailable`] if the store cannot be read.
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
