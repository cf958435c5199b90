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
                rows.iter()
                    .map($crate::store::schedules::schedule_row)
                    .collect::<Result<_, _>>()
                    .map_err(|e| self.error(e))
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
                rows.iter()
                    .map($crate::store::schedules::schedule_row)
                    .collect::<Result<_, _>>()
                    .map_err(|e| self.error(e))
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
