//! The PgStore's dashboard statements (see `store/dashboard.rs`).

use super::PgStore;
use crate::store::dashboard::{dashboard_statements, RETRY_SQL};

/// `TRIGGER_SQL` on the database's clock.
const PG_TRIGGER_SQL: &str = "INSERT INTO taskrunner_runs (name, queue, priority, input, \
     max_attempts, schedule, call_id, scheduled_at, created_at) \
     SELECT def_name, queue, priority, input, max_attempts, name, \
       name || '@manual-' || taskrunner_now_ms()::text, taskrunner_now_ms(), taskrunner_now_ms() \
     FROM taskrunner_schedules WHERE name = $1 RETURNING id, queue";
use crate::store::{QueueOverview, RunFilter, RunId, RunInfo, StoreError};

dashboard_statements!(sqlx::Postgres, ("strpos(input, ", ") > 0"));

impl PgStore {
    pub(crate) async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunInfo>, StoreError> {
        list_runs_on(&self.inner.pool, filter, self.process_now())
            .await
            .map_err(|e| self.db(e))
    }

    pub(crate) async fn count_runs(&self, filter: &RunFilter, cap: u64) -> Result<u64, StoreError> {
        count_runs_on(&self.inner.pool, filter, cap, self.process_now())
            .await
            .map_err(|e| self.db(e))
    }

    pub(crate) async fn queue_overview(&self, cap: u64) -> Result<Vec<QueueOverview>, StoreError> {
        let pool = &self.inner.pool;
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        for queue in queues_on(pool).await.map_err(|e| self.db(e))? {
            out.push(
                queue_overview_on(pool, &queue, cap, self.process_now())
                    .await
                    .map_err(|e| self.db(e))?,
            );
        }
        Ok(out)
    }

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
