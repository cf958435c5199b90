//! Child runs on SQLite (spawn and join are shared: `children_on!`, `store/waits/children.rs`):
//! the joiners a run's end made due, and the cancel of a run's tree.

use sqlx::{Sqlite, Transaction};

use super::{db, SqliteStore};
use crate::store::types::{CancelFound, RunId};
use crate::store::waits::children::tree;
use crate::store::StoreError;

impl SqliteStore {
    /// The queues of the runs that were joining any of `ended` and are now due (their last
    /// awaited run ended): their claimers here are woken at once.
    pub(crate) async fn joiners_due(&self, ended: &[RunId]) -> Result<Vec<String>, StoreError> {
        let ended = serde_json::to_string(&ended.iter().map(|id| id.as_i64()).collect::<Vec<_>>())
            .unwrap_or_default();
        sqlx::query_scalar(
            "SELECT DISTINCT r.queue FROM taskrunner_waits w \
             JOIN taskrunner_runs r ON r.id = w.run_id \
             WHERE w.kind = 'join' AND w.done = 0 AND w.idx = 0 \
               AND w.name IN (SELECT CAST(value AS TEXT) FROM json_each($1)) \
               AND r.status = 'pending' AND r.wait_kind IS NULL",
        )
        .bind(&ended)
        .fetch_all(&self.inner.readers)
        .await
        .map_err(db)
    }

    /// Cancels the unfinished runs under run `id`, in the caller's (one writer's)
    /// transaction: pending (waiting) ones at once, running ones by a stored intent.
    pub(super) async fn cancel_tree(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        id: RunId,
    ) -> Result<Vec<(RunId, CancelFound)>, StoreError> {
        let cancelled: Vec<i64> = sqlx::query_scalar(concat!(
            "UPDATE taskrunner_runs SET status = 'cancelled', error = 'cancelled', \
             error_kind = 'cancelled', finished_at = $2 \
             WHERE id IN (",
            tree!(),
            ") AND status = 'pending' RETURNING id"
        ))
        .bind(id.as_i64())
        .bind(self.now())
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        let requested: Vec<i64> = sqlx::query_scalar(concat!(
            "UPDATE taskrunner_runs SET cancel_requested = TRUE \
             WHERE id IN (",
            tree!(),
            ") AND status = 'running' RETURNING id"
        ))
        .bind(id.as_i64())
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        let found = |ids: Vec<i64>, how| ids.into_iter().map(move |i| (RunId::from_i64(i), how));
        Ok(found(cancelled, CancelFound::Cancelled)
            .chain(found(requested, CancelFound::Requested))
            .collect())
    }
}
