//! The PgStore's dashboard statements (see `store/dashboard.rs`).

use super::PgStore;
use crate::store::dashboard::{dashboard_statements, RETRY_SQL};

/// `TRIGGER_SQL` on the database's clock.
const PG_TRIGGER_SQL: &str = "INSERT INTO taskrunner_runs (name, queue, priority, input, \
     max_attempts, schedule, call_id, scheduled_at, created_at) \
     SELECT def_name, queue, priority, input, max_attempts, name, \
       name || '@manual-' || taskrunner_now_ms()::text, taskrunner_now_ms(), taskrunner_now_ms() \
     FROM taskrunner_schedules WHERE name = $1 RETURNING id, queue";
use crate::store::{RunId, StoreError};

dashboard_statements!(PgStore, sqlx::Postgres, ("strpos(input, ", ") > 0"));

impl PgStore {
    pub(crate) async fn trigger_schedule(
        &self,
        name: &str,
    ) -> Result<Option<(RunId, String)>, StoreError> {
        let row: Option<(i64, String)> = sqlx::query_as(PG_TRIGGER_SQL)
            .bind(name)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        if let Some((_, queue)) = &row {
            self.notify_queue(queue).await;
        }
        Ok(row.map(|(id, queue)| (RunId::from_i64(id), queue)))
    }

    async fn notify_queue(&self, queue: &str) {
        // A lost notification only delays the run until the next poll.
        let _ = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(super::RUNS_CHANNEL)
            .bind(queue)
            .execute(&self.inner.pool)
            .await;
    }

    pub(crate) async fn retry_run(&self, id: RunId) -> Result<Option<String>, StoreError> {
        // The database's clock, as the claim reads it.
        let now: i64 = sqlx::query_scalar("SELECT taskrunner_now_ms()")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        let queue: Option<String> = sqlx::query_scalar(RETRY_SQL)
            .bind(id.as_i64())
            .bind(now)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        if let Some(queue) = &queue {
            self.notify_queue(queue).await;
        }
        Ok(queue)
    }
}
