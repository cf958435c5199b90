//! Submitting runs to SQLite: all in one `BEGIN IMMEDIATE` transaction, a held dedup key
//! resolved to the run holding it.

use super::{db, SqliteStore};
use crate::store::dialect::runs::{bind_new_run, insert_new_run, unless_key_held};
use crate::store::types::{NewRun, RunId};
use crate::store::StoreError;

impl SqliteStore {
    pub(crate) async fn submit(&self, runs: &[NewRun]) -> Result<Vec<RunId>, StoreError> {
        let mut tx = self.write().await?;
        let now = self.now();
        let mut ids = Vec::with_capacity(runs.len());
        for run in runs {
            let inserted: Option<i64> = bind_new_run!(
                sqlx::query_scalar(concat!(
                    insert_new_run!(),
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    unless_key_held!(),
                    " RETURNING id"
                )),
                run
            )
            .bind(now.saturating_add(run.delay_ms))
            .bind(now)
            .bind(run.cost)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let id = match inserted {
                Some(id) => id,
                None => sqlx::query_scalar(
                    "SELECT id FROM taskrunner_runs WHERE dedup_key = $1 \
                     AND status IN ('pending', 'running')",
                )
                .bind(&run.dedup_key)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?,
            };
            ids.push(RunId::from_i64(id));
        }
        tx.commit().await.map_err(db)?;
        Ok(ids)
    }
}
