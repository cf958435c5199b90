//! Managing runs, written once for every backend (`manage_on!`, expanded by each backend's
//! `dialect.rs`): recovery of expired leases, cancel, retention, and reading a run; and the
//! columns a submitted run binds (`bind_new_run!`). What differs per backend is a
//! [`Dialect`](super::Dialect) constant (`RESCUE`, `PRUNE_BY_AGE`, `CANCEL_PENDING`,
//! `CANCEL_RUNNING`) and how it writes ([`Dialect::one`](super::Dialect::one): SQLite's one
//! writer, PostgreSQL's autocommit).

/// Puts back the runs whose lease expired at `$now` and whose owner is not `$1` (by
/// `$distinct`, the backend's null-safe "differs"), a recovery each, or cancels those whose
/// cancel was asked.
macro_rules! rescue {
    ($now:literal, $distinct:literal) => {
        concat!(
            "UPDATE taskrunner_runs SET \
               status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, \
               error = CASE WHEN cancel_requested THEN 'cancelled' ELSE error END, \
               error_kind = CASE WHEN cancel_requested THEN 'cancelled' ELSE error_kind END, \
               finished_at = CASE WHEN cancel_requested THEN ",
            $now,
            " ELSE NULL END, \
               recoveries = recoveries + CASE WHEN cancel_requested THEN 0 ELSE 1 END, \
               lease_owner = NULL, lease_expires_at = NULL \
             WHERE status = 'running' AND lease_expires_at <= ",
            $now,
            " AND lease_owner ",
            $distinct,
            " $1"
        )
    };
}
pub(crate) use rescue;

/// Deletes up to `$2` runs that finished more than `$1` ms before `$now`.
macro_rules! prune_by_age {
    ($now:literal) => {
        concat!(
            "DELETE FROM taskrunner_runs WHERE id IN (SELECT id FROM taskrunner_runs \
             WHERE finished_at IS NOT NULL AND finished_at < ",
            $now,
            " - $1 LIMIT $2)"
        )
    };
}
pub(crate) use prune_by_age;

/// Deletes up to `$1` finished runs past the newest `$2`.
pub(crate) const PRUNE_BY_COUNT: &str = "DELETE FROM taskrunner_runs WHERE id IN \
     (SELECT id FROM taskrunner_runs WHERE finished_at IS NOT NULL \
      ORDER BY finished_at DESC, id DESC LIMIT $1 OFFSET $2)";

/// A run's outcome columns, as `row::outcome` reads them.
pub(crate) const OUTCOME: &str =
    "SELECT status, output, error, error_kind FROM taskrunner_runs WHERE id = $1";

/// The start of a submitted run's insert, the same on every backend: the columns
/// `bind_new_run!` binds, then due, created and the cost estimate.
macro_rules! insert_new_run {
    () => {
        "INSERT INTO taskrunner_runs (name, queue, priority, input, max_attempts, call_id, \
         dedup_key, notify, scheduled_at, created_at, cost) "
    };
}
pub(crate) use insert_new_run;

/// A submitted run's insert does nothing while another unfinished run holds its dedup key.
macro_rules! unless_key_held {
    () => {
        " ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL \
         AND status IN ('pending', 'running') DO NOTHING"
    };
}
pub(crate) use unless_key_held;

/// Binds a submitted run's columns, in the order every backend's insert takes them:
/// name, queue, priority, input, max attempts, call id, dedup key, notify.
macro_rules! bind_new_run {
    ($query:expr, $run:expr) => {{
        let run = $run;
        $query
            .bind(&run.name)
            .bind(&run.queue)
            .bind(run.priority)
            .bind(&run.input)
            .bind(run.max_attempts)
            .bind(&run.call_id)
            .bind(&run.dedup_key)
            .bind(run.notify)
    }};
}
pub(crate) use bind_new_run;

/// Puts failed or cancelled run `$1` back to pending, due at `$now`, waiting for nothing
/// (a run cancelled while it waited is claimable, in priority order; same id, its attempts
/// go on, with its retries again); returns its queue.
macro_rules! retry_run {
    ($now:literal) => {
        concat!(
            "UPDATE taskrunner_runs SET status = 'pending', \
             error = NULL, error_kind = NULL, output = NULL, finished_at = NULL, \
             cancel_requested = FALSE, lease_owner = NULL, lease_expires_at = NULL, \
             wait_kind = NULL, wait_signal = NULL, wait_children = 0, scheduled_at = ",
            $now,
            ", max_attempts = attempts + max_attempts \
             WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING queue"
        )
    };
}
pub(crate) use retry_run;

/// A manual fire of durable schedule `$1`: a run of its definition on its input, tagged
/// with the schedule, at `$now` (`$now_text`: the same as text); returns its id and queue.
macro_rules! trigger_schedule {
    ($now:literal, $now_text:literal) => {
        concat!(
            "INSERT INTO taskrunner_runs (name, queue, priority, input, \
             max_attempts, schedule, call_id, scheduled_at, created_at) \
             SELECT def_name, queue, priority, input, max_attempts, name, name || '@manual-' || ",
            $now_text,
            ", ",
            $now,
            ", ",
            $now,
            " FROM taskrunner_schedules WHERE name = $1 RETURNING id, queue"
        )
    };
}
pub(crate) use trigger_schedule;

/// Recovery, cancel, retention and reading runs on store `$store` (a
/// [`Dialect`](super::Dialect)).
macro_rules! manage_on {
    ($store:ty) => {
        impl $store {
            /// Puts back the runs whose lease expired (all, or all but `except`'s: a live
            /// process never takes its own runs), a recovery each (not an attempt: the claim
            /// that takes it next fails it past its definition's `max_recoveries`), or
            /// cancels those whose cancel was asked. One statement.
            pub(crate) async fn rescue(
                &self,
                except: Option<&str>,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let mut one = self.one().await?;
                let done = $crate::store::dialect::bind_now!(
                    self.bound_now(),
                    sqlx::query(<Self as $crate::store::dialect::Dialect>::RESCUE).bind(except)
                )
                .execute(&mut *one)
                .await
                .map_err(|e| self.error(e))?;
                self.done(one).await?;
                Ok(done.rows_affected())
            }

            /// Cancels run `id` (at once if pending, by a stored intent, told to its
            /// process where the backend can, if running) and the unfinished runs under it,
            /// in one transaction.
            pub(crate) async fn cancel(
                &self,
                id: $crate::store::RunId,
            ) -> Result<$crate::store::types::Cancelled, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect;
                use $crate::store::types::CancelFound;
                let db = |e| self.error(e);
                let mut tx = self.begin_write().await?;
                // Under READ COMMITTED a run parking between the two statements below
                // would be missed by both: its row is locked first (and its tree's, in the
                // order a child's end takes them).
                sqlx::query(<Self as Dialect>::LOCK_RUN)
                    .bind(id.as_i64())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                let pending = $crate::store::dialect::bind_now!(
                    self.bound_now(),
                    sqlx::query(<Self as Dialect>::CANCEL_PENDING).bind(id.as_i64())
                )
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                let found = if pending.rows_affected() == 1 {
                    CancelFound::Cancelled
                } else {
                    let running = sqlx::query(<Self as Dialect>::CANCEL_RUNNING)
                        .bind(id.as_i64())
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    if running.rows_affected() == 1 {
                        CancelFound::Requested
                    } else {
                        CancelFound::Nothing
                    }
                };
                let tree = if found == CancelFound::Nothing {
                    Vec::new()
                } else {
                    self.cancel_tree(&mut tx, id).await?
                };
                tx.commit().await.map_err(db)?;
                Ok((found, tree))
            }

            /// Deletes finished runs older than `max_age_ms` or past the newest `keep`,
            /// `batch` of each kind a write, until a write deletes less than a batch.
            pub(crate) async fn prune(
                &self,
                max_age_ms: i64,
                keep: u64,
                batch: i64,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect;
                let db = |e| self.error(e);
                let mut total = 0;
                loop {
                    let mut one = self.one().await?;
                    let by_age = $crate::store::dialect::bind_now!(
                        self.bound_now(),
                        sqlx::query(<Self as Dialect>::PRUNE_BY_AGE)
                            .bind(max_age_ms)
                            .bind(batch)
                    )
                    .execute(&mut *one)
                    .await
                    .map_err(db)?
                    .rows_affected();
                    let by_count = sqlx::query($crate::store::dialect::runs::PRUNE_BY_COUNT)
                        .bind(batch)
                        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
                        .execute(&mut *one)
                        .await
                        .map_err(db)?
                        .rows_affected();
                    self.done(one).await?;
                    total += by_age + by_count;
                    if by_age < batch as u64 && by_count < batch as u64 {
                        return Ok(total);
                    }
                }
            }

            /// Puts a failed or cancelled run back to pending, in one statement, and tells
            /// its queue where the backend can (a lost notification only delays the run
            /// until the next poll): the queue, or `None` if it has not ended that way.
            pub(crate) async fn retry_run(
                &self,
                id: $crate::store::RunId,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect;
                let mut one = self.one().await?;
                let queue: Option<String> = $crate::store::dialect::bind_now!(
                    self.bound_now(),
                    sqlx::query_scalar(<Self as Dialect>::RETRY_RUN).bind(id.as_i64())
                )
                .fetch_optional(&mut *one)
                .await
                .map_err(|e| self.error(e))?;
                self.done(one).await?;
                if let (Some(queue), Some(notify)) = (&queue, <Self as Dialect>::NOTIFY_QUEUE) {
                    let _ = sqlx::query(notify).bind(queue).execute(self.reads()).await;
                }
                Ok(queue)
            }

            /// Submits a run of durable schedule `name` now, in one statement, and tells its
            /// queue where the backend can: its id and queue, `None` if there is no such
            /// schedule.
            pub(crate) async fn trigger_schedule(
                &self,
                name: &str,
            ) -> Result<Option<($crate::store::RunId, String)>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect;
                let mut one = self.one().await?;
                let row: Option<(i64, String)> = $crate::store::dialect::bind_now!(
                    self.bound_now(),
                    sqlx::query_as(<Self as Dialect>::TRIGGER_SCHEDULE).bind(name)
                )
                .fetch_optional(&mut *one)
                .await
                .map_err(|e| self.error(e))?;
                self.done(one).await?;
                if let (Some((_, queue)), Some(notify)) = (&row, <Self as Dialect>::NOTIFY_QUEUE) {
                    let _ = sqlx::query(notify).bind(queue).execute(self.reads()).await;
                }
                Ok(row.map(|(id, queue)| ($crate::store::RunId::from_i64(id), queue)))
            }

            pub(crate) async fn run_info(
                &self,
                id: $crate::store::RunId,
            ) -> Result<Option<$crate::store::RunInfo>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::row::info_columns!(),
                    " FROM taskrunner_runs WHERE id = $1"
                ))
                .bind(id.as_i64())
                .fetch_optional(self.reads())
                .await
                .map_err(|e| self.error(e))?;
                // The store's clock: the one bound to statements (SQLite's file clock), else
                // this process's.
                let now = self.bound_now().unwrap_or_else(|| self.process_now());
                row.map(|row| $crate::store::row::info(&row, now))
                    .transpose()
                    .map_err(|e| self.error(e))
            }

            pub(crate) async fn outcome(
                &self,
                id: $crate::store::RunId,
            ) -> Result<Option<$crate::store::types::Outcome>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let row = sqlx::query($crate::store::dialect::runs::OUTCOME)
                    .bind(id.as_i64())
                    .fetch_optional(self.reads())
                    .await
                    .map_err(|e| self.error(e))?;
                row.map(|row| $crate::store::row::outcome(&row))
                    .transpose()
                    .map_err(|e| self.error(e))
            }
        }
    };
}
pub(crate) use manage_on;
