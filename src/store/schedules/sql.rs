//! The statements of durable schedules, the same on every backend but for the text of its
//! [`Dialect`](crate::store::dialect::Dialect): `schedules_on!` expands them on a store.

/// A fire that is skipped: the next fire moves on, the skip is counted (`$4` occurrences
/// coalesced), and the schedule stops when there is no next.
pub(crate) const SKIP_FIRE: &str = "UPDATE taskrunner_schedules SET next_fire_at = $2, \
     due_at = $3, skipped = skipped + 1 + $4, \
     status = CASE WHEN CAST($2 AS BIGINT) IS NULL THEN 'stopped' ELSE status END \
     WHERE name = $1";

/// A fire that submitted run `$5`.
pub(crate) const RECORD_FIRE: &str = "UPDATE taskrunner_schedules SET next_fire_at = $2, \
     due_at = $3, last_fire_at = $4, last_run_id = $5, runs = runs + 1, \
     skipped = skipped + $6, status = CASE WHEN $7 THEN 'stopped' ELSE status END \
     WHERE name = $1";

/// Sets a schedule's status and next fire, if its status is `$5` or `$6`.
pub(crate) const SET_STATUS: &str = "UPDATE taskrunner_schedules SET status = $2, \
     next_fire_at = $3, due_at = $4 WHERE name = $1 AND status IN ($5, $6)";

/// A schedule's row, by name.
pub(crate) const SCHEDULE: &str = concat!(
    "SELECT ",
    super::schedule_columns!(),
    " FROM taskrunner_schedules WHERE name = $1"
);

/// Every schedule's row, by name.
pub(crate) const SCHEDULES: &str = concat!(
    "SELECT ",
    super::schedule_columns!(),
    " FROM taskrunner_schedules ORDER BY name"
);

/// Creates schedule `$1` (`$2` definition, `$3` queue, `$4` priority, `$5` max attempts,
/// `$6` input, `$7` spec, `$8` origin, `$9` next fire, `$10` due) at `$now`, unless one of
/// that name exists and is not stopped.
macro_rules! create_schedule {
    ($now:literal) => {
        concat!(
            "INSERT INTO taskrunner_schedules (name, def_name, queue, priority, max_attempts, \
               input, spec, origin, status, next_fire_at, due_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, ",
            $now,
            ") ON CONFLICT (name) DO UPDATE SET def_name = excluded.def_name, \
               queue = excluded.queue, priority = excluded.priority, \
               max_attempts = excluded.max_attempts, input = excluded.input, \
               spec = excluded.spec, origin = excluded.origin, status = 'active', \
               next_fire_at = excluded.next_fire_at, due_at = excluded.due_at, \
               last_fire_at = NULL, last_run_id = NULL, runs = 0, failures = 0, skipped = 0, \
               last_error = NULL, created_at = excluded.created_at \
             WHERE taskrunner_schedules.status = 'stopped'"
        )
    };
}
pub(crate) use create_schedule;

/// The active schedules due at `$1` of the names `$names` lists (from JSON array `$2`).
macro_rules! due_schedules {
    ($names:literal) => {
        concat!(
            "SELECT ",
            $crate::store::schedules::schedule_columns!(),
            " FROM taskrunner_schedules WHERE status = 'active' AND due_at <= $1 \
              AND def_name IN (",
            $names,
            ") ORDER BY due_at"
        )
    };
}
pub(crate) use due_schedules;

/// The earliest due time of the active schedules of the names `$names` lists (from JSON
/// array `$1`).
macro_rules! next_schedule_due {
    ($names:literal) => {
        concat!(
            "SELECT min(due_at) FROM taskrunner_schedules WHERE status = 'active' \
             AND def_name IN (",
            $names,
            ")"
        )
    };
}
pub(crate) use next_schedule_due;

/// Reads schedule `$1` for a fire, `$lock` holding it against another fire until commit.
macro_rules! lock_schedule {
    ($lock:literal) => {
        concat!(
            "SELECT status, next_fire_at, last_run_id, runs, def_name, queue, priority, \
               max_attempts, input FROM taskrunner_schedules WHERE name = $1",
            $lock
        )
    };
}
pub(crate) use lock_schedule;

/// Cancels run `$1` if it is pending, finished at `$now`.
macro_rules! cancel_pending {
    ($now:literal) => {
        concat!(
            "UPDATE taskrunner_runs SET status = 'cancelled', error = 'cancelled', \
             error_kind = 'cancelled', finished_at = ",
            $now,
            " WHERE id = $1 AND status = 'pending'"
        )
    };
}
pub(crate) use cancel_pending;

/// Inserts the run of a fire (`$1` definition, `$2` queue, `$3` priority, `$4` input,
/// `$5` max attempts, `$6` schedule, `$7` call id), due and created at `$now`.
macro_rules! insert_scheduled_run {
    ($now:literal) => {
        concat!(
            "INSERT INTO taskrunner_runs (name, queue, priority, input, max_attempts, schedule, \
               call_id, scheduled_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, ",
            $now,
            ", ",
            $now,
            ") RETURNING id"
        )
    };
}
pub(crate) use insert_scheduled_run;

/// The durable schedules of store `$store` (a [`Dialect`](crate::store::dialect::Dialect)). A fire
/// checks and moves `next_fire_at` and inserts its run in one transaction, the schedule's
/// row locked (`BEGIN IMMEDIATE` on SQLite, `FOR UPDATE` on PostgreSQL), so a process that
/// fires it second sees the fire done and does nothing.
macro_rules! schedules_on {
    ($store:ty) => {
        impl $store {
            pub(crate) async fn create_schedule(
                &self,
                new: &$crate::store::NewSchedule,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let mut one = self.one().await?;
                let done = $crate::store::dialect::bind_now!(
                    self.bound_now(),
                    sqlx::query(<Self as $crate::store::dialect::Dialect>::CREATE_SCHEDULE)
                        .bind(&new.name)
                        .bind(&new.def_name)
                        .bind(&new.queue)
                        .bind(new.priority)
                        .bind(new.max_attempts)
                        .bind(&new.input)
                        .bind(&new.spec)
                        .bind(new.origin)
                        .bind(new.next_fire_at)
                        .bind(new.due_at)
                )
                .execute(&mut *one)
                .await
                .map_err(|e| self.error(e))?;
                self.done(one).await?;
                Ok(done.rows_affected() == 1)
            }

            pub(crate) async fn schedule(
                &self,
                name: &str,
            ) -> Result<Option<$crate::store::ScheduleRow>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let row = sqlx::query($crate::store::schedules::sql::SCHEDULE)
                    .bind(name)
                    .fetch_optional(self.reads())
                    .await
                    .map_err(|e| self.error(e))?;
                row.map(|row| $crate::store::schedules::schedule_row(&row))
                    .transpose()
                    .map_err(|e| self.error(e))
            }

            pub(crate) async fn list_schedules(
                &self,
            ) -> Result<Vec<$crate::store::ScheduleRow>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let rows = sqlx::query($crate::store::schedules::sql::SCHEDULES)
                    .fetch_all(self.reads())
                    .await
                    .map_err(|e| self.error(e))?;
                $crate::store::schedules::schedule_rows(&rows).map_err(|e| self.error(e))
            }

            pub(crate) async fn due_schedules(
                &self,
                names: &str,
                now: i64,
            ) -> Result<Vec<$crate::store::ScheduleRow>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let rows = sqlx::query(<Self as $crate::store::dialect::Dialect>::DUE_SCHEDULES)
                    .bind(now)
                    .bind(names)
                    .fetch_all(self.reads())
                    .await
                    .map_err(|e| self.error(e))?;
                $crate::store::schedules::schedule_rows(&rows).map_err(|e| self.error(e))
            }

            pub(crate) async fn next_schedule_due(
                &self,
                names: &str,
            ) -> Result<Option<i64>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                sqlx::query_scalar(<Self as $crate::store::dialect::Dialect>::NEXT_SCHEDULE_DUE)
                    .bind(names)
                    .fetch_one(self.reads())
                    .await
                    .map_err(|e| self.error(e))
            }

            pub(crate) async fn fire_schedule(
                &self,
                fire: &$crate::store::Fire,
            ) -> Result<$crate::store::Fired, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::dialect::Dialect;
                use $crate::store::Fired;
                use $crate::Overlap;
                let db = |e| self.error(e);
                let mut tx = <Self as Dialect>::begin_write(self).await?;
                let now = self.bound_now();
                let row = sqlx::query(<Self as Dialect>::LOCK_SCHEDULE)
                    .bind(&fire.name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                let Some(row) = row else {
                    return Ok(Fired::Lost);
                };
                let status: String = row.try_get("status").map_err(db)?;
                let next_fire_at: Option<i64> = row.try_get("next_fire_at").map_err(db)?;
                if status != "active" || next_fire_at != Some(fire.expected) {
                    return Ok(Fired::Lost);
                }
                let last_run: Option<i64> = row.try_get("last_run_id").map_err(db)?;
                let runs: i64 = row.try_get("runs").map_err(db)?;
                let previous: Option<String> = match last_run {
                    Some(id) => {
                        sqlx::query_scalar("SELECT status FROM taskrunner_runs WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db)?
                    }
                    None => None,
                };
                let unfinished = matches!(previous.as_deref(), Some("pending" | "running"));
                let (next, due) = fire.next.map_or((None, None), |(n, d)| (Some(n), Some(d)));
                if unfinished {
                    match fire.overlap {
                        Overlap::Skip | Overlap::BufferOne => {
                            sqlx::query($crate::store::schedules::sql::SKIP_FIRE)
                                .bind(&fire.name)
                                .bind(next)
                                .bind(due)
                                .bind(fire.coalesced)
                                .execute(&mut *tx)
                                .await
                                .map_err(db)?;
                            tx.commit().await.map_err(db)?;
                            return Ok(Fired::Skipped);
                        }
                        Overlap::CancelPrevious => {
                            $crate::store::dialect::bind_now!(
                                now,
                                sqlx::query(<Self as Dialect>::CANCEL_PENDING).bind(last_run)
                            )
                            .execute(&mut *tx)
                            .await
                            .map_err(db)?;
                            sqlx::query(<Self as Dialect>::CANCEL_RUNNING)
                                .bind(last_run)
                                .execute(&mut *tx)
                                .await
                                .map_err(db)?;
                        }
                        Overlap::Allow => {}
                    }
                }
                let queue: String = row.try_get("queue").map_err(db)?;
                let id: i64 = $crate::store::dialect::bind_now!(
                    now,
                    sqlx::query_scalar(<Self as Dialect>::INSERT_SCHEDULED_RUN)
                        .bind(row.try_get::<String, _>("def_name").map_err(db)?)
                        .bind(&queue)
                        .bind(row.try_get::<i32, _>("priority").map_err(db)?)
                        .bind(row.try_get::<String, _>("input").map_err(db)?)
                        .bind(row.try_get::<i32, _>("max_attempts").map_err(db)?)
                        .bind(&fire.name)
                        .bind(fire.call_id())
                )
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
                let stop = fire.stops_after(runs);
                sqlx::query($crate::store::schedules::sql::RECORD_FIRE)
                    .bind(&fire.name)
                    .bind(if stop { None } else { next })
                    .bind(if stop { None } else { due })
                    .bind(fire.fire_at)
                    .bind(id)
                    .bind(fire.coalesced)
                    .bind(stop)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                if let Some(notify) = <Self as Dialect>::NOTIFY_QUEUE {
                    sqlx::query(notify)
                        .bind(&queue)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                tx.commit().await.map_err(db)?;
                Ok(Fired::Run($crate::store::RunId::from_i64(id)))
            }

            pub(crate) async fn set_schedule_status(
                &self,
                name: &str,
                status: &str,
                next: Option<(i64, i64)>,
                from: [&str; 2],
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let mut one = self.one().await?;
                let done = sqlx::query($crate::store::schedules::sql::SET_STATUS)
                    .bind(name)
                    .bind(status)
                    .bind(next.map(|(n, _)| n))
                    .bind(next.map(|(_, d)| d))
                    .bind(from[0])
                    .bind(from[1])
                    .execute(&mut *one)
                    .await
                    .map_err(|e| self.error(e))?;
                self.done(one).await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}
pub(crate) use schedules_on;
