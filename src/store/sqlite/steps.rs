//! Durable steps on SQLite: fenced writes inside `BEGIN IMMEDIATE`.

use super::{db, SqliteStore};
use crate::store::steps::{step_info, StepInfo, StepWrite};
use crate::store::types::RunId;
use crate::store::StoreError;

/// Whether step `name`#`index` of run `run` is stored completed by the claim `token`.
const OWN_STEP: &str = "SELECT count(*) FROM taskrunner_steps WHERE run_id = $1 AND name = $2 \
     AND idx = $3 AND status = 'completed' AND claim_token = $4";

impl SqliteStore {
    pub(crate) async fn load_step(
        &self,
        id: RunId,
        name: &str,
        index: i32,
    ) -> Result<Option<String>, StoreError> {
        let output: Option<Option<String>> = sqlx::query_scalar(
            "SELECT output FROM taskrunner_steps \
             WHERE run_id = $1 AND name = $2 AND idx = $3 AND status = 'completed'",
        )
        .bind(id.as_i64())
        .bind(name)
        .bind(index)
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(db)?;
        Ok(output.map(|o| o.unwrap_or_else(|| "null".to_owned())))
    }

    pub(crate) async fn save_step(&self, step: &StepWrite<'_>) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let now = self.now();
        // The run is checked and the step written in one `BEGIN IMMEDIATE` transaction: no
        // claim can take the run in between.
        let done = sqlx::query(
            "INSERT INTO taskrunner_steps (run_id, name, idx, status, output, error, attempts, \
               claim_token, started_at, finished_at) \
             SELECT $1, $3, $4, $5, $6, $7, 1, $2, $8, $9 \
             WHERE EXISTS (SELECT 1 FROM taskrunner_runs \
               WHERE id = $1 AND claim_token = $2 AND status = 'running') \
             ON CONFLICT (run_id, name, idx) DO UPDATE SET status = excluded.status, \
               output = excluded.output, error = excluded.error, \
               attempts = taskrunner_steps.attempts + 1, claim_token = excluded.claim_token, \
               finished_at = excluded.finished_at \
             WHERE taskrunner_steps.status <> 'completed'",
        )
        .bind(step.run.as_i64())
        .bind(step.token)
        .bind(step.name)
        .bind(step.index)
        .bind(step.status())
        .bind(step.output)
        .bind(step.error)
        .bind(now.saturating_sub(step.elapsed_ms))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let written = done.rows_affected() == 1
            || (step.output.is_some()
                && sqlx::query_scalar::<_, i64>(OWN_STEP)
                    .bind(step.run.as_i64())
                    .bind(step.name)
                    .bind(step.index)
                    .bind(step.token)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?
                    == 1);
        tx.commit().await.map_err(db)?;
        Ok(written)
    }

    pub(crate) async fn steps(&self, id: RunId) -> Result<Vec<StepInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, idx, status, attempts, started_at, finished_at, output, error \
             FROM taskrunner_steps WHERE run_id = $1 ORDER BY started_at, name, idx",
        )
        .bind(id.as_i64())
        .fetch_all(&self.inner.readers)
        .await
        .map_err(db)?;
        rows.iter()
            .map(step_info)
            .collect::<Result<_, _>>()
            .map_err(db)
    }
}
