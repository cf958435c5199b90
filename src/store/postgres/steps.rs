//! Durable steps on PostgreSQL: a fenced write holds the run's row (`FOR SHARE`) while it
//! writes, so no claim can take the run in between.

use super::PgStore;
use crate::store::steps::{step_info, StepInfo, StepWrite};
use crate::store::types::RunId;
use crate::store::StoreError;

/// Whether step `name`#`index` of run `run` is stored completed by the claim `token`.
const OWN_STEP: &str = "SELECT count(*) FROM taskrunner_steps WHERE run_id = $1 AND name = $2 \
     AND idx = $3 AND status = 'completed' AND claim_token = $4";

impl PgStore {
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
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(output.map(|o| o.unwrap_or_else(|| "null".to_owned())))
    }

    pub(crate) async fn save_step(&self, step: &StepWrite<'_>) -> Result<bool, StoreError> {
        let written: Option<i32> = sqlx::query_scalar(
            "WITH r AS (SELECT id FROM taskrunner_runs \
               WHERE id = $1 AND claim_token = $2 AND status = 'running' FOR SHARE) \
             INSERT INTO taskrunner_steps (run_id, name, idx, status, output, error, attempts, \
               claim_token, started_at, finished_at) \
             SELECT r.id, $3, $4, $5, $6, $7, 1, $2, taskrunner_now_ms() - $8, taskrunner_now_ms() \
             FROM r \
             ON CONFLICT (run_id, name, idx) DO UPDATE SET status = excluded.status, \
               output = excluded.output, error = excluded.error, \
               attempts = taskrunner_steps.attempts + 1, claim_token = excluded.claim_token, \
               finished_at = excluded.finished_at \
             WHERE taskrunner_steps.status <> 'completed' \
             RETURNING 1",
        )
        .bind(step.run.as_i64())
        .bind(step.token)
        .bind(step.name)
        .bind(step.index)
        .bind(step.status())
        .bind(step.output)
        .bind(step.error)
        .bind(step.elapsed_ms)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        if written.is_some() || step.output.is_none() {
            return Ok(written.is_some());
        }
        // Refused: a completed step is never overwritten. If it is this claim's own (a retry
        // after the answer to its write was lost), the write is done.
        let own: i64 = sqlx::query_scalar(OWN_STEP)
            .bind(step.run.as_i64())
            .bind(step.name)
            .bind(step.index)
            .bind(step.token)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        Ok(own == 1)
    }

    pub(crate) async fn steps(&self, id: RunId) -> Result<Vec<StepInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, idx, status, attempts, started_at, finished_at, output, error \
             FROM taskrunner_steps WHERE run_id = $1 ORDER BY started_at, name, idx",
        )
        .bind(id.as_i64())
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter()
            .map(step_info)
            .collect::<Result<_, _>>()
            .map_err(|e| self.db(e))
    }
}
