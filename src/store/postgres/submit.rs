//! Submitting runs to PostgreSQL: one in one statement, several (or one whose dedup key is
//! held) through the batch.

use super::{PgStore, RUNS_CHANNEL};
use crate::store::dialect::runs::{bind_new_run, insert_new_run, unless_key_held};
use crate::store::types::{NewRun, RunId};
use crate::store::StoreError;

impl PgStore {
    pub(crate) async fn submit(&self, runs: &[NewRun]) -> Result<Vec<RunId>, StoreError> {
        if let [run] = runs {
            if let Some(id) = self.submit_one(run).await? {
                return Ok(vec![id]);
            }
        }
        self.submit_batch(runs).await
    }

    /// One run in one statement (one round trip, its own transaction), notifying its queue;
    /// `None` if its dedup key is held, for the batch path to resolve.
    async fn submit_one(&self, run: &NewRun) -> Result<Option<RunId>, StoreError> {
        let id: Option<i64> = bind_new_run!(
            sqlx::query_scalar(concat!(
                "WITH ins AS (",
                insert_new_run!(),
                "SELECT $1, $2, $3, $4, $5, $6, $7, $8, t.now + $9, t.now, $11 \
                 FROM (SELECT taskrunner_now_ms() AS now) AS t",
                unless_key_held!(),
                " RETURNING id, queue) \
                 SELECT id FROM ins, LATERAL (SELECT pg_notify($10, ins.queue)) AS n"
            )),
            run
        )
        .bind(run.delay_ms)
        .bind(RUNS_CHANNEL)
        .bind(run.cost)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(id.map(RunId::from_i64))
    }
}
