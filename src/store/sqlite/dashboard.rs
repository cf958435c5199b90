//! The SqliteStore's dashboard statements (see `store/dashboard.rs`).

use super::{db, SqliteStore};
use crate::store::dashboard::{dashboard_statements, RETRY_SQL};
use crate::store::{RunId, StoreError};

/// The statement of a manual fire of a durable schedule: a run of its definition on its
/// input, tagged with the schedule, now.
const TRIGGER_SQL: &str = "INSERT INTO taskrunner_runs (name, queue, priority, input, \
     max_attempts, schedule, call_id, scheduled_at, created_at) \
     SELECT def_name, queue, priority, input, max_attempts, name, name || '@manual-' || $2, $2, $2 \
     FROM taskrunner_schedules WHERE name = $1 RETURNING id, queue";

dashboard_statements!(SqliteStore, sqlx::Sqlite, ("instr(input, ", ") > 0"));

impl SqliteStore {
    pub(crate) async fn trigger_schedule(
        &self,
        name: &str,
    ) -> Result<Option<(RunId, String)>, StoreError> {
        let mut tx = self.write().await?;
        let row: Option<(i64, String)> = sqlx::query_as(TRIGGER_SQL)
            .bind(name)
            .bind(self.now())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(row.map(|(id, queue)| (RunId::from_i64(id), queue)))
    }

    pub(crate) async fn retry_run(&self, id: RunId) -> Result<Option<String>, StoreError> {
        let mut tx = self.write().await?;
        let queue: Option<String> = sqlx::query_scalar(RETRY_SQL)
            .bind(id.as_i64())
            .bind(self.now())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(queue)
    }
}
