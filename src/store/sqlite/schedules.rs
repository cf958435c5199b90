//! Durable schedules on SQLite: a fire checks and moves `next_fire_at` and inserts its run in
//! one `BEGIN IMMEDIATE` transaction.

use sqlx::Row as _;

use super::{db, SqliteStore};
use crate::store::schedules::{
    schedule_columns, schedule_row, Fire, Fired, NewSchedule, ScheduleRow,
};
use crate::store::types::RunId;
use crate::store::StoreError;
use crate::Overlap;

impl SqliteStore {
    pub(crate) async fn create_schedule(&self, new: &NewSchedule) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "INSERT INTO taskrunner_schedules (name, def_name, queue, priority, max_attempts, \
               input, spec, origin, status, next_fire_at, due_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $11) \
             ON CONFLICT (name) DO UPDATE SET def_name = excluded.def_name, \
               queue = excluded.queue, priority = excluded.priority, \
               max_attempts = excluded.max_attempts, input = excluded.input, \
               spec = excluded.spec, origin = excluded.origin, status = 'active', \
               next_fire_at = excluded.next_fire_at, due_at = excluded.due_at, \
               last_fire_at = NULL, last_run_id = NULL, runs = 0, failures = 0, skipped = 0, \
               last_error = NULL, created_at = excluded.created_at \
             WHERE taskrunner_schedules.status = 'stopped'",
        )
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
        .bind(self.now())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn schedule(&self, name: &str) -> Result<Option<ScheduleRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM taskrunner_schedules WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(db)?;
        row.map(|row| schedule_row(&row)).transpose().map_err(db)
    }

    pub(crate) async fn list_schedules(&self) -> Result<Vec<ScheduleRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM taskrunner_schedules ORDER BY name"
        ))
        .fetch_all(&self.inner.readers)
        .await
        .map_err(db)?;
        rows.iter()
            .map(schedule_row)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    pub(crate) async fn due_schedules(
        &self,
        names: &str,
        now: i64,
    ) -> Result<Vec<ScheduleRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM taskrunner_schedules WHERE status = 'active' AND due_at <= $1 \
              AND def_name IN (SELECT value FROM json_each($2)) ORDER BY due_at"
        ))
        .bind(now)
        .bind(names)
        .fetch_all(&self.inner.readers)
        .await
        .map_err(db)?;
        rows.iter()
            .map(schedule_row)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    pub(crate) async fn next_schedule_due(&self, names: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT min(due_at) FROM taskrunner_schedules WHERE status = 'active' \
             AND def_name IN (SELECT value FROM json_each($1))",
        )
        .bind(names)
        .fetch_one(&self.inner.readers)
        .await
        .map_err(db)
    }

    pub(crate) async fn fire_schedule(&self, fire: &Fire) -> Result<Fired, StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "SELECT status, next_fire_at, last_run_id, runs, def_name, queue, priority, \
               max_attempts, input FROM taskrunner_schedules WHERE name = $1",
        )
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
        let now = self.now();
        let previous: Option<String> = match last_run {
            Some(id) => sqlx::query_scalar("SELECT status FROM taskrunner_runs WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?,
            None => None,
        };
        let unfinished = matches!(previous.as_deref(), Some("pending" | "running"));
        let (next, due) = fire.next.map_or((None, None), |(n, d)| (Some(n), Some(d)));
        if unfinished {
            match fire.overlap {
                Overlap::Skip | Overlap::BufferOne => {
                    sqlx::query(
                        "UPDATE taskrunner_schedules SET next_fire_at = $2, due_at = $3, \
                         skipped = skipped + 1 + $4, \
                         status = CASE WHEN $2 IS NULL THEN 'stopped' ELSE status END \
                         WHERE name = $1",
                    )
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
                    sqlx::query(
                        "UPDATE taskrunner_runs SET status = 'cancelled', error = 'cancelled', \
                         error_kind = 'cancelled', finished_at = $2 \
                         WHERE id = $1 AND status = 'pending'",
                    )
                    .bind(last_run)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                    sqlx::query(
                        "UPDATE taskrunner_runs SET cancel_requested = TRUE \
                         WHERE id = $1 AND status = 'running'",
                    )
                    .bind(last_run)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                Overlap::Allow => {}
            }
        }
        let def_name: String = row.try_get("def_name").map_err(db)?;
        let queue: String = row.try_get("queue").map_err(db)?;
        let priority: i32 = row.try_get("priority").map_err(db)?;
        let max_attempts: i32 = row.try_get("max_attempts").map_err(db)?;
        let input: String = row.try_get("input").map_err(db)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO taskrunner_runs (name, queue, priority, input, max_attempts, schedule, \
               call_id, scheduled_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $8, $7, $7) RETURNING id",
        )
        .bind(&def_name)
        .bind(&queue)
        .bind(priority)
        .bind(&input)
        .bind(max_attempts)
        .bind(&fire.name)
        .bind(now)
        .bind(fire.call_id())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let stop = fire.stops_after(runs);
        sqlx::query(
            "UPDATE taskrunner_schedules SET next_fire_at = $2, due_at = $3, last_fire_at = $4, \
             last_run_id = $5, runs = runs + 1, skipped = skipped + $6, \
             status = CASE WHEN $7 THEN 'stopped' ELSE status END WHERE name = $1",
        )
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
        tx.commit().await.map_err(db)?;
        Ok(Fired::Run(RunId::from_i64(id)))
    }

    pub(crate) async fn set_schedule_status(
        &self,
        name: &str,
        status: &str,
        next: Option<(i64, i64)>,
        from: [&str; 2],
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE taskrunner_schedules SET status = $2, next_fire_at = $3, due_at = $4 \
             WHERE name = $1 AND status IN ($5, $6)",
        )
        .bind(name)
        .bind(status)
        .bind(next.map(|(n, _)| n))
        .bind(next.map(|(_, d)| d))
        .bind(from[0])
        .bind(from[1])
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
}
