//! Durable notifications: [`RunNotification`], deposited in the store when a run submitted
//! with [`RunOptions::notify`](super::RunOptions::notify) ends, and handed to exactly one
//! drainer by [`TaskRunner::drain_run_notifications`](crate::TaskRunner::drain_run_notifications);
//! taken and pruned the same way on every backend (`notifications_on!`).

use std::time::SystemTime;

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::types::{to_time, RunId, RunStatus};
use super::{Backend, Store, StoreError};

/// A durable run's end, for an agent loop to read before its next model call, from
/// [`TaskRunner::drain_run_notifications`](crate::TaskRunner::drain_run_notifications).
///
/// The durable counterpart of [`Notification`](crate::Notification): it lives in the store
/// (it survives restarts) and whichever process drains first gets it, once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunNotification {
    /// The run.
    pub run_id: RunId,
    /// Its call id, if submitted with one: the model's tool call this answers.
    pub call_id: Option<String>,
    /// Its definition's name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// How it ended: `Completed`, `Failed` or `Cancelled`.
    pub status: RunStatus,
    /// Its output (JSON; a string output as the bare string) or why it failed, cut to the
    /// runner's [summary length](crate::TaskRunnerBuilder::summary_len).
    pub summary: String,
    /// Whether `summary` was cut (the whole output is in
    /// [`run_info`](crate::TaskRunner::run_info) until the run is pruned).
    pub truncated: bool,
    /// When it ended.
    pub finished_at: SystemTime,
}

/// A notification as stored: the whole text, not yet cut.
pub(crate) struct StoredNotification {
    pub(crate) run_id: RunId,
    pub(crate) call_id: Option<String>,
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) status: RunStatus,
    pub(crate) text: String,
    pub(crate) finished_at: SystemTime,
}

pub(crate) fn stored<'r, R>(row: &'r R) -> Result<StoredNotification, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    Ok(StoredNotification {
        run_id: RunId::from_i64(row.try_get("run_id")?),
        call_id: row.try_get("call_id")?,
        name: row.try_get("name")?,
        queue: row.try_get("queue")?,
        status: RunStatus::from_db(&status, 0, 0, false),
        text: row.try_get("text")?,
        finished_at: to_time(row.try_get("finished_at")?),
    })
}

impl Store {
    /// Deletes and returns up to `max` undrained notifications, oldest first, in one
    /// transaction: a notification is returned to exactly one caller, across processes.
    pub(crate) async fn take_notifications(
        &self,
        max: i64,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        dispatch!(self, s => s.take_notifications(max).await)
    }

    /// Deletes undrained notifications of runs that ended more than `max_age_ms` ago.
    pub(crate) async fn prune_notifications(&self, max_age_ms: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.prune_notifications(max_age_ms).await)
    }
}

/// Deletes and returns up to `$1` notifications, oldest first; `$lock` is how the backend
/// keeps two drainers from taking the same rows.
macro_rules! take_notifications {
    ($lock:literal) => {
        concat!(
            "DELETE FROM taskrunner_notifications WHERE id IN \
               (SELECT id FROM taskrunner_notifications ORDER BY id LIMIT $1",
            $lock,
            ") RETURNING id, run_id, call_id, name, queue, status, text, finished_at"
        )
    };
}
pub(crate) use take_notifications;

/// Deletes the notifications that ended more than `$1` ms before `$now`.
macro_rules! prune_notifications {
    ($now:literal) => {
        concat!(
            "DELETE FROM taskrunner_notifications WHERE finished_at < ",
            $now,
            " - $1"
        )
    };
}
pub(crate) use prune_notifications;

/// The durable notifications of store `$store` (a [`Dialect`](super::dialect::Dialect)):
/// taken (deleted and returned) in one statement, so each goes to one drainer.
macro_rules! notifications_on {
    ($store:ty) => {
        impl $store {
            pub(crate) async fn prune_notifications(
                &self,
                max_age_ms: i64,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let mut one = self.one().await?;
                let done = $crate::store::dialect::bind_now!(
                    self.bound_now(),
                    sqlx::query(<Self as $crate::store::dialect::Dialect>::PRUNE_NOTIFICATIONS)
                        .bind(max_age_ms)
                )
                .execute(&mut *one)
                .await
                .map_err(|e| self.error(e))?;
                self.done(one).await?;
                Ok(done.rows_affected())
            }

            pub(crate) async fn take_notifications(
                &self,
                max: i64,
            ) -> Result<
                Vec<$crate::store::notifications::StoredNotification>,
                $crate::store::StoreError,
            > {
                use $crate::store::dialect::Dialect as _;
                let mut one = self.one().await?;
                let rows =
                    sqlx::query(<Self as $crate::store::dialect::Dialect>::TAKE_NOTIFICATIONS)
                        .bind(max)
                        .fetch_all(&mut *one)
                        .await
                        .map_err(|e| self.error(e))?;
                self.done(one).await?;
                let mut taken: Vec<(i64, $crate::store::notifications::StoredNotification)> = rows
                    .iter()
                    .map(|row| {
                        Ok((
                            sqlx::Row::try_get(row, "id")?,
                            $crate::store::notifications::stored(row)?,
                        ))
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(|e| self.error(e))?;
                taken.sort_by_key(|(id, _)| *id);
                Ok(taken.into_iter().map(|(_, n)| n).collect())
            }
        }
    };
}
pub(crate) use notifications_on;
